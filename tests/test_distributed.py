"""Distributed training (daf_hydra.distributed_training): 2 ranks on gloo, as local processes and as one SLURM job
of 2 tasks on the real single-node cluster (scripts/slurm-dev-cluster). The nccl (GPU) branch cannot run on these
CPU-only machines and is not tested here.

What every run must show: both ranks end with identical weights (and the checkpoint holds them), and the ranks'
steps add up to the recorded (and printed) total. A SLURM job that can never start (2 machines on the one-node
cluster) fails in one line within a minute."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, read_json

# 4 agents x 4 envs x bptt 16 = 256 agent steps per update: 16 updates per rank
SMALL_BATCH = ["training.num_envs=4", "training.minibatch_size=256"]
TINY = ["pipeline=train", "policy=lstm", "training.total_steps=4096", *SMALL_BATCH, "evaluation.episodes=2",
        "mission.max_steps=100"]
STEPS = 4096
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
         "hydra.launcher.timeout_min=10"]
SLURM_PARAMETERS = dict(partition="debug", cpus_per_task=1, mem_gb=1, timeout_min=10)


@pytest.fixture(scope="module")
def cluster():
    r = subprocess.run([str(ROOT / "scripts" / "slurm-dev-cluster"), "start"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def slurm_jobs():
    """Job ids a test started; any still queued or running at the end is cancelled."""
    ids: list[str] = []
    yield ids
    queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split()
    for job_id in ids:
        if job_id in queued:
            subprocess.run(["scancel", job_id], check=True)


def assert_one_training_over_two_ranks(run_dir: Path) -> dict:
    """metrics.json of a completed 2-rank run: identical weights everywhere, steps adding up. Returns `training`."""
    import torch

    from daf_hydra.training import weights_digest

    metrics = read_json(run_dir / "metrics.json")
    assert metrics["status"] == "completed", metrics.get("error")
    t = metrics["training"]
    assert t["world_size"] == 2 and t["backend"] == "gloo"
    assert [r["rank"] for r in t["ranks"]] == [0, 1]
    assert len({r["pid"] for r in t["ranks"]}) == 2
    assert [r["agent_steps"] for r in t["ranks"]] == [STEPS, STEPS]
    assert t["agent_steps"] == 2 * STEPS  # the training's size: summed over ranks
    assert t["sps"] > max(r["sps"] for r in t["ranks"])
    weights = torch.load(Path(metrics["final_checkpoint"]) / "weights.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in weights)  # saved from the network, not the DDP wrapper
    assert {r["weights_digest"] for r in t["ranks"]} == {weights_digest(weights)}
    assert sorted(p.name for p in (run_dir / ".distributed").glob("rank_*.json")) == ["rank_0.json", "rank_1.json"]
    return t


@pytest.mark.slow
def test_two_local_processes_train_one_policy(cli, tmp_path):
    run_dir = tmp_path / "run"
    r = cli(*TINY, "training.distributed.tasks_per_node=2", f"hydra.run.dir={run_dir}")
    assert r.returncode == 0, r.stderr
    t = assert_one_training_over_two_ranks(run_dir)
    assert f"trained {2 * STEPS:,} agent steps" in r.stdout  # both ranks' steps, not rank 0's
    assert len({r["host"] for r in t["ranks"]}) == 1
    curve = (run_dir / "curve.jsonl").read_text().splitlines()
    assert len(curve) == STEPS // 256  # rank 0 alone records


def test_configs_that_cannot_run_fail_before_any_work(cli):
    r = cli(*TINY, "training.distributed.nodes=2")
    assert r.returncode == 2 and "needs a SLURM job of 2 nodes" in r.stderr
    r = cli(*TINY, *SLURM, "training.distributed.tasks_per_node=2")  # a launcher without -m
    assert r.returncode == 2 and "add -m" in r.stderr
    r = cli(*TINY, "training.distributed.backend=mpi")
    assert r.returncode == 2 and "training.distributed.backend='mpi' is invalid" in r.stderr


@pytest.mark.slow
@pytest.mark.slurm
def test_one_slurm_job_of_two_tasks_trains_one_policy(cli, tmp_path, cluster, slurm_jobs):
    sweep = tmp_path / "sweep"
    proc = cli("-m", *TINY, *SLURM, "training.distributed.tasks_per_node=2", f"hydra.sweep.dir={sweep}",
               timeout=300)
    slurm_jobs += [p.name for p in (sweep / ".submitit").iterdir() if p.is_dir()]
    assert proc.returncode == 0, proc.stderr
    assert len(slurm_jobs) == 1
    t = assert_one_training_over_two_ranks(sweep / "0")
    assert read_json(sweep / "0" / "run.json")["slurm_job_id"] == slurm_jobs[0]
    assert f"[slurm] job {slurm_jobs[0]} #0: RUNNING" in proc.stdout  # the launcher's progress lines
    assert f"[slurm] job {slurm_jobs[0]} #0: COMPLETED" in proc.stdout
    job = sweep / ".submitit" / slurm_jobs[0]
    assert f"trained {2 * STEPS:,} agent steps" in (job / f"{slurm_jobs[0]}_0_log.out").read_text()
    assert {f"{slurm_jobs[0]}_{task}_result.pkl" for task in (0, 1)} <= {p.name for p in job.iterdir()}
    # rank 1 wrote none of Hydra's files: it logged to its own task output, not to the run's run.log
    assert "rank 1 of 2: training along rank 0" in (job / f"{slurm_jobs[0]}_1_log.out").read_text()
    assert "rank 1 of 2" not in (sweep / "0" / "run.log").read_text()
    assert (sweep / "0" / ".hydra" / "overrides.yaml").is_file()


@pytest.mark.slow
@pytest.mark.slurm
def test_the_api_runs_a_slurm_job_reports_status_progress_and_memory(tmp_path, cluster, slurm_jobs, capsys):
    from daf_hydra.distributed_training import daf_launch_distributed_training

    job = daf_launch_distributed_training(
        policy_class_path="lstm", mission_name="training_facility_1", num_machines=1, tasks_per_machine=2,
        steps_per_machine=2 * STEPS, output_dir=tmp_path / "run", eval_episodes=2,
        overrides=[*SMALL_BATCH, "mission.max_steps=100"], **SLURM_PARAMETERS)
    slurm_jobs.append(job.job_id)
    assert job.status() in ("PENDING", "RUNNING")  # documented states only, from the first moment
    readings = _memory_readings(job)
    assert set(readings) == {0, 1} and all(0.05 < gb < 8 for gb in readings.values())
    checkpoint = job.wait_for_completion(timeout_s=240)
    assert checkpoint == Path(read_json(tmp_path / "run" / "metrics.json")["final_checkpoint"])
    assert_one_training_over_two_ranks(tmp_path / "run")
    assert job.status() == "COMPLETED"
    out = capsys.readouterr().out
    assert f"distributed training: SLURM job {job.job_id} of 2 ranks" in out
    assert re.search(rf"distributed training {job.job_id}: RUNNING, \d+:\d\d; 2/2 ranks up", out), out
    assert f"distributed training {job.job_id}: COMPLETED" in out
    assert f"update 16, {2 * STEPS:,} agent steps over 2 ranks" in out


@pytest.mark.slurm
def test_the_api_fails_fast_when_the_cluster_has_too_few_machines(tmp_path, cluster, slurm_jobs, capsys):
    from daf_hydra.distributed_training import STATES, daf_launch_distributed_training
    from daf_hydra.errors import DAFError

    began = time.monotonic()
    job = daf_launch_distributed_training(policy_class_path="lstm", num_machines=2, steps_per_machine=STEPS,
                                          output_dir=tmp_path / "run", **SLURM_PARAMETERS)
    slurm_jobs.append(job.job_id)
    assert job.status() in STATES
    with pytest.raises(DAFError, match=rf"job {job.job_id} asks 2 nodes; partition debug allows 1 "
                                       r"\(Partition(NodeLimit|Config)\): cancelled") as err:
        job.wait_for_completion(timeout_s=120)
    assert time.monotonic() - began < 60
    assert "\n" not in str(err.value)
    assert job.status() == "FAILED" and job.done()
    assert job.job_id not in subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    metrics = read_json(tmp_path / "run" / "metrics.json")
    assert metrics["status"] == "failed" and "asks 2 nodes" in metrics["error"]
    assert "asks 2 nodes" in capsys.readouterr().err


@pytest.mark.slurm
def test_the_api_refuses_a_gpu_request_the_cluster_cannot_meet_in_one_line(tmp_path, cluster):
    from daf_hydra.distributed_training import daf_launch_distributed_training
    from daf_hydra.errors import DAFError

    with pytest.raises(DAFError, match=r"sbatch refused .*gpus_per_node=1.*: Invalid generic resource \(gres\) "
                                       r"specification; this cluster's nodes have no gres") as err:
        daf_launch_distributed_training(policy_class_path="lstm", steps_per_machine=STEPS, output_dir=tmp_path / "run",
                                        slurm_parameters={"gpus_per_node": 1}, **SLURM_PARAMETERS)
    assert "\n" not in str(err.value)
    assert read_json(tmp_path / "run" / "metrics.json")["status"] == "failed"


@pytest.mark.slow
@pytest.mark.slurm
def test_a_cancelled_slurm_job_ends_and_says_so(tmp_path, cluster, slurm_jobs):
    from daf_hydra.distributed_training import daf_launch_distributed_training
    from daf_hydra.errors import DAFError

    job = daf_launch_distributed_training(
        policy_class_path="lstm", num_machines=1, tasks_per_machine=2, steps_per_machine=10_000_000,
        output_dir=tmp_path / "run", overrides=SMALL_BATCH, **SLURM_PARAMETERS)
    slurm_jobs.append(job.job_id)
    _memory_readings(job)  # both ranks are up
    job.cancel()
    with pytest.raises(DAFError, match="CANCELLED"):
        job.wait_for_completion(timeout_s=120)
    assert job.status() == "CANCELLED"
    assert job.job_id not in subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout
    metrics = read_json(tmp_path / "run" / "metrics.json")
    assert metrics["status"] == "failed" and "CANCELLED" in metrics["error"]


@pytest.mark.slow
def test_monitor_memory_cancels_a_local_run_over_its_threshold(tmp_path):
    from daf_hydra.distributed_training import daf_launch_distributed_training
    from daf_hydra.errors import DAFError

    job = daf_launch_distributed_training(
        policy_class_path="lstm", num_machines=1, tasks_per_machine=2, steps_per_machine=10_000_000,
        backend="local", output_dir=tmp_path / "run", overrides=SMALL_BATCH)
    try:
        assert job.status() == "RUNNING"
        _memory_readings(job)
        with pytest.warns(ResourceWarning, match="over 0.001 GB"):
            readings = job.monitor_memory(threshold_gb=0.001, cancel=True)
        assert set(readings) == {0, 1}
        assert job.status() == "CANCELLED"
        with pytest.raises(DAFError, match="cancelled"):
            job.wait_for_completion(timeout_s=30)
        assert read_json(tmp_path / "run" / "metrics.json")["status"] == "failed"
    finally:
        if not job.done():
            job.cancel()


def _memory_readings(job, timeout_s: float = 120) -> dict[int, float]:
    """monitor_memory once both ranks have reported (it reads what they write every few seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readings = job.monitor_memory(threshold_gb=64)
        if len(readings) == 2:
            return readings
        assert not job.done(), f"the job ended before both ranks reported: {job.status()}"
        time.sleep(0.5)
    raise AssertionError(f"the ranks never reported their memory (job {job.job_id}: {job.status()})")
