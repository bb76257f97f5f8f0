"""Multiruns and sweeps on the real single-node SLURM cluster (scripts/slurm-dev-cluster), through submitit: jobs
land and show their progress; a job that can never start here, or a request sbatch refuses, fails in one line."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

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
    # progress: every job by id and by what sets it apart, its state as it changes, and how it ended
    for path in sweep.glob("*/run.json"):
        job_id, num = read_json(path)["slurm_job_id"], path.parent.name
        assert re.search(rf"^\[slurm\] job {job_id} #{num} policy=\w+ mission=\w+: (PENDING|RUNNING)", r.stdout,
                         re.M), r.stdout
        assert re.search(rf"^\[slurm\] job {job_id} #{num} .*: COMPLETED$", r.stdout, re.M), r.stdout


def test_a_job_asking_more_nodes_than_the_cluster_has_fails_in_one_line_within_a_minute(cli, tmp_path):
    sweep = tmp_path / "sweep"
    began = time.monotonic()
    r = cli("-m", *SLURM, *FAST, "policy=random,baseline", "training.distributed.nodes=2", f"hydra.sweep.dir={sweep}")
    assert time.monotonic() - began < 60
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    for job in (0, 1):  # both jobs of the batch ask 2 nodes of the 1-node partition
        line = re.search(rf"^error: #{job} policy=\w+: job (\d+_{job}) asks 2 nodes; partition debug allows 1 "
                         r"\(Partition(NodeLimit|Config)\): cancelled$", r.stderr, re.M)
        assert line, r.stderr
        assert f"[slurm] job {line.group(1)} #{job} policy=" in r.stdout
        metrics = read_json(sweep / str(job) / "metrics.json")
        assert metrics["status"] == "failed" and "asks 2 nodes; partition debug allows 1" in metrics["error"]
    queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    assert line.group(1).split("_")[0] not in queued  # cancelled, not left pending


def test_a_gpu_request_the_cluster_cannot_meet_is_one_line_and_recorded_failed(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("-m", *SLURM, *FAST, "policy=random,baseline", "hydra.launcher.gpus_per_node=1", f"hydra.sweep.dir={sweep}")
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr  # once for the whole batch
    assert "gpus_per_node=1" in errors[0] and "Invalid generic resource (gres) specification" in errors[0]
    assert "this cluster's nodes have no gres" in errors[0]
    assert "Traceback" not in r.stderr and "sbatch: error" not in r.stderr
    for job in (0, 1):
        metrics = read_json(sweep / str(job) / "metrics.json")
        assert metrics["status"] == "failed" and "Invalid generic resource" in metrics["error"]


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
