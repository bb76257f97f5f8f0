"""Run identity in the pipelines, for real on tiny budgets: every member run is built from the user's overrides
as a CLI run is, stages are reused by the identity signatures of the runs they start, the objective is what a
pipeline returns, and the design documents' Python API runs as they write it."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import pytest

from conftest import read_json
from daf_hydra.compose import compose_config
from daf_hydra.config import DAFComparisonConfig, DAFTrainingConfig, DistributedConfig, TrainingConfig
from daf_hydra.errors import DAFError
from daf_hydra.records import read_jsonl
from daf_hydra.runs import identity_of

STATS = ["statistics.bootstrap_reps=300", "statistics.profile_bootstrap_reps=100"]
# solo_forage has one agent: 8 environments x bptt 8 = a batch of 64 agent steps
SMALL = ["training.num_envs=8", "training.bptt_horizon=8", "training.minibatch_size=64", "training.update_epochs=2",
         "evaluation.episodes=2", "evaluation.num_envs=2"]


def _members(root: Path) -> dict[str, dict]:
    return {p.name: read_json(p / "run.json") for p in sorted((root / "members").iterdir())}


def _stages(run_dir: Path) -> dict[str, tuple[str, bool]]:
    return {n: (s["status"], s["reused"]) for n, s in read_json(run_dir / "pipeline.json")["stages"].items()}


# ------------------------------------------------------------------------------------------------------------
# 1. A member run is the CLI run of the user's overrides
# ------------------------------------------------------------------------------------------------------------


def test_compare_members_are_the_cli_runs_of_the_users_overrides(cli, tmp_path):
    evaluation = ["evaluation.num_envs=2", "evaluation.deterministic=true"]
    r = cli("pipeline=compare", "compare.policies=[mlp,baseline]",
            "compare.missions=[solo_forage,training_facility_1]", "compare.episodes_per_mission=2",
            "mission=solo_forage", "mission.max_steps=30", "policy=mlp", "policy.kwargs.hidden_size=16",
            *evaluation, *STATS, "hydra.run.dir=cmp")
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "cmp"
    compared = read_json(run / "run.json")["config"]["compare"]
    assert compared["policies"] == ["mlp", "baseline"]
    assert compared["missions"] == ["solo_forage", "training_facility_1"]
    members = _members(run)
    assert sorted(members) == ["p0-mlp_untrained__solo_forage", "p0-mlp_untrained__training_facility_1",
                               "p1-baseline__solo_forage", "p1-baseline__training_facility_1"]
    for name, record in members.items():
        policy, mission = name.split("-", 1)[1].replace("_untrained__", "__").split("__")
        config = record["config"]
        # mission.* overrides reach the missions of the run's mission name; the others are the catalog's
        assert config["mission"]["max_steps"] == (30 if mission == "solo_forage" else 300)
        assert config["evaluation"]["num_envs"] == 2 and config["evaluation"]["deterministic"] is True
        # policy.* overrides reach the members that play the run's policy
        assert config["policy"]["kwargs"] == ({"hidden_size": 16} if policy == "mlp" else {})
        episodes = read_jsonl(run / "members" / name / "episodes.jsonl")
        assert [e["seed"] for e in episodes] == [0, 1]
        assert all(e["steps"] <= config["mission"]["max_steps"] for e in episodes)
        # the same run, by identity, as `pipeline=evaluate` with the same overrides
        overrides = ["mission.max_steps=30"] if mission == "solo_forage" else []
        overrides += ["policy.kwargs.hidden_size=16"] if policy == "mlp" else []
        as_cli = compose_config(["pipeline=evaluate", f"policy={policy}", f"mission={mission}", *overrides,
                                 "evaluation.episodes=2", *evaluation], output_dir=tmp_path / "unused")
        assert record["identity"]["signature"] == identity_of(as_cli).signature, name


# ------------------------------------------------------------------------------------------------------------
# 2. Stage reuse keys on the signatures of what the stages depend on
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_reuses_by_signature_and_trains_changed_settings_afresh_elsewhere(cli, tmp_path):
    bench = tmp_path / "bench"
    common = ["pipeline=benchmark", "benchmark.policies=[mlp]", "benchmark.missions=[solo_forage]",
              "benchmark.baselines=[random]", "benchmark.training_steps=256", "benchmark.episodes_per_mission=2",
              "benchmark.create_deployment_package=false", "mission=solo_forage", "mission.max_steps=40", *SMALL,
              *STATS, "hydra.run.dir=bench"]
    r = cli(*common)
    assert r.returncode == 0, r.stderr[-3000:]
    first = read_json(bench / "pipeline.json")["outputs"]
    (train_dir,) = (bench / "train").iterdir()
    signature = read_json(train_dir / "run.json")["identity"]["signature"]
    assert train_dir.name == f"mlp-{signature}" and first["checkpoints"]["mlp"].startswith(str(train_dir))
    for root in (bench / "evaluation", bench / "comparison"):  # the mission override reached every member
        for name, record in _members(root).items():
            assert record["config"]["mission"]["max_steps"] == 40, name
            assert all(e["steps"] <= 40 for e in read_jsonl(root / "members" / name / "episodes.jsonl"))
    weights = Path(first["checkpoints"]["mlp"]) / "weights.pt"
    mtime = weights.stat().st_mtime_ns
    compared = (bench / "comparison" / "metrics.json").read_bytes()

    # the same settings (training.total_steps is superseded by benchmark.training_steps): everything reused
    r = cli(*common, "training.total_steps=12345")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _stages(bench)["training"] == ("completed", True) and _stages(bench)["evaluation"] == ("completed", True)
    assert (bench / "comparison" / "metrics.json").read_bytes() == compared  # completed earlier: nothing replayed
    assert weights.stat().st_mtime_ns == mtime and [p.name for p in (bench / "train").iterdir()] == [train_dir.name]

    # another learning rate: a training of its own, elsewhere; everything downstream runs again on it
    r = cli(*common, "lr=0.003")
    assert r.returncode == 0, r.stderr[-3000:]
    stages = _stages(bench)
    assert stages["training"] == ("completed", False) and stages["evaluation"] == ("completed", False)
    assert _stages(bench / "comparison")["comparison"] == ("completed", False)
    new_dir = next(p for p in (bench / "train").iterdir() if p != train_dir)
    assert read_json(new_dir / "run.json")["config"]["training"]["learning_rate"] == 0.003
    assert new_dir.name == f"mlp-{read_json(new_dir / 'run.json')['identity']['signature']}"
    assert weights.stat().st_mtime_ns == mtime  # the first training is untouched
    checkpoint = read_json(bench / "pipeline.json")["outputs"]["checkpoints"]["mlp"]
    assert checkpoint.startswith(str(new_dir))
    for root in (bench / "evaluation", bench / "comparison"):
        played = [m["config"]["policy"]["data_path"] for m in _members(root).values()]
        assert checkpoint in played and not any(str(train_dir) in (p or "") for p in played)


# ------------------------------------------------------------------------------------------------------------
# 3. The objective is what the pipeline returned
# ------------------------------------------------------------------------------------------------------------


def test_the_objective_is_what_the_pipeline_returns_not_what_a_file_says(cli, tmp_path, monkeypatch):
    from daf_hydra import orchestrators
    from daf_hydra.orchestrators.compare import run_compare

    compare = ["pipeline=compare", "compare.policies=[baseline,random]", "compare.missions=[solo_forage]",
               "compare.episodes_per_mission=2", *STATS]
    returned: list[dict] = []

    def compare_then_lose_the_record(cfg, run_dir):  # metrics.json is gone before the objective is taken
        returned.append(run_compare(cfg, run_dir))
        (run_dir / "metrics.json").unlink()
        return returned[-1]

    monkeypatch.setitem(orchestrators.PIPELINES, "compare", compare_then_lose_the_record)
    cfg = compose_config([*compare, "objective.metric=[mean_reward,objective]"], output_dir=tmp_path / "one")
    assert orchestrators.run_pipeline(cfg) == [returned[0]["mean_reward"], returned[0]["objective"]]
    assert returned[0]["objective"] == returned[0]["iqm"]["baseline"]

    cfg = compose_config([*compare, "seeds=[0,1]"], output_dir=tmp_path / "seeds")
    assert orchestrators.run_pipeline(cfg) == pytest.approx((returned[1]["mean_reward"] + returned[2]["mean_reward"]) / 2)

    r = cli(*compare, "objective.metric=nope", "hydra.run.dir=bad")
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: objective.metric='nope' is not a number") and "mean_reward" in last


# ------------------------------------------------------------------------------------------------------------
# 4. The design documents' API
# ------------------------------------------------------------------------------------------------------------


def test_api_configs_take_their_cli_group_and_the_documents_fields_and_refuse_others(tmp_path, monkeypatch):
    from daf_hydra.config import CompareConfig
    from daf_hydra.orchestrators import (daf_run_benchmark_pipeline, daf_run_comparison_pipeline,
                                         daf_run_training_pipeline)

    names = lambda cls: {f.name for f in fields(cls)}  # noqa: E731
    assert names(CompareConfig) | {"seed", "significance_level", "bootstrap_samples", "generate_html_report",
                                   "name"} <= names(DAFComparisonConfig)
    assert names(TrainingConfig) | {"name", "num_training_steps", "policy_class_path"} <= names(DAFTrainingConfig)

    flat = tmp_path / "comparison.yaml"
    flat.write_text("name: baseline against random\npolicies: [baseline, random]\nmissions: [solo_forage]\n"
                    "episodes_per_mission: 2\nseed: 3\nsignificance_level: 0.1\nbootstrap_samples: 300\n"
                    "generate_html_report: false\n")
    result = daf_run_comparison_pipeline(config=DAFComparisonConfig.from_yaml(flat), output_dir=tmp_path / "cmp",
                                         parallel_stages=False, overrides=["statistics.profile_bootstrap_reps=100"])
    assert result.is_success(), result.errors
    assert result.stages_completed == ["environment_check", "comparison", "significance_testing"]  # no report
    assert isinstance(result.timestamp, datetime)
    assert set(result.outputs["summary_statistics"]["policy"]) == {"baseline", "random"}
    config = read_json(tmp_path / "cmp" / "run.json")["config"]
    assert config["seed"] == 3 and config["statistics"]["significance_level"] == 0.1
    assert config["statistics"]["bootstrap_reps"] == 300
    assert sorted(set(result.outputs["results"].episodes["seed"])) == [3, 4]
    assert read_json(tmp_path / "cmp" / "pipeline.json")["timestamp"] == result.timestamp.isoformat()

    # the CLI's training: settings, as overrides of what differs from conf/training/default.yaml
    composed = compose_config([])["training"]
    for f in fields(TrainingConfig):  # what the API leaves out is what the CLI composes
        if f.name not in ("learning_rate", "seed", "device", "distributed"):
            assert composed[f.name] == getattr(TrainingConfig(), f.name), f.name
    overrides = DAFTrainingConfig(update_epochs=2, distributed=DistributedConfig(timeout_s=30.0)).cli_overrides()
    assert "training.update_epochs=2" in overrides and not any(o.startswith("training.num_envs") for o in overrides)
    cfg = compose_config(overrides)
    assert cfg.training.update_epochs == 2 and cfg.training.distributed.timeout_s == 30.0

    bad = tmp_path / "bad.yaml"
    bad.write_text("missions: [solo_forage]\nupdate_epoch: 2\n")
    monkeypatch.chdir(tmp_path)  # outside the repository
    refused = [
        (lambda: daf_run_comparison_pipeline(policies=["baseline"], episodes=3), "unknown DAFComparisonConfig"),
        (lambda: daf_run_training_pipeline(missions=["solo_forage"], steps=3), "unknown DAFTrainingConfig"),
        (lambda: daf_run_benchmark_pipeline(policies=["baseline"], train_steps=3), "unknown DAFBenchmarkConfig"),
        (lambda: DAFTrainingConfig.from_yaml(bad), r"unknown DAFTrainingConfig field\(s\) \['update_epoch'\]"),
        # relative to the current directory (the test's own), with the file daf_hydra ships named
        (lambda: DAFTrainingConfig.from_yaml("conf/experiment/pipeline_config.yaml"),
         r"is not a file \(relative paths start at the current directory.*ships is .*pipeline_config.yaml"),
        (lambda: DAFTrainingConfig(num_training_steps=10, total_steps=20).validate(), "give one of them"),
        (lambda: daf_run_comparison_pipeline(policies=["baseline"], parallel_stages=True), "parallel_stages"),
    ]
    for call, match in refused:
        with pytest.raises(DAFError, match=match) as error:
            call()
        assert "\n" not in str(error.value)


@pytest.mark.slow
def test_the_design_documents_examples_run_as_written(tmp_path, monkeypatch):
    """docs 000 and 004 with this project's package and mission names; budgets set by the examples' own fields."""
    from mettagrid.policy.policy import PolicySpec

    from daf_hydra.config import DAFConfig
    from daf_hydra.orchestrators import (daf_run_benchmark_pipeline, daf_run_comparison_pipeline,
                                         daf_run_training_pipeline)

    monkeypatch.chdir(tmp_path)  # the examples give no output_dir: outputs/<date>/<time>-<id> below the cwd

    # 000 "Orchestrators" and 004 "Training Pipeline" (checkpoint_interval: a field of the CLI's training:)
    pipeline = daf_run_training_pipeline(
        policy_class_path="lstm",
        missions=["training_facility_1"],
        num_training_steps=4096,
        eval_missions=["assembler_2"],
        eval_episodes=2,
        checkpoint_interval=1,
    )
    print(f"Training complete. Checkpoint: {pipeline.final_checkpoint}")
    print(f"Training checkpoint: {pipeline.outputs['final_checkpoint']}")
    assert pipeline.is_success(), pipeline.errors
    assert pipeline.final_checkpoint == pipeline.outputs["final_checkpoint"]
    assert isinstance(pipeline.timestamp, datetime)
    v1, v2 = sorted(str(p) for p in Path(pipeline.final_checkpoint).parent.iterdir())

    # 004 "Comparison Pipeline" (bootstrap_samples: a field of the documents' comparison config)
    policies = [
        PolicySpec(class_path="lstm", data_path=v1),
        PolicySpec(class_path="lstm", data_path=v2),
        PolicySpec(class_path="baseline"),
    ]
    result = daf_run_comparison_pipeline(
        policies=policies,
        missions=["training_facility_1", "assembler_2"],
        episodes_per_mission=2,
        bootstrap_samples=500,
    )
    print(result.outputs['summary_statistics'])
    assert result.is_success(), result.errors
    assert set(result.outputs["summary_statistics"]["policy"]) == {
        "lstm-update_000001", "lstm-update_000002", "baseline"}

    # 004 "Custom Policies": a class path of one's own (nothing to train: it is evaluated)
    train_cfg = DAFTrainingConfig(
        policy_class_path="policies_for_tests.BatchedNorth",
        missions=["training_facility_1"],
        num_training_steps=4096,
        eval_episodes=2,
    )
    result = daf_run_training_pipeline(config=train_cfg)
    assert result.is_success(), result.errors
    assert result.final_checkpoint is None and result.outputs["evaluation"]["training_facility_1"]["episodes"] == 2

    # 004 "Benchmark Pipeline" and "Resource Management" (training_steps: a DAFBenchmarkConfig field)
    cfg = DAFConfig(
        max_parallel_jobs=2,
        gpu_memory_fraction=0.8,
    )
    result = daf_run_benchmark_pipeline(
        config=cfg,
        policies=["lstm"],
        missions=["training_facility_1", "assembler_2"],
        episodes_per_mission=2,
        create_deployment_package=True,
        training_steps=2048,
        overrides=["evaluation.episodes=2", "statistics.bootstrap_reps=500", "statistics.profile_bootstrap_reps=100"],
    )
    if result.is_success():
        print(f"Deployment package: {result.outputs['deployment_package']}")
    assert result.is_success(), result.errors
    checkpoint = result.outputs['final_checkpoint']
    assert Path(result.outputs["deployment_package"]).is_dir() and checkpoint == result.final_checkpoint
    assert set(result.outputs["summary_statistics"]["policy"]) == {"lstm", "baseline", "random"}
    assert json.loads((Path(result.outputs["run_dir"]) / "pipeline.json").read_text())["status"] == "success"
