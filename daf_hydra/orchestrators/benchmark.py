"""The benchmark pipeline: environment check -> training -> evaluation -> comparison -> report -> deployment package.

    python -m daf_hydra.run pipeline=benchmark  # the demo (make demo): this pipeline on its defaults
    python -m daf_hydra.run pipeline=benchmark benchmark.policies=[lstm,baseline] \
        benchmark.missions=[training_facility_1,assembler_2] benchmark.training_steps=200000

    daf_run_benchmark_pipeline(policies=["lstm"], missions=["training_facility_1", "assembler_2"],
                               episodes_per_mission=10, create_deployment_package=True)  # -> PipelineResult

- training: each policy with a network and no weights is trained by the train pipeline (`train_pipeline`, its
  records in train/<policy>/) on `benchmark.train_missions` (default: the first mission) for
  `benchmark.training_steps`, with the PPO settings of `training.*`; the others are used as given.
- evaluation: every policy plays `episodes_per_mission` episodes of every mission (evaluate runs in evaluation/).
- comparison: the compare pipeline with the baselines, on the same seeds (comparison/).
- report: report.html; deployment package: deployment/<policy>/ and deployment/<policy>.tar.gz
  (`daf_hydra.deployment`).

pipeline.json records every stage; a re-run in the same directory reuses the trainings and evaluations that
completed with the same settings (their records are on disk), and replaces what a stage that runs again had
written before.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from daf_hydra.config import DAFBenchmarkConfig, DAFConfig, PipelineConfig, PolicyConfig
from daf_hydra.errors import DAFError
from daf_hydra.orchestrators.result import FAILED, PipelineResult
from daf_hydra.orchestrators.stages import Stages

PIPELINE = "benchmark"
STAGES = ("environment_check", "training", "evaluation", "comparison", "report", "deployment_package")
TRAIN_DIR, EVALUATION_DIR, COMPARISON_DIR, DEPLOYMENT_DIR = "train", "evaluation", "comparison", "deployment"
REPORT_FILE = "report.html"


def benchmark_pipeline(cfg: DictConfig, run_dir: Path) -> PipelineResult:
    """The pipeline the CLI and the Python API both run: the settings of `cfg.benchmark`, the stop_on_failure of
    `cfg.pipeline`, the limits of `cfg.resources`, and the rest of `cfg` (training.*, evaluation.*, statistics.*,
    seed, device) for the runs it starts."""
    from daf_hydra.comparison import PolicyEntry, load_missions, parse_policies, slug
    from daf_hydra.compose import to_container
    from daf_hydra.orchestrators.compare import check_environment, nested_comparison

    run_dir = Path(run_dir)
    b: DAFBenchmarkConfig = OmegaConf.to_object(cfg.benchmark)
    resources = DAFConfig(**to_container(cfg.resources))
    stages = Stages(PIPELINE, run_dir, bool(cfg.pipeline.get("stop_on_failure", True)))
    plan: dict[str, Any] = {}  # what the environment check found: entries, missions, what to train

    def check() -> dict[str, Any]:
        resources.validate()
        b.validate()
        entries = parse_policies(b.policies)
        labels = {e.label for e in entries}
        wanted = b.baselines if b.compare_with_baselines else []
        baselines = [p for p in parse_policies(wanted) if p.label not in labels] if wanted else []
        missions = load_missions([run_mission(cfg, n) for n in b.missions])
        train_missions = load_missions([run_mission(cfg, n) for n in b.train_missions or b.missions[:1]])
        trainable = [e.label for e in entries if e.data_path is None and has_network(e, train_missions[0])]
        plan.update(entries=entries, baselines=baselines, missions=missions, train_missions=train_missions,
                    trainable=trainable)
        unique = list({m.name: m for m in [*missions, *train_missions]}.values())
        path = check_environment(unique, [e.class_path for e in [*entries, *baselines]], run_dir, str(cfg.device))
        return {"check": path, "to_train": trainable}

    def train() -> dict[str, Any]:
        from daf_hydra.orchestrators.train import train_pipeline

        checkpoints = {}
        for entry in plan["entries"]:
            if entry.label not in plan["trainable"]:
                continue
            train_dir = run_dir / TRAIN_DIR / slug(entry.label)
            if stages.owns_previous_records and train_dir.exists():
                shutil.rmtree(train_dir)  # an earlier, unfinished or outdated training of this pipeline
            sub = training_config(cfg, entry, plan["train_missions"], b.training_steps, train_dir)
            trained = train_pipeline(sub, train_dir)
            checkpoints[entry.label] = trained.outputs["final_checkpoint"]
        return {"checkpoints": checkpoints}

    def restore_training(before: dict[str, Any]) -> dict[str, Any]:
        from daf_hydra.policies.loading import POLICY_SPEC_FILENAME

        for label, checkpoint in before["checkpoints"].items():
            if not (Path(checkpoint) / POLICY_SPEC_FILENAME).is_file():
                raise DAFError(f"the checkpoint of {label}, {checkpoint}, is gone")
        return {"checkpoints": dict(before["checkpoints"])}

    def candidates() -> list[PolicyEntry]:
        trained = stages.result.outputs.get("checkpoints", {})
        return [PolicyEntry(e.label, e.class_path, trained.get(e.label, e.data_path), e.kwargs)
                for e in plan["entries"]]

    def evaluate() -> dict[str, Any]:
        from daf_hydra.comparison import evaluate_members, member_tasks

        eval_dir = run_dir / EVALUATION_DIR
        if stages.owns_previous_records and eval_dir.exists():
            shutil.rmtree(eval_dir)
        base = copy.deepcopy(cfg)
        base.compare.episodes_per_mission = b.episodes_per_mission
        tasks = member_tasks(base, candidates(), plan["missions"], eval_dir)
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
        compared = nested_comparison(cfg, [*candidates(), *plan["baselines"]], plan["missions"],
                                     run_dir / COMPARISON_DIR, episodes=b.episodes_per_mission,
                                     parallel=b.parallel_evaluation, stop_on_failure=stages.stop_on_failure)
        if compared.status == FAILED:
            raise DAFError(f"the comparison failed: {compared.errors[0]}")
        for error in compared.errors:
            stages.note_error("comparison", error)
        return {"comparison_results": compared.outputs["results"], "comparison_report": compared.outputs.get("report")}

    def report() -> dict[str, Any]:
        from daf_hydra.visualization import daf_export_benchmark_html

        outputs = stages.result.outputs
        path = daf_export_benchmark_html(
            stages.result.stages, evaluation_table(outputs["evaluation"]), outputs.get("comparison_results"),
            training_curves(run_dir / TRAIN_DIR), run_dir / REPORT_FILE,
            f"Benchmark: {', '.join(b.policies)} on {', '.join(b.missions)}")
        return {"report": str(path)}

    def package() -> dict[str, Any]:
        from daf_hydra.deployment import daf_create_deployment_package

        policy = deployed()
        outputs = stages.result.outputs
        evidence = {"policy": policy.label, "evaluation": outputs["evaluation"]}
        if outputs.get("comparison_results") is not None:
            evidence["comparison"] = outputs["comparison_results"].to_dict()["summary_statistics"]
        made = daf_create_deployment_package(
            policy, run_dir / DEPLOYMENT_DIR, mission=plan["missions"][0], config=to_container(cfg),
            evaluation=evidence, report=outputs.get("report"))
        return {"deployment_package": str(made.directory), "deployment_archive": str(made.archive),
                "deployed_policy": policy.label}

    stages.run("environment_check", check)
    if not plan:  # the settings themselves were rejected: no later stage can run, each is recorded as not run
        for name in STAGES[1:]:
            stages.run(name, dict, needs=["environment_check"])
        return stages.finish()
    training_key = {"trainable": plan["trainable"], "policies": [vars(e) for e in plan["entries"]],
                    "train_missions": [to_container(m) for m in plan["train_missions"]], "steps": b.training_steps,
                    "training": to_container(cfg.training), "seed": int(cfg.seed), "device": str(cfg.device)}
    stages.run("training", train, key=training_key, restore=restore_training)
    if "checkpoints" in stages.result.outputs:
        stages.result.outputs["final_checkpoint"] = deployed().data_path
    evaluation_key = {"policies": [vars(e) for e in candidates()],
                      "missions": [to_container(m) for m in plan["missions"]], "episodes": b.episodes_per_mission, "evaluation": to_container(cfg.evaluation),
                      "seed": int(cfg.seed)}
    stages.run("evaluation", evaluate, needs=["training"], key=evaluation_key,
               restore=restore_evaluation)
    if b.compare_with_baselines:
        stages.run("comparison", compare, needs=["training"])
    stages.run("report", report, needs=["evaluation"])
    if b.create_deployment_package:
        stages.run("deployment_package", package, needs=["evaluation"])
    return stages.finish()


def run_mission(cfg: DictConfig, name: str) -> Any:
    """A mission by name; the run's own `mission` keeps its command line overrides (`mission.max_steps=...`), as
    in the train pipeline."""
    return cfg.mission if name == cfg.mission.name else name


def has_network(entry: Any, mission: Any) -> bool:
    """Whether a policy has something to train (its `network()`), built once on the CPU for `mission`."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.missions import build_env
    from daf_hydra.policies import loading

    pei = PolicyEnvInterface.from_mg_cfg(build_env(mission))
    resolved = loading.resolve(entry.class_path, entry.data_path, dict(entry.kwargs))
    return loading.instantiate(resolved, pei, "cpu").network() is not None


