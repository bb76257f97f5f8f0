"""daf_hydra's SLURM launcher (a Hydra plugin, registered by an entry point in pyproject.toml): Hydra's

Upstream collects results with `[job.results()[0] for job in jobs]`: the first job cancelled with `scancel`, killed
by the out-of-memory handler or timed out raises there, so Hydra abandons the other jobs' results and the
multirun's end-of-sweep callbacks. Here every job is awaited; one that did not finish becomes a failed job
(the Optuna sweeper records a FAIL trial, the basic sweeper exits non-zero at the end), and its run record says
why (`metrics.json`: `status: failed`, `error: "SLURM job 123 CANCELLED"`).
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
                state = job.state
                message = f"SLURM job {job.job_id} {state}: it ended before returning a result"
                log.error(f"\t#{idx} : {message}")
                record_outside_failure(self._job_dir(idx), message)
                returns.append(JobReturn(overrides=overrides, status=JobStatus.FAILED,
                                         _return_value=RuntimeError(f"{message} ({str(exc).splitlines()[0]})")))
        return returns

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
