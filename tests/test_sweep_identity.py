"""One name per knob, one study per sweep, trials that are the run the user composed: through the real CLI and
the real API (Hydra multiruns, SQLite Optuna studies), with tiny evaluations and trainings."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import optuna
import pytest

from daf_hydra.errors import DAFError
from daf_hydra.sweeps import DEFINITION_ATTR, DAFSweepConfig, daf_launch_sweep

TINY_EVAL = ["evaluation.episodes=1", "evaluation.num_envs=1", "mission.max_steps=30"]
TINY_TRAINING = ["training.total_steps=1024", "training.num_envs=8", "training.minibatch_size=512"]
NOT_PARAMS = {"number", "state", "mean_reward", "duration_s", "run_dir", "error"}
STUDY = re.compile(r"sweep-[0-9a-f]{12}")


def trials(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def param_columns(sweep_dir: Path) -> list[str]:
    with open(sweep_dir / "trials.csv") as f:
        return [c for c in next(csv.reader(f)) if c not in NOT_PARAMS]


def cli_sweep(cli, storage: str, sweep_dir: Path, *args: str):
    """A sweep of the baseline's evaluations through the CLI, into `storage`; returns the finished process."""
    return cli("-m", "pipeline=evaluate", "policy=baseline", *TINY_EVAL, f"hydra.sweeper.storage={storage}",
               f"hydra.sweep.dir={sweep_dir}", *args)


def api_sweep(tmp_path: Path, **fields) -> DAFSweepConfig:
    """The API's twin of `cli_sweep`: the baseline evaluated on the same tiny settings."""
    return DAFSweepConfig(**{
        "policy_class_path": "baseline", "pipeline": "evaluate", "episodes_per_trial": 1, "strategy": "grid",
        "search_space": {"learning_rate": [0.001, 0.003]}, "num_trials": 2, "output_root": str(tmp_path / "api"),
        "extra_overrides": ["evaluation.num_envs=1", "mission.max_steps=30"], **fields})


def test_the_cli_the_presets_and_the_api_sweep_the_learning_rate_as_lr(cli, tmp_path, monkeypatch):
    for n, spelling in enumerate(["lr=0.001,0.003", "hydra.sweeper.params.lr=choice(0.001,0.003)"]):
        r = cli_sweep(cli, f"sqlite:///{tmp_path / f'cli{n}.db'}", tmp_path / f"cli{n}", "hydra/sweeper=grid", spelling)
        assert r.returncode == 0, r.stderr[-3000:]
        assert param_columns(tmp_path / f"cli{n}") == ["lr"]
        assert {t["lr"] for t in trials(tmp_path / f"cli{n}")} == {"0.001", "0.003"}

    monkeypatch.chdir(tmp_path)
    results = daf_launch_sweep(api_sweep(tmp_path, storage=f"sqlite:///{tmp_path / 'api.db'}"), timeout_s=600)
    assert results.status == "success", results.log_tail
    assert param_columns(results.sweep_dir) == ["lr"] and {t["lr"] for t in results.trials} == {"0.001", "0.003"}
    # the same definition on both roads: the same study name (derived by one function, in the sweeper)
    assert results.summary["study_name"] == json.loads((tmp_path / "cli0" / "sweep.json").read_text())["study_name"]
    assert STUDY.fullmatch(results.summary["study_name"])

    r = cli("+sweep=lstm_lr", "--cfg", "hydra")  # the preset sweeps the same key
    assert r.returncode == 0, r.stderr
    assert re.search(r"\n    params:\n      lr: tag\(log, interval", r.stdout)