def training_config(cfg: DictConfig, entry: Any, missions: Sequence[Any], steps: Optional[int],
                    run_dir: Path) -> DictConfig:
    """The train pipeline's config for one policy: this pipeline's config (training.*, evaluation.*, seed,
    device) with the policy, the training missions, the step budget and the run directory."""
    sub = copy.deepcopy(cfg)
    sub.pipeline = OmegaConf.structured(PipelineConfig(name="train"))
    sub.policy = OmegaConf.structured(PolicyConfig(**entry.as_policy_config()))
    sub.mission = missions[0]
    sub.training.missions = [m.name for m in missions]
    sub.training.eval_missions = None
    if steps is not None:
        sub.training.total_steps = int(steps)
    sub.output_dir = str(run_dir)
    return sub


def evaluation_outputs(run_dirs: Sequence[str]) -> dict[str, Any]:
    """The evaluation stage's outputs read back from its runs' records: policy -> mission -> summary."""
    from daf_hydra.records import STATUS_COMPLETED, read_run

    evaluation: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        metrics = read_run(run_dir, with_episodes=False).metrics
        if not metrics or metrics.get("status") != STATUS_COMPLETED:
            raise DAFError(f"evaluation run {run_dir} has no completed record")
        evaluation.setdefault(metrics["policy"], {})[metrics["mission"]] = {
            k: metrics.get(k) for k in ("episodes", "mean_reward", "stderr_reward", "median_reward", "min_reward",
                                        "max_reward", "success_rate", "mean_steps")}
    return {"evaluation": evaluation, "evaluation_runs": list(run_dirs)}


