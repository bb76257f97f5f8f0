"""The compare pipeline: environment check -> comparison -> significance testing -> report.

    python -m daf_hydra.run pipeline=compare compare.policies=[baseline,random,lstm] \
        compare.missions=[training_facility_1,assembler_2] compare.episodes_per_mission=20 compare.parallel=true

    daf_run_comparison_pipeline(policies=["baseline", "random"], missions=["training_facility_1"],
                                episodes_per_mission=20, parallel_evaluation=True)  # -> PipelineResult

The steps live in `daf_hydra.comparison` (the feature's home); this module only sequences them as stages and
reports which completed. Everything lands in the run directory: run.json, members/ (one evaluate run per
policy x mission), comparison/ (tables, comparison.json), check.json, report.html, metrics.json.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from daf_hydra.errors import DAFError
from daf_hydra.orchestrators.result import FAILED, PARTIAL, SUCCESS, PipelineResult

log = logging.getLogger(__name__)
STAGES = ("environment_check", "comparison", "significance_testing", "report")
REPORT_FILE = "report.html"


def run_comparison_pipeline(cfg: DictConfig, policies: Sequence[Any], missions: Sequence[Any],
                            run_dir: Path) -> PipelineResult:
    """Run the stages; a failed stage is named in the result (with the traceback logged), later stages that
    need it do not run. A stage that fails after the comparison leaves the comparison's records complete."""
    from daf_hydra.comparison import ComparisonRun
    from daf_hydra.environment_checks import daf_check_environment
    from daf_hydra.records import write_json_atomic
    from daf_hydra.visualization import daf_export_comparison_html

    start = time.perf_counter()
    result = PipelineResult("compare", FAILED, outputs={"run_dir": run_dir})

    def failed(stage: str, exc: BaseException) -> None:
        result.stages_failed.append(stage)
        result.errors.append(f"{stage}: {exc}")
        if not isinstance(exc, DAFError):
            log.error("compare stage %s failed", stage, exc_info=exc)

    run = None
    try:
        run = ComparisonRun(cfg, policies, missions, run_dir)
        check = daf_check_environment(missions=run.missions, policies=[e.class_path for e in run.entries],
                                      output_dir=run_dir, device=str(cfg.device))
        write_json_atomic(run_dir / "check.json", check.to_dict())
        if not check.is_healthy():
            raise DAFError(f"environment check failed: {'; '.join(check.errors)}")
        result.stages_completed.append("environment_check")
    except Exception as exc:
        if run is not None:
            run.fail(exc)
        failed("environment_check", exc)
        return _done(result, start)
    try:
        run.evaluate()
        results = run.analyse(significance=False)
        result.outputs["results"] = results
        result.stages_completed.append("comparison")
    except Exception as exc:
        run.fail(exc)
        failed("comparison", exc)
        return _done(result, start)
    result.errors += [f"member {o.policy} on {o.mission} failed: {o.error}" for o in run.outcomes if o.error]
    for stage, step in (("significance_testing", run.add_significance_tests),
                        ("report", lambda: daf_export_comparison_html(results, run_dir / REPORT_FILE))):
        try:
            output = step()
            result.stages_completed.append(stage)
            if stage == "report":
                result.outputs["report"] = output
        except Exception as exc:
            failed(stage, exc)
    run.finish({"stages_completed": result.stages_completed, "stages_failed": result.stages_failed,
                "errors": result.errors})
    result.status = SUCCESS if not result.errors and results.completeness.complete else PARTIAL
    return _done(result, start)


def _done(result: PipelineResult, start: float) -> PipelineResult:
    result.total_time_seconds = round(time.perf_counter() - start, 3)
    return result


def daf_run_comparison_pipeline(
    policies: Sequence[Any],
    missions: Sequence[Any],
    episodes_per_mission: int = 10,
    parallel_evaluation: bool = False,
    *,
    seed: int = 0,
    output_dir: str | Path | None = None,
    workers: int | None = None,
    device: str = "cpu",
    overrides: Sequence[str] = (),
) -> PipelineResult:
    """The compare pipeline from Python (the same stages and records as the CLI). `outputs` holds `run_dir`,
    `results` (ComparisonResults) and `report` (the HTML path) when those stages completed."""
    from daf_hydra.comparison import compose_compare_config

    cfg = compose_compare_config(
        [f"compare.episodes_per_mission={episodes_per_mission}", f"seed={seed}", f"device={device}",
         f"compare.parallel={str(parallel_evaluation).lower()}", f"compare.workers={workers or 'null'}",
         *overrides],
        output_dir,
    )
    return run_comparison_pipeline(cfg, policies, missions, Path(cfg.output_dir))


def run_compare(cfg: DictConfig, run_dir: Path) -> float | None:
    """`pipeline=compare` from the CLI: the policies and missions of `cfg.compare`; prints the findings.

    Exits non-zero (DAFError) when the comparison could not be made; a partial one (a member failed, a later
    stage failed) prints what is missing and returns. Returns the first policy's IQM over all missions.
    """
    from daf_hydra.comparison import ALL_MISSIONS

    result = run_comparison_pipeline(cfg, list(cfg.compare.policies), list(cfg.compare.missions), run_dir)
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
    print("  significantly better (Wilcoxon, Holm): " + ("; ".join(f"{a} > {b}" for a, b in pairs) or "no pair"))
    for error in result.errors:
        print(f"  WARNING {error}")
    print(f"report: {result.outputs.get('report', 'not written')}")
    return float(overall["iqm"].iloc[0]) if len(overall) else None
