"""Run a study's trials through a Hydra launcher: asynchronously, to the study's budget, and back from a kill.

Hydra's Optuna sweeper asks `n_jobs` trials, launches them as one batch and waits for the slowest; counts
`n_trials` per invocation; and leaves the trials of a killed sweeper RUNNING for ever (../notes: sweeps-beyond).
Here instead:
- `workers` trials run at once, and a new one starts as soon as any ends (each trial is its own launch, from a
  thread, for launchers that run jobs in other processes: submitit's local and SLURM executors; Hydra's basic
  launcher runs jobs in this process, one at a time);
- `n_trials` is the study's total: trials of every earlier run of the study count, so the same command after a
  kill runs only the remaining ones;
- trials are watched by heartbeats (studies.open_storage): one whose process died without telling its end is
  failed and retried with its parameters up to `max_retry` times; a retried trial runs before any new one;
- trials still running elsewhere (another worker of the same study, a SLURM job that outlived its sweeper) are
  waited for, not duplicated.

Each trial's run tells its own end (orchestrators.run_pipeline through studies.TrialLink); this module reads it
back from the storage and prints one line per trial start and end.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from daf_hydra.errors import DAFError
from daf_hydra.records import METRICS_FILE, STATUS_FAILED
from daf_hydra.studies import GRACE_FACTOR, Heartbeat, budget_used, superseded


@dataclass
class _Running:
    trial: Any  # optuna.trial.Trial
    job_idx: int
    started: float
    future: Optional[Future] = None


@dataclass
class StudyRunner:
    """Runs `study` to `n_trials` through `launch(overrides, job_idx) -> JobReturn`.

    `configure(trial)` suggests the trial's parameters and returns its overrides; `run_dir(job_idx)` is where a
    job's run lands (to tell a run that recorded its own failure from a process that died); `in_process`: jobs
    run in this process (one at a time, in this thread: they may install signal handlers)."""

    study: Any
    n_trials: int
    workers: int
    configure: Callable[[Any], Sequence[str]]
    launch: Callable[[Sequence[str], int], Any]
    run_dir: Callable[[int], Path]
    heartbeat_interval: int
    max_retry: int
    max_failure_rate: float
    in_process: bool
    job_idx: int = 0
    running: dict[int, _Running] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    finished: int = 0

    def log(self, message: str) -> None:
        print(f"[sweep {self.study.study_name}] {message}", flush=True)

    def run(self) -> None:
        import optuna

        storage = self.study._storage
        beat = Heartbeat(storage, self.heartbeat_interval)
        pool = None if self.in_process else ThreadPoolExecutor(self.workers, thread_name_prefix="trial")
        lock = threading.Lock()
        used = budget_used(self.study.get_trials(deepcopy=False))
        if used:
            self.log(f"study holds {used} of {self.n_trials} trials already: running the rest")
        try:
            while True:
                optuna.storages.fail_stale_trials(self.study)
                trials = self.study.get_trials(deepcopy=False)
                while len(self.running) < self.workers and not self._stopping() and self._can_ask(trials):
                    trial = self.study.ask()
                    beat.add(trial._trial_id)
                    overrides = list(self.configure(trial))
                    job = _Running(trial, self.job_idx, time.time())
                    self.job_idx += 1
                    self.running[trial.number] = job
                    trials = self.study.get_trials(deepcopy=False)
                    self._started(job, trials)
                    if pool is None:
                        self._finish(job, self._launch(job, overrides), beat)
                    else:
                        job.future = pool.submit(self._launch, job, overrides)
                    trials = self.study.get_trials(deepcopy=False)
                if not self.running:
                    elsewhere = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
                    if not elsewhere or self._stopping():
                        break
                    self.log(f"waiting for {len(elsewhere)} trial(s) running elsewhere "
                             f"({', '.join(str(t.number) for t in elsewhere)}): a dead one is retried after "
                             f"{GRACE_FACTOR * self.heartbeat_interval} s without a heartbeat")
                    time.sleep(self.heartbeat_interval)
                    continue
                futures = {j.future: j for j in self.running.values() if j.future is not None}
                done, _ = wait(futures, timeout=self.heartbeat_interval, return_when=FIRST_COMPLETED)
                for future in done:
                    with lock:
                        self._finish(futures[future], future.result(), beat)
        finally:
            beat.stop()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if self._stopping():
            raise DAFError(f"{len(self.failures)} of {self.finished} trials of study {self.study.study_name} failed "
                           f"(max_failure_rate={self.max_failure_rate}): {self.failures[-1]}")

    def _can_ask(self, trials: Sequence[Any]) -> bool:
        import optuna

        waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
        return waiting or budget_used(trials) < self.n_trials

    def _stopping(self) -> bool:
        return bool(self.failures) and len(self.failures) / max(1, self.finished) > self.max_failure_rate

    def _launch(self, job: _Running, overrides: Sequence[str]) -> Any:
        try:
            return self.launch(overrides, job.job_idx)
        except Exception as exc:  # the launcher could not start or follow the job: the trial did not run
            return exc

    def _started(self, job: _Running, trials: Sequence[Any]) -> None:
        retry = self.study._storage.get_trial(job.trial._trial_id).system_attrs.get("failed_trial")
        params = ", ".join(f"{k}={_short(v)}" for k, v in job.trial.params.items())
        position = min(budget_used(trials), self.n_trials)
        again = f" (retry of trial {retry})" if retry is not None else ""
        self.log(f"trial {job.trial.number} started{again} [{position}/{self.n_trials}]: {params} -> "
                 f"{self.run_dir(job.job_idx)}")

    def _finish(self, job: _Running, returned: Any, beat: Heartbeat) -> None:
        """Read the trial's end from the storage; a trial its run never ended died with its process: failed,
        then retried (unless its run recorded its own failure, or retries are used up)."""
        import optuna

        self.running.pop(job.trial.number, None)
        beat.discard(job.trial._trial_id)
        frozen = self.study._storage.get_trial(job.trial._trial_id)
        elapsed = time.time() - job.started
        state = frozen.state
        if state == optuna.trial.TrialState.RUNNING:
            error = _job_error(returned, self.run_dir(job.job_idx))
            self.study._storage.set_trial_user_attr(job.trial._trial_id, "error", error[:500])
            self.study.tell(job.trial.number, state=optuna.trial.TrialState.FAIL)
            if not _recorded_failure(self.run_dir(job.job_idx)):
                optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry)(
                    self.study, self.study._storage.get_trial(job.trial._trial_id))
                retried = any(job.trial.number in t.system_attrs.get("retry_history", [])
                              for t in self.study.get_trials(deepcopy=False))
                error += "; retried with the same parameters" if retried else "; retries used up"
            frozen = self.study._storage.get_trial(job.trial._trial_id)
            state = frozen.state
        self.finished += 1
        if state == optuna.trial.TrialState.COMPLETE:
            values = ", ".join(f"{v:.4g}" for v in frozen.values)
            self.log(f"trial {frozen.number} complete in {elapsed:.0f} s: objective {values}{self._best()}")
        elif state == optuna.trial.TrialState.PRUNED:
            last = max(frozen.intermediate_values) if frozen.intermediate_values else None
            value = f" (value {frozen.intermediate_values[last]:.4g})" if last is not None else ""
            self.log(f"trial {frozen.number} pruned at validation {last}{value} after {elapsed:.0f} s")
        else:
            error = frozen.user_attrs.get("error") or (
                f"no heartbeat for {GRACE_FACTOR * self.heartbeat_interval} s: failed as dead by the storage")
            if frozen.number not in superseded(self.study.get_trials(deepcopy=False)):
                self.failures.append(f"trial {frozen.number}: {error}")
            self.log(f"trial {frozen.number} failed after {elapsed:.0f} s: {error}")

    def _best(self) -> str:
        if len(self.study.directions) > 1:
            return ""
        try:
            best = self.study.best_trial
        except ValueError:  # nothing complete yet
            return ""
        return f"; best so far {best.value:.4g} (trial {best.number})"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _recorded_failure(run_dir: Path) -> bool:
    """Whether the job's run recorded its own failure (a bad value, a diverged training, a job the launcher
    recorded as cancelled): retrying it would fail the same way."""
    try:
        return json.loads((run_dir / METRICS_FILE).read_text()).get("status") == STATUS_FAILED
    except (OSError, ValueError):
        return False


def _job_error(returned: Any, run_dir: Path) -> str:
    if isinstance(returned, BaseException):
        return f"the launcher could not run the job: {type(returned).__name__}: {str(returned).splitlines()[0]}"
    try:
        recorded = json.loads((run_dir / METRICS_FILE).read_text()).get("error")
    except (OSError, ValueError):
        recorded = None
    if recorded:
        return str(recorded).splitlines()[0]
    value = getattr(returned, "_return_value", None)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {str(value).splitlines()[0] if str(value) else ''}"
    return "the job ended without telling its trial's result (its process died)"
