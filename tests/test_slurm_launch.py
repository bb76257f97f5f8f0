"""Multiruns and sweeps on the real single-node SLURM cluster (scripts/slurm-dev-cluster), through submitit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from conftest import ROOT, read_json

pytestmark = pytest.mark.slurm
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
         "hydra.launcher.timeout_min=10"]
FAST = ["pipeline=evaluate", "mission.max_steps=40", "evaluation.episodes=2", "evaluation.num_envs=2"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    r = subprocess.run([str(ROOT / "scripts" / "slurm-dev-cluster"), "start"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_multirun_lands_one_run_per_slurm_job_and_is_aggregated(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("-m", *SLURM, *FAST, "policy=random,baseline", "mission=training_facility_1,assembler_2",
            f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr
    runs = [read_json(p.parent / "run.json") for p in sweep.glob("*/metrics.json")]
    assert len(runs) == 4
    assert all(run["slurm_job_id"] for run in runs)  # each ran inside its own SLURM job
    assert len({run["slurm_job_id"] for run in runs}) == 4
    assert (sweep / "aggregate" / "report.html").is_file()


def test_an_optuna_sweep_runs_its_trials_as_slurm_jobs(cli, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    r = cli("-m", *SLURM, *FAST, "hydra/sweeper=random", "hydra.sweeper.params.mission.regen_period=range(2,40)",
            "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", f"hydra.sweeper.storage={storage}",
            "sweep_name=on_slurm", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name="on_slurm", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4


def test_a_failing_job_is_recorded_with_its_error_and_the_others_land(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("-m", *SLURM, "pipeline=evaluate", "mission.max_steps=40", "evaluation.episodes=0,2",
            f"hydra.sweep.dir={sweep}")
    assert r.returncode != 0
    assert "evaluation.episodes=0" in r.stderr  # the job's own error, carried back from the SLURM job
    assert read_json(sweep / "0" / "metrics.json")["status"] == "failed"
    assert read_json(sweep / "1" / "metrics.json")["status"] == "completed"


def test_a_cancelled_job_is_reported_as_cancelled_within_bounded_time(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "daf_hydra.run", "-m", *SLURM, "pipeline=evaluate", "mission=colony_24",
           "evaluation.episodes=2000,2", "mission.max_steps=600", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job_id = None
    try:
        run_json = sweep / "0" / "run.json"
        deadline = time.time() + 120
        while not run_json.is_file() and time.time() < deadline:
            time.sleep(0.5)
        assert run_json.is_file(), "the long job never started"
        job_id = read_json(run_json)["slurm_job_id"]
        subprocess.run(["scancel", job_id], check=True)
        cancelled_at = time.time()
        _, stderr = proc.communicate(timeout=180)
        assert time.time() - cancelled_at < 90
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        if job_id:  # never leave this test's jobs holding the cluster's two cores
            subprocess.run(["scancel", job_id.split("_")[0]])
    assert proc.returncode != 0
    metrics = read_json(sweep / "0" / "metrics.json")
    assert metrics["status"] == "failed" and "CANCELLED" in metrics["error"], metrics
    assert read_json(sweep / "1" / "metrics.json")["status"] == "completed"
