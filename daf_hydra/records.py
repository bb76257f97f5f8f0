"""Run records: the one writer and the one reader of what a run leaves on disk.

A run directory holds (schema in docs/records.md):
  .hydra/             Hydra's composed config, overrides (written by Hydra)
  run.json            provenance: run id, config signature, seed, code and package versions, host, device, timings
  episodes.jsonl      one JSON line per finished episode, appended and flushed as it finishes
  curve.jsonl         training runs: one JSON line per PPO update
  validation.jsonl    training runs with training.validate_every: one line per validation of a checkpoint
  metrics.json        the summary, written atomically (write then rename) with status completed | failed | pruned
Everything else in daf_hydra reads and writes runs through this module.

A run directory holds one run: `open_run` keeps what an earlier run of the same identity signature left there
(its episodes, one per mission and seed; a completed run is not run again), refuses a run of another signature,
and clears the records first when the run is started over (`restart`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from daf_hydra.errors import DAFError

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
EPISODES_FILE = "episodes.jsonl"
CURVE_FILE = "curve.jsonl"
VALIDATION_FILE = "validation.jsonl"
METRICS_FILE = "metrics.json"
STATUS_RUNNING, STATUS_COMPLETED, STATUS_FAILED = "running", "completed", "failed"
# A sweep's pruner stopped the run: neither a result nor a failure (its curve and validations are its record).
STATUS_PRUNED = "pruned"


# A disk (or quota) with no room left: what a run's writes meet when its output directory fills up.
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# The least free space a run starts with (check_writable): Hydra's config files and run.json take ~15 kB (six 4 kB
# blocks), the rest is room for the first records. A run that fills the disk later ends in one line too (DiskFull).
MIN_FREE_BYTES = 64 << 10


class DiskFull(DAFError):
    """A record could not be written for lack of space. What was written before stays (a run's finished episodes
    and its run.json), so the same command, once there is space, goes on from there (open_run)."""


def disk_full(exc: BaseException, path: str | Path) -> DiskFull | None:
    """The one-line error of `exc` when it is a full disk or quota met while writing `path`, else None."""
    if isinstance(exc, DiskFull):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in FULL_DISK_ERRNOS:
        return None
    return DiskFull(f"no space left on the device to write {exc.filename or path} ({os.strerror(exc.errno)}): "
                    "what was recorded before is kept; free space, then the same command in the same run directory "
                    "plays only what is missing")


def _replace_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Write a sibling temporary file with `write(file)`, then rename it over `path`: a reader never sees half a
    file, a crash never leaves one, and a full disk leaves `path` as it was (and no temporary file): DiskFull."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = disk_full(exc, path)
        if full is not None:
            raise full from exc
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write then rename (`_replace_atomically`)."""
    _replace_atomically(path, lambda f: json.dump(data, f, indent=2, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class RunRecorder:
    """Writes one run's records. `episode()`/`curve()` append as results arrive, so a crash loses nothing
    that had finished; `complete()` or `fail()` writes metrics.json exactly once."""

    def __init__(self, run_dir: str | Path, provenance: dict[str, Any],
                 completed: dict[str, Any] | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self._files: dict[str, Any] = {}
        # metrics.json of an earlier, completed run of the same identity: nothing to do, and nothing is written
        self.completed = completed
        if completed is not None:
            self.provenance = provenance
            return
        self.provenance = {"schema_version": SCHEMA_VERSION, **provenance, "started_at": self.started}
        write_json_atomic(self.run_dir / RUN_FILE, _clean(self.provenance))

    def finished_episodes(self, mission: str) -> dict[int, dict[str, Any]]:
        """The episodes of `mission` already recorded in this run (kept from an earlier, interrupted run of the
        same identity), by seed."""
        out: dict[int, dict[str, Any]] = {}
        for record in read_jsonl(self.run_dir / EPISODES_FILE):
            if record.get("mission") == mission and record.get("seed") is not None:
                out.setdefault(int(record["seed"]), record)
        return out

    def _append(self, name: str, record: dict[str, Any]) -> None:
        try:
            f = self._files.get(name)
            if f is None:
                f = self._files[name] = open(self.run_dir / name, "a")
            f.write(json.dumps(_clean(record), default=_jsonable) + "\n")
            f.flush()
        except OSError as exc:
            full = disk_full(exc, self.run_dir / name)
            if full is None:
                raise
            self._close_files()  # what did not fit is dropped; the lines before it stay (a torn one is ignored)
            raise full from exc

    def _close_files(self) -> None:
        """Close the JSON-lines files; on a full disk, what they still buffered is lost (a torn last line at
        most, which readers ignore)."""
        files, self._files = list(self._files.values()), {}
        for f in files:
            try:
                f.close()
            except OSError as exc:
                if disk_full(exc, f.name) is None:
                    raise

    def episode(self, record: dict[str, Any]) -> None:
        self._append(EPISODES_FILE, record)

    def curve(self, record: dict[str, Any]) -> None:
        self._append(CURVE_FILE, record)

    def validation(self, record: dict[str, Any]) -> None:
        self._append(VALIDATION_FILE, record)

    def truncate(self, name: str, keep: Callable[[dict[str, Any]], bool]) -> int:
        """Keep only the lines of a JSON-lines record (`CURVE_FILE`, `EPISODES_FILE`) that `keep` accepts, rewritten
        atomically; returns how many were dropped. A resumed run drops what its checkpoint does not contain."""
        f = self._files.pop(name, None)
        if f is not None:
            f.close()
        path = self.run_dir / name
        records = read_jsonl(path)
        kept = [r for r in records if keep(r)]
        if path.is_file():
            _rewrite_jsonl(path, kept)
        return len(records) - len(kept)

    def complete(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return self._finish(STATUS_COMPLETED, metrics, None)

    def fail(self, error: BaseException | str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return self._finish(STATUS_FAILED, metrics or {}, message)

    def prune(self, reason: str, metrics: dict[str, Any]) -> dict[str, Any]:
        """A sweep's pruner stopped the run: recorded as pruned with `reason` (never with a score)."""
        return self._finish(STATUS_PRUNED, metrics, reason)

    def _finish(self, status: str, metrics: dict[str, Any], error: str | None) -> dict[str, Any]:
        if self.completed is not None:  # a completed run's record is never rewritten
            return self.completed
        self._close_files()
        ended = time.time()
        doc = {
            "schema_version": SCHEMA_VERSION,
            "status": status,
            "error": error,
            "run_id": self.provenance.get("run_id"),
            "started_at": self.started,
            "ended_at": ended,
            "duration_s": round(ended - self.started, 3),
            **metrics,
        }
        try:
            write_json_atomic(self.run_dir / METRICS_FILE, _clean(doc))
        except DiskFull:
            if status == STATUS_COMPLETED:
                raise
            # no room to record the failure: the run reads as interrupted (run.json, no metrics.json), which the
            # same command goes on from, and the caller raises what ended it
        return doc


def episode_key(record: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What identifies an episode within a run: its mission and seed (episodes are seeded one by one), and in a
    cross-play run its composition (every composition plays the same seeds)."""
    return record.get("mission"), record.get("composition"), record.get("seed")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _rewrite_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    _replace_atomically(path, lambda f: f.writelines(json.dumps(r) + "\n" for r in records))


def clear_run(run_dir: str | Path, owned: Sequence[str] = ()) -> None:
    """Remove a run's records (and `owned`: further files or directories of the run) to start it over."""
    run_dir = Path(run_dir)
    for name in (*RECORD_FILES, *owned):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def completed_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """metrics.json of the run in `run_dir` when it completed, else None (not run, running, killed, failed)."""
    metrics = _read_json(Path(run_dir) / METRICS_FILE)
    return metrics if metrics is not None and metrics.get("status") == STATUS_COMPLETED else None


def check_writable(run_dir: str | Path, what: str = "the output directory") -> None:
    """Refuse, in one line (DAFError), a run directory (or `what` else a run writes into) that cannot be created
    or written: an ancestor that is a file, or the nearest existing ancestor not writable. Checked before any
    work, so nothing is started (and nothing recorded elsewhere is touched) for a run that could not record
    itself. Holds for root too (a file is never a directory, whatever the permission bits)."""
    run_dir = Path(run_dir).absolute()
    for path in (run_dir, *run_dir.parents):
        if path.exists():
            if not path.is_dir():
                raise DAFError(f"cannot write {what} {run_dir}: {path} is not a directory")
            if not os.access(path, os.W_OK | os.X_OK):
                raise DAFError(f"cannot write {what} {run_dir}: {path} is not writable")
            free = shutil.disk_usage(path).free
            if free < MIN_FREE_BYTES:
                raise DiskFull(f"cannot write {what} {run_dir}: its device has {free:,} bytes free, a run needs at "
                               f"least {MIN_FREE_BYTES:,}; free space (what is recorded there is kept)")
            return


def recorded_signature(run_dir: str | Path) -> str | None:
    """The identity signature of the run recorded in `run_dir` (`config_signature` in run.json), None when there
    is none."""
    provenance = _read_json(Path(run_dir) / RUN_FILE)
    return provenance.get("config_signature") if provenance is not None else None


class RunConflict(DAFError):
    """The run directory holds a run of another identity signature."""


def open_run(run_dir: str | Path, provenance: dict[str, Any], *, restart: bool = False,
             owned: Sequence[str] = (), continues: bool = False) -> RunRecorder:
    """The recorder of the run `provenance` describes (its `config_signature` is the identity signature) in
    `run_dir`, which holds one run:
    - empty, or `restart`: a new run (with `restart`, the records and `owned` are cleared first);
    - a completed run of the same signature: a recorder whose `completed` holds its metrics, writing nothing;
    - an interrupted or failed run of the same signature: its episodes are kept, one per mission and seed (a
      torn last line, left by kill -9, is dropped), its failed metrics.json removed, and the run goes on: the
      players play only the seeds missing (`RunRecorder.finished_episodes`);
    - a run of another signature: RunConflict (a DAFError), naming both; unless it left nothing to keep (it failed
      before recording an episode or a curve point: it is replaced), or the caller `continues` it from state of
      its own (training.resume=true goes on from the last checkpoint, to a new step budget perhaps): its episodes
      and metrics are dropped, the rest kept."""
    run_dir = Path(run_dir)
    before = _read_json(run_dir / RUN_FILE)
    signature = provenance.get("config_signature")
    if before is not None and before.get("config_signature") is None:
        restart = True  # a job that never started (record_outside_failure): nothing to keep
    other = before is not None and not restart and before.get("config_signature") != signature
    if other and completed_metrics(run_dir) is None and not read_jsonl(run_dir / EPISODES_FILE) \
            and not read_jsonl(run_dir / CURVE_FILE):
        restart = other = False  # it failed before recording anything: nothing to keep
        clear_run(run_dir)
        before = None
    if other and continues:
        (run_dir / EPISODES_FILE).unlink(missing_ok=True)  # played under the other settings
        (run_dir / METRICS_FILE).unlink(missing_ok=True)
        other = False
    if other:
        raise RunConflict(
            f"{run_dir} holds another run (identity signature {before.get('config_signature')}, "
            f"{_describe(before)}) than this one ({signature}, {_describe(provenance)}): choose another "
            "hydra.run.dir, or pass restart=true to clear it and start over")
    if restart:
        clear_run(run_dir, owned)
        return RunRecorder(run_dir, provenance)
    if before is None:
        return RunRecorder(run_dir, provenance)
    metrics = completed_metrics(run_dir)
    if metrics is not None:
        return RunRecorder(run_dir, before, completed=metrics)
    episodes: dict[tuple[Any, Any], dict[str, Any]] = {}
    for record in read_jsonl(run_dir / EPISODES_FILE):
        episodes.setdefault(episode_key(record), record)
    if (run_dir / EPISODES_FILE).is_file():
        _rewrite_jsonl(run_dir / EPISODES_FILE, list(episodes.values()))
    if (run_dir / CURVE_FILE).is_file():
        _rewrite_jsonl(run_dir / CURVE_FILE, read_jsonl(run_dir / CURVE_FILE))  # drops a torn last line
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    return RunRecorder(run_dir, {**provenance, "run_id": before.get("run_id") or provenance.get("run_id"),
                                 "resumed": int(before.get("resumed") or 0) + 1,
                                 "first_started_at": before.get("first_started_at") or before.get("started_at")})


def _describe(provenance: dict[str, Any]) -> str:
    identity = provenance.get("identity") or {}
    parts = [identity.get("pipeline") or provenance.get("kind"), identity.get("policy"), identity.get("mission")]
    return " ".join(str(p) for p in parts if p) or "unknown"


def record_outside_failure(run_dir: str | Path, error: str) -> None:
    """Record a run that was ended from outside (scancel, out of memory, time limit) and so could not write its
    own metrics.json; a job that never started gets a run.json saying so. Never overwrites a finished record."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / METRICS_FILE).exists():
        return
    if not (run_dir / RUN_FILE).exists():
        write_json_atomic(run_dir / RUN_FILE, {"schema_version": SCHEMA_VERSION, "run_id": None, "kind": "unknown",
                                               "started_at": None, "note": "the job ended before it started"})
    provenance = json.loads((run_dir / RUN_FILE).read_text())
    write_json_atomic(run_dir / METRICS_FILE, {
        "schema_version": SCHEMA_VERSION, "status": STATUS_FAILED, "error": error,
        "run_id": provenance.get("run_id"), "started_at": provenance.get("started_at"), "ended_at": time.time(),
    })


@dataclass
class RunRecord:
    """What a reader gets back from a run directory."""

    run_dir: Path
    provenance: dict[str, Any]
    metrics: dict[str, Any] | None  # None while running, or when the run died before writing it
    episodes: list[dict[str, Any]] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.metrics["status"] if self.metrics else STATUS_RUNNING


def is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, ignoring a torn last line (the run may have died while writing it)."""
    if not path.is_file():
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def read_run(run_dir: str | Path, with_episodes: bool = True) -> RunRecord:
    """Read a run; raises ValueError when run.json or metrics.json is corrupt."""
    run_dir = Path(run_dir)
    provenance = json.loads((run_dir / RUN_FILE).read_text())
    metrics_path = run_dir / METRICS_FILE
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    record = RunRecord(run_dir, provenance, metrics)
    if with_episodes:
        record.episodes = read_jsonl(run_dir / EPISODES_FILE)
        record.curve = read_jsonl(run_dir / CURVE_FILE)
    return record


def find_runs(root: str | Path) -> Iterable[Path]:
    """Every run directory below root (a single run, a multirun, a sweep, a SLURM output tree)."""
    root = Path(root)
    for path in sorted(root.rglob(RUN_FILE)):
        yield path.parent


RECORD_FILES = (RUN_FILE, METRICS_FILE, EPISODES_FILE, CURVE_FILE)


def scan_runs(root: str | Path) -> Iterable[tuple[str, str]]:
    """Every run directory below root, as (path relative to root in POSIX form, "." for root itself; signature of
    its record files: name, mtime_ns and size of each).

    A run's records change only by appending to its JSON-lines files or by replacing run.json / metrics.json, and
    either changes the signature, so an index keyed by it re-reads exactly the runs that changed. One directory
    listing plus one stat per record file, on plain strings (pathlib objects would triple the cost on a
    10,000-run tree). Hidden directories (Hydra's `.hydra`, indexes) are skipped, symbolic links to directories
    are not followed (no cycles; aggregate the link's target itself); directories come sorted.
    """
    top = os.fspath(root)
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(top, rel) if rel else top) as listing:
                names = {e.name: e for e in listing}
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed while scanning
        if RUN_FILE in names:
            parts = []
            for name in RECORD_FILES:
                entry = names.get(name)
                if entry is None:
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
            yield rel or ".", "|".join(parts)
        prefix = f"{rel}/" if rel else ""
        subdirs = sorted(n for n, e in names.items() if not n.startswith(".") and e.is_dir(follow_symlinks=False))
        stack.extend(prefix + n for n in reversed(subdirs))


def summarize_episodes(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-run summary of episode totals: what metrics.json reports and sweeps optimise."""
    import numpy as np

    totals = np.array([e["total_reward"] for e in episodes], dtype=float)
    n = len(totals)
    if n == 0:
        return {"episodes": 0}
    successes = [e["success"] for e in episodes if e.get("success") is not None]
    per_agent = [r for e in episodes for r in e["rewards"]]
    return {
        "episodes": n,
        "mean_reward": float(totals.mean()),
        "std_reward": float(totals.std(ddof=1)) if n > 1 else 0.0,
        "stderr_reward": float(totals.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
        "median_reward": float(np.median(totals)),
        "min_reward": float(totals.min()),
        "max_reward": float(totals.max()),
        "mean_reward_per_agent": float(np.mean(per_agent)) if per_agent else 0.0,
        "success_rate": float(np.mean(successes)) if successes else None,
        "mean_steps": float(np.mean([e["steps"] for e in episodes])),
        "env_steps": int(sum(e["steps"] for e in episodes)),
    }
