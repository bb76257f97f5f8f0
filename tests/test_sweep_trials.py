"""Sweeps past Hydra's Optuna sweeper, for real: pruning on validations during training, a kill -9 of the sweeper
then the same command (the budget finished, no zombie, no replayed proposals, the dead trial retried with its
parameters), through the real CLI with real PuffeRL trainings and SQLite studies."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

TINY_TRAINING = ["pipeline=train", "policy=lstm", "training.num_envs=8", "training.minibatch_size=512",
                 "evaluation.episodes=1", "evaluation.num_envs=1", "training.validation_episodes=1"]


def trials_csv(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_clearly_bad_trial_is_pruned_and_good_ones_complete(cli, tmp_path):
    """The objective is mean_steps (maximize): a trial whose missions end after 15 steps is clearly worse, at
    its first validation, than those ending after 120. The study's first trials are enqueued so the order is
    known: three good ones (the median pruner's startup), the bad one, a good one."""
    storage = f"sqlite:///{tmp_path / 'prune.db'}"
    study = optuna.create_study(study_name="prune", storage=storage, direction="maximize")
    for steps in (120, 120, 120, 15, 120):
        study.enqueue_trial({"mission.max_steps": steps})
    sweep = tmp_path / "sweep"
    r = cli("-m", *TINY_TRAINING, "training.total_steps=1024", "training.validate_every=512", "hydra/sweeper=random",
            "hydra.sweeper.params.mission.max_steps=choice(15,120)", "hydra.sweeper.n_trials=5",
            "hydra.sweeper.pruner=median", f"hydra.sweeper.storage={storage}", "sweep_name=prune",
            "objective.metric=mean_steps", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-3000:]
    states = [t.state.name for t in optuna.load_study(study_name="prune", storage=storage).trials]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert "trial 3 pruned at validation 1" in r.stdout

    rows = {int(t["number"]): t for t in trials_csv(sweep)}
    pruned = Path(rows[3]["run_dir"])
    metrics = json.loads((pruned / "metrics.json").read_text())
    assert metrics["status"] == "pruned" and "mean_reward" not in metrics  # never a made-up score
    assert "median pruner at validation 1" in metrics["error"]
    validations = [json.loads(line) for line in (pruned / "validation.jsonl").read_text().splitlines()]
    assert [v["validation"] for v in validations] == [1] and validations[0]["value"] == 15
    good = Path(rows[4]["run_dir"])
    done = json.loads((good / "metrics.json").read_text())
    assert done["status"] == "completed" and done["best_validation"]["value"] == 120
    assert done["best_checkpoint"] == done["best_validation"]["checkpoint"]
    assert len((good / "validation.jsonl").read_text().splitlines()) == 2  # every 512 steps, of 1024
    assert "PRUNED" in (sweep / "sweep_report.html").read_text()


def test_an_unknown_pruner_or_one_on_evaluate_trials_is_one_line_before_any_trial(cli, tmp_path):
    r = cli("-m", "pipeline=evaluate", "hydra/sweeper=random", "hydra.sweeper.params.lr=choice(0.001,0.003)",
            "hydra.sweeper.pruner=sometimes")
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "pruner='sometimes'" in lines[0] and "hyperband" in lines[0]
    r = cli("-m", "pipeline=evaluate", "hydra/sweeper=random", "hydra.sweeper.params.lr=choice(0.001,0.003)",
            "hydra.sweeper.pruner=median")
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "needs pipeline=train" in lines[0]
    assert not list(tmp_path.rglob("metrics.json"))


@pytest.mark.slow
def test_kill_9_of_a_sweep_then_the_same_command_finishes_its_budget(tmp_path):
    """The sweeper (and its in-process trial) is killed while trial 1 trains. The same command then: waits for
    the dead trial's heartbeat to go stale, fails it and runs it again with its parameters, then the rest of the
    study's 3 trials; no trial stays RUNNING, and the new proposals are not the first run's replayed."""
    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    command = [sys.executable, "-m", "daf_hydra.run", "-m", *TINY_TRAINING, "training.total_steps=8192",
               "hydra/sweeper=random", "hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-2))",
               "hydra.sweeper.n_trials=3", "hydra.sweeper.heartbeat_interval=1", f"hydra.sweeper.storage={storage}",
               "sweep_name=killed"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([*command, f"hydra.sweep.dir={tmp_path / 'first'}"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            try:
                states = [t.state.name for t in optuna.load_study(study_name="killed", storage=storage).trials]
            except KeyError:  # the study is not created yet
                states = []
            if states == ["COMPLETE", "RUNNING"]:
                break
            assert first.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
        else:
            raise AssertionError("trial 1 never started")
        time.sleep(1.0)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = optuna.load_study(study_name="killed", storage=storage).trials
    assert [t.state.name for t in before] == ["COMPLETE", "RUNNING"]  # Hydra's sweeper would leave it so

    r = subprocess.run([*command, f"hydra.sweep.dir={tmp_path / 'second'}"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    after = optuna.load_study(study_name="killed", storage=storage).trials
    assert not [t for t in after if t.state.name in ("RUNNING", "WAITING")]
    assert [t.state.name for t in after if t.state.name == "FAIL"] == ["FAIL"] and after[1].state.name == "FAIL"
    assert len(after) == 4 and sum(t.state.name == "COMPLETE" for t in after) == 3  # the study's budget of 3
    retries = [t for t in after if t.system_attrs.get("failed_trial") == 1]
    assert len(retries) == 1 and retries[0].params == before[1].params  # the dead trial, run again
    proposed = [t.params["lr"] for t in after if t not in retries]
    assert len(set(proposed)) == len(proposed)  # the restarted sampler proposed something new
    assert "retry of trial 1" in r.stdout and "[3/3]" in r.stdout
    rows = trials_csv(tmp_path / "second")
    assert sorted(row["state"] for row in rows) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    assert all(Path(row["run_dir"]).is_dir() for row in rows if row["state"] == "COMPLETE")


@pytest.mark.slow
def test_with_two_local_workers_a_new_trial_starts_as_soon_as_one_ends(cli, tmp_path):
    """Asynchronous trials with hydra/launcher=local (two processes): trial 0 is long, trials 1 and 2 short
    (enqueued in that order); trial 2 starts when trial 1 ends, while trial 0 still runs (Hydra's sweeper would
    have waited for trial 0, the slower of its batch)."""
    storage = f"sqlite:///{tmp_path / 'async.db'}"
    study = optuna.create_study(study_name="async", storage=storage, direction="maximize")
    for episodes in (60, 1, 1):
        study.enqueue_trial({"evaluation.episodes": episodes})
    r = cli("-m", "pipeline=evaluate", "policy=baseline", "evaluation.num_envs=4", "hydra/sweeper=random",
            "hydra.sweeper.params.evaluation.episodes=choice(1,60)", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2",
            "hydra/launcher=local", f"hydra.sweeper.storage={storage}", "sweep_name=async",
            f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 0, r.stderr[-3000:]
    trials = optuna.load_study(study_name="async", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3, r.stdout[-3000:] + r.stderr[-2000:]
    assert trials[2].datetime_start < trials[0].datetime_complete  # no batch barrier
    assert trials[2].datetime_start >= trials[1].datetime_complete  # two at a time