def evaluation_table(evaluation: dict[str, dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame([{"policy": p, "mission": m, **s} for p, missions in evaluation.items()
                         for m, s in missions.items()])


def training_curves(train_root: Path) -> Any:
    """The trainings' curve.jsonl records (None when nothing was trained)."""
    from daf_hydra.aggregate import daf_aggregate_runs

    if not train_root.is_dir():
        return None
    return daf_aggregate_runs(train_root, use_index=False).curves


def daf_run_benchmark_pipeline(
    policies: Optional[Sequence[str]] = None,
    missions: Optional[Sequence[str]] = None,
    episodes_per_mission: Optional[int] = None,
    create_deployment_package: Optional[bool] = None,
    *,
    config: DAFBenchmarkConfig | DAFConfig | None = None,
    resources: Optional[DAFConfig] = None,
    stop_on_failure: bool = True,
    seed: int = 0,
    device: str = "auto",
    output_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> PipelineResult:
    """The benchmark pipeline from Python: the same config and pipeline function as `pipeline=benchmark`.

    Give the benchmark's fields as arguments (the others keep DAFBenchmarkConfig's defaults), or
    `config=DAFBenchmarkConfig(...)`. A `DAFConfig` as `config` sets the resources, as the design documents write
    it (`resources=` says the same). `overrides`: further CLI overrides (`training.num_envs=16`,
    `statistics.bootstrap_reps=2000`). `outputs`: `checkpoints`, `final_checkpoint` (the deployed policy's
    weights), `evaluation`, `comparison_results`, `report`, `deployment_package`, `deployment_archive`."""
    from daf_hydra.compose import api_output_dir, compose_config
    from daf_hydra.orchestrators.compare import resource_overrides

    if isinstance(config, DAFConfig):
        if resources is not None:
            raise DAFError("give the resources once: config=DAFConfig(...) or resources=DAFConfig(...)")
        config, resources = None, config
    given = {k: v for k, v in dict(policies=policies, missions=missions, episodes_per_mission=episodes_per_mission,
                                   create_deployment_package=create_deployment_package).items() if v is not None}
    if config is not None and given:
        raise DAFError(f"give either config= or the benchmark's arguments, not both "
                       f"(got config and {', '.join(given)})")
    config = config or DAFBenchmarkConfig(**{k: list(v) if isinstance(v, (list, tuple)) else v
                                             for k, v in given.items()})
    cfg = compose_config(["pipeline=benchmark", f"seed={seed}", f"device={device}",
                          f"pipeline.stop_on_failure={str(stop_on_failure).lower()}",
                          *resource_overrides(resources or DAFConfig()), *overrides],
                         api_output_dir(output_dir).resolve())
    cfg.benchmark = OmegaConf.structured(config)
    return benchmark_pipeline(cfg, Path(cfg.output_dir))


def run_benchmark(cfg: DictConfig, run_dir: Path) -> Optional[float]:
    """`pipeline=benchmark` from the CLI (and the default job): run it, print where everything is; exits non-zero
    (DAFError) when it failed. Returns the deployed policy's mean reward over the missions."""
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
        print("  significantly better (Wilcoxon, Holm): " + ("; ".join(f"{a} > {b}" for a, b in pairs) or "no pair"))
    print(f"benchmark {result.status} in {result.total_time_seconds:.0f} s: {', '.join(result.stages_completed)}")
    print(f"report: {outputs.get('report', 'not written')}")
    if "deployment_package" in outputs:
        print(f"deployment package: {outputs['deployment_package']} ({outputs['deployment_archive']})")
    deployed = outputs.get("evaluation", {}).get(outputs.get("deployed_policy") or cfg.benchmark.policies[0], {})
    rewards = [s["mean_reward"] for s in deployed.values()]
    return sum(rewards) / len(rewards) if rewards else None