def test_unrelated_sweeps_get_studies_of_their_own_and_a_rerun_resumes_its_own(cli, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    common = ["hydra/sweeper=random", "hydra.sweeper.params.lr=choice(0.001,0.003)", "hydra.sweeper.n_trials=1"]
    sweeps = [("a1", []), ("a2", []), ("b", ["mission.max_steps=40"]), ("c", ["objective.direction=minimize"])]
    for name, extra in sweeps:
        r = cli_sweep(cli, storage, tmp_path / name, *common, *extra)
        assert r.returncode == 0, r.stderr[-3000:]
    study_of = {n: json.loads((tmp_path / n / "sweep.json").read_text())["study_name"] for n in ("a1", "a2", "b", "c")}
    assert study_of["a1"] == study_of["a2"] and len({study_of["a1"], study_of["b"], study_of["c"]}) == 3
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    assert set(summaries) == set(study_of.values()) and all(STUDY.fullmatch(n) for n in summaries)
    assert summaries[study_of["a1"]].n_trials == 2 and summaries[study_of["b"]].n_trials == 1
    definition = summaries[study_of["b"]].user_attrs[DEFINITION_ATTR]
    assert definition["search_space"].startswith("lr=CategoricalDistribution")
    assert (definition["objective"], definition["policy"], definition["mission"], definition["pipeline"]) == (
        "mean_reward maximize", "baseline", "training_facility_1", "evaluate")
    for run in (tmp_path / "b").glob("[0-9]*"):  # each trial records its study
        assert json.loads((run / "run.json").read_text())["config"]["sweep_name"] == study_of["b"]


def test_a_named_study_refuses_a_sweep_of_another_definition_before_any_trial(cli, tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'named.db'}"
    common = ["hydra/sweeper=grid", "hydra.sweeper.params.lr=choice(0.001,0.003)", "sweep_name=shared"]
    r = cli_sweep(cli, storage, tmp_path / "first", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    r = cli_sweep(cli, storage, tmp_path / "again", *common)  # the same sweep resumes its named study
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(optuna.load_study(study_name="shared", storage=storage).trials) == 4

    r = cli_sweep(cli, storage, tmp_path / "other", *common, "evaluation.episodes=2")
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "study 'shared'" in errors[0] and errors[0].count("pipeline evaluate") == 2
    assert "settings differ in evaluation.episodes" in errors[0]
    assert not (tmp_path / "other").exists()
    assert len(optuna.load_study(study_name="shared", storage=storage).trials) == 4

    monkeypatch.chdir(tmp_path)
    cfg = api_sweep(tmp_path, storage=storage, sweep_name="shared", search_space={"learning_rate": [0.01, 0.03]})
    with pytest.raises(DAFError, match=r"^sweep shared failed before any result \(exit 2\): error: study 'shared'"):
        daf_launch_sweep(cfg, timeout_s=600)
    assert len(optuna.load_study(study_name="shared", storage=storage).trials) == 4


def test_pipeline_sweep_trials_are_the_run_the_command_line_composes(cli, tmp_path):
    r = cli("pipeline=sweep", "policy=mlp", *TINY_TRAINING, *TINY_EVAL, "sweep.episodes_per_trial=2",
            "sweep.search_space={learning_rate:[0.001,0.003]}", "sweep.strategy=grid", "sweep.num_trials=2",
            "pipeline.compare_best=false", "hydra.run.dir=run")
    assert r.returncode == 0, r.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "run" / "sweep").glob("sweep-*/*")
    assert STUDY.fullmatch(sweep_dir.parent.name) and param_columns(sweep_dir) == ["lr"]
    rows = trials(sweep_dir)
    assert len(rows) == 2 and all(t["state"] == "COMPLETE" for t in rows)
    for t in rows:
        config = json.loads((Path(t["run_dir"]) / "run.json").read_text())["config"]
        assert config["policy"]["class_path"] == "mlp" and config["pipeline"]["name"] == "train"
        assert config["training"]["total_steps"] == 1024 and config["training"]["num_envs"] == 8
        assert config["mission"]["max_steps"] == 30 and config["evaluation"]["num_envs"] == 1
        assert config["evaluation"]["episodes"] == 2  # the explicit sweep field wins over evaluation.episodes
        assert config["training"]["learning_rate"] == float(t["lr"])


def test_both_spellings_of_a_search_space_compose_to_the_same_sweep():
    from omegaconf import OmegaConf

    from daf_hydra.compose import compose_config

    for spelling in ["sweep.search_space={learning_rate:[0.001,0.003]}", "+sweep.search_space.learning_rate=[0.001,0.003]"]:
        sweep = OmegaConf.to_object(compose_config(["pipeline=sweep", "policy=mlp", spelling]).sweep)
        sweep.validate()
        assert sweep.search_space == {"learning_rate": [0.001, 0.003]} and sweep.policy_class_path == "mlp"
        assert "hydra.sweeper.params.lr=choice(0.001,0.003)" in sweep.overrides()


@pytest.mark.parametrize("space", ["{learning_rate:{low:0.0001,high:0.01}}", "{learnin_rate:[0.001,0.003]}"])
def test_pipeline_sweep_refuses_an_invalid_sweep_before_anything_runs(cli, tmp_path, space):
    r = cli("pipeline=sweep", "policy=mlp", f"sweep.search_space={space}", "sweep.strategy=grid",
            "hydra.run.dir=run")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "search_space.learn" in r.stderr
    assert not (tmp_path / "run" / "sweep").exists()


@pytest.mark.parametrize("fields, match", [
    ({"strategy": "grid", "search_space": {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}},
     "continuous range: strategy=grid"),
    ({"search_space": {"learnin_rate": [0.001]}}, "learnin_rate is not a setting"),
    ({"search_space": {"mission.max_step": [10, 20]}}, "mission.max_step is not a setting"),
    ({"search_space": {"learning_rate": {"low": 0, "high": 1, "log": True}}}, "above 0 on a log scale"),
    ({"search_space": {"learning_rate": {"low": 0.1, "high": 1, "step": 0.1}}}, "is invalid: give a list"),
    ({"search_space": {"policy.kwargs.hidden_size": [[32], [64]]}}, "Optuna's choices"),
    ({"search_space": None}, "give at least one parameter"),
    ({"max_failure_rate": 1.5}, "max_failure_rate"),
])
def test_an_invalid_sweep_definition_fails_in_validate_before_anything_runs(tmp_path, fields, match):
    cfg = DAFSweepConfig(output_root=str(tmp_path / "never"), **fields)
    with pytest.raises(DAFError, match=match) as raised:
        daf_launch_sweep(cfg)
    assert "\n" not in str(raised.value) and not (tmp_path / "never").exists()


def test_a_grid_takes_lists_and_int_ranges_of_any_setting():
    DAFSweepConfig(strategy="grid", search_space={"policy.kwargs.hidden_size": [32, 64], "ent_coef": [0.0, 0.01],
                                                  "mission.max_steps": {"low": 30, "high": 50, "int": True}}).validate()


@pytest.mark.slow
def test_the_design_documents_sweep_examples_run_as_written(tmp_path, monkeypatch):
    """Documents 000 and 004, with this project's names and a tiny budget set through the config's own fields."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.yaml").write_text(
        "name: lr sweep\npolicy_class_path: mlp\nmissions: [training_facility_1]\nepisodes_per_trial: 2\n"
        "search_space: {learning_rate: [0.001, 0.003]}\nstrategy: grid\nnum_trials: 2\ntraining_steps: 1024\n"
        "extra_overrides: ['mission.max_steps=30', 'training.num_envs=8', 'training.minibatch_size=512']\n")
    from daf_hydra import config, sweeps
    from daf_hydra.orchestrators import daf_run_sweep_pipeline

    for example in (dict(policy_class_path="lstm", missions=["training_facility_1"], episodes_per_trial=5),
                    dict(policy_class_path="mypackage.policies.CustomPolicy", missions=["training_facility_1"]),
                    dict(policy_class_path="lstm", policy_data_path="checkpoints/pretrained.pt",
                         missions=["training_facility_1"])):
        config.DAFSweepConfig(**example).validate()

    cfg = config.DAFSweepConfig.from_yaml("sweep.yaml")
    results = sweeps.daf_launch_sweep(cfg)
    best = sweeps.daf_sweep_best_config(results)
    print(f"Best hyperparameters: {best.hyperparameters}")
    assert results.status == "success", results.log_tail
    assert set(best.hyperparameters) == {"learning_rate"} and best.hyperparameters["learning_rate"] in (0.001, 0.003)

    result = daf_run_sweep_pipeline(config=cfg, compare_best=True, comparison_episodes=2)
    best = result.outputs['best_config']
    print(f"Optimal learning rate: {best.hyperparameters['learning_rate']}")
    assert result.is_success(), result.errors
    assert result.outputs["name"] == "lr sweep"
    summary = result.outputs["comparison_results"].summary_statistics
    assert {"mlp-best", "baseline", "random"} <= set(summary["policy"])
