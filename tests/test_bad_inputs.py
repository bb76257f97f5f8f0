"""Every mistake in one line (issue 14): a corpus of bad inputs over every group and pipeline, through the CLI
and the Python API. Each gives one line (`error: ...` on stderr, or a DAFError whose message is one line) naming
the bad value and what would be valid, a non-zero exit, no traceback, and no result (no metrics.json with a
score). What can be checked before work starts is checked before work starts.

The CLI's check (`daf_hydra.run.check_command_line`: compose with the user's overrides, then
`orchestrators.validate_run`) runs in-process for the bulk of the corpus; a subprocess per case only where the
path through `python -m daf_hydra.run` itself is what is tested (Hydra's own errors, multiruns, exit codes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daf_hydra.errors import DAFError

FAST = ["pipeline=evaluate", "mission.max_steps=20", "evaluation.episodes=2", "evaluation.num_envs=2"]

# override(s) -> a fragment the one line must hold (the bad value, or what is valid)
CLI_CASES: dict[str, tuple[list[str], str]] = {
    # the nine of issue 14
    "episodes-abc": (["evaluation.episodes=abc"], "Integer"),
    "lr-abc": (["lr=abc"], "Float"),
    "seed-float": (["seed=1.5"], "Integer"),
    "unknown-top-key": (["nonexistent_key=3"], "evaluation"),
    "unknown-eval-key": (["evaluation.nonexistent=3"], "episodes"),
    "seed-negative": (["seed=-1"], ">= 0"),
    "launcher-nope": (["hydra/launcher=nope"], "slurm"),
    "sweeper-nope": (["hydra/sweeper=nope"], "tpe"),
    "direction-sideways": (["objective.direction=sideways"], "maximize"),
    "metric-unknown": (["objective.metric=not_a_metric"], "mean_reward"),
    # policy
    "policy-nope": (["policy=nope"], "baseline"),
    "policy-key": (["policy.nope=1"], "class_path"),
    "policy-old-name": (["policy=daf_lstm"], "now called lstm"),
    # mission
    "mission-nope": (["mission=nope"], "training_facility_1"),
    "mission-agents": (["mission.num_agents=0"], ">= 1"),
    "mission-steps": (["mission.max_steps=0"], ">= 1"),
    "mission-steps-type": (["mission.max_steps=lots"], "Integer"),
    "mission-regen": (["mission.regen_period=0"], ">= 1"),
    "mission-uses": (["mission.extractor_uses=0"], ">= 1"),
    "mission-resources": (["mission.resources=[heart]"], "ore_"),
    "mission-map": (["mission.width=3"], "larger"),
    # evaluation
    "episodes-zero": (["evaluation.episodes=0"], ">= 1"),
    "num-envs-zero": (["evaluation.num_envs=0"], ">= 1"),
    "eval-seed-negative": (["evaluation.seed=-5"], ">= 0"),
    "deterministic-type": (["evaluation.deterministic=maybe"], "evaluation.deterministic"),
    "replays-sometimes": (["evaluation.replays=sometimes"], "none, examples, all"),
    "replays-in-benchmark": (["pipeline=benchmark", "evaluation.replays=some"], "none, examples, all"),
    # seeds, device
    "seeds-negative": (["seeds=[0,-2]"], ">= 0"),
    "seeds-empty": (["seeds=[]"], "at least one"),
    "seeds-type": (["seeds=[a]"], "seeds"),
    "device-tpu": (["device=tpu"], "cpu"),
    # objective
    "direction-count": (["objective.metric=[mean_reward,duration_s]", "objective.direction=[maximize,minimize,maximize]"],
                        "one direction per metric"),
    "direction-list-bad": (["objective.metric=[mean_reward,duration_s]", "objective.direction=[maximize,up]"], "'up'"),
    "metric-train": (["pipeline=train", "objective.metric=iqm"], "mean_reward"),
    "metric-train-several-missions": (["pipeline=train", "training.missions=[training_facility_1,assembler_2]",
                                       "objective.metric=std_reward"], "evaluated on 2 missions"),
    "metric-train-several-eval-missions": (["pipeline=train", "training.eval_missions=[solo_forage,assembler_2]",
                                            "objective.metric=stderr_reward"], "mean_reward"),
    "metric-compare": (["pipeline=compare", "objective.metric=success_rate"], "objective"),
    "metric-benchmark": (["pipeline=benchmark", "objective.metric=duration_s"], "mean_reward"),
    "metric-analyze-many": (["pipeline=analyze", "objective.metric=[mean_reward,success_rate]"], "one number"),
    # statistics
    "bootstrap-zero": (["statistics.bootstrap_reps=0"], ">= 1"),
    "profile-bootstrap-zero": (["statistics.profile_bootstrap_reps=0"], ">= 1"),
    "confidence-one": (["statistics.confidence=1.0"], "between 0 and 1"),
    "significance-zero": (["statistics.significance_level=0"], "between 0 and 1"),
    # resources
    "max-jobs-zero": (["resources.max_parallel_jobs=0"], ">= 1"),
    "gpu-fraction": (["resources.gpu_memory_fraction=1.5"], "(0, 1]"),
    # training and training.distributed
    "train-steps": (["pipeline=train", "training.total_steps=0"], ">= 1"),
    "train-minibatch": (["pipeline=train", "training.minibatch_size=100"], "multiple"),
    "train-gamma": (["pipeline=train", "training.gamma=1.5"], "(0, 1]"),
    "train-workers-split": (["pipeline=train", "training.vec_workers=3"], "training.num_envs=32"),
    "train-workers-word": (["pipeline=train", "training.vec_workers=many"], "auto or a whole number >= 0"),
    "train-threads-zero": (["pipeline=train", "training.torch_threads=0"], "auto or a whole number >= 1"),
    "train-optimizer": (["pipeline=train", "training.optimizer=sgd"], "adam"),
    "train-precision": (["pipeline=train", "training.precision=float8"], "float32"),
    "train-lr-zero": (["pipeline=train", "lr=0"], "> 0"),
    "train-lr-negative": (["pipeline=train", "lr=-0.1"], "> 0"),
    "train-missions": (["pipeline=train", "training.missions=[nope]"], "nope"),
    "dist-nodes": (["pipeline=train", "training.distributed.nodes=0"], ">= 1"),
    "dist-backend": (["pipeline=train", "training.distributed.backend=mpi"], "gloo"),
    "dist-timeout": (["pipeline=train", "training.distributed.timeout_s=0"], "> 0"),
    # pipeline=compare / analyze / benchmark / sweep fields
    "pipeline-nope": (["pipeline=nope"], "evaluate"),
    "compare-empty": (["pipeline=compare", "compare.policies=[]"], "at least one"),
    "compare-episodes": (["pipeline=compare", "compare.episodes_per_mission=0"], ">= 1"),
    "compare-workers": (["pipeline=compare", "compare.workers=0"], ">= 1"),
    "crossplay-one": (["pipeline=crossplay", "crossplay.policies=[baseline]"], "at least two"),
    "crossplay-unknown": (["pipeline=crossplay", "crossplay.policies=[baseline,nope]"], "unknown policy 'nope'"),
    "crossplay-repeated": (["pipeline=crossplay", "crossplay.policies=[random,random]"], "['random']"),
    "crossplay-k": (["pipeline=crossplay", "crossplay.k=4"], "1..3"),
    "crossplay-k-zero": (["pipeline=crossplay", "crossplay.k=0"], "at least 1"),
    "crossplay-pool": (["pipeline=crossplay", "crossplay.pool=[lstm]"], "subset"),
    "crossplay-mission": (["pipeline=crossplay", "crossplay.missions=[nope]"], "training_facility_1"),
    "crossplay-one-agent": (["pipeline=crossplay", "crossplay.missions=[solo_forage]"], "at least 2 agents"),
    "crossplay-episodes": (["pipeline=crossplay", "crossplay.episodes=0"], ">= 1"),
    "analyze-stuck": (["pipeline=analyze", "analyze.stuck_fraction=2"], "(0, 1]"),
    "analyze-seeds": (["pipeline=analyze", "analyze.example_seeds=-1"], ">= 0"),
    "benchmark-empty": (["pipeline=benchmark", "benchmark.missions=[]"], "at least one"),
    "benchmark-deploy": (["pipeline=benchmark", "benchmark.deploy_policy=random"], "benchmark.policies"),
    "benchmark-steps": (["pipeline=benchmark", "benchmark.training_steps=0"], ">= 1"),
    "sweep-no-space": (["pipeline=sweep"], "search_space"),
    "sweep-strategy": (["pipeline=sweep", "sweep.search_space={lr:[0.001,0.01]}", "sweep.strategy=annealing"], "grid"),
    "sweep-metric": (["pipeline=sweep", "sweep.search_space={lr:[0.001,0.01]}", "sweep.objective_metric=nope"],
                     "mean_reward"),
    "sweep-direction": (["pipeline=sweep", "sweep.search_space={lr:[0.001,0.01]}", "sweep.optimize_direction=up"],
                        "maximize"),
    "sweep-param": (["pipeline=sweep", "sweep.search_space={nope:[1,2]}"], "nope"),
    "sweep-range": (["pipeline=sweep", "sweep.search_space={lr:{low:0.1,high:0.01}}"], "below"),
    "sweep-trials": (["pipeline=sweep", "sweep.search_space={lr:[0.001,0.01]}", "sweep.num_trials=0"], ">= 1"),
    # Hydra's launcher and sweeper settings
    "sweeper-trials-type": (["hydra/sweeper=tpe", "hydra.sweeper.n_trials=many"], "Integer"),
    "launcher-key": (["hydra/launcher=local", "hydra.launcher.nope=1"], "nope"),
    "ambiguous": (["policy=random,baseline"], "--multirun"),
}

# Through the real `python -m daf_hydra.run`: the nine of the issue, and the multirun checks.
SUBPROCESS = ["episodes-abc", "lr-abc", "seed-float", "unknown-top-key", "unknown-eval-key",
              "seed-negative", "launcher-nope", "sweeper-nope", "direction-sideways", "metric-unknown"]
MULTIRUN_CASES: dict[str, tuple[list[str], str]] = {
    # every trial would train and then fail to return its objective: refused before the first one
    "sweep-metric": (["hydra/sweeper=random", "hydra.sweeper.n_trials=2", "lr=interval(0.0001,0.01)",
                      "objective.metric=nope"], "mean_reward"),
    "every-value-bad": (["evaluation.episodes=0,-1"], ">= 1"),
    "outside-the-sweep": (["policy=random,baseline", "seed=-1"], ">= 0"),
    "sweep-direction": (["hydra/sweeper=tpe", "hydra.sweeper.n_trials=2", "lr=tag(log, interval(1e-4, 1e-2))",
                         "objective.direction=upward"], "maximize"),
}


def _assert_one_line(message: str, expected: str) -> None:
    assert "\n" not in message.strip(), message
    assert expected in message, (expected, message)


def _assert_no_score(root: Path) -> None:
    for path in root.rglob("metrics.json"):
        doc = json.loads(path.read_text())
        assert doc.get("status") != "completed" and "objective" not in doc, (path, doc)


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_the_cli_check_refuses_in_one_line(case):
    from daf_hydra.run import check_command_line

    overrides, expected = CLI_CASES[case]
    with pytest.raises(DAFError) as info:
        check_command_line([*FAST, *overrides])
    _assert_one_line(str(info.value), expected)


@pytest.mark.parametrize("overrides", [
    ["pipeline=train", "objective.metric=std_reward"],  # one evaluation mission: its summary has every key
    ["pipeline=train", "training.missions=[training_facility_1,assembler_2]", "objective.metric=success_rate"],
    ["pipeline=benchmark", "objective.metric=stderr_reward"],
])
def test_a_metric_the_pipeline_returns_passes_the_check(overrides):
    """The other side of the metric cases: the check refuses what the run could not return, nothing more."""
    from daf_hydra.run import check_command_line

    check_command_line([*FAST, *overrides])


def test_the_metrics_the_check_allows_are_those_the_pipelines_return():
    """config.pipeline_metrics against the summaries the train and benchmark pipelines build (one evaluation
    mission, several, a benchmark's mission average), from real episode summaries."""
    from omegaconf import OmegaConf

    from daf_hydra.config import BENCHMARK_SUMMARY, pipeline_metrics
    from daf_hydra.orchestrators.benchmark import benchmark_metrics
    from daf_hydra.orchestrators.train import _summary
    from daf_hydra.records import summarize_episodes

    def numeric(metrics: dict) -> set[str]:
        return {k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    episodes = [{"total_reward": r, "rewards": [r], "steps": 10, "success": r > 1} for r in (0.0, 2.0, 3.0)]
    per_mission = {m: {"policy": "p", "mission": m, "seed": 0, **summarize_episodes(episodes)} for m in ("a", "b")}
    cfg = OmegaConf.create({"seed": 0})
    for missions in (["a"], ["a", "b"]):
        summary = _summary(cfg, "p", {m: per_mission[m] for m in missions})
        assert numeric(summary) | {"objective"} == pipeline_metrics("train", len(missions)), missions
    evaluation = {"p": {m: {k: s[k] for k in BENCHMARK_SUMMARY} for m, s in per_mission.items()}}
    assert numeric(benchmark_metrics({"evaluation": evaluation}, "p")) == pipeline_metrics("benchmark")


def _error_line(r) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize("case", SUBPROCESS)
def test_the_cli_prints_one_line_and_exits_2(cli, tmp_path, case):
    overrides, expected = CLI_CASES[case]
    r = cli(*FAST, *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2
    _assert_one_line(_error_line(r), expected)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", sorted(MULTIRUN_CASES))
def test_a_multirun_no_job_could_run_is_refused_before_the_first(cli, tmp_path, case):
    overrides, expected = MULTIRUN_CASES[case]
    r = cli("-m", *FAST, *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"hydra.sweeper.storage=sqlite:///{tmp_path / 'o.db'}" if "hydra/sweeper" in " ".join(overrides) else
            "seed=0" if "seed=-1" not in overrides else "device=cpu")
    assert r.returncode == 2
    _assert_one_line(_error_line(r), expected)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("launcher", ["slurm", "local"])
def test_a_job_folder_that_cannot_be_written_is_refused_before_any_job(cli, tmp_path, launcher):
    """Each SLURM (or local submitit) job writes its pickles and logs in hydra.launcher.submitit_folder: a folder
    that cannot be written is one line before anything is submitted (no SLURM cluster is needed to see it)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    r = cli("-m", f"hydra/launcher={launcher}", *FAST, "policy=random,baseline",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.launcher.submitit_folder={blocker}/jobs/%j")
    assert r.returncode == 2
    _assert_one_line(_error_line(r), f"hydra.launcher.submitit_folder (each job's files) {blocker}/jobs: {blocker} "
                                     "is not a directory")
    assert not (tmp_path / "sweep").exists()


def test_hydra_full_error_keeps_the_traceback(cli, tmp_path):
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "daf_hydra.run", *FAST, "evaluation.episodes=abc"], cwd=tmp_path,
                       env={**os.environ, "HYDRA_FULL_ERROR": "1"}, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" in r.stderr  # conftest's cli() drops HYDRA_FULL_ERROR


def _api_cases(tmp: Path) -> dict[str, tuple]:
    from daf_hydra.comparison import daf_compare_policies
    from daf_hydra.config import DAFSweepConfig, DAFTrainingConfig
    from daf_hydra.distributed_training import daf_launch_distributed_training
    from daf_hydra.mission_analysis import daf_analyze_mission_performance
    from daf_hydra.orchestrators import (daf_crossplay, daf_run_benchmark_pipeline, daf_run_comparison_pipeline,
                                         daf_run_sweep_pipeline, daf_run_training_pipeline)
    from daf_hydra.sweeps import daf_launch_sweep

    out = str(tmp / "out")
    space = {"learning_rate": [1e-3, 1e-2]}
    return {
        "train-steps": (lambda: daf_run_training_pipeline(num_training_steps=0, output_dir=out), "num_training_steps"),
        "train-lr": (lambda: daf_run_training_pipeline(learning_rate=-1.0, output_dir=out), "> 0"),
        "train-device": (lambda: daf_run_training_pipeline(device="tpu", output_dir=out), "cpu"),
        "train-seed": (lambda: daf_run_training_pipeline(seed=-1, output_dir=out), ">= 0"),
        "train-mission": (lambda: daf_run_training_pipeline(missions=["nope"], output_dir=out), "nope"),
        "train-field": (lambda: daf_run_training_pipeline(nope=1, output_dir=out), "nope"),
        "train-gamma": (lambda: daf_run_training_pipeline(config=DAFTrainingConfig(gamma=2.0, output_dir=out)),
                        "(0, 1]"),
        "train-override": (lambda: daf_run_training_pipeline(overrides=["evaluation.episodes=abc"], output_dir=out),
                           "Integer"),
        "compare-empty": (lambda: daf_run_comparison_pipeline([], ["training_facility_1"], output_dir=out),
                          "at least one"),
        "compare-episodes": (lambda: daf_run_comparison_pipeline(["baseline"], ["training_facility_1"], 0,
                                                                 output_dir=out), ">= 1"),
        "compare-significance": (lambda: daf_run_comparison_pipeline(["baseline", "random"], ["training_facility_1"],
                                                                     significance_level=2.0, output_dir=out),
                                 "between 0 and 1"),
        "compare-mission": (lambda: daf_run_comparison_pipeline(["baseline"], ["nope"], output_dir=out),
                            "unknown mission 'nope'"),
        "compare-seed": (lambda: daf_run_comparison_pipeline(["baseline", "random"], ["training_facility_1"], seed=-3,
                                                             output_dir=out), ">= 0"),
        "compare-override": (lambda: daf_run_comparison_pipeline(["baseline"], ["training_facility_1"],
                                                                 overrides=["nonexistent_key=1"], output_dir=out),
                             "nonexistent_key"),
        "benchmark-empty": (lambda: daf_run_benchmark_pipeline([], output_dir=out), "at least one"),
        "benchmark-episodes": (lambda: daf_run_benchmark_pipeline(["baseline"], episodes_per_mission=0,
                                                                  output_dir=out), ">= 1"),
        "benchmark-seed": (lambda: daf_run_benchmark_pipeline(["baseline"], seed=-1, output_dir=out), ">= 0"),
        "benchmark-field": (lambda: daf_run_benchmark_pipeline(["baseline"], nope=1, output_dir=out), "nope"),
        "benchmark-metric": (lambda: daf_run_benchmark_pipeline(["baseline"], overrides=["objective.metric=std_reward"],
                                                                output_dir=out), "stderr_reward"),
        "benchmark-override": (lambda: daf_run_benchmark_pipeline(["baseline"], overrides=["mission.max_steps=x"],
                                                                  output_dir=out), "Integer"),
        "compare-field": (lambda: daf_run_comparison_pipeline(["baseline"], ["training_facility_1"], nope=1,
                                                              output_dir=out), "nope"),
        "compare-metric": (lambda: daf_run_comparison_pipeline(["baseline"], ["training_facility_1"],
                                                               overrides=["objective.metric=iqm"], output_dir=out),
                           "objective"),
        "train-metric-several-missions": (lambda: daf_run_training_pipeline(
            missions=["training_facility_1", "assembler_2"], overrides=["objective.metric=std_reward"],
            output_dir=out), "evaluated on 2 missions"),
        "sweep-metric-several-missions": (lambda: daf_run_sweep_pipeline(DAFSweepConfig(
            search_space=space, missions=["training_facility_1", "assembler_2"], objective_metric="std_reward"),
            output_dir=out), "evaluated on 2 missions"),
        "sweep-override": (lambda: daf_run_sweep_pipeline(DAFSweepConfig(search_space=space),
                                                          overrides=["statistics.confidence=2"], output_dir=out),
                           "between 0 and 1"),
        "crossplay-episodes": (lambda: daf_crossplay(["baseline", "random"], episodes=0, output_dir=out), ">= 1"),
        "crossplay-override": (lambda: daf_crossplay(["baseline", "random"], overrides=["nonexistent_key=1"],
                                                     output_dir=out), "nonexistent_key"),
        "benchmark-device": (lambda: daf_run_benchmark_pipeline(["baseline"], device="tpu", output_dir=out), "cpu"),
        "sweep-metric": (lambda: daf_run_sweep_pipeline(DAFSweepConfig(search_space=space, objective_metric="nope"),
                                                        output_dir=out), "mean_reward"),
        "sweep-direction": (lambda: daf_run_sweep_pipeline(DAFSweepConfig(search_space=space,
                                                                          optimize_direction="sideways"),
                                                           output_dir=out), "maximize"),
        "sweep-strategy": (lambda: daf_run_sweep_pipeline(DAFSweepConfig(search_space=space, strategy="annealing"),
                                                          output_dir=out), "grid"),
        "sweep-comparison-episodes": (lambda: daf_run_sweep_pipeline(DAFSweepConfig(search_space=space),
                                                                     comparison_episodes=0, output_dir=out), ">= 1"),
        "launch-sweep-metric": (lambda: daf_launch_sweep(DAFSweepConfig(search_space=space,
                                                                        objective_metric="iqm")), "mean_reward"),
        "launch-sweep-metric-several-missions": (lambda: daf_launch_sweep(DAFSweepConfig(
            search_space=space, missions=["training_facility_1", "assembler_2"], objective_metric="std_reward")),
            "evaluated on 2 missions"),
        "launch-sweep-space": (lambda: daf_launch_sweep(DAFSweepConfig(search_space={"nope": [1, 2]})), "nope"),
        "launch-sweep-range": (lambda: daf_launch_sweep(DAFSweepConfig(
            search_space={"learning_rate": {"low": 0.0, "high": 0.1, "log": True}})), "above 0"),
        "launch-sweep-seed": (lambda: daf_launch_sweep(DAFSweepConfig(search_space=space, seed=-1)), ">= 0"),
        "launch-sweep-grid": (lambda: daf_launch_sweep(DAFSweepConfig(
            search_space={"learning_rate": {"low": 1e-4, "high": 1e-2}}, strategy="grid")), "grid"),
        "compare-policies-episodes": (lambda: daf_compare_policies(["baseline"], ["training_facility_1"], 0,
                                                                   output_dir=out), ">= 1"),
        "compare-policies-mission": (lambda: daf_compare_policies(["baseline"], ["nope"], output_dir=out), "nope"),
        "compare-policies-seed": (lambda: daf_compare_policies(["baseline"], ["training_facility_1"], seed=-1,
                                                               output_dir=out), ">= 0"),
        "analyze-episodes": (lambda: daf_analyze_mission_performance("baseline", "training_facility_1", 0,
                                                                     output_dir=out), ">= 1"),
        "analyze-mission": (lambda: daf_analyze_mission_performance("baseline", "nope", output_dir=out), "nope"),
        "analyze-policy": (lambda: daf_analyze_mission_performance("not_a_policy_name", "training_facility_1",
                                                                   output_dir=out), "not_a_policy_name"),
        "analyze-seed": (lambda: daf_analyze_mission_performance("baseline", "training_facility_1", seed=-1,
                                                                 output_dir=out), ">= 0"),
        "crossplay-one": (lambda: daf_crossplay(["baseline"], output_dir=out), "at least two"),
        "crossplay-unknown": (lambda: daf_crossplay(["baseline", "nope"], output_dir=out), "unknown policy 'nope'"),
        "crossplay-k": (lambda: daf_crossplay(["baseline", "random"], k=5, output_dir=out), "1..3"),
        "crossplay-checkpoint": (lambda: daf_crossplay(["baseline", "random:missing.pt"], output_dir=out),
                                 "missing.pt"),
        "distributed-machines": (lambda: daf_launch_distributed_training(num_machines=0, output_dir=out), ">= 1"),
        "distributed-backend": (lambda: daf_launch_distributed_training(backend="mpi", output_dir=out), "slurm"),
        "distributed-steps": (lambda: daf_launch_distributed_training(steps_per_machine=0, output_dir=out), ">= 1"),
    }


API_CASES = sorted(_api_cases(Path("/nonexistent")))


@pytest.mark.parametrize("case", API_CASES)
def test_the_python_api_raises_one_line(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)  # outputs/ and multirun/ of calls without output_dir land here
    call, expected = _api_cases(tmp_path)[case]
    with pytest.raises(DAFError) as info:
        call()
    _assert_one_line(str(info.value), expected)
    _assert_no_score(tmp_path)


def _api_entry_points() -> dict[str, object]:
    """Every Python API entry point that records a run, called with only its output directory."""
    from daf_hydra.comparison import daf_compare_policies
    from daf_hydra.distributed_training import daf_launch_distributed_training
    from daf_hydra.mission_analysis import daf_analyze_mission_performance
    from daf_hydra.orchestrators import (daf_crossplay, daf_run_benchmark_pipeline, daf_run_comparison_pipeline,
                                         daf_run_sweep_pipeline, daf_run_training_pipeline)

    return {
        "daf_run_training_pipeline": lambda out: daf_run_training_pipeline(output_dir=out),
        "daf_run_comparison_pipeline": lambda out: daf_run_comparison_pipeline(["baseline", "random"],
                                                                               ["training_facility_1"], output_dir=out),
        "daf_run_benchmark_pipeline": lambda out: daf_run_benchmark_pipeline(["baseline"], output_dir=out),
        "daf_run_sweep_pipeline": lambda out: daf_run_sweep_pipeline(output_dir=out),
        "daf_crossplay": lambda out: daf_crossplay(["baseline", "random"], output_dir=out),
        "daf_compare_policies": lambda out: daf_compare_policies(["baseline"], ["training_facility_1"],
                                                                 output_dir=out),
        "daf_analyze_mission_performance": lambda out: daf_analyze_mission_performance(
            "baseline", "training_facility_1", output_dir=out),
        "daf_launch_distributed_training": lambda out: daf_launch_distributed_training(backend="local",
                                                                                       output_dir=out),
    }


@pytest.mark.parametrize("entry", sorted(_api_entry_points()))
@pytest.mark.parametrize("where", ["given", "default"])
def test_an_api_output_dir_that_cannot_be_written_is_one_line_before_any_work(tmp_path, monkeypatch, entry, where):
    """As the CLI (tests/test_faults.py): refused before anything is played or trained, whether the directory is
    given (below a regular file) or the default outputs/<date>/<time>-<id> (a regular file named outputs in the
    working directory). A file in the path stops root too, whatever the permission bits."""
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / ("a_file" if where == "given" else "outputs")
    blocker.write_text("not a directory\n")
    with pytest.raises(DAFError) as info:
        _api_entry_points()[entry](blocker / "run" if where == "given" else None)
    _assert_one_line(str(info.value), f"{blocker} is not a directory")
    assert "cannot write the output directory" in str(info.value)
    assert blocker.read_text() == "not a directory\n"
    assert [p.name for p in tmp_path.rglob("*")] == [blocker.name]  # nothing written anywhere


def test_a_sweep_output_root_that_cannot_be_written_is_one_line_before_any_trial(tmp_path, monkeypatch):
    from daf_hydra.config import DAFSweepConfig
    from daf_hydra.sweeps import daf_launch_sweep

    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    with pytest.raises(DAFError) as info:
        daf_launch_sweep(DAFSweepConfig(search_space={"learning_rate": [1e-3, 1e-2]},
                                        output_root=str(blocker / "sweeps")))
    _assert_one_line(str(info.value), f"cannot write the sweeps' output_root {blocker / 'sweeps'}: {blocker} is "
                                      "not a directory")
    assert [p.name for p in tmp_path.rglob("*")] == [blocker.name]  # no study, no trial


def test_the_corpus_is_large():
    assert len(CLI_CASES) + len(MULTIRUN_CASES) + len(API_CASES) >= 60
