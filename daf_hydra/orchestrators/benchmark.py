"""The benchmark pipeline: environment check -> training -> evaluation -> comparison -> report -> deployment package.

    python -m daf_hydra.run pipeline=benchmark  # the demo (make demo): this pipeline on its defaults
    python -m daf_hydra.run pipeline=benchmark benchmark.policies=[lstm,baseline] \
        benchmark.missions=[training_facility_1,assembler_2] benchmark.training_steps=200000

    daf_run_benchmark_pipeline(policies=["lstm"], missions=["training_facility_1", "assembler_2"],
                               episodes_per_mission=10, create_deployment_package=True)  # -> PipelineResult

- training: each policy with a network and no weights is trained by the train pipeline (`train_pipeline`) on
  `benchmark.train_missions` (default: the first mission) for `benchmark.training_steps`, with the PPO settings
  of `training.*`, into train/<policy>-<signature>/: the identity signature of that training's config, so a
  training with other settings lands elsewhere and one with the same settings is found again; the others are
  used as given.
- evaluation: every policy plays `episodes_per_mission` episodes of every mission (evaluate runs in evaluation/).
- comparison: the compare pipeline with the baselines, on the same seeds (comparison/).
- report: report.html; deployment package: deployment/<policy>/ and deployment/<policy>.tar.gz
  (`daf_hydra.deployment`).

Every run it starts (training, evaluation and comparison members) is built from this run's config, as Hydra
composed it from the user's overrides (`comparison.member_tasks`), so `mission.*`, `evaluation.*` and `policy.*`
overrides reach them. pipeline.json records every stage; a re-run in the same directory reuses the trainings and
evaluations whose runs have the same identity signatures (their records are on disk); an evaluation or comparison
member that was interrupted plays only its missing seeds, one of another signature is refused (runs.start_run);
an unfinished training goes on from its last checkpoint (training.resume=true). `restart=true` starts everything over.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from daf_hydra.config import DAFBenchmarkConfig, DAFConfig, PipelineConfig, PolicyConfig, api_config
from daf_hydra.errors import DAFError
from daf_hydra.results import FAILED, PipelineResult
from daf_hydra.orchestrators.stages import Stages, check_parallel_stages

PIPELINE = "benchmark"
STAGES = ("environment_check", "training", "evaluation", "comparison", "report", "deployment_package")
TRAIN_DIR, EVALUATION_DIR, COMPARISON_DIR, DEPLOYMENT_DIR = "train", "evaluation", "comparison", "deployment"
REPORT_FILE = "report.html"


def benchmark_pipeline(cfg: DictConfig, run_dir: Path) -> PipelineResult:
    """The pipeline the CLI and the Python API both run: the settings of `cfg.benchmark`, the stop_on_failure of
    `cfg.pipeline`, the limits of `cfg.resources`, and the rest of `cfg` (training.*, evaluation.*, mission.*,
    policy.*, statistics.*, seed, device) for the runs it starts. `outputs`: `checkpoints`, `final_checkpoint`
    (the deployed policy's weights), `evaluation`, `comparison_results`, `summary_statistics`, `report`,
    `deployment_package`, `deployment_archive`."""
    from daf_hydra.comparison import evaluate_members, load_missions, member_signatures, member_tasks, own_policy
    from daf_hydra.policy_entries import PolicyEntry, parse_policies
    from daf_hydra.orchestrators.compare import check_environment, nested_comparison
    from daf_hydra.compose import to_container
    from daf_hydra.replays import mode_of
    from daf_hydra.runs import identity_of

    run_dir = Path(run_dir)
    b: DAFBenchmarkConfig = OmegaConf.to_object(cfg.benchmark)
    resources = DAFConfig(**to_container(cfg.resources))
    planned = [s for s in STAGES if (s != "comparison" or b.compare_with_baselines)
               and (s != "deployment_package" or b.create_deployment_package)]
    stages = Stages(PIPELINE, run_dir, bool(cfg.pipeline.get("stop_on_failure", True)),
                    restart=bool(cfg.get("restart") or False), planned=planned)
    plan: dict[str, Any] = {}  # what the environment check found: entries, missions, the trainings' configs

    def check() -> dict[str, Any]:
        resources.validate()
        b.validate()
        entries = [own_policy(cfg, e) for e in parse_policies(b.policies)]
        labels = {e.label for e in entries}
        wanted = b.baselines if b.compare_with_baselines else []
        baselines = [p for p in parse_policies(wanted) if p.label not in labels] if wanted else []
        missions = load_missions(b.missions, cfg.mission)
        train_missions = load_missions(b.train_missions or b.missions[:1], cfg.mission)
        trainings = {e.label: training_config(cfg, e, train_missions, b.training_steps, run_dir / TRAIN_DIR)
                     for e in entries if e.data_path is None and has_network(e, train_missions[0])}
        plan.update(entries=entries, baselines=baselines, missions=missions, trainings=trainings)
        unique = list({m.name: m for m in [*missions, *train_missions]}.values())
        path = check_environment(unique, [e.class_path for e in [*entries, *baselines]], run_dir, str(cfg.device))
        return {"check": path, "to_train": list(trainings)}

    def train() -> dict[str, Any]:
        return {"checkpoints": {label: trained_checkpoint(sub) for label, sub in plan["trainings"].items()}}

    def restore_training(_: dict[str, Any]) -> dict[str, Any]:
        checkpoints = {label: completed_checkpoint(Path(sub.output_dir)) for label, sub in plan["trainings"].items()}
        gone = [label for label, checkpoint in checkpoints.items() if checkpoint is None]
        if gone:
            raise DAFError(f"the completed training of {', '.join(gone)} is gone")
        return {"checkpoints": checkpoints}

    def candidates() -> list[PolicyEntry]:
        trained = stages.result.outputs.get("checkpoints", {})
        return [PolicyEntry(e.label, e.class_path, trained.get(e.label, e.data_path), e.kwargs)
                for e in plan["entries"]]

    def evaluate(tasks: list[dict[str, Any]]) -> dict[str, Any]:
        # members an earlier, interrupted run finished are kept, the rest play the seeds missing (runs.start_run)
        outcomes = evaluate_members(tasks, b.parallel_evaluation, resources.workers(None))
        failed = [f"{o.policy} on {o.mission}: {o.error}" for o in outcomes if o.error]
        if len(failed) == len(outcomes):
            raise DAFError(f"no evaluation completed: {failed[0]}")
        for error in failed:
            stages.note_error("evaluation", error)
        return {**evaluation_outputs([str(o.run_dir) for o in outcomes if not o.error]), "evaluation_failures": failed}

    def restore_evaluation(before: dict[str, Any]) -> dict[str, Any]:
        if before.get("evaluation_failures"):
            raise DAFError(f"{len(before['evaluation_failures'])} of its evaluations had failed")
        return {**evaluation_outputs(before["evaluation_runs"]), "evaluation_failures": []}

    def deployed() -> PolicyEntry:
        return candidates()[b.policies.index(b.deploy_policy or b.policies[0])]

    def compare() -> dict[str, Any]:
        compared = nested_comparison(base, [*candidates(), *plan["baselines"]], plan["missions"],
                                     run_dir / COMPARISON_DIR, episodes=b.episodes_per_mission,
                                     parallel=b.parallel_evaluation, stop_on_failure=stages.stop_on_failure)
        if compared.status == FAILED:
            raise DAFError(f"the comparison failed: {compared.errors[0]}")
        for error in compared.errors:
            stages.note_error("comparison", error)
        results = compared.outputs["results"]
        return {"comparison_results": results, "summary_statistics": results.summary_statistics,
                "comparison_report": compared.outputs.get("report")}

    def report() -> dict[str, Any]:
        from daf_hydra import replays
        from daf_hydra.visualization import daf_export_benchmark_html

        outputs = stages.result.outputs
        path = daf_export_benchmark_html(
            stages.result.stages, evaluation_table(outputs["evaluation"]), outputs.get("comparison_results"),
            training_curves([Path(sub.output_dir) for sub in plan["trainings"].values()]), run_dir / REPORT_FILE,
            b.name or f"Benchmark: {', '.join(b.policies)} on {', '.join(b.missions)}",
            replays.examples([*outputs["evaluation_runs"], *sorted((run_dir / COMPARISON_DIR).glob("*/*"))],
                             unique=True), total_stages=len(stages.planned))
        return {"report": str(path)}

    def package() -> dict[str, Any]:
        from daf_hydra.deployment import daf_create_deployment_package

        policy = deployed()
        outputs = stages.result.outputs
        evidence = {"policy": policy.label, "evaluation": outputs["evaluation"]}
        if outputs.get("comparison_results") is not None:
            evidence["comparison"] = outputs["comparison_results"].to_dict()["summary_statistics"]
        # the config that produced the deployed policy: its training's, else this run's with the policy set to it
        trained = plan["trainings"].get(policy.label)
        shipped = to_container(trained) if trained is not None else to_container(cfg)
        shipped["policy"] = policy.as_policy_config()
        made = daf_create_deployment_package(
            policy, run_dir / DEPLOYMENT_DIR, mission=plan["missions"][0], config=shipped,
            evaluation=evidence, report=outputs.get("report"))
        return {"deployment_package": str(made.directory), "deployment_archive": str(made.archive),
                "deployed_policy": policy.label}

    stages.run("environment_check", check)
    if not plan:  # the settings themselves were rejected: no later stage can run, each is recorded as not run
        for name in STAGES[1:]:
            stages.run(name, dict, needs=["environment_check"])
        return stages.finish()
    stages.run("training", train, restore=restore_training, key={
        "trainings": {label: identity_of(sub, trained=True).signature for label, sub in plan["trainings"].items()}})
    if "checkpoints" in stages.result.outputs:
        stages.result.outputs["final_checkpoint"] = deployed().data_path
    base = copy.deepcopy(cfg)
    base.compare.episodes_per_mission = b.episodes_per_mission
    base.evaluation.replays = mode_of(cfg.evaluation.get("replays"), PIPELINE)  # its members are evaluate runs
    tasks = member_tasks(base, candidates(), plan["missions"], run_dir / EVALUATION_DIR)
    stages.run("evaluation", lambda: evaluate(tasks), needs=["training"], key={"members": member_signatures(tasks)},
               restore=restore_evaluation)
    if b.compare_with_baselines:
        stages.run("comparison", compare, needs=["training"])
    stages.run("report", report, needs=["evaluation"])
    if b.create_deployment_package:
        stages.run("deployment_package", package, needs=["evaluation"])
    return stages.finish()


def has_network(entry: Any, mission: Any) -> bool:
    """Whether a policy has something to train (its `network()`), built once on the CPU for `mission`."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.missions import build_env
    from daf_hydra.policies import loading

    pei = PolicyEnvInterface.from_mg_cfg(build_env(mission))
    resolved = loading.resolve(entry.class_path, entry.data_path, dict(entry.kwargs))
    return loading.instantiate(resolved, pei, "cpu").network() is not None


def training_config(cfg: DictConfig, entry: Any, missions: Sequence[Any], steps: Optional[int],
                    train_root: Path) -> DictConfig:
    """The train pipeline's config for one policy: this pipeline's config (training.*, evaluation.*, seed,
    device) with the policy, the training missions and the step budget, in its run directory
    `<train_root>/<policy>-<signature>`: named by the identity signature of this config, so a training of other
    settings never lands in (and is never mistaken for) this one."""
    from daf_hydra.policy_entries import slug
    from daf_hydra.runs import identity_of

    sub = copy.deepcopy(cfg)
    sub.pipeline = OmegaConf.structured(PipelineConfig(name="train"))
    sub.policy = OmegaConf.structured(PolicyConfig(**entry.as_policy_config()))
    sub.mission = missions[0]
    sub.training.missions = [m.name for m in missions]
    sub.training.eval_missions = None
    if steps is not None:
        sub.training.total_steps = int(steps)
    sub.output_dir = str(train_root)
    OmegaConf.resolve(sub)
    sub.output_dir = str(train_root / f"{slug(entry.label)}-{identity_of(sub, trained=True).signature}")
    return sub


def trained_checkpoint(sub: DictConfig) -> str:
    """The final checkpoint of training `sub`: the recorded one when its directory already holds a completed
    training (the same signature: the same settings); an unfinished one (killed, failed) of the same signature
    goes on from its last checkpoint (`training.resume=true`); else a fresh training's."""
    from daf_hydra.orchestrators.train import train_pipeline
    from daf_hydra.records import recorded_signature
    from daf_hydra.runs import identity_of

    train_dir = Path(sub.output_dir)
    checkpoint = None if sub.get("restart") else completed_checkpoint(train_dir)
    if checkpoint is not None:
        print(f"[{PIPELINE}] training of {sub.policy.name}: completed earlier in {train_dir}, reused")
        return checkpoint
    recorded = None if sub.get("restart") else recorded_signature(train_dir)
    if recorded is not None and recorded == identity_of(sub).signature:  # as run.json records it
        print(f"[{PIPELINE}] training of {sub.policy.name}: unfinished in {train_dir}, resumed from its last "
              "checkpoint")
        sub = copy.deepcopy(sub)
        sub.training.resume = True
    elif train_dir.exists():
        shutil.rmtree(train_dir)
    return str(train_pipeline(sub, train_dir).outputs["final_checkpoint"])


def completed_checkpoint(train_dir: Path) -> Optional[str]:
    """The final checkpoint of the completed training recorded in `train_dir`, None when there is none (not run,
    unfinished, failed, or its checkpoint is gone)."""
    from daf_hydra.policies.loading import POLICY_SPEC_FILENAME
    from daf_hydra.records import STATUS_COMPLETED, is_run_dir, read_run

    metrics = read_run(train_dir, with_episodes=False).metrics if is_run_dir(train_dir) else None
    checkpoint = metrics.get("final_checkpoint") if metrics and metrics.get("status") == STATUS_COMPLETED else None
    return checkpoint if checkpoint and (Path(checkpoint) / POLICY_SPEC_FILENAME).is_file() else None


def evaluation_outputs(run_dirs: Sequence[str]) -> dict[str, Any]:
    """The evaluation stage's outputs read back from its runs' records: policy -> mission -> summary."""
    from daf_hydra.config import BENCHMARK_SUMMARY
    from daf_hydra.records import STATUS_COMPLETED, read_run

    evaluation: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        metrics = read_run(run_dir, with_episodes=False).metrics
        if not metrics or metrics.get("status") != STATUS_COMPLETED:
            raise DAFError(f"evaluation run {run_dir} has no completed record")
        evaluation.setdefault(metrics["policy"], {})[metrics["mission"]] = {
            k: metrics.get(k) for k in BENCHMARK_SUMMARY}
    return {"evaluation": evaluation, "evaluation_runs": list(run_dirs)}


def evaluation_table(evaluation: dict[str, dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame([{"policy": p, "mission": m, **s} for p, missions in evaluation.items()
                         for m, s in missions.items()])


def training_curves(train_dirs: Sequence[Path]) -> Any:
    """The curve.jsonl records of this benchmark's trainings (None when nothing was trained)."""
    import pandas as pd

    from daf_hydra.aggregate import daf_aggregate_runs

    curves = [daf_aggregate_runs(d, use_index=False).curves for d in train_dirs if d.is_dir()]
    return pd.concat(curves, ignore_index=True) if curves else None


def daf_run_benchmark_pipeline(
    policies: Optional[Sequence[str]] = None,
    missions: Optional[Sequence[str]] = None,
    episodes_per_mission: Optional[int] = None,
    create_deployment_package: Optional[bool] = None,
    *,
    config: DAFBenchmarkConfig | DAFConfig | None = None,
    resources: Optional[DAFConfig] = None,
    stop_on_failure: bool = True,
    parallel_stages: bool = False,
    seed: int = 0,
    device: str = "auto",
    output_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    **fields: Any,
) -> PipelineResult:
    """The benchmark pipeline from Python: the same config and pipeline function as `pipeline=benchmark`.

    Give DAFBenchmarkConfig's fields as arguments (`fields`: `training_steps`, `baselines`, `train_missions`,
    `deploy_policy`, `name`, ...; the others keep their defaults), or `config=DAFBenchmarkConfig(...)`. A
    `DAFConfig` as `config` sets the resources, as the design documents write it (`resources=` says the same).
    `overrides`: further CLI overrides (`training.num_envs=16`, `mission.max_steps=100`,
    `statistics.bootstrap_reps=2000`). `outputs`: see `benchmark_pipeline`."""
    from daf_hydra.compose import api_output_dir, compose_config
    from daf_hydra.orchestrators.compare import resource_overrides

    check_parallel_stages(parallel_stages)
    if isinstance(config, DAFConfig):
        if resources is not None:
            raise DAFError("give the resources once: config=DAFConfig(...) or resources=DAFConfig(...)")
        config, resources = None, config
    config = api_config(DAFBenchmarkConfig, config, dict(
        policies=policies, missions=missions, episodes_per_mission=episodes_per_mission,
        create_deployment_package=create_deployment_package, **fields))
    cfg = compose_config(["pipeline=benchmark", f"seed={seed}", f"device={device}",
                          f"pipeline.stop_on_failure={str(stop_on_failure).lower()}",
                          *resource_overrides(resources or DAFConfig()), *overrides],
                         api_output_dir(output_dir).resolve())
    cfg.benchmark = OmegaConf.structured(config)
    from daf_hydra.orchestrators.checks import validate_run

    validate_run(cfg)
    return benchmark_pipeline(cfg, Path(cfg.output_dir))


def run_benchmark(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """`pipeline=benchmark` from the CLI (and the default job): run it, print where everything is; exits non-zero
    (DAFError) when it failed. Returns its metrics: the deployed policy's evaluation, averaged over the missions
    (`benchmark_metrics`)."""
    result = benchmark_pipeline(cfg, run_dir)
    if result.status == FAILED:
        raise DAFError(f"benchmark failed: {result.errors[0]} (all stages: {run_dir / 'pipeline.json'})")
    for error in result.errors:
        print(f"  WARNING {error}")
    outputs = result.outputs
    for policy, missions in outputs.get("evaluation", {}).items():
        for mission, s in missions.items():
            print(f"  {policy} on {mission}: mean reward {s['mean_reward']:.2f} +- {s['stderr_reward']:.2f} (s.e.) "
                  f"over {s['episodes']} episodes")
    results = outputs.get("comparison_results")
    if results is not None:
        pairs = results.significant()
        print(f"  significantly better ({results.decided_by()}): "
              + ("; ".join(f"{a} > {b}" for a, b in pairs) or "no pair"))
    print(f"report: {outputs.get('report', 'not written')}")
    if "deployment_package" in outputs:
        print(f"deployment package: {outputs['deployment_package']} ({outputs['deployment_archive']})")
    return benchmark_metrics(outputs, outputs.get("deployed_policy") or cfg.benchmark.policies[0])


def benchmark_metrics(outputs: dict[str, Any], policy: str) -> dict[str, Any]:
    """What `objective.metric` reads of a benchmark: `policy`'s evaluation summary (mean_reward, success_rate, ...),
    each number averaged over the missions, as the train pipeline averages over its evaluation missions."""
    per_mission = list(outputs.get("evaluation", {}).get(policy, {}).values())
    numeric = [k for k in (per_mission[0] if per_mission else {})
               if all(isinstance(s.get(k), (int, float)) and not isinstance(s.get(k), bool) for s in per_mission)]
    return {"policy": policy, **{k: sum(s[k] for s in per_mission) / len(per_mission) for k in numeric}}
