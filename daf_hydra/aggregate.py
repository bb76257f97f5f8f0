"""A tree of runs -> tidy tables: one row per run, per episode, per learning-curve point.

Any tree works (a single run, a multirun, an Optuna sweep, a SLURM output tree, a comparison with its member runs):
every directory holding a run.json is a run, read through `records.py`. Runs that did not complete (failed, still
running or died, corrupt files) get a row in the runs table with their status and error and contribute no
episodes: a run that did not finish never gets a score.

Re-reading a large tree is cheap: an index in `<root>/.daf_index/` keeps the tables and, per run, a signature of
its record files (mtime and size); a later pass lists the tree, re-reads only the runs whose signature changed
and drops the runs that disappeared. Reading a large tree runs in worker processes (JSON parsing dominates).

    tables = daf_aggregate_runs("multirun/2026-11-21/10-00-00")
    tables.episodes.groupby(["policy", "mission"]).total_reward.mean()
"""

from __future__ import annotations

import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from daf_hydra import records
from daf_hydra.identity import RunIdentity, label_arms, run_identity

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

INDEX_DIR = ".daf_index"
INDEX_VERSION = 2  # bump when the table layout changes: older indexes are then rebuilt
SWEEP_RESULTS_FILE = "optimization_results.yaml"  # written by Hydra's Optuna sweeper into the sweep dir
MULTIRUN_FILE = "multirun.yaml"  # written by Hydra into every multirun's sweep dir
STATUS_CORRUPT = "corrupt"
EPISODE_COLUMNS = (
    "run_dir", "arm", "policy", "mission", "episode", "seed", "total_reward", "steps", "max_steps", "success",
    "num_agents", "wall_time_s",
)
TABLES = ("runs", "episodes", "curves")
# Reading in worker processes pays off from about this many runs (spawning a worker costs ~0.2 s).
PARALLEL_THRESHOLD = 800


@dataclass
class RunTables:
    """The tables of one tree. `runs` lists every run found (any status); `episodes` and `curves` hold the rows of
    completed runs only. `run_dir` (relative to `root`) joins them."""

    root: Path
    runs: "pd.DataFrame"
    episodes: "pd.DataFrame"
    curves: "pd.DataFrame"
    sweeps: list[dict[str, Any]] = field(default_factory=list)  # multirun/optimization_results.yaml found
    runs_read: int = 0  # runs (re)read from their records in this pass
    runs_reused: int = 0  # runs taken from the index unchanged

    @property
    def problems(self) -> "pd.DataFrame":
        """Runs that contribute nothing: failed, running or died, corrupt."""
        return self.runs[self.runs["status"] != records.STATUS_COMPLETED]


def daf_aggregate_runs(
    root: str | Path, use_index: bool = True, index_dir: str | Path | None = None, workers: int | None = None
) -> RunTables:
    """Read every run below `root` into tables (see the module docstring); the Python entry for notebooks.

    `index_dir` moves the index (default `<root>/.daf_index`, e.g. for a read-only tree); `workers` caps the reader
    processes (default: one per CPU core, used only for large trees).
    """
    import pandas as pd

    root = Path(root).resolve()
    if not root.is_dir():
        from daf_hydra.errors import DAFError

        raise DAFError(f"{str(root)!r} is not a directory: give a run, multirun, sweep or SLURM output directory")
    index_path = Path(index_dir) if index_dir is not None else root / INDEX_DIR
    found = dict(records.scan_runs(root))
    cached = _load_index(index_path) if use_index else None
    old_sigs = dict(zip(cached[0]["run_dir"].tolist(), cached[0]["record_signature"].tolist())) if cached else {}
    keep = {d for d, sig in found.items() if old_sigs.get(d) == sig}
    to_read = [d for d in found if d not in keep]
    changed = cached is None or bool(to_read) or len(keep) != len(old_sigs)
    if changed:
        run_rows, episode_cols, curve_rows = _read_runs(root, [(d, found[d]) for d in to_read], workers)
        fresh = (pd.DataFrame(run_rows), pd.DataFrame(episode_cols, columns=list(EPISODE_COLUMNS)),
                 pd.DataFrame(curve_rows))
        if cached is not None:  # unchanged runs from the index, changed and new ones as just read
            fresh = tuple(_concat(old[old["run_dir"].isin(keep)] if "run_dir" in old else old, new)
                          for old, new in zip(cached, fresh))
        runs, episodes, curves = (_sorted(t) for t in fresh)
        runs = _ordered(runs, _RUN_CORE)
        if use_index:
            _save_index(index_path, runs, episodes, curves)
    else:
        runs, episodes, curves = cached
    runs, episodes, curves = _with_arms(runs, episodes, curves)
    tables = RunTables(root, runs, episodes, curves, runs_read=len(to_read), runs_reused=len(keep))
    tables.sweeps = _find_sweeps(root, found)
    return tables


