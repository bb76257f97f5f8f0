"""The sweep pipeline: environment check -> sweep -> best config extraction -> comparison of the best trial's
policy against baselines.

    python -m daf_hydra.run pipeline=sweep policy=lstm training.total_steps=50000 sweep.strategy=grid \
        'sweep.search_space={learning_rate:[0.001,0.003]}' sweep.num_trials=2 pipeline.comparison_episodes=10

    cfg = DAFSweepConfig.from_yaml("conf/experiment/sweep_config.yaml")
    result = daf_run_sweep_pipeline(config=cfg, compare_best=True, comparison_episodes=10)
    result.outputs["best_config"].hyperparameters, result.outputs["best_checkpoint"]

The sweep is the CLI's Optuna multirun (`sweeps.daf_launch_sweep`, in a process of its own); the pipeline keeps
it in its run directory: the sweep directories under <run_dir>/sweep/<study>/, and, unless `storage` is
set, the study in <run_dir>/sweep/optuna.db. Each trial is the run the user composed: the sweep's fields default
to the config's own sections (conf/config.yaml's `sweep:`), and the command line's policy, mission, training
and evaluation overrides are passed on to every trial (`in_run_dir`); a sweep field set explicitly
wins. A re-run in the same directory reuses a sweep that completed with the same settings; one that did not
complete continues the same study. The comparison is the compare pipeline, in <run_dir>/comparison/.
pipeline.json records the stages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from daf_hydra.config import DAFConfig, DAFSweepConfig
from daf_hydra.errors import DAFError
from daf_hydra.identity import policy_name
from daf_hydra.results import FAILED, PipelineResult
from daf_hydra.orchestrators.stages import Stages, check_parallel_stages

PIPELINE = "sweep"
STAGES = ("environment_check", "sweep", "best_config_extraction", "comparison")
SWEEP_DIR = "sweep"
COMPARISON_DIR = "comparison"
# Top-level keys of the user's overrides that shape the run a trial is: passed on to every trial. (`seeds` is not:
# run_pipeline runs the whole sweep pipeline once per seed.)
TRIAL_KEYS = ("policy", "mission", "training", "evaluation", "lr")


def sweep_pipeline(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> PipelineResult:
    """The pipeline the CLI and the Python API both run: the sweep of `cfg.sweep`, the options of `cfg.pipeline`
    (compare_best, comparison_episodes, baselines, stop_on_failure) and the limits of `cfg.resources`.
    `overrides`: those `cfg` was composed with; the trials get theirs (`in_run_dir`)."""
    from daf_hydra.compose import to_container
    from daf_hydra.orchestrators.compare import check_environment, nested_comparison
    from daf_hydra.sweeps import daf_launch_sweep, daf_sweep_best_config, read_sweep_results

    options = cfg.pipeline
    resources = DAFConfig(**to_container(cfg.resources))
    sweep_cfg = in_run_dir(OmegaConf.to_object(cfg.sweep), run_dir, resources, str(cfg.device), overrides)
    baselines = list(options.baselines) if options.compare_best else []
    planned = ["environment_check", "sweep", "best_config_extraction", *(["comparison"] if options.compare_best else [])]
    stages = Stages(PIPELINE, run_dir, bool(options.stop_on_failure), planned=planned)

    def check() -> dict[str, Any]:
        resources.validate()
        sweep_cfg.validate()
        if options.compare_best and options.comparison_episodes < 1:
            raise DAFError(f"pipeline.comparison_episodes={options.comparison_episodes} is invalid: it must be >= 1")
        return {"check": check_environment(sweep_cfg.missions, [sweep_cfg.policy_class_path, *baselines], run_dir,
                                           str(cfg.device))}

    def sweep() -> dict[str, Any]:
        Path(sweep_cfg.output_root).mkdir(parents=True, exist_ok=True)  # SQLite cannot create the study's directory
        results = daf_launch_sweep(sweep_cfg)
        if results.status == "failed":
            errors = [f"trial {t['number']}: {t['error']}" for t in results.trials if t.get("error")]
            last_line = (results.log_tail.splitlines() or ["no trial ran"])[-1]
            raise DAFError(f"no trial of sweep {results.summary.get('study_name') or sweep_cfg.sweep_name!r} "
                           f"completed ({'; '.join(errors[:3]) or last_line})")
        return {"sweep_results": results, "sweep_dir": str(results.sweep_dir)}

    def restore(before: dict[str, Any]) -> dict[str, Any]:
        results = read_sweep_results(before["sweep_dir"], sweep_cfg, int(before["sweep_results"]["returncode"]))
        return {"sweep_results": results, "sweep_dir": str(results.sweep_dir)}

    def best() -> dict[str, Any]:
        found = daf_sweep_best_config(stages.result.outputs["sweep_results"])
        return {"best_config": found, "best_checkpoint": found.checkpoint, "best_run_dir": found.run_dir}

    def compare() -> dict[str, Any]:
        entry = best_policy(stages.result.outputs["best_config"])
        compared = nested_comparison(cfg, [entry, *baselines], sweep_cfg.missions, run_dir / COMPARISON_DIR,
                                     episodes=int(options.comparison_episodes), parallel=False,
                                     stop_on_failure=bool(options.stop_on_failure))
        if compared.status == FAILED:
            raise DAFError(f"the comparison failed: {compared.errors[0]}")
        for error in compared.errors:
            stages.note_error("comparison", error)
        return {"comparison_results": compared.outputs["results"], "comparison_report": compared.outputs.get("report"),
                "comparison_dir": str(run_dir / COMPARISON_DIR)}

    stages.run("environment_check", check)
    swept = stages.run("sweep", sweep, key={"sweep": sweep_cfg}, restore=restore)
    if swept is not None:
        results = swept["sweep_results"]
        for t in results.trials:
            if t.get("state") != "COMPLETE":
                stages.note_error("sweep", f"trial {t['number']} {t['state'].lower()}: {t.get('error') or ''}".strip())
        if results.returncode != 0:
            stages.note_error("sweep", f"the multirun exited with status {results.returncode}: {results.log_tail}")
    stages.run("best_config_extraction", best, needs=["sweep"])
    if options.compare_best:
        stages.run("comparison", compare, needs=["best_config_extraction"])
    return stages.finish()


def in_run_dir(sweep_cfg: DAFSweepConfig, run_dir: Path, resources: DAFConfig, device: str,
               overrides: Sequence[str] = ()) -> DAFSweepConfig:
    """The sweep as this pipeline runs it: in its run directory (a study of its own unless `storage` names one),
    trials on this pipeline's device and within its resources (max_parallel_jobs trials at once), each the run
    the user composed: their `overrides` of TRIAL_KEYS reach every trial, but for the keys the sweep sets itself
    (its fields and search space), which win."""
    root = Path(run_dir).resolve() / SWEEP_DIR
    own = {_key(o) for o in dataclasses.replace(sweep_cfg, extra_overrides=[]).overrides()}
    passed = [o for o in overrides if _key(o).split(".")[0] in TRIAL_KEYS and _key(o) not in own]
    extra = list(sweep_cfg.extra_overrides)
    given = {_key(o) for o in extra}
    extra = passed + [f"{k}={v}" for k, v in (("device", device),
                                             ("resources.gpu_memory_fraction", resources.gpu_memory_fraction))
                      if v is not None and k not in given] + extra
    return dataclasses.replace(
        sweep_cfg, output_root=str(root), storage=sweep_cfg.storage or f"sqlite:///{root / 'optuna.db'}",
        max_parallel_jobs=resources.max_parallel_jobs or sweep_cfg.max_parallel_jobs, extra_overrides=extra)


def _key(override: str) -> str:
    """The config key an override sets: `+training.x=1` -> `training.x`; a search-space parameter by its own key."""
    return override.split("=", 1)[0].lstrip("+~").removeprefix("hydra.sweeper.params.")


def best_policy(best: Any) -> Any:
    """The best trial's policy as a comparison entry: its class, kwargs and checkpoint (its run's config)."""
    from daf_hydra.policy_entries import PolicyEntry

    if not best.run_dir:
        raise DAFError("the best trial has no run directory: its policy cannot be compared")
    policy = OmegaConf.load(Path(best.run_dir) / ".hydra" / "config.yaml").policy
    name = policy.name or policy_name({"class_path": policy.class_path})  # its name, without the checkpoint
    return PolicyEntry(f"{name}-best", str(policy.class_path), best.checkpoint or policy.data_path,
                       dict(OmegaConf.to_container(policy.kwargs)))


def daf_run_sweep_pipeline(
    config: DAFSweepConfig | DAFConfig | None = None,
    compare_best: bool = True,
    comparison_episodes: int = 10,
    *,
    baselines: Sequence[str] = ("baseline", "random"),
    resources: Optional[DAFConfig] = None,
    stop_on_failure: bool = True,
    device: str = "auto",
    output_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    parallel_stages: bool = False,
) -> PipelineResult:
    """Sweep, extract the best configuration and compare it against `baselines` (when `compare_best`), from
    Python: the same config and pipeline function as `pipeline=sweep`. `outputs`: `sweep_results`
    (SweepResults), `best_config` (BestConfig), `best_checkpoint`, `comparison_results`, `comparison_report`.
    `overrides` are further CLI overrides of the pipeline's config (`statistics.bootstrap_reps=2000`); those of
    the trials' run (`mission.max_steps=50`, TRIAL_KEYS) reach every trial unless `config` sets the key. A
    `DAFConfig` as `config` sets the resources (the design documents' form) and sweeps DAFSweepConfig's defaults."""
    from daf_hydra.compose import api_output_dir, compose_config
    from daf_hydra.orchestrators.compare import resource_overrides

    check_parallel_stages(parallel_stages)
    if isinstance(config, DAFConfig):
        if resources is not None:
            raise DAFError("give the resources once: config=DAFConfig(...) or resources=DAFConfig(...)")
        config, resources = None, config
    config = config or DAFSweepConfig()
    cfg = compose_config(
        ["pipeline=sweep", f"seed={config.seed}", f"device={device}",
         f"pipeline.compare_best={str(compare_best).lower()}",
         f"pipeline.comparison_episodes={comparison_episodes}", f"pipeline.baselines=[{','.join(baselines)}]",
         f"pipeline.stop_on_failure={str(stop_on_failure).lower()}", *resource_overrides(resources or DAFConfig()),
         *overrides],
        api_output_dir(output_dir).resolve(),
    )
    cfg.sweep = OmegaConf.structured(config)
    from daf_hydra.orchestrators.checks import validate_run

    validate_run(cfg)
    if comparison_episodes < 1:
        raise DAFError(f"comparison_episodes={comparison_episodes} is invalid: it must be >= 1")
    result = sweep_pipeline(cfg, Path(cfg.output_dir), overrides)
    if config.name:
        result.outputs["name"] = config.name
    return result


def run_sweep(cfg: DictConfig, run_dir: Path) -> Optional[float]:
    """`pipeline=sweep` from the CLI: run it, print what it found; exits non-zero (DAFError) when it failed.
    Returns the best trial's objective."""
    from hydra.core.hydra_config import HydraConfig

    result = sweep_pipeline(cfg, run_dir, list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [])
    if result.status == FAILED:
        raise DAFError(f"sweep pipeline failed: {result.errors[0]} (all stages: {run_dir / 'pipeline.json'})")
    for error in result.errors:
        print(f"  WARNING {error}")
    best = result.outputs.get("best_config")
    if best is not None:
        print(f"best trial: {best.hyperparameters} -> {best.value} ({best.run_dir})")
        print(f"best checkpoint: {best.checkpoint}")
    if result.outputs.get("comparison_report"):
        print(f"report: {result.outputs['comparison_report']}")
    print(f"sweep pipeline {result.status}: stages {', '.join(result.stages_completed)} -> {run_dir}")
    return best.value if best is not None and isinstance(best.value, (int, float)) else None
