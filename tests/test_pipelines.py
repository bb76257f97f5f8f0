"""The orchestrated pipelines for real, on tiny budgets: benchmark (train -> evaluate -> compare -> report ->
deployment package), sweep, their composition, stage records, stop_on_failure, re-runs, resources, examples."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, read_json, run_cli
from daf_hydra.config import DAFBenchmarkConfig, DAFComparisonConfig, DAFConfig
from daf_hydra.errors import DAFError
from daf_hydra.orchestrators.stages import Stages
from daf_hydra.sweeps import DAFSweepConfig

# 8 environments x 4 agents x bptt 8 = a batch of 256 agent steps; 1-agent missions: 64
SMALL = ["training.num_envs=8", "training.bptt_horizon=8", "training.minibatch_size=64", "training.update_epochs=2",
         "evaluation.episodes=2", "evaluation.num_envs=4"]
STATS = ["statistics.bootstrap_reps=500", "statistics.profile_bootstrap_reps=200"]
EXAMPLES = ROOT / "conf" / "experiment"


def _stages(run_dir: Path) -> dict:
    return read_json(run_dir / "pipeline.json")["stages"]


# ------------------------------------------------------------------------------------------------------------
# The stage runner: records, stop_on_failure, reuse
# ------------------------------------------------------------------------------------------------------------


def _boom() -> dict:
    raise RuntimeError("injected stage failure")


def test_stop_on_failure_stops_or_goes_on_and_every_stage_is_recorded(tmp_path):
    stopping = Stages("demo", tmp_path / "stop", stop_on_failure=True)
    stopping.run("a", lambda: {"x": 1})
    stopping.run("b", _boom)
    stopping.run("c", lambda: {"y": 2})
    result = stopping.finish()
    assert result.status == "partial" and result.stages_completed == ["a"] and result.stages_failed == ["b"]
    assert result.errors == ["b: RuntimeError: injected stage failure"] and "y" not in result.outputs
    recorded = _stages(tmp_path / "stop")
    assert recorded["b"]["status"] == "failed" and recorded["b"]["outputs"] == {}
    assert recorded["c"]["status"] == "not_run" and "stop_on_failure" in recorded["c"]["error"]

    going = Stages("demo", tmp_path / "go", stop_on_failure=False)
    going.run("a", _boom)
    going.run("b", lambda: {"y": 2})
    going.run("c", lambda: {"z": 3}, needs=["a"])
    result = going.finish()
    assert result.status == "partial" and result.stages_completed == ["b"] and result.outputs["y"] == 2
    assert "needs stage(s) a" in _stages(tmp_path / "go")["c"]["error"]

    failing = Stages("demo", tmp_path / "fail", stop_on_failure=True)
    failing.run("environment_check", _boom)
    assert failing.finish().status == "failed"


def test_a_rerun_reuses_completed_stages_with_the_same_inputs_and_reruns_the_rest(tmp_path):
    calls: list[str] = []

    def run(key: str, restorable: bool = True) -> dict:
        stages = Stages("demo", tmp_path, stop_on_failure=True)
        stages.run("environment_check", lambda: calls.append("check") or {})
        stages.run("expensive", lambda: calls.append("expensive") or {"artifact": str(tmp_path / "a.txt")},
                   key={"k": key}, restore=lambda before: {"artifact": Path(before["artifact"]).read_text() and
                                                           before["artifact"]})
        stages.run("derived", lambda: calls.append("derived") or {}, needs=["expensive"])
        return stages.finish()

    (tmp_path / "a.txt").write_text("made")
    assert run("one").is_success() and calls == ["check", "expensive", "derived"]
    calls.clear()
    result = run("one")
    assert calls == ["check", "derived"] and result.is_success()  # reused; derived stages always run
    assert _stages(tmp_path)["expensive"]["reused"] is True and result.outputs["artifact"] == str(tmp_path / "a.txt")
    calls.clear()
    run("two")  # other inputs: run again
    assert calls == ["check", "expensive", "derived"]
    calls.clear()
    (tmp_path / "a.txt").unlink()  # its work is gone: run again
    run("two")
    assert calls == ["check", "expensive", "derived"]


# ------------------------------------------------------------------------------------------------------------
# Resources
# ------------------------------------------------------------------------------------------------------------


def test_resources_are_validated_and_cap_workers_and_sweep_jobs(tmp_path):
    from daf_hydra.orchestrators.sweep import in_run_dir

    with pytest.raises(DAFError, match="gpu_memory_fraction=1.5"):
        DAFConfig(gpu_memory_fraction=1.5).validate()
    with pytest.raises(DAFError, match="max_parallel_jobs=0"):
        DAFConfig(max_parallel_jobs=0).validate()
    assert DAFConfig(max_parallel_jobs=2).workers(None) == 2 and DAFConfig(max_parallel_jobs=2).workers(8) == 2
    assert DAFConfig().workers(None) is None
    sweep = in_run_dir(DAFSweepConfig(search_space={"learning_rate": [1e-3]}), tmp_path,
                       DAFConfig(max_parallel_jobs=3, gpu_memory_fraction=0.25), "cpu")
    overrides = sweep.overrides()
    assert "hydra.sweeper.n_jobs=3" in overrides and "hydra/launcher=local" in overrides
    assert "resources.gpu_memory_fraction=0.25" in overrides and "device=cpu" in overrides
    assert sweep.storage == f"sqlite:///{tmp_path.resolve() / 'sweep' / 'optuna.db'}"


def test_gpu_memory_fraction_reaches_every_run_and_is_applied_only_on_cuda(tmp_path, monkeypatch):
    """There is no GPU on this machine: what is tested is that the value reaches each run's recorded config and
    the call torch would get on a CUDA device (the CUDA call itself is replaced by a recorder)."""
    import torch

    from daf_hydra.device import apply_gpu_memory_fraction
    from daf_hydra.orchestrators import daf_run_comparison_pipeline

    result = daf_run_comparison_pipeline(
        config=DAFComparisonConfig(policies=["baseline", "random"], missions=["solo_forage"], episodes_per_mission=2,
                                   parallel=True),
        output_dir=tmp_path / "cmp", resources=DAFConfig(max_parallel_jobs=1, gpu_memory_fraction=0.5),
        overrides=STATS)
    assert result.is_success(), result.errors
    members = sorted((tmp_path / "cmp" / "members").iterdir())
    assert len(members) == 2
    for member in members:  # parallel evaluation: each member was played by a spawned worker from this config
        assert read_json(member / "run.json")["config"]["resources"]["gpu_memory_fraction"] == 0.5
    assert read_json(tmp_path / "cmp" / "run.json")["config"]["compare"]["workers"] == 1  # capped

    calls = []
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d: calls.append((f, str(d))))
    assert apply_gpu_memory_fraction(0.5, "cpu") is False and calls == []
    assert apply_gpu_memory_fraction(None, "cuda") is False and calls == []
    assert apply_gpu_memory_fraction(0.5, "cuda") is True and calls == [(0.5, "cuda")]


# ------------------------------------------------------------------------------------------------------------
# Examples: one file each for `+experiment=` and `from_yaml`
# ------------------------------------------------------------------------------------------------------------


def test_each_example_loads_through_from_yaml_as_the_cli_composes_it(tmp_path):
    from daf_hydra.compose import compose_config

    for name, cls, section in [("sweep_config", DAFSweepConfig, "sweep"),
                               ("comparison_config", DAFComparisonConfig, "compare"),
                               ("pipeline_config", DAFBenchmarkConfig, "benchmark")]:
        loaded = cls.from_yaml(EXAMPLES / f"{name}.yaml")
        composed = compose_config([f"+experiment={name}"])
        assert composed.pipeline.name == section
        for key, value in composed[section].items():  # the API config may have more: the documents' fields
            assert getattr(loaded, key) == value, (name, key)
    bad = tmp_path / "bad.yaml"
    bad.write_text("compare:\n  policies: [baseline]\nseed: 3\n")
    with pytest.raises(DAFError, match=r"\['seed'\].*compare"):
        DAFComparisonConfig.from_yaml(bad)
    bad.write_text("policies: [baseline]\nepisodes: 3\n")
    with pytest.raises(DAFError, match="unknown DAFComparisonConfig field"):
        DAFComparisonConfig.from_yaml(bad)
    bad.write_text("policies: []\n")
    with pytest.raises(DAFError, match="benchmark.policies is empty"):
        DAFBenchmarkConfig.from_yaml(bad)


@pytest.mark.slow
def test_the_examples_run_from_the_cli(cli, tmp_path):
    r = cli("+experiment=comparison_config", "compare.episodes_per_mission=2", *STATS, "hydra.run.dir=cmp")
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_json(tmp_path / "cmp" / "pipeline.json")["status"] == "success"
    assert len(list((tmp_path / "cmp" / "members").iterdir())) == 6  # 3 policies x 2 missions

    r = cli("+experiment=sweep_config", "sweep.num_trials=1", "sweep.training_steps=256", "sweep.episodes_per_trial=2",
            "sweep.missions=[solo_forage]", f"sweep.extra_overrides=[{','.join(repr(o) for o in SMALL[:4])}]",
            "pipeline.comparison_episodes=2", *STATS, "hydra.run.dir=sweep", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = read_json(tmp_path / "sweep" / "pipeline.json")
    assert sweep["stages_completed"] == ["environment_check", "sweep", "best_config_extraction", "comparison"]
    assert sweep["outputs"]["best_config"]["hyperparameters"]["learning_rate"] in (0.0003, 0.001, 0.003)

    r = cli("+experiment=pipeline_config", "benchmark.training_steps=256", "benchmark.episodes_per_mission=2",
            *SMALL[:2], "training.minibatch_size=128", *SMALL[3:], *STATS, "hydra.run.dir=bench", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    bench = read_json(tmp_path / "bench" / "pipeline.json")
    assert bench["status"] == "success" and bench["outputs"]["deployed_policy"] == "lstm"
    assert set(bench["outputs"]["evaluation"]) == {"lstm", "baseline"}


# ------------------------------------------------------------------------------------------------------------
# The benchmark pipeline
# ------------------------------------------------------------------------------------------------------------


def test_the_demo_is_the_benchmark_pipeline_on_its_defaults():
    from daf_hydra.compose import compose_config

    cfg = compose_config(["pipeline=benchmark"])
    assert compose_config([]).pipeline.name == "train"  # the default pipeline: `-m lr=1e-4,1e-3` trains
    assert list(cfg.benchmark.policies) == ["lstm"]
    assert list(cfg.benchmark.missions) == ["training_facility_1"] and list(cfg.benchmark.baselines) == [
        "baseline", "random"]
    assert "$(PY) -m daf_hydra.run pipeline=benchmark\n" in (ROOT / "Makefile").read_text()


def test_invalid_benchmark_settings_fail_before_any_work(tmp_path):
    from daf_hydra.orchestrators import daf_run_benchmark_pipeline

    result = daf_run_benchmark_pipeline(policies=["lstm"], missions=["no_such_mission"], output_dir=tmp_path)
    assert result.status == "failed" and result.stages_failed == ["environment_check"]
    assert "no_such_mission" in result.errors[0]
    recorded = _stages(tmp_path)
    assert [recorded[s]["status"] for s in recorded][1:] == ["not_run"] * 5
    assert not (tmp_path / "train").exists()
    with pytest.raises(DAFError, match="not both"):
        daf_run_benchmark_pipeline(policies=["lstm"], config=DAFBenchmarkConfig())


@pytest.mark.slow
def test_benchmark_trains_evaluates_compares_reports_and_packages_a_bundle_mettagrid_loads(tmp_path):
    out = tmp_path / "bench"
    args = ["pipeline=benchmark", "benchmark.policies=[lstm,baseline]",
            "benchmark.missions=[training_facility_1,assembler_2]", "benchmark.training_steps=512",
            "benchmark.episodes_per_mission=3", *SMALL[:2], "training.minibatch_size=128", *SMALL[3:], *STATS,
            f"hydra.run.dir={out}"]
    r = run_cli(*args, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"report: {out / 'report.html'}" in r.stdout
    assert f"deployment package: {out / 'deployment' / 'lstm'}" in r.stdout
    p = read_json(out / "pipeline.json")
    assert p["status"] == "success"
    assert p["stages_completed"] == ["environment_check", "training", "evaluation", "comparison", "report",
                                     "deployment_package"]
    checkpoint = p["outputs"]["checkpoints"]["lstm"]  # only the policy with a network and no weights is trained
    assert list(p["outputs"]["checkpoints"]) == ["lstm"] and p["outputs"]["final_checkpoint"] == checkpoint
    (train_dir,) = (out / "train").iterdir()  # named by the identity signature of the training's config
    assert train_dir.name == f"lstm-{read_json(train_dir / 'run.json')['identity']['signature']}"
    assert read_json(train_dir / "metrics.json")["training"]["agent_steps"] == 512
    evaluation = p["outputs"]["evaluation"]
    assert {m: s["episodes"] for m, s in evaluation["lstm"].items()} == {"training_facility_1": 3, "assembler_2": 3}
    comparison = read_json(out / "comparison" / "comparison" / "comparison.json")
    assert comparison["policies"] == ["lstm", "baseline", "random"]
    for row in comparison["summary_statistics"]:  # the same seeds: the comparison replays exactly the evaluation
        if row["mission"] in evaluation.get(row["policy"], {}):
            assert row["mean"] == pytest.approx(evaluation[row["policy"]][row["mission"]]["mean_reward"])
    assert "Learning curves" in (out / "report.html").read_text()

    # the package: spec + weights + config + results + report, checksummed, and the archive holds the same
    from daf_hydra.deployment import verify_manifest

    package = out / "deployment" / "lstm"
    assert sorted(q.name for q in package.iterdir()) == ["SHA256SUMS", "config.yaml", "evaluation.json",
                                                         "policy_spec.json", "report.html", "weights.pt"]
    assert verify_manifest(package) == []
    spec = read_json(package / "policy_spec.json")
    assert spec["class_path"] == "daf_hydra.policies.networks.TokenLSTMPolicy" and spec["data_path"] == "weights.pt"
    assert read_json(package / "evaluation.json")["evaluation"]["lstm"] == evaluation["lstm"]
    shipped = yaml.safe_load((package / "config.yaml").read_text())  # the config that produced this policy
    assert shipped["policy"]["class_path"] == "lstm" and shipped["policy"]["data_path"] == checkpoint
    assert shipped["training"]["total_steps"] == 512
    unpacked = tmp_path / "elsewhere"
    with tarfile.open(out / "deployment" / "lstm.tar.gz") as tar:
        tar.extractall(unpacked, filter="data")
    bundle = unpacked / "lstm"
    assert verify_manifest(bundle) == []
    script = textwrap.dedent(f"""
        from pathlib import Path
        import torch
        from mettagrid.policy.loader import initialize_or_load_policy
        from mettagrid.policy.prepare_policy_spec import load_policy_spec_from_path
        from daf_hydra.training import weights_digest
        spec = load_policy_spec_from_path(Path({str(bundle)!r}))
        policy = initialize_or_load_policy(spec.policy_env_interface, spec)
        trained = torch.load(Path({checkpoint!r}) / "weights.pt", weights_only=True)
        print("SAME", weights_digest(policy.network()) == weights_digest(trained))
    """)
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert "SAME True" in loaded.stdout
    played = tmp_path / "played"
    r = run_cli("pipeline=evaluate", f"policy.class_path={bundle}", "policy.name=deployed", "mission=assembler_2",
                "evaluation.episodes=3", f"hydra.run.dir={played}", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    replayed = read_json(played / "metrics.json")["mean_reward"]
    assert replayed == pytest.approx(evaluation["lstm"]["assembler_2"]["mean_reward"])

    # a re-run in the same directory skips the training and the evaluation that completed
    weights_mtime = (Path(checkpoint) / "weights.pt").stat().st_mtime_ns
    r = run_cli(*args, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    again = _stages(out)
    assert again["training"]["reused"] and again["evaluation"]["reused"]
    assert not again["report"]["reused"] and again["deployment_package"]["status"] == "completed"
    assert (Path(checkpoint) / "weights.pt").stat().st_mtime_ns == weights_mtime
    assert "training: completed in an earlier run" in r.stdout and "update 2/2" not in r.stdout


@pytest.mark.slow
def test_stop_on_failure_from_the_cli_stops_or_goes_on_to_a_partial_result(cli, tmp_path):
    common = ["pipeline=benchmark", "benchmark.policies=[baseline]", "benchmark.missions=[solo_forage]",
              "benchmark.baselines=[no_such_policy]", "benchmark.episodes_per_mission=2", *STATS]
    r = cli(*common, "hydra.run.dir=stop")
    assert r.returncode == 2 and "no_such_policy" in r.stderr.strip().splitlines()[-1]
    stopped = read_json(tmp_path / "stop" / "pipeline.json")
    assert stopped["status"] == "failed" and stopped["stages_failed"] == ["environment_check"]
    assert {s["status"] for n, s in stopped["stages"].items() if n != "environment_check"} == {"not_run"}

    r = cli(*common, "pipeline.stop_on_failure=false", "benchmark.parallel_evaluation=true",
            "resources.max_parallel_jobs=2", "hydra.run.dir=go")
    assert r.returncode == 0, r.stderr[-3000:]
    compared = read_json(tmp_path / "go" / "comparison" / "run.json")["config"]["compare"]
    assert compared["parallel"] is True and compared["workers"] == 2  # 2 members in 2 worker processes
    went = read_json(tmp_path / "go" / "pipeline.json")
    assert went["status"] == "partial" and went["stages_failed"] == ["environment_check"]
    assert went["stages_completed"] == ["training", "evaluation", "comparison", "report", "deployment_package"]
    assert any("no_such_policy" in e and e.startswith("comparison:") for e in went["errors"])
    assert went["outputs"]["checkpoints"] == {}  # baseline has nothing to train
    assert (tmp_path / "go" / "deployment" / "baseline.tar.gz").is_file()


# ------------------------------------------------------------------------------------------------------------
# Composition: train -> sweep from the checkpoint -> compare the best against a baseline
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_then_sweep_from_the_checkpoint_then_compare_the_best(tmp_path, monkeypatch):
    from mettagrid.policy.policy import PolicySpec

    from daf_hydra.config import DAFTrainingConfig
    from daf_hydra.orchestrators import (daf_run_comparison_pipeline, daf_run_sweep_pipeline,
                                         daf_run_training_pipeline)

    monkeypatch.chdir(tmp_path)
    train_result = daf_run_training_pipeline(config=DAFTrainingConfig(
        policy_class_path="mlp", missions=["solo_forage"], num_training_steps=256, eval_episodes=2, device="cpu",
        output_dir=str(tmp_path / "train"), overrides=SMALL[:4]))
    assert train_result.is_success(), train_result.errors
    checkpoint = train_result.outputs["final_checkpoint"]

    sweep_cfg = DAFSweepConfig(policy_class_path="mlp", policy_data_path=checkpoint, missions=["solo_forage"],
                               search_space={"learning_rate": [0.001, 0.003]}, strategy="grid", num_trials=2,
                               episodes_per_trial=2, training_steps=256, extra_overrides=SMALL[:4])
    sweep_result = daf_run_sweep_pipeline(config=sweep_cfg, compare_best=True, comparison_episodes=2,
                                          device="cpu", output_dir=tmp_path / "sweep", overrides=STATS)
    assert sweep_result.is_success(), sweep_result.errors
    assert sweep_result.stages_completed == ["environment_check", "sweep", "best_config_extraction", "comparison"]
    best = sweep_result.outputs["best_config"]
    assert best.hyperparameters["learning_rate"] in (0.001, 0.003)
    trials = sweep_result.outputs["sweep_results"].trials
    assert len(trials) == 2 and best.value == max(float(t["mean_reward"]) for t in trials)
    for t in trials:  # every trial started from the trained checkpoint
        assert read_json(Path(t["run_dir"]) / "run.json")["config"]["policy"]["data_path"] == checkpoint
    assert Path(sweep_result.outputs["best_checkpoint"]).parent == Path(best.run_dir) / "checkpoints"
    assert sweep_result.outputs["comparison_results"].policies == ["mlp-best", "baseline", "random"]

    comparison = daf_run_comparison_pipeline(
        policies=[PolicySpec(class_path="mlp", data_path=sweep_result.outputs["best_checkpoint"]), "baseline"],
        missions=["solo_forage"], episodes_per_mission=2, output_dir=tmp_path / "compare", overrides=STATS)
    assert comparison.is_success(), comparison.errors
    best_label, baseline = comparison.outputs["results"].policies
    assert best_label == f"mlp-{Path(best.checkpoint).name}" and baseline == "baseline"
