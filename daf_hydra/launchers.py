"""daf_hydra's SLURM launcher (a Hydra plugin, registered by an entry point in pyproject.toml): Hydra's

Upstream collects results with `[job.results()[0] for job in jobs]`: the first job cancelled with `scancel`, killed
by the out-of-memory handler or timed out raises there, so Hydra abandons the other jobs' results and the
multirun's end-of-sweep callbacks. Here every job is awaited; one that did not finish becomes a failed job
(the Optuna sweeper records a FAIL trial, the basic sweeper exits non-zero at the end), and its run record says
why (`metrics.json`: `status: failed`, `error: "SLURM job 123 CANCELLED"`).

A job of several tasks (distributed training: `nodes`/`tasks_per_node` come from `training.distributed`) runs the
Hydra job on every task, all in one run directory; the job's result is task 0's (rank 0 records the run). So that
the ranks do not write Hydra's per-job files over each other, tasks > 0 write no `.hydra/` directory and log only to
the console, i.e. their own submitit output file (`.submitit/<job>/<job>_<task>_log.out`).

While the jobs run, the launcher shows each job's id, state, pending reason and elapsed time: a line when a job
changes state and every PROGRESS_EVERY_S seconds (a live table instead on a terminal). A job that can never start
on this cluster (daf_hydra.slurm_jobs.unschedulable_reason: 2 nodes of a 1-node partition, more CPUs than a node
has...) is cancelled within seconds and fails in one line naming the request and the limit; a request sbatch
refuses fails every job of the batch in one line. Either way the runs are recorded failed and the other jobs land.
"""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf, open_dict

from daf_hydra import slurm_jobs
from daf_hydra.errors import DAFError
from daf_hydra.records import record_outside_failure

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often squeue is asked while jobs run
ACCOUNTING_WAIT_S = 10.0  # how long an ended job's final state may take to reach accounting (sacct)
PROGRESS_EVERY_S = 30.0  # a line per running job at least this often (plain output)
# what a job asks, named in a refusal (the launcher's own parameter names)
REQUEST_KEYS = ("partition", "nodes", "tasks_per_node", "cpus_per_task", "mem_gb", "gpus_per_node", "gres",
                "constraint", "account", "qos", "timeout_min")
ACTIVE_OR_UNKNOWN = {None, *slurm_jobs.ACTIVE}  # accounting's states of a job that has not ended (as far as it knows)


