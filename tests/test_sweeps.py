"""Optuna sweeps through the real Hydra sweeper, with a real SQLite study."""

from __future__ import annotations

import csv
import json

import optuna
import pytest
import yaml

from daf_hydra.errors import DAFError
from daf_hydra.sweeps import DAFSweepConfig, daf_launch_sweep, daf_sweep_best_config

EVAL = ["pipeline=evaluate", "evaluation.episodes=2", "evaluation.num_envs=2", "mission.max_steps=40"]


def dashboard_studies(storage: str) -> list[str]:
    """The studies optuna-dashboard lists for a storage, served on a free loopback port."""
    import socket
    import threading
    import time
    import urllib.request

    from optuna_dashboard import run_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threading.Thread(target=run_server, args=(storage,), kwargs={"host": "127.0.0.1", "port": port},
                     daemon=True).start()
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                return [s["study_name"] for s in json.load(r)["study_summaries"]]
        except OSError:
            time.sleep(0.2)
    raise AssertionError("optuna-dashboard did not answer")


def read_trials(sweep_dir):
    with open(sweep_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_a_study_persists_in_sqlite_and_resumes_without_overwriting_runs(cli, tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    common = ["-m", *EVAL, "hydra/sweeper=optuna", "hydra.sweeper.params.mission.regen_period=range(2,40)",
              f"hydra.sweeper.storage={storage}", "sweep_name=regen"]
    first, second = tmp_path / "sweeps" / "a", tmp_path / "sweeps" / "b"
    r = cli(*common, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={first}")
    assert r.returncode == 0, r.stderr
    # n_trials is the study's total: the same command again has nothing left to run
    r = cli(*common, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={tmp_path / 'sweeps' / 'again'}")
    assert r.returncode == 0, r.stderr
    assert "study holds 4 of 4 trials already" in r.stdout
    assert len(optuna.load_study(study_name="regen", storage=storage).trials) == 4
    r = cli(*common, "hydra.sweeper.n_trials=8", f"hydra.sweep.dir={second}")
    assert r.returncode == 0, r.stderr

    study = optuna.load_study(study_name="regen", storage=storage)
    assert len(study.trials) == 8 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert len(list(first.glob("[0-9]*/metrics.json"))) == 4  # the first sweep's runs are still there
    trials = read_trials(second)
    assert len(trials) == 8
    assert {t["run_dir"] for t in trials} == {str(p) for p in [*first.glob("[0-9]*"), *second.glob("[0-9]*")]}
    for t in trials:  # each trial's objective is the mean reward its run recorded
        metrics = json.loads((tmp_path / t["run_dir"] / "metrics.json").read_text())
        assert float(t["mean_reward"]) == pytest.approx(metrics["mean_reward"])
        assert str(json.loads((tmp_path / t["run_dir"] / "run.json").read_text())["config"]["mission"]["regen_period"]) == t["mission.regen_period"]

    assert "regen" in dashboard_studies(storage)  # the study opens in optuna-dashboard
    best = json.loads((second / "sweep.json").read_text())["best"][0]
    assert best["values"][0] == max(float(t["mean_reward"]) for t in trials)
    rerun = tmp_path / "rerun"
    r = cli("--config-path", str(second), "--config-name", "best_config", f"hydra.run.dir={rerun}")
    assert r.returncode == 0, r.stderr
    assert json.loads((rerun / "metrics.json").read_text())["mean_reward"] == pytest.approx(best["values"][0])
    assert "plotly" in (second / "sweep_report.html").read_text()


def test_a_failing_trial_is_recorded_as_failed_with_its_error(cli, tmp_path):
    sweep = tmp_path / "sweep"
    # random, not grid: Optuna's GridSampler raises when the grid is exhausted on a failed trial (upstream)
    r = cli("-m", "pipeline=evaluate", "mission.max_steps=40", "hydra/sweeper=random", "hydra.sweeper.n_trials=4",
            "hydra.sweeper.params.evaluation.episodes=choice(0,2)",
            "hydra.sweeper.max_failure_rate=1.0", f"hydra.sweeper.storage=sqlite:///{tmp_path / 's.db'}",
            "sweep_name=failing", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr
    trials = {t["evaluation.episodes"]: t for t in read_trials(sweep)}
    assert set(trials) == {"0", "2"}
    assert trials["0"]["state"] == "FAIL" and trials["0"]["mean_reward"] == ""
    assert "evaluation.episodes=0" in trials["0"]["error"]
    assert trials["2"]["state"] == "COMPLETE" and float(trials["2"]["mean_reward"]) > 0


def test_too_many_failures_stop_the_sweep_in_one_line_and_keep_its_records(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("-m", "pipeline=evaluate", "mission.max_steps=40", "hydra/sweeper=random", "hydra.sweeper.n_trials=4",
            "hydra.sweeper.params.evaluation.episodes=choice(0,2)", f"hydra.sweeper.storage=sqlite:///{tmp_path / 's.db'}",
            "sweep_name=stops", f"hydra.sweep.dir={sweep}")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and "max_failure_rate=0.0" in errors[0], r.stderr[-2000:]
    rows = read_trials(sweep)  # the failed trial's record is written, and no further trial started after it
    assert [row["state"] for row in rows][-1] == "FAIL" and len(rows) < 4
    assert [row["state"] for row in rows].count("FAIL") == 1 and "evaluation.episodes=0" in rows[-1]["error"]


def test_multi_objective_sweep_records_both_objectives(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("-m", *EVAL, "hydra/sweeper=random", "hydra.sweeper.params.mission.regen_period=range(2,40)",
            "hydra.sweeper.n_trials=3", "objective.metric=[mean_reward,duration_s]",
            "objective.direction=[maximize,minimize]", f"hydra.sweeper.storage=sqlite:///{tmp_path / 'm.db'}",
            "sweep_name=multi", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr
    trials = read_trials(sweep)
    assert len(trials) == 3 and all(t["mean_reward"] and t["duration_s"] for t in trials)
    assert json.loads((sweep / "sweep.json").read_text())["directions"] == ["maximize", "minimize"]


def test_sweep_config_api_validates_and_maps_to_the_cli(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"policy_class_path": "lstm", "missions": ["training_facility_1"],
                                    "search_space": {"learning_rate": [0.0001, 0.001]}, "strategy": "grid"}))
    cfg = DAFSweepConfig.from_yaml(path)
    overrides = cfg.overrides()
    assert "hydra/sweeper=grid" in overrides and "policy=lstm" in overrides
    assert "hydra.sweeper.params.lr=choice(0.0001,0.001)" in overrides
    for bad, match in [({"strategy": "annealing"}, "strategy"), ({"num_trials": 0}, "num_trials"),
                       ({"search_space": {"lr": "fast"}}, "search_space.lr"), ({"nope": 1}, "unknown")]:
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(DAFError, match=match):
            DAFSweepConfig.from_yaml(path)


def test_launch_sweep_api_runs_the_same_multirun_and_returns_the_best(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = DAFSweepConfig(
        policy_class_path="baseline", pipeline="evaluate", missions=["training_facility_1"], episodes_per_trial=2,
        num_trials=3, search_space={"mission.regen_period": {"low": 2, "high": 30, "int": True}}, strategy="random",
        sweep_name="api", output_root=str(tmp_path / "sweeps"),
        extra_overrides=["mission.max_steps=40", "evaluation.num_envs=2"],
    )
    results = daf_launch_sweep(cfg, timeout_s=600)
    assert results.status == "success", results.log_tail
    assert len(results.trials) == 3
    best = daf_sweep_best_config(results)
    assert set(best.hyperparameters) == {"mission.regen_period"}
    assert best.value == max(float(t["mean_reward"]) for t in results.trials)
    assert (tmp_path / "multirun" / "sweeps" / "optuna.db").is_file()  # the default storage, in the outputs tree


def test_a_trial_over_several_seeds_is_judged_on_their_mean(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("-m", *EVAL, "seeds=[0,1,2]", "hydra/sweeper=random", "hydra.sweeper.params.mission.regen_period=range(2,40)",
            "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage=sqlite:///{tmp_path / 'seeds.db'}",
            "sweep_name=seeds", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr
    for trial in read_trials(sweep):
        trial_dir = tmp_path / trial["run_dir"]
        per_seed = [json.loads((trial_dir / f"seed_{s}" / "metrics.json").read_text())["mean_reward"] for s in (0, 1, 2)]
        assert [json.loads((trial_dir / f"seed_{s}" / "run.json").read_text())["seed"] for s in (0, 1, 2)] == [0, 1, 2]
        assert float(trial["mean_reward"]) == pytest.approx(sum(per_seed) / 3)
