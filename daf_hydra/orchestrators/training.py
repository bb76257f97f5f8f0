"""The train pipeline from Python: the same config the CLI composes, the same pipeline function.

    from daf_hydra.orchestrators import daf_run_training_pipeline
    result = daf_run_training_pipeline(policy_class_path="lstm", missions=["training_facility_1"],
                                       num_training_steps=200_000, eval_missions=["training_facility_1"],
                                       eval_episodes=10)
    result.is_success(), result.final_checkpoint, result.outputs["mean_reward"]

    daf_run_training_pipeline(config=DAFTrainingConfig(missions=["training_facility_2"], update_epochs=2))

A `DAFTrainingConfig` becomes the overrides a CLI user would type (`daf_hydra.compose.compose_config`), so both
roads give the same run. Mistakes in the config raise DAFError before any work; a failure while running is
reported in the returned PipelineResult (status failed or partial, errors), in metrics.json and pipeline.json.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

from daf_hydra.compose import api_output_dir, compose_config
from daf_hydra.config import DAFTrainingConfig, api_config
from daf_hydra.errors import DAFError
from daf_hydra.results import FAILED, PipelineResult
from daf_hydra.orchestrators.stages import check_parallel_stages
from daf_hydra.orchestrators.train import PIPELINE, train_pipeline

log = logging.getLogger(__name__)


def daf_run_training_pipeline(
    config: Optional[DAFTrainingConfig] = None,
    *,
    policy_class_path: Optional[str] = None,
    missions: Optional[Sequence[str]] = None,
    num_training_steps: Optional[int] = None,
    eval_missions: Optional[Sequence[str]] = None,
    eval_episodes: Optional[int] = None,
    output_dir: Optional[str | Path] = None,
    parallel_stages: bool = False,
    **fields: Any,
) -> PipelineResult:
    """Train, checkpoint and evaluate; give either `config` or keyword arguments: the fields of DAFTrainingConfig
    (`fields`: `policy_data_path`, `learning_rate`, `seed`, `device`, `resume`, `name`, `overrides`, and the PPO
    settings of the CLI's `training:`, e.g. `update_epochs=2`), defaults for those left out. `outputs`:
    `final_checkpoint` (also `result.final_checkpoint`), `training`, `evaluation`, `mean_reward`, `run_dir`."""
    check_parallel_stages(parallel_stages)
    config = api_config(DAFTrainingConfig, config, dict(
        policy_class_path=policy_class_path, missions=missions, num_training_steps=num_training_steps,
        eval_missions=eval_missions, eval_episodes=eval_episodes,
        output_dir=None if output_dir is None else str(output_dir), **fields))
    config.validate()
    run_dir = api_output_dir(config.output_dir).resolve()
    cfg = compose_config(config.cli_overrides(), output_dir=run_dir)
    from daf_hydra.orchestrators.checks import validate_run

    validate_run(cfg)
    if cfg.training.distributed.nodes * cfg.training.distributed.tasks_per_node > 1:  # would train one rank only
        raise DAFError("training.distributed with several ranks: use daf_hydra.distributed_training."
                       "daf_launch_distributed_training (backend='local' or 'slurm') or the CLI")
    result = PipelineResult(PIPELINE, FAILED, outputs={"name": config.name} if config.name else {})
    try:
        train_pipeline(cfg, Path(cfg.output_dir), result)
    except Exception as exc:  # recorded in result.errors, metrics.json and pipeline.json: the API reports it
        if not isinstance(exc, DAFError):  # a bug or an environment failure: keep its traceback in the log
            log.error("training pipeline failed in %s", ", ".join(result.stages_failed) or "setup", exc_info=exc)
    return result
