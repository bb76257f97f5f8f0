"""The compare pipeline: environment check -> comparison -> significance testing -> report.

    python -m daf_hydra.run pipeline=compare compare.policies=[baseline,random,lstm] \
        compare.missions=[training_facility_1,assembler_2] compare.episodes_per_mission=20 compare.parallel=true

    daf_run_comparison_pipeline(policies=["baseline", "random"], missions=["training_facility_1"],
                                episodes_per_mission=20, parallel_evaluation=True)  # -> PipelineResult

The steps live in `daf_hydra.comparison` (the feature's home); this module only sequences them as stages
(`orchestrators.stages`) and reports which completed. Everything lands in the run directory: run.json, members/
(one evaluate run per policy x mission), comparison/ (tables, comparison.json), check.json, report.html,
metrics.json, pipeline.json (the stages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig

from daf_hydra.config import DAFComparisonConfig, DAFConfig, api_config
from daf_hydra.errors import DAFError
from daf_hydra.results import FAILED, PipelineResult
from daf_hydra.orchestrators.stages import Stages, check_parallel_stages

STAGES = ("environment_check", "comparison", "significance_testing", "report")
REPORT_FILE = "report.html"


def run_comparison_pipeline(cfg: DictConfig, policies: Sequence[Any], missions: Sequence[Any], run_dir: Path,
                            stop_on_failure: bool = True, report: bool = True,
                            title: Optional[str] = None, analyse_completed: bool = True) -> PipelineResult:
    """Run the stages (orchestrators.stages: pipeline.json, stop_on_failure, reuse on a re-run). A failed member
    is named in the errors and the result is partial; the records of what completed are always written.

    On a re-run in the same directory the members' episodes are not played again when the comparison stage
    completed with members of the same identity signatures (policies, missions and their overrides, seeds,
    evaluation settings): the statistics are recomputed from the recorded episodes. `report`: whether to write
    report.html (titled `title`). `cfg.resources.max_parallel_jobs` caps the worker processes. `outputs`:
    `results` (ComparisonResults), `summary_statistics`, `report`, and `metrics` (what metrics.json records).

    A re-run after an interruption plays only what its members had not finished (runs.start_run); a re-run of a
    completed comparison plays and writes nothing and returns its recorded metrics (`completed_earlier`; the
    statistics recomputed from its records unless `analyse_completed` is false)."""
    from daf_hydra.comparison import ComparisonRun, member_signatures
    from daf_hydra.records import RunConflict
    from daf_hydra.compose import to_container
    from daf_hydra.visualization import daf_export_comparison_html

    cfg.compare.workers = DAFConfig(**to_container(cfg.resources)).workers(cfg.compare.workers)
    planned = ["environment_check", "comparison", "significance_testing", *(["report"] if report else [])]
    stages = Stages("compare", run_dir, stop_on_failure, restart=bool(cfg.get("restart") or False), planned=planned)
    run: Optional[ComparisonRun] = None
    rejected: Optional[Exception] = None
    try:
        run = ComparisonRun(cfg, policies, missions, run_dir)  # validates the settings; records a failure itself
    except RunConflict:
        raise  # the directory holds another run: nothing of it is touched
    except Exception as exc:
        rejected = exc
    if run is not None and run.completed is not None:  # an earlier run of this comparison completed: nothing to do
        return completed_comparison(run, stages.result, analyse_completed)

    def check() -> dict[str, Any]:
        if rejected is not None or run is None:
            raise rejected or DAFError("no comparison to run")
        try:
            return {"check": check_environment(run.missions, [e.class_path for e in run.entries], run_dir,
                                               str(cfg.device))}
        except Exception as exc:
            run.fail(exc)
            raise

    def compared() -> ComparisonRun:
        if run is None:
            raise DAFError("no comparison to run: its settings were rejected (see environment_check)")
        return run

    def analysed() -> dict[str, Any]:
        results = compared().analyse(significance=False)
        return {"results": results, "summary_statistics": results.summary_statistics}

    def evaluate() -> dict[str, Any]:
        r = compared()
        try:  # members an earlier, interrupted run of this comparison finished are kept (runs.start_run)
            r.evaluate()
            return analysed()
        except Exception as exc:
            r.fail(exc)
            raise

    stages.run("environment_check", check)
    key = None if run is None else {"members": member_signatures(run.tasks)}
    def restored(_: dict[str, Any]) -> dict[str, Any]:
        unfinished = compared().unfinished_members()
        if unfinished:  # an interrupted re-run of the stage: its members go on (runs.start_run)
            raise DAFError(f"member(s) {', '.join(unfinished)} did not complete")
        return analysed()

    outputs = stages.run("comparison", evaluate, key=key, restore=restored)
    if outputs is None:
        return stages.finish()
    results = outputs["results"]
    member_errors = [f"member {o.policy} on {o.mission} failed: {o.error}" for o in run.outcomes if o.error]
    for error in member_errors:
        stages.note_error("comparison", error)
    if not member_errors and not results.completeness.complete:
        stages.note_error("comparison", results.completeness.summary())
    stages.run("significance_testing", lambda: {"significance_tests": len(run.add_significance_tests())},
               needs=["comparison"])
    if report:
        stages.run("report", lambda: {"report": daf_export_comparison_html(results, run_dir / REPORT_FILE, title)},
                   needs=["comparison"])
    result = stages.result
    result.outputs["metrics"] = run.finish({"stages_completed": result.stages_completed,
                                            "stages_failed": result.stages_failed, "errors": result.errors})
    return stages.finish()


def completed_comparison(run: Any, result: PipelineResult, analyse: bool) -> PipelineResult:
    """The result of a comparison completed by an earlier run in the same directory: its recorded metrics, and
    (`analyse`) its statistics recomputed from the members' records (reading only: nothing is played or written)."""
    from daf_hydra.results import SUCCESS

    result.status = SUCCESS
    result.outputs.update(metrics=run.completed, completed_earlier=True)
    if analyse:
        results = run.analyse()
        result.outputs.update(results=results, summary_statistics=results.summary_statistics)
    if (run.run_dir / REPORT_FILE).is_file():
        result.outputs["report"] = str(run.run_dir / REPORT_FILE)
    return result


