"""A sweep whose trials are SLURM jobs on the real dev cluster, four at a time, against a server database (the
cluster's MariaDB, scripts/slurm-dev-cluster: etc/optuna.url): no trial lost, duplicated or left running."""

from __future__ import annotations

import csv
import json
import os
import uuid
from pathlib import Path

import optuna
import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def optuna_url() -> str:
    path = Path(os.environ.get("DAF_SLURM_DIR", "/var/tmp/daf-slurm")) / "etc" / "optuna.url"
    assert path.is_file(), f"{path} is missing: run scripts/slurm-dev-cluster start"
    return path.read_text().strip()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


def test_four_slurm_workers_share_a_mariadb_study_without_losing_or_repeating_a_trial(cli, tmp_path):
    storage, name = optuna_url(), f"slurm-{uuid.uuid4().hex[:8]}"
    sweep = tmp_path / "sweep"
    try:
        r = cli("-m", "pipeline=train", "policy=lstm", "training.total_steps=1024", "training.num_envs=8",
                "training.minibatch_size=512", "evaluation.episodes=1", "evaluation.num_envs=1",
                "mission.max_steps=60", "hydra/sweeper=random", "hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-2))",
                "hydra.sweeper.n_trials=8", "hydra.sweeper.n_jobs=4", f"hydra.sweeper.storage={storage}",
                f"sweep_name={name}", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1",
                "hydra.launcher.mem_gb=2", f"hydra.sweep.dir={sweep}", timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert [t.state.name for t in trials] == ["COMPLETE"] * 8  # none lost, none stuck, no extra
        assert len({t.params["lr"] for t in trials}) == 8  # none proposed twice
        with open(sweep / "trials.csv") as f:
            rows = list(csv.DictReader(f))
        dirs = [Path(row["run_dir"]) for row in rows]
        assert len(set(dirs)) == 8 and all(d.parent == sweep for d in dirs)  # one run per trial
        spans = []
        for row, run in zip(rows, dirs):
            config = json.loads((run / "run.json").read_text())["config"]
            assert config["trial"]["number"] == int(row["number"])  # each run is the trial it says
            metrics = json.loads((run / "metrics.json").read_text())
            assert metrics["status"] == "completed"
            assert float(row["mean_reward"]) == pytest.approx(metrics["mean_reward"])
            spans.append((metrics["started_at"], metrics["ended_at"]))
        assert max_overlap(spans) >= 4  # four trials ran at once, as four SLURM jobs
        assert r.stdout.count(" started") == 8 and r.stdout.count(" complete in ") == 8
    finally:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass


def test_kill_9_of_a_slurm_sweep_then_the_same_command_waits_for_its_jobs_and_finishes(tmp_path):
    """The sweeper is killed while two trials run as SLURM jobs. The jobs outlive it and tell their trials' results
    (their own heartbeats keep them alive); the same command counts them in the budget instead of running them
    again, runs the rest, and waits for them before it ends. No trial is left RUNNING and none ran twice."""
    import signal
    import subprocess
    import sys
    import time

    storage, name = optuna_url(), f"slurmkill-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "daf_hydra.run", "-m", "pipeline=train", "policy=lstm",
               "training.total_steps=4096", "training.num_envs=8", "training.minibatch_size=512",
               "evaluation.episodes=1", "evaluation.num_envs=1", "mission.max_steps=60", "hydra/sweeper=random",
               "hydra.sweeper.params.lr=tag(log, interval(1e-4, 1e-2))", "hydra.sweeper.n_trials=4",
               "hydra.sweeper.n_jobs=2", "hydra.sweeper.heartbeat_interval=2", f"hydra.sweeper.storage={storage}",
               f"sweep_name={name}", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        first = subprocess.Popen([*command, f"hydra.sweep.dir={tmp_path / 'first'}"], cwd=tmp_path, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        try:
            while time.time() < deadline:
                runs = list((tmp_path / "first").glob("[0-9]*/run.json"))  # the jobs' runs have started
                if len(runs) == 2:
                    break
                assert first.poll() is None, "the sweep ended before it could be killed"
                time.sleep(0.5)
            else:
                raise AssertionError("the first two trials never started")
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        r = subprocess.run([*command, f"hydra.sweep.dir={tmp_path / 'second'}"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # the rerun ended after the orphans' trials
        finished_in_first = [json.loads(p.read_text())["status"] for p in (tmp_path / "first").glob("[0-9]*/metrics.json")]
        assert finished_in_first == ["completed", "completed"]  # the orphaned jobs finished their own trials
        assert len(list((tmp_path / "second").glob("[0-9]*/metrics.json"))) == 2  # only the rest ran again
    finally:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
