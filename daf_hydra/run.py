"""`python -m daf_hydra.run`: the Hydra application. Compose a config, run its pipeline, return the objective.

    python -m daf_hydra.run pipeline=evaluate policy=baseline mission=training_facility_1 evaluation.episodes=5
    python -m daf_hydra.run -m pipeline=evaluate policy=random,baseline mission=training_facility_1,assembler_2

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
from daf_hydra.config import CONF_DIR
from daf_hydra.sweeps import register_sweeper


# Config-selected targets Hydra may instantiate: our callbacks and launcher, Optuna's samplers.
EXECUTION_WHITELIST = ["daf_hydra.*", "optuna.*"]


@hydra.main(config_path=str(CONF_DIR), config_name="config", execution_whitelist=EXECUTION_WHITELIST)
def main(cfg: DictConfig) -> Any:
    from daf_hydra.orchestrators import run_pipeline

    try:
        return run_pipeline(cfg)
    except DAFError as exc:
        if HydraConfig.get().mode == RunMode.RUN and not os.environ.get("HYDRA_FULL_ERROR"):
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        raise


# `hydra/sweeper=optuna` (the plugin's own name) means our TPE preset: the plugin's bare defaults would minimise
# into an in-memory study, against daf_hydra's objective direction and its persistent studies.
SWEEPER_ALIASES = {"hydra/sweeper=optuna": "hydra/sweeper=tpe"}


SEARCH_SPACE_PREFIX = "hydra.sweeper.params."


def _normalise(arg: str) -> str:
    """`hydra.sweeper.params.lr=tag(log, interval(...))` on the command line is the Optuna sweeper's own
    `lr=tag(log, interval(...))` (Hydra refuses sweep expressions on its own keys); `hydra/sweeper=optuna`
    is our TPE preset."""
    arg = SWEEPER_ALIASES.get(arg, arg)
    return arg[len(SEARCH_SPACE_PREFIX):] if arg.startswith(SEARCH_SPACE_PREFIX) else arg


def cli() -> None:
    args = [_normalise(a) for a in sys.argv[1:]]
    sys.argv[1:] = args
    prepare_config_store(args)
    register_sweeper()
    try:
        check_group_choices(args)
    except DAFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