def nested_comparison(cfg: DictConfig, policies: Sequence[Any], missions: Sequence[Any], run_dir: Path, *,
                      episodes: int, parallel: bool, stop_on_failure: bool) -> PipelineResult:
    """The compare pipeline as a stage of another pipeline (sweep, benchmark): `cfg` (the outer pipeline's config,
    composed from the user's overrides: evaluation, mission, statistics and resources settings) becomes a compare
    run in `run_dir`. `missions`: names or mission configs."""
    import copy

    from omegaconf import OmegaConf

    from daf_hydra.config import StagedPipelineConfig
    from daf_hydra.records import RunConflict

    sub = copy.deepcopy(cfg)
    sub.pipeline = OmegaConf.structured(StagedPipelineConfig(name="compare", stop_on_failure=stop_on_failure))
    sub.output_dir = str(run_dir)
    sub.compare.episodes_per_mission = int(episodes)
    sub.compare.parallel = bool(parallel)
    try:
        return run_comparison_pipeline(sub, policies, missions, Path(run_dir), stop_on_failure)
    except RunConflict:  # the outer pipeline owns this directory: a comparison of its earlier design is replaced
        from daf_hydra.comparison import OWNED
        from daf_hydra.records import clear_run

        clear_run(run_dir, OWNED)
        return run_comparison_pipeline(sub, policies, missions, Path(run_dir), stop_on_failure)


def check_environment(missions: Sequence[Any], policies: Sequence[str], run_dir: Path, device: str) -> str:
    """The shared environment check of the orchestrated pipelines: check.json in `run_dir`; raises DAFError
    naming every failed check. Returns the check.json path."""
    from daf_hydra.environment_checks import daf_check_environment
    from daf_hydra.records import write_json_atomic

    check = daf_check_environment(missions=missions, policies=policies, output_dir=run_dir, device=device)
    path = Path(run_dir) / "check.json"
    write_json_atomic(path, check.to_dict())
    if not check.is_healthy():
        raise DAFError(f"environment check failed: {'; '.join(check.errors)}")
    return str(path)