class JobNeverRan(DAFError, CompactHydraException):
    """A job SLURM refused or could never start: Hydra's sweeper reports it as its one line, without a traceback."""


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        shared = set.intersection(*(set(p[0]) for p in job_params))  # a job is named by what sets it apart
        labels = {p[2]: " ".join([f"#{p[2]}", *filter_overrides([o for o in p[0] if o not in shared])])
                  for p in job_params}
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's multi-line error itself
                jobs = executor.map_array(self, *zip(*job_params))
        except submitit.core.utils.FailedJobError as exc:
            line = f"sbatch refused {self._request()}: {slurm_jobs.sbatch_refusal(str(exc))}"
            print(f"error: {line}", file=sys.stderr, flush=True)  # once: every job of the batch asked the same
            return [self._failed(overrides, idx, line) for overrides, _, idx, _, _ in job_params]
        refused = _Watch(jobs, {job.job_id: labels[p[2]] for p, job in zip(job_params, jobs)}).run()
        returns = []
        for (overrides, _, idx, _, _), job in zip(job_params, jobs):
            if job.job_id in refused:
                returns.append(self._failed(overrides, idx, refused[job.job_id]))
                continue
            try:
                returns.append(job.results()[0])
            except submitit.core.utils.UncompletedJobError as exc:
                if job.num_tasks > 1 and job.task(0).exception() is None:  # rank 0 returned (its own failure
                    returns.append(job.task(0).result())  # recorded); the others failed because it left them
                    continue
                state = job.state
                message = f"SLURM job {job.job_id} {state}: it ended before returning a result"
                log.error(f"\t#{idx} : {message}")
                record_outside_failure(self._job_dir(idx), message)
                returns.append(JobReturn(overrides=overrides, status=JobStatus.FAILED,
                                         _return_value=RuntimeError(f"{message} ({str(exc).splitlines()[0]})")))
        return returns

    def _failed(self, overrides: list[str], idx: int, line: str) -> JobReturn:
        """A job that never ran: its run recorded failed with `line`, a failed return for the sweeper."""
        record_outside_failure(self._job_dir(idx), line)
        return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=JobNeverRan(line))

    def _request(self) -> str:
        """What the jobs ask of SLURM, in the launcher's parameter names (hydra.launcher.*)."""
        asked = [f"{k}={self.params[k]}" for k in REQUEST_KEYS if self.params.get(k) not in (None, "", [], {})]
        asked += [f"{k}={v}" for k, v in (self.params.get("additional_parameters") or {}).items()]
        return " ".join(asked)

    def __call__(self, sweep_overrides: list[str], job_dir_key: str, job_num: int, job_id: str,
                 singleton_state: dict[type, Singleton]) -> JobReturn:
        """Runs in every task of a job: tasks > 0 of a multi-task job write no Hydra files (see the module doc)."""
        import submitit

        if submitit.JobEnvironment().global_rank > 0:
            sweep_overrides = [*sweep_overrides, "hydra.output_subdir=null", "hydra.job_logging.root.handlers=[console]"]
        return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)

    def _executor(self) -> Any:
        """The submitit executor, configured as upstream does it."""
        import submitit

        init_keys = {"max_num_timeout", "python"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k in init_keys},
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in base else f"{self._EXECUTOR}_{k}": v
            for k, v in self.params.items() if k not in init_keys | {"submitit_folder"}
        })
        return executor

    def _job_dir(self, idx: int) -> Path:
        """Where job `idx` writes its run (hydra.sweep.dir / hydra.sweep.subdir with hydra.job.num = idx)."""
        config = OmegaConf.create(OmegaConf.to_container(self.config, resolve=False))  # a writable copy
        with open_dict(config):
            config.hydra.job.num = idx
        return Path(str(self.config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)


class _Watch:
    """Shows the jobs of one launch until they have all ended, and cancels those that can never start."""

    def __init__(self, jobs: Sequence[Any], labels: dict[str, str]):
        self.jobs, self.labels = list(jobs), labels
        self.began = time.monotonic()
        self.refused: dict[str, str] = {}
        self.shown: dict[str, tuple[str, str]] = {}
        self.ended: dict[str, str] = {}  # final states, from accounting
        self.last_lines = 0.0

    def run(self) -> dict[str, str]:
        """Returns the one-line reason of every job it cancelled, by job id."""
        if not sys.stdout.isatty():
            self._loop(self._lines)
            return self.refused
        from rich.live import Live

        with Live(self._table({}), refresh_per_second=1, transient=False) as live:
            self._loop(lambda listed: live.update(self._table(listed)))
        return self.refused

    def _loop(self, show: Any) -> None:
        while True:
            try:
                listed = slurm_jobs.queue([job.job_id for job in self.jobs])
            except (RuntimeError, subprocess.SubprocessError) as exc:  # the launch goes on, as submitit's waits do
                log.warning(f"no more SLURM progress lines: {exc}")
                return
            for job_id, queued in listed.items():
                if (job_id in self.labels and job_id not in self.refused and queued.state == "PENDING"
                        and slurm_jobs.may_never_start(queued.reason)):
                    self._refuse_if_unschedulable(job_id)
            show(listed)
            if all(job.job_id not in listed or job.job_id in self.refused for job in self.jobs):
                break
            time.sleep(POLL_S)
        settle = time.monotonic() + ACCOUNTING_WAIT_S  # show how each job ended, once accounting knows
        while any(self._state(job.job_id, {})[0] == "COMPLETING" for job in self.jobs) and time.monotonic() < settle:
            time.sleep(0.5)
        show({})

    def _refuse_if_unschedulable(self, job_id: str) -> None:
        reason = slurm_jobs.unschedulable_reason(job_id)
        if reason is None:
            return
        slurm_jobs.cancel(job_id)
        self.refused[job_id] = f"{reason}: cancelled"
        print(f"error: {self.labels[job_id]}: {self.refused[job_id]}", file=sys.stderr, flush=True)

    def _state(self, job_id: str, listed: dict[str, slurm_jobs.QueuedJob]) -> tuple[str, str, str]:
        """(state, reason, elapsed) of a job: SLURM's run time once running, time since submission before."""
        queued = listed.get(job_id)
        if job_id in self.refused:
            return "CANCELLED", "can never start", ""
        if queued is None:  # ended: COMPLETING until accounting has its final state
            if job_id not in self.ended and (state := slurm_jobs.accounted_state(job_id)) not in ACTIVE_OR_UNKNOWN:
                self.ended[job_id] = state
            return self.ended.get(job_id, "COMPLETING"), "", ""
        waited = _clock(time.monotonic() - self.began)
        reason = "" if queued.reason == "None" else queued.reason
        return queued.state, reason, queued.elapsed if queued.state != "PENDING" else waited

    def _lines(self, listed: dict[str, slurm_jobs.QueuedJob]) -> None:
        """A line per job whose state or reason changed, and per active job every PROGRESS_EVERY_S seconds."""
        periodic = time.monotonic() - self.last_lines >= PROGRESS_EVERY_S
        for job in self.jobs:
            state, reason, elapsed = self._state(job.job_id, listed)
            changed = self.shown.get(job.job_id) != (state, reason)
            if changed or (periodic and job.job_id in listed):
                why = f" ({reason})" if reason else ""
                since = f", {elapsed}" if elapsed else ""
                print(f"[slurm] job {job.job_id} {self.labels[job.job_id]}: {state}{why}{since}", flush=True)
            self.shown[job.job_id] = (state, reason)
        if periodic:
            self.last_lines = time.monotonic()

    def _table(self, listed: dict[str, slurm_jobs.QueuedJob]) -> Any:
        from rich.table import Table

        table = Table("job", "run", "state", "reason", "elapsed", title="SLURM jobs")
        for job in self.jobs:
            table.add_row(str(job.job_id), self.labels[job.job_id], *self._state(job.job_id, listed))
        return table


def _clock(seconds: float) -> str:
    """m:ss, or h:mm:ss, as squeue writes elapsed times."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