def write_tables(tables: RunTables, out_dir: str | Path) -> list[Path]:
    """Write runs/episodes/curves as CSV (any tool) and Parquet (typed, fast); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLES:
        table = getattr(tables, name)
        for suffix, write in (("csv", table.to_csv), ("parquet", _arrow_safe(table).to_parquet)):
            path = out / f"{name}.{suffix}"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            write(tmp, index=False)
            os.replace(tmp, path)
            written.append(path)
    return written


# ------------------------------------------------------------------------------------------------------------
# Reading runs
# ------------------------------------------------------------------------------------------------------------

_RUN_CORE = (
    "run_dir", "status", "kind", "arm", "policy", "mission", "seed", "trained", "arm_id", "n_episodes", "n_curve_points", "error", "run_id",
    "config_signature", "git_commit", "git_dirty", "host", "device", "started_at", "ended_at", "duration_s",
    "record_signature",
)


def _read_runs(
    root: Path, todo: list[tuple[str, str]], workers: int | None
) -> tuple[list[dict[str, Any]], dict[str, list[Any]], list[dict[str, Any]]]:
    workers = workers or os.cpu_count() or 1
    if len(todo) < PARALLEL_THRESHOLD or workers < 2:
        return _read_chunk(str(root), todo)
    n_chunks = workers * 4  # small chunks balance uneven run sizes
    size = math.ceil(len(todo) / n_chunks)
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    run_rows: list[dict[str, Any]] = []
    episode_cols: dict[str, list[Any]] = {c: [] for c in EPISODE_COLUMNS}
    curve_rows: list[dict[str, Any]] = []
    # fork where there is one: the workers only parse JSON (no torch, no threads of their own), and spawn would
    # re-run an unguarded user script or notebook cell in every worker and pay the interpreter start again.
    context = get_context("fork" if "fork" in get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for runs_part, episodes_part, curves_part in pool.map(_read_chunk, [str(root)] * len(chunks), chunks):
            run_rows += runs_part
            for c in EPISODE_COLUMNS:
                episode_cols[c] += episodes_part[c]
            curve_rows += curves_part
    return run_rows, episode_cols, curve_rows


def _read_chunk(
    root: str, todo: Sequence[tuple[str, str]]
) -> tuple[list[dict[str, Any]], dict[str, list[Any]], list[dict[str, Any]]]:
    """Rows of some runs: a run row each, episode columns and curve rows of the completed ones."""
    run_rows = []
    episode_cols: dict[str, list[Any]] = {c: [] for c in EPISODE_COLUMNS}
    curve_rows: list[dict[str, Any]] = []
    for rel, signature in todo:
        row, episodes, curve = _read_one(Path(root) / rel, rel, signature)
        run_rows.append(row)
        if row["status"] != records.STATUS_COMPLETED:
            continue
        for e in episodes:
            episode_cols["run_dir"].append(rel)
            episode_cols["arm"].append(None)
            episode_cols["policy"].append(row["policy"] or e.get("policy"))
            episode_cols["mission"].append(e.get("mission", row["mission"]))
            for c in ("episode", "seed", "total_reward", "steps", "max_steps", "success", "wall_time_s"):
                episode_cols[c].append(e.get(c))
            episode_cols["num_agents"].append(len(e.get("rewards") or ()))
        for point in curve:
            curve_rows.append({"run_dir": rel, "policy": row["policy"], "mission": row["mission"], **_flat(point)})
    return run_rows, episode_cols, curve_rows


def _read_one(run_dir: Path, rel: str, signature: str) -> tuple[dict[str, Any], list[dict], list[dict]]:
    """One run's row; a run whose files cannot be parsed is `corrupt`, with the reason, instead of an error."""
    row: dict[str, Any] = {"run_dir": rel, "record_signature": signature}
    try:
        record = records.read_run(run_dir)
        problem = _structure_problem(record)
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        record, problem = None, f"unreadable records: {type(exc).__name__}: {exc}"
    if record is None or problem:
        row.update(status=STATUS_CORRUPT, error=problem)
        if record is not None and isinstance(record.provenance, dict):
            row.update(_provenance_columns(record.provenance))
        return row, [], []
    prov, metrics = record.provenance, record.metrics or {}
    row.update(_provenance_columns(prov))
    config = prov.get("config") or {}
    trained = metrics.get("trained")
    identity = run_identity(config, trained if isinstance(trained, bool) else None)
    # what the run measured, by its identity; a run of several policies or missions (a comparison) says null
    row.update(policy=identity.policy or None, mission=metrics.get("mission", identity.mission or None),
               trained=identity.trained, arm_id=identity.arm_id, config_signature=identity.signature,
               identity=json.dumps(identity.to_dict(), sort_keys=True, default=str))
    row.update(
        status=record.status,
        error=metrics.get("error"),
        ended_at=metrics.get("ended_at"),
        duration_s=metrics.get("duration_s"),
        n_episodes=len(record.episodes),
        n_curve_points=len(record.curve),
    )
    skip = {"schema_version", "status", "error", "run_id", "started_at", "ended_at", "duration_s", "policy", "mission",
            "trained"}
    row.update(_flat({k: v for k, v in metrics.items() if k not in skip}, "metric."))
    # `lr` only feeds training.learning_rate: one column per knob
    row.update(_flat({k: v for k, v in config.items() if k != "lr"}, "config."))
    # a cross-play run's episodes mix policies on purpose: no policy's solo score (identity.mixed_teams)
    return row, [] if identity.mixed_teams else record.episodes, record.curve


