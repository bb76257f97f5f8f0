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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf, open_dict

from daf_hydra.records import record_outside_failure

log = logging.getLogger(__name__)


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
        jobs = executor.map_array(self, *zip(*job_params))
        returns = []
        for (overrides, _, idx, _, _), job in zip(job_params, jobs):
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
