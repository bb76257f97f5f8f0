"""Pipelines: thin sequences over the modules, reachable as `pipeline=<name>` and from Python.

`run_pipeline(cfg)` is what the CLI runs for every job; each pipeline function takes the composed config and
its run directory and returns the objective Hydra's sweepers optimise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from daf_hydra.errors import DAFError
from daf_hydra.orchestrators.check import run_check
from daf_hydra.orchestrators.evaluate import run_evaluate

PIPELINES: dict[str, Callable[[DictConfig, Path], Any]] = {
    "evaluate": run_evaluate,
    "check": run_check,
}


def run_pipeline(cfg: DictConfig) -> Any:
    name = cfg.pipeline.name
    if name not in PIPELINES:
        raise DAFError(f"pipeline.name={name!r} is unknown: valid pipelines are {', '.join(sorted(PIPELINES))}")
    return PIPELINES[name](cfg, Path(cfg.output_dir))