def _structure_problem(record: records.RunRecord) -> str | None:
    """Files that parse but do not hold run records (hand-edited, truncated to `[]`, written by something else)."""
    if not isinstance(record.provenance, dict):
        return f"{records.RUN_FILE} is not a JSON object"
    if record.metrics is not None and (not isinstance(record.metrics, dict) or "status" not in record.metrics):
        return f"{records.METRICS_FILE} has no status"
    for e in record.episodes:
        total = e.get("total_reward") if isinstance(e, dict) else None
        if not isinstance(total, (int, float)) or isinstance(total, bool) or not math.isfinite(total):
            return f"{records.EPISODES_FILE} has an episode without a finite total_reward"
    return None


def _provenance_columns(prov: dict[str, Any]) -> dict[str, Any]:
    code = prov.get("code") or {}
    return {
        "run_id": prov.get("run_id"),
        "kind": prov.get("kind"),
        "seed": prov.get("seed"),
        "git_commit": code.get("git_commit"),
        "git_dirty": code.get("git_dirty"),
        "host": prov.get("host"),
        "device": prov.get("device"),
        "started_at": prov.get("started_at"),
        "python": prov.get("python"),
        **{f"package.{name}": version for name, version in (prov.get("packages") or {}).items()},
    }


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted scalar columns; lists become JSON text so every cell is one value."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def _with_arms(runs: "pd.DataFrame", episodes: "pd.DataFrame", curves: "pd.DataFrame") -> tuple:
    """The `arm` column of every table: the readable label of each run's arm among the arms of this tree
    (identity.label_arms), so runs differing in a setting are told apart and runs differing only in their seed
    (replicates) share a label. Computed on every pass: a label depends on the whole tree."""
    if runs.empty or "identity" not in runs:
        runs = runs.assign(arm=None) if "arm" not in runs else runs
        return runs, episodes, curves
    known = runs["identity"].notna()
    identities = [RunIdentity.from_dict(json.loads(text)) for text in runs.loc[known, "identity"]]
    runs = runs.copy()
    runs["arm"] = None
    runs.loc[known, "arm"] = label_arms(identities)
    arm_of = dict(zip(runs["run_dir"], runs["arm"]))
    episodes = episodes.assign(arm=episodes["run_dir"].map(arm_of)) if len(episodes) else episodes
    if len(curves):
        curves = curves.assign(arm=curves["run_dir"].map(arm_of))
    return runs, episodes, curves


