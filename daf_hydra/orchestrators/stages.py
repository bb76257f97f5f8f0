"""Running a pipeline's stages: in order, each recorded in the run directory's pipeline.json as it ends.

Every orchestrated pipeline (compare, sweep, benchmark) is a list of `Stages.run(name, step, ...)` calls:

- a stage that raises is recorded as failed with its error (never with a made-up output); with
  `stop_on_failure` the stages after it are recorded as not run, otherwise the pipeline goes on and each later
  stage runs if the stages it `needs` completed (the result is then `partial`);
- a stage can note errors that do not stop it (a failed trial of a sweep, a failed member of a comparison):
  the stage completes and the pipeline ends `partial`;
- a re-run in the same directory reads the previous pipeline.json back and skips a stage whose work is on disk
  (it has a `restore`), that completed with the same inputs (`key`), and whose earlier stages were skipped too:
  the restored outputs are used instead. A stage that starts runs (trainings, evaluations) is keyed by those
  runs' identity signatures (`identity.run_identity`: everything that decides their numbers), never by paths,
  which stay the same when what is behind them changes. Stages without `restore` (environment checks, statistics, reports, packages: cheap,
  derived from the records) always run, so what they report describes this run.

Progress is printed as plain lines, one as each stage starts and one as it ends (`[benchmark] 2/6 training:
completed in 41.2 s (total 44.0 s)`), so a log file shows it as a terminal does; `finish` prints the outcome and
where every output on disk is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from daf_hydra.errors import DAFError
from daf_hydra.results import FAILED, PARTIAL, PIPELINE_FILE, SUCCESS, PipelineResult, json_value

log = logging.getLogger(__name__)
COMPLETED, STAGE_FAILED, NOT_RUN = "completed", "failed", "not_run"
Outputs = dict[str, Any]


def inputs_key(inputs: Any) -> str:
    """A digest of what a stage's result depends on (its config, its upstream outputs)."""
    text = json.dumps(json_value(inputs), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_parallel_stages(parallel_stages: bool) -> None:
    """The documents' `parallel_stages` option: stages run one after the other (False, the default). True is
    refused rather than ignored: every stage after the environment check needs what an earlier one produced."""
    if parallel_stages:
        raise DAFError("parallel_stages=True: every stage needs what an earlier stage produced, so stages run in "
                       "order; parallel_evaluation=True plays the policies in parallel processes")


def read_previous_stages(run_dir: Path, pipeline_name: str) -> dict[str, dict[str, Any]]:
    """The stage records of an earlier run of the same pipeline in `run_dir` (empty when there is none)."""
    path = Path(run_dir) / PIPELINE_FILE
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    if doc.get("pipeline_name") != pipeline_name:
        return {}
    return dict(doc.get("stages") or {})


class Stages:
    """One pipeline run: call `run` once per stage, then `finish`."""

    def __init__(self, pipeline_name: str, run_dir: str | Path, stop_on_failure: bool = True,
                 restart: bool = False, planned: Sequence[str] = ()):
        """`planned`: the names of the stages this run will go through, in order (the `n` of "stage k of n")."""
        self.run_dir = Path(run_dir)
        self.planned = list(planned)
        self.stop_on_failure = stop_on_failure
        # restart=true: the run starts over, nothing an earlier run recorded is reused
        self.previous = {} if restart else read_previous_stages(self.run_dir, pipeline_name)
        self.result = PipelineResult(pipeline_name, FAILED, outputs={"run_dir": str(self.run_dir)})
        self.stopped_by: Optional[str] = None
        self.reuse_allowed = True  # false once a restorable stage ran afresh: later results depend on it
        self.began = time.perf_counter()

    @property
    def owns_previous_records(self) -> bool:
        """Whether an earlier run of this pipeline recorded stages here (its files may be replaced)."""
        return bool(self.previous)

    def run(self, name: str, step: Callable[[], Outputs], *, needs: Sequence[str] = (), key: Any = None,
            restore: Optional[Callable[[Outputs], Outputs]] = None) -> Optional[Outputs]:
        """Run one stage (or skip it, see the module docstring); returns its outputs, None when it did not
        complete. `needs`: stages whose outputs this one uses; `key`: its inputs; `restore`: rebuilds the outputs
        from the JSON the earlier run recorded (raising when its files are gone, which makes the stage run)."""
        record: dict[str, Any] = {"status": NOT_RUN, "reused": False, "outputs": {}, "error": None,
                                  "key": inputs_key(key), "started_at": time.time(), "duration_s": 0.0}
        missing = [n for n in needs if n not in self.result.stages_completed]
        if self.stopped_by is not None or missing:
            record["error"] = (f"not run: stage {self.stopped_by} failed (stop_on_failure)" if self.stopped_by
                               else f"not run: it needs stage(s) {', '.join(missing)}, which did not complete")
            self._say(name, record["error"])
            return self._record(name, record, None)
        begin = time.perf_counter()
        outputs = self._restored(name, record["key"], restore) if restore is not None else None
        if outputs is not None:
            record["reused"] = True
            self._say(name, f"completed in an earlier run in {self.run_dir}, reused")
        else:
            if restore is not None:
                self.reuse_allowed = False
            self._say(name, "started")
            try:
                outputs = step()
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, DAFError) else str(exc)
                record.update(status=STAGE_FAILED, error=message.splitlines()[0] if message else type(exc).__name__,
                              duration_s=round(time.perf_counter() - begin, 3))
                if not isinstance(exc, DAFError):
                    log.error("%s stage %s failed", self.result.pipeline_name, name, exc_info=exc)
                if self.stop_on_failure:
                    self.stopped_by = name
                self._say(name, f"failed in {record['duration_s']:.1f} s: {record['error']}")
                return self._record(name, record, None)
        record.update(status=COMPLETED, outputs=json_value(outputs), duration_s=round(time.perf_counter() - begin, 3))
        if not record["reused"]:
            self._say(name, f"completed in {record['duration_s']:.1f} s")
        return self._record(name, record, outputs)

    def position(self, name: str) -> str:
        """`k/n` of stage `name` in the planned stages (`k` alone when it was not planned)."""
        if name in self.planned:
            return f"{self.planned.index(name) + 1}/{len(self.planned)}"
        return str(len(self.result.stages) + 1)

    def _say(self, name: str, what: str) -> None:
        elapsed = time.perf_counter() - self.began
        print(f"[{self.result.pipeline_name}] {self.position(name)} {name}: {what} (total {elapsed:.1f} s)",
              flush=True)

    def note_error(self, stage: str, message: str) -> None:
        """An error inside a stage that still completed (the pipeline then ends partial)."""
        self.result.errors.append(f"{stage}: {message}")

    def finish(self) -> PipelineResult:
        """Status: success when every stage completed without errors; failed when nothing beyond the environment
        check completed; partial otherwise. Writes pipeline.json."""
        r = self.result
        useful = [s for s in r.stages_completed if s != "environment_check"]
        r.status = SUCCESS if not r.errors and all(s["status"] == COMPLETED for s in r.stages.values()) \
            else PARTIAL if useful else FAILED
        r.total_time_seconds = round(time.perf_counter() - self.began, 3)
        r.write(self.run_dir)
        self._print_outcome()
        return r

    def _print_outcome(self) -> None:
        """The pipeline's status, then where each of its outputs is: the run directory, pipeline.json and every
        output that names a file or directory on disk (report, checkpoint, package, ...)."""
        r = self.result
        planned = len(self.planned) or len(r.stages)
        print(f"[{r.pipeline_name}] {r.status} in {r.total_time_seconds:.1f} s: {len(r.stages_completed)} of "
              f"{planned} stages completed" + (f", {len(r.errors)} error(s)" if r.errors else ""), flush=True)
        places = {"run directory": str(self.run_dir), "stages (pipeline.json)": str(self.run_dir / PIPELINE_FILE)}
        if (self.run_dir / "metrics.json").is_file():
            places["metrics"] = str(self.run_dir / "metrics.json")
        for key, value in r.outputs.items():
            if key != "run_dir" and isinstance(value, (str, Path)) and str(value) and Path(value).exists():
                places[key.replace("_", " ")] = str(value)
        width = max(len(k) for k in places)
        for what, where in places.items():
            print(f"  {what:{width}s}  {where}")

    def _restored(self, name: str, key: str, restore: Callable[[Outputs], Outputs]) -> Optional[Outputs]:
        before = self.previous.get(name)
        if not self.reuse_allowed or not before or before.get("status") != COMPLETED or before.get("key") != key:
            return None
        try:
            return restore(dict(before.get("outputs") or {}))
        except (OSError, KeyError, ValueError, DAFError) as exc:  # its files are gone or changed: run it again
            print(f"[{self.result.pipeline_name}] {name}: the earlier run's outputs cannot be reused ({exc}): "
                  "running it again")
            return None

    def _record(self, name: str, record: dict[str, Any], outputs: Optional[Outputs]) -> Optional[Outputs]:
        r = self.result
        r.stages[name] = record
        if record["status"] == COMPLETED:
            r.stages_completed.append(name)
            r.outputs.update(outputs or {})
        elif record["status"] == STAGE_FAILED:
            r.stages_failed.append(name)
            r.errors.append(f"{name}: {record['error']}")
        r.total_time_seconds = round(time.perf_counter() - self.began, 3)
        r.write(self.run_dir)  # after every stage: an interrupted pipeline leaves what it finished on record
        return outputs if record["status"] == COMPLETED else None
