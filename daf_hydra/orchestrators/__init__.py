"""Pipelines: thin sequences over the modules, reachable as `pipeline=<name>` and from Python.

`run_pipeline(cfg)` is what the CLI runs for every job; each pipeline function takes the composed config and
its run directory and returns its metrics (a dict, or a PipelineResult whose outputs hold them), from which the
objective Hydra's sweepers optimise is taken in memory: what a run returns is what it measured, not what a file
says later.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping

from omegaconf import DictConfig, OmegaConf, open_dict

from daf_hydra.errors import DAFError, Pruned
from daf_hydra.records import METRICS_FILE, STATUS_COMPLETED, write_json_atomic
from daf_hydra.orchestrators.analyze import run_analyze
from daf_hydra.orchestrators.benchmark import daf_run_benchmark_pipeline, run_benchmark
from daf_hydra.orchestrators.check import run_check
from daf_hydra.orchestrators.checks import validate_run
from daf_hydra.orchestrators.compare import daf_run_comparison_pipeline, run_compare
from daf_hydra.orchestrators.crossplay import daf_crossplay, run_crossplay_pipeline
from daf_hydra.orchestrators.evaluate import run_evaluate
from daf_hydra.results import PipelineResult
from daf_hydra.studies import trial_link, validations
from daf_hydra.orchestrators.sweep import daf_run_sweep_pipeline, run_sweep
from daf_hydra.orchestrators.train import run_train
from daf_hydra.orchestrators.training import daf_run_training_pipeline

PIPELINES: dict[str, Callable[[DictConfig, Path], Any]] = {
    "evaluate": run_evaluate,
    "check": run_check,
    "compare": run_compare,
    "crossplay": run_crossplay_pipeline,
    "analyze": run_analyze,
    "train": run_train,
    "sweep": run_sweep,
    "benchmark": run_benchmark,
}
__all__ = ["PIPELINES", "PipelineResult", "daf_crossplay", "daf_run_benchmark_pipeline",
           "daf_run_comparison_pipeline",
           "daf_run_sweep_pipeline", "daf_run_training_pipeline", "run_pipeline", "validate_run"]


def run_pipeline(cfg: DictConfig) -> Any:
    """Run the configured pipeline; return `objective.metric` of what it returned (a list when several).

    A run that is a sweep's trial (`trial.*`, set by the sweeper) tells its trial how it ended (studies): its
    objective, pruned (None is returned), or failed (the error propagates as in any run)."""
    name = cfg.pipeline.name
    if name not in PIPELINES:
        raise DAFError(f"pipeline.name={name!r} is unknown: valid pipelines are {', '.join(sorted(PIPELINES))}")
    run_dir = Path(cfg.output_dir)
    with trial_link(cfg, validations(cfg)) as link:
        try:
            if cfg.seeds:
                value = run_over_seeds(cfg, run_dir)
            else:
                value = objective_value(cfg.objective, name, PIPELINES[name](cfg, run_dir))
        except Pruned as exc:
            if link is None:
                raise
            link.tell("PRUNED", error=str(exc))
            print(f"trial {link.number} pruned: {exc}", flush=True)
            return None
        except BaseException as exc:
            if link is not None:
                link.tell("FAIL", error=f"{type(exc).__name__}: {exc}")
            raise
        if link is not None:
            values = [float(v) for v in (value if isinstance(value, list) else [value])] if value is not None else []
            if values and all(math.isfinite(v) for v in values):
                link.tell("COMPLETE", values)
            else:
                link.tell("FAIL", error=f"objective {value!r} is not a finite number")
        return value


def run_over_seeds(cfg: DictConfig, run_dir: Path) -> Any:
    """`seeds=[0,1,2]`: the pipeline once per seed (`<run_dir>/seed_<s>/`, each an ordinary run), and the
    objective averaged over them, so a sweep trial is judged on several trainings rather than one lucky seed.
    Any seed failing fails the whole run: a mean over the seeds that happened to work would flatter it."""
    seeds = [int(s) for s in cfg.seeds]
    name = cfg.pipeline.name
    per_seed = []
    for seed in seeds:
        seed_dir = run_dir / f"seed_{seed}"
        seed_cfg = cfg.copy()
        with open_dict(seed_cfg):
            seed_cfg.seed, seed_cfg.seeds, seed_cfg.output_dir = seed, None, str(seed_dir)
        value = objective_value(cfg.objective, name, PIPELINES[name](seed_cfg, seed_dir))
        per_seed.append(value if isinstance(value, list) else [value])
    names = metric_names(cfg.objective)
    means = [float(sum(v[i] for v in per_seed) / len(per_seed)) for i in range(len(names))]
    write_json_atomic(run_dir / METRICS_FILE, {
        "status": STATUS_COMPLETED, "error": None, "seeds": seeds, "objective_per_seed": per_seed,
        **dict(zip(names, means)),
    })
    print(f"{', '.join(names)} over seeds {seeds}: {', '.join(f'{m:.4g}' for m in means)}")
    return means[0] if len(means) == 1 else means


def metric_names(objective: DictConfig) -> list[str]:
    return list(objective.metric) if OmegaConf.is_list(objective.metric) else [str(objective.metric)]


def objective_value(objective: DictConfig, pipeline: str, returned: Any) -> Any:
    """The metric(s) named by `objective.metric` in what pipeline `pipeline` returned: its metrics dict, or a
    PipelineResult's outputs. A pipeline that returns a bare number (or None) returns its only objective itself."""
    names = metric_names(objective)
    metrics = returned.outputs if isinstance(returned, PipelineResult) else returned
    if not isinstance(metrics, Mapping):
        if len(names) > 1:
            raise DAFError(f"objective.metric={names} names several metrics, but pipeline {pipeline} returns one "
                           f"number ({returned})")
        return returned
    values = []
    for metric in names:
        value = metrics.get(metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            numeric = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            raise DAFError(f"objective.metric={metric!r} is not a number in the metrics of pipeline {pipeline}: "
                           f"numeric metrics are {', '.join(numeric)}")
        values.append(float(value))
    return values[0] if len(values) == 1 else values