# ------------------------------------------------------------------------------------------------------------
# Tables and the index
# ------------------------------------------------------------------------------------------------------------


def _concat(old: "pd.DataFrame", new: "pd.DataFrame") -> "pd.DataFrame":
    import pandas as pd

    parts = [t for t in (old, new) if len(t)]
    if not parts:
        return old if len(old.columns) >= len(new.columns) else new
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)


def _ordered(runs: "pd.DataFrame", first: Sequence[str]) -> "pd.DataFrame":
    """Core columns first (created empty when absent, so every runs table has them), then the rest sorted."""
    for column in first:
        if column not in runs:
            runs[column] = None
    rest = sorted(c for c in runs.columns if c not in first)
    return runs[list(first) + rest]


def _sorted(table: "pd.DataFrame") -> "pd.DataFrame":
    keys = [k for k in ("run_dir", "episode", "step") if k in table]
    if not keys or table.empty:
        return table.reset_index(drop=True)
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def _arrow_safe(table: "pd.DataFrame") -> "pd.DataFrame":
    """Parquet needs one type per column; a column whose values mix types (a swept value given as 3 and as 'a')
    is stored as text."""
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object:
            values = table[column].dropna()
            if values.map(type).nunique() > 1:
                table[column] = table[column].map(lambda v: None if v is None else str(v))
    return table


def _save_index(index_path: Path, runs: "pd.DataFrame", episodes: "pd.DataFrame", curves: "pd.DataFrame") -> None:
    """Write the index (each file written then renamed); it is a cache, so a tree we may not write to still
    aggregates, with a warning."""
    try:
        index_path.mkdir(parents=True, exist_ok=True)
        for name, table in zip(TABLES, (runs, episodes, curves)):
            path = index_path / f"{name}.parquet"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            _arrow_safe(table).to_parquet(tmp, index=False)
            os.replace(tmp, path)
        records.write_json_atomic(index_path / "meta.json", {"index_version": INDEX_VERSION})
    except OSError as exc:
        log.warning("could not write the aggregate index to %s (%s): the next pass reads every run again; "
                    "pass index_dir (report: --index-dir) to keep it elsewhere", index_path, exc)


def _load_index(index_path: Path) -> tuple["pd.DataFrame", "pd.DataFrame", "pd.DataFrame"] | None:
    """The cached tables, or None when there is no index or it was written by another layout version."""
    import pandas as pd

    try:
        meta = json.loads((index_path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("index_version") != INDEX_VERSION:
        return None
    try:
        tables = tuple(pd.read_parquet(index_path / f"{name}.parquet") for name in TABLES)
    except (OSError, ValueError) as exc:  # a damaged index is rebuilt, never trusted
        log.warning("aggregate index %s is unreadable (%s): rebuilding it", index_path, exc)
        return None
    runs = tables[0]
    if "run_dir" not in runs or "record_signature" not in runs:
        return None
    return tables  # type: ignore[return-value]


def _find_sweeps(root: Path, found: dict[str, str]) -> list[dict[str, Any]]:
    """The sweeps in the tree, by Hydra's own markers beside the runs: multirun.yaml (any multirun: its sweep
    overrides) and optimization_results.yaml (an Optuna sweep: best params and value). One entry per directory."""
    import yaml

    parents = {""} | {d.rpartition("/")[0] for d in found if d != "."}
    sweeps = []
    for rel in sorted(parents):
        directory = root / rel
        files = [f for f in (MULTIRUN_FILE, SWEEP_RESULTS_FILE) if (directory / f).is_file()]
        if not files:
            continue
        entry: dict[str, Any] = {"path": rel or ".", "overrides": [], "best_params": None, "best_value": None,
                                 "error": None}
        for name in files:
            try:
                data = yaml.safe_load((directory / name).read_text())
                if not isinstance(data, dict):
                    raise ValueError("not a mapping")
            except (OSError, ValueError, yaml.YAMLError) as exc:
                entry["error"] = f"{name}: {type(exc).__name__}: {exc}"
                continue
            if name == MULTIRUN_FILE:
                entry["overrides"] = list(((data.get("hydra") or {}).get("overrides") or {}).get("task") or [])
            else:
                entry["best_params"], entry["best_value"] = data.get("best_params"), data.get("best_value")
        sweeps.append(entry)
    return sweeps
