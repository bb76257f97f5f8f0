"""`python -m daf_hydra.run`: the Hydra application. Compose a config, run its pipeline, return the objective.

    python -m daf_hydra.run pipeline=evaluate policy=baseline mission=training_facility_1 evaluation.episodes=5
    python -m daf_hydra.run -m policy=random,baseline mission=training_facility_1,assembler_2

A user's mistake (bad value, unknown name, missing file) ends a single run with one line on stderr and exit code 2
(`HYDRA_FULL_ERROR=1` shows the traceback); in a multirun the job is recorded as failed and the others go on.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from daf_hydra.compose import check_group_choices, prepare_config_store
from daf_hydra.errors import DAFError
from daf_hydra.missions import CONF_DIR


@hydra.main(config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> Any:
    from daf_hydra.orchestrators import run_pipeline

    try:
        return run_pipeline(cfg)
    except DAFError as exc:
        if HydraConfig.get().mode == RunMode.RUN and not os.environ.get("HYDRA_FULL_ERROR"):
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise


def cli() -> None:
    args = sys.argv[1:]
    prepare_config_store(args)
    try:
        check_group_choices(args)
    except DAFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