def daf_run_comparison_pipeline(
    policies: Optional[Sequence[Any]] = None,
    missions: Optional[Sequence[Any]] = None,
    episodes_per_mission: Optional[int] = None,
    parallel_evaluation: Optional[bool] = None,
    *,
    config: Optional[DAFComparisonConfig] = None,
    resources: Optional[DAFConfig] = None,
    stop_on_failure: bool = True,
    parallel_stages: bool = False,
    output_dir: str | Path | None = None,
    device: str = "cpu",
    overrides: Sequence[str] = (),
    **fields: Any,
) -> PipelineResult:
    """The compare pipeline from Python (the same stages and records as the CLI). Give DAFComparisonConfig's
    fields as arguments (`parallel_evaluation` is its `parallel`; `fields`: `workers`, `seed`,
    `significance_level`, `bootstrap_samples`, `generate_html_report`, `name`), or `config=` holding them.
    `resources=DAFConfig(max_parallel_jobs=...)` caps the worker processes; `overrides`: further CLI overrides
    (`mission=solo_forage mission.max_steps=50`, `evaluation.num_envs=4`). `outputs` holds `run_dir`, `results`
    (ComparisonResults), `summary_statistics` and `report` (the HTML path) when those stages completed."""
    from daf_hydra.comparison import compose_compare_config

    check_parallel_stages(parallel_stages)
    config = api_config(DAFComparisonConfig, config, dict(
        policies=policies, missions=missions, episodes_per_mission=episodes_per_mission, parallel=parallel_evaluation,
        **fields))
    config.validate()
    resources = resources or DAFConfig()
    resources.validate()
    cfg = compose_compare_config([*comparison_overrides(config), f"device={device}", *resource_overrides(resources),
                                  *overrides], output_dir)
    from daf_hydra.orchestrators.checks import known_mission, validate_run

    validate_run(cfg)
    for mission in config.missions:  # names (not mission configs) are checked before any work, as the CLI's
        if isinstance(mission, str):
            known_mission(mission)
    return run_comparison_pipeline(cfg, list(config.policies), list(config.missions), Path(cfg.output_dir),
                                   stop_on_failure, config.generate_html_report, config.name)


def comparison_overrides(c: DAFComparisonConfig) -> list[str]:
    """The command line form of a DAFComparisonConfig's settings (its policies and missions, which may be
    objects, are passed as they are)."""
    out = [f"seed={c.seed}", f"compare.episodes_per_mission={c.episodes_per_mission}",
           f"compare.parallel={str(c.parallel).lower()}", f"compare.workers={c.workers or 'null'}"]
    if c.significance_level is not None:
        out.append(f"statistics.significance_level={c.significance_level}")
    if c.bootstrap_samples is not None:
        out.append(f"statistics.bootstrap_reps={c.bootstrap_samples}")
    return out


def resource_overrides(resources: DAFConfig) -> list[str]:
    """The command line form of a DAFConfig (`resources.*`)."""
    return [f"resources.{k}={'null' if v is None else v}" for k, v in vars(resources).items()]


def run_compare(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """`pipeline=compare` from the CLI: the policies and missions of `cfg.compare`; prints the findings.

    Exits non-zero (DAFError) when the comparison could not be made; a partial one (a member failed, a later
    stage failed) prints what is missing and returns. Returns the comparison's metrics (metrics.json): the first
    policy is the candidate, its pooled `mean_reward` and IQM (`objective`) what `objective.metric` reads.
    """
    from daf_hydra.comparison_stats import ALL_MISSIONS

    result = run_comparison_pipeline(cfg, list(cfg.compare.policies), list(cfg.compare.missions), run_dir,
                                     bool(cfg.pipeline.get("stop_on_failure", True)), analyse_completed=False)
    if result.outputs.get("completed_earlier"):
        return result.outputs["metrics"]
    if result.status == FAILED:
        raise DAFError(f"comparison failed: {result.errors[0]}")
    results = result.outputs["results"]
    overall = results.summary_statistics[results.summary_statistics["mission"] == ALL_MISSIONS]
    print(f"Comparison of {', '.join(results.policies)} on {', '.join(results.missions)} "
          f"({results.completeness.summary()}):")
    for r in overall.itertuples():
        print(f"  {r.policy:24s} IQM {r.iqm:9.3f} [{r.iqm_low:.3f}, {r.iqm_high:.3f}]   "
              f"mean {r.mean:9.3f} +- {r.stderr:.3f} (s.e.)   n={r.n_episodes}")
    pairs = results.significant()
    print(f"  significantly better ({results.decided_by()}): "
          + ("; ".join(f"{a} > {b}" for a, b in pairs) or "no pair"))
    for error in result.errors:
        print(f"  WARNING {error}")
    print(f"report: {result.outputs.get('report', 'not written')}")
    return result.outputs["metrics"]
