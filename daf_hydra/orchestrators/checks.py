"""The checks of a composed run config that need no environment: run by the CLI before Hydra launches a job, by
`run_pipeline` for each job, and by the Python API before its first stage."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from daf_hydra.errors import DAFError

PIPELINE_NAMES = ("analyze", "benchmark", "check", "compare", "crossplay", "evaluate", "sweep", "train")


def known_mission(name: str) -> None:
    """A mission name the catalog or an installed cogames game can build (DAFError, one line, otherwise)."""
    from daf_hydra.config import COGAMES_PREFIX
    from daf_hydra.missions import catalog_names

    if not name.startswith(COGAMES_PREFIX) and name not in catalog_names():
        raise DAFError(f"unknown mission {name!r}: valid missions are {', '.join(catalog_names())} "
                       f"or {COGAMES_PREFIX}<game>.<mission>")


def eval_mission_names(cfg: DictConfig) -> list[str]:
    """The missions a train run evaluates on (runs.missions_of, by name, without loading them): with several,
    its summary is their average, which holds fewer metrics (config.pipeline_metrics)."""
    names = cfg.training.eval_missions if cfg.training.eval_missions is not None else cfg.training.missions
    return [str(n) for n in names] if names is not None else [str(cfg.mission.name)]


def validate_run(cfg: DictConfig) -> None:
    """Every check of a composed run config that needs no environment and no earlier run, so a mistake is one
    line (DAFError) before any work: the pipeline, seeds, device, the objective (its metric must be one the
    pipeline returns), the settings of every group the pipeline reads. The CLI runs it on the composed config
    before Hydra launches a single job; `run_pipeline` runs it again for each job."""
    from daf_hydra.config import (DAFBenchmarkConfig, DAFConfig, DAFSweepConfig, validate_analyze, validate_compare,
                                  validate_device, validate_evaluation, validate_objective, validate_seed,
                                  validate_statistics)
    from daf_hydra.missions.catalog import validate_mission

    name = cfg.pipeline.name
    if name not in PIPELINE_NAMES:
        raise DAFError(f"pipeline.name={name!r} is unknown: valid pipelines are {', '.join(PIPELINE_NAMES)}")
    validate_seed("seed", cfg.seed)
    if cfg.seeds is not None:
        if not cfg.seeds:
            raise DAFError("seeds=[] is empty: list at least one seed, e.g. seeds=[0,1,2], or null for `seed`")
        for s in cfg.seeds:
            validate_seed("seeds", s)
    if cfg.evaluation.seed is not None:
        validate_seed("evaluation.seed", cfg.evaluation.seed)
    validate_device(str(cfg.device))
    validate_objective(OmegaConf.to_object(cfg.objective.metric) if OmegaConf.is_list(cfg.objective.metric)
                       else cfg.objective.metric,
                       OmegaConf.to_object(cfg.objective.direction) if OmegaConf.is_list(cfg.objective.direction)
                       else cfg.objective.direction, name, eval_missions=len(set(eval_mission_names(cfg))))
    validate_evaluation(cfg.evaluation)
    validate_statistics(cfg.statistics)
    DAFConfig(**OmegaConf.to_container(cfg.resources, resolve=True)).validate()
    if cfg.mission.get("source", "catalog") == "catalog":
        validate_mission(cfg.mission)
    if name == "compare":
        validate_compare(cfg.compare)

        for mission in cfg.compare.missions:
            if isinstance(mission, str):
                known_mission(mission)
    elif name == "crossplay":
        from daf_hydra.crossplay import plan_crossplay

        plan_crossplay(cfg)  # policies, missions, k on every mission
    elif name == "analyze":
        validate_analyze(cfg.analyze)
    elif name == "benchmark":
        DAFBenchmarkConfig(**OmegaConf.to_container(cfg.benchmark, resolve=True)).validate()
    elif name == "sweep":
        sweep = OmegaConf.to_object(cfg.sweep)
        assert isinstance(sweep, DAFSweepConfig)
        sweep.validate()
    elif name == "train":
        from daf_hydra.runs import validate_train_run

        validate_train_run(cfg)


