"""Faults, for real, through the CLI (issue 14 item 2): kill -9 of a benchmark during its training and during its
evaluation, kill -9 of a training, scancel of one job of a SLURM multirun, an output directory that cannot be
written. After each, the same command finishes the work without duplicating a record (docs/records.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT, read_json, run_cli
from daf_hydra.records import read_jsonl

pytestmark = pytest.mark.slow

# 8 environments x 4 agents x bptt 16 = 512 agent steps per update; a checkpoint after every update
TRAIN = ["training.num_envs=8", "training.minibatch_size=512", "training.checkpoint_interval=1",
         "training.update_epochs=1", "evaluation.episodes=2"]
UPDATE = 8 * 4 * 16
BENCH = ["pipeline=benchmark", "benchmark.policies=[mlp]", "benchmark.missions=[training_facility_1]",
         "benchmark.compare_with_baselines=false", "benchmark.create_deployment_package=false",
         f"benchmark.training_steps={60 * UPDATE}", "benchmark.episodes_per_mission=40", "mission.max_steps=40",
         "evaluation.num_envs=1", *TRAIN]


def lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def by_seed(path: Path) -> dict[int, dict]:
    """The episodes of a run by seed, without their wall time; every seed recorded exactly once."""
    records = [json.loads(line) for line in lines(path)]
    seeds = [r["seed"] for r in records]
    assert len(seeds) == len(set(seeds)), f"duplicate seeds in {path}: {sorted(seeds)}"
    return {r["seed"]: {k: v for k, v in r.items() if k != "wall_time_s"} for r in records}


def kill_when(args: list[str], cwd: Path, ready: Callable[[], bool], timeout: float = 300) -> None:
    """Start the CLI, wait until `ready()` (a file that shows progress), then kill -9 its whole process group."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "daf_hydra.run", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    end = time.time() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"it ended before it was killed: {proc.stderr.read()[-3000:]}"
            assert time.time() < end, "timed out waiting for progress"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)


def members(bench: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((bench / "evaluation" / "members").iterdir()) if p.is_dir()}


def train_dir(bench: Path) -> Path:
    (only,) = [p for p in (bench / "train").iterdir() if p.is_dir()]
    return only


def checkpoints(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in (run_dir / "checkpoints").glob("update_*"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted benchmark."""
    cwd = tmp_path_factory.mktemp("reference")
    out = cwd / "bench"
    r = run_cli(*BENCH, f"hydra.run.dir={out}", cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def assert_no_duplicates(bench: Path) -> None:
    for name, member in members(bench).items():
        assert len(by_seed(member / "episodes.jsonl")) == len(lines(member / "episodes.jsonl")), name
    updates = [r["update"] for r in read_jsonl(train_dir(bench) / "curve.jsonl")]
    assert updates == list(range(1, 61))


def test_a_benchmark_killed_during_its_evaluation_completes_with_an_uninterrupted_ones_records(tmp_path, reference):
    bench = tmp_path / "bench"
    args = [*BENCH, f"hydra.run.dir={bench}"]

    def evaluating() -> bool:
        found = list((bench / "evaluation" / "members").glob("*/episodes.jsonl"))
        return bool(found) and len(lines(found[0])) >= 2

    kill_when(args, tmp_path, evaluating)
    (member,) = members(bench).values()
    assert not (member / "metrics.json").exists(), "the evaluation finished before the kill: make it longer"
    assert 2 <= len(lines(member / "episodes.jsonl")) < 40
    trained = (train_dir(bench) / "metrics.json").read_bytes()
    r = run_cli(*args, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "training: completed in an earlier run" in r.stdout and "playing the" in r.stdout
    assert (train_dir(bench) / "metrics.json").read_bytes() == trained  # the training was not run again
    assert read_json(bench / "pipeline.json")["status"] == "success"
    assert_no_duplicates(bench)
    assert list(members(bench)) == list(members(reference))
    for name, path in members(bench).items():  # seed by seed, the records of an uninterrupted benchmark
        assert by_seed(path / "episodes.jsonl") == by_seed(members(reference)[name] / "episodes.jsonl")
        metrics, expected = read_json(path / "metrics.json"), read_json(members(reference)[name] / "metrics.json")
        assert metrics["status"] == "completed" and metrics["mean_reward"] == expected["mean_reward"]
    assert read_json(bench / "pipeline.json")["outputs"]["evaluation"] == \
        read_json(reference / "pipeline.json")["outputs"]["evaluation"]


def test_a_benchmark_killed_during_its_training_resumes_it_from_the_last_checkpoint(tmp_path, reference):
    """The training goes on from its last checkpoint (training.resume semantics) instead of starting over. A
    resumed training meets other maps after the checkpoint than an uninterrupted one (its environments are seeded
    from the update they start at), so its weights, and the evaluation of them, differ from the uninterrupted
    benchmark's: what holds is that it completes, trains exactly the step budget with every update recorded
    once, and plays every evaluation seed once, the same seeds as the uninterrupted benchmark."""
    bench = tmp_path / "bench"
    args = [*BENCH, f"hydra.run.dir={bench}"]

    def training() -> bool:
        return (bench / "train").is_dir() and any((bench / "train").glob("*/checkpoints/update_000003/weights.pt"))

    kill_when(args, tmp_path, training)
    run = train_dir(bench)
    assert not (run / "metrics.json").exists(), "the training finished before the kill: make it longer"
    last = checkpoints(run)[-1]
    assert 3 <= last < 60
    r = run_cli(*args, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from its last checkpoint" in r.stdout
    assert train_dir(bench) == run
    m = read_json(run / "metrics.json")
    assert m["status"] == "completed"
    assert m["training"]["agent_steps"] == 60 * UPDATE and m["training"]["updates"] == 60
    resumed_from = Path(m["training"]["resumed_from"])
    assert resumed_from.parent == run / "checkpoints" and int(resumed_from.name.split("_")[1]) >= last - 1
    assert read_json(run / "run.json")["resumed"] == 1
    assert read_json(bench / "pipeline.json")["status"] == "success"
    assert_no_duplicates(bench)
    for name, path in members(bench).items():
        assert sorted(by_seed(path / "episodes.jsonl")) == sorted(by_seed(members(reference)[name] / "episodes.jsonl"))
        assert read_json(path / "metrics.json")["status"] == "completed"


def test_a_training_killed_then_resumed_by_the_same_command_completes_with_each_update_once(tmp_path):
    """tests/test_training.py resumes a killed training to a larger step budget; here the very same command plus
    training.resume=true, killed with a checkpoint after every update (so a torn curve line and a checkpoint
    being written can both be met), completes with each update recorded once and the episodes of one
    evaluation."""
    out = tmp_path / "run"
    args = ["pipeline=train", "policy=mlp", "mission.max_steps=40", *TRAIN, f"training.total_steps={80 * UPDATE}",
            f"hydra.run.dir={out}"]
    kill_when(args, tmp_path, lambda: len(lines(out / "curve.jsonl")) >= 5)
    assert not (out / "metrics.json").exists(), "the training finished before the kill: make it longer"
    r = run_cli(*args, "training.resume=true", cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_json(out / "metrics.json")
    assert m["status"] == "completed" and m["training"]["resumed_from"] is not None
    assert m["training"]["agent_steps"] == 80 * UPDATE
    assert [r["update"] for r in read_jsonl(out / "curve.jsonl")] == list(range(1, 81))
    assert sorted(by_seed(out / "episodes.jsonl")) == [0, 1]


def test_a_compare_killed_during_its_second_member_completes_with_an_uninterrupted_ones_records(cli, tmp_path):
    compare = ["pipeline=compare", "compare.policies=[baseline,random]", "mission.max_steps=150",
               "compare.episodes_per_mission=30", "evaluation.num_envs=1", "statistics.bootstrap_reps=200",
               "statistics.profile_bootstrap_reps=100"]
    out = tmp_path / "killed"
    second = out / "members" / "p1-random__training_facility_1" / "episodes.jsonl"
    kill_when([*compare, f"hydra.run.dir={out}"], tmp_path, lambda: len(lines(second)) >= 2)
    assert not (out / "metrics.json").exists() and 2 <= len(lines(second)) < 30
    first = (out / "members" / "p0-baseline__training_facility_1")
    finished = (first / "episodes.jsonl").read_bytes()
    r = cli(*compare, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "completed earlier" in r.stdout and "episodes of random" in r.stdout  # the first member kept
    assert (first / "episodes.jsonl").read_bytes() == finished
    reference = tmp_path / "reference"
    assert cli(*compare, f"hydra.run.dir={reference}").returncode == 0
    for member in ("p0-baseline__training_facility_1", "p1-random__training_facility_1"):
        assert by_seed(out / "members" / member / "episodes.jsonl") == \
            by_seed(reference / "members" / member / "episodes.jsonl")
    metrics, expected = read_json(out / "metrics.json"), read_json(reference / "metrics.json")
    assert metrics["complete"] is True and (metrics["iqm"], metrics["objective"]) == (expected["iqm"],
                                                                                      expected["objective"])


SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
         "hydra.launcher.timeout_min=10"]
RECORDS = ("run.json", "episodes.jsonl", "metrics.json")


def job_process(job_id: str) -> int:
    """The pid of the process running SLURM job `job_id` (`<array job>_<task>`) on this, the only, node: the
    submitit worker whose environment names that job."""
    array_job, task = job_id.split("_")
    wanted = {f"SLURM_ARRAY_JOB_ID={array_job}".encode(), f"SLURM_ARRAY_TASK_ID={task}".encode()}
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = set((proc / "environ").read_bytes().split(b"\0"))
        except (OSError, ValueError):
            continue
        if b"submitit.core._submit" in argv and wanted <= environ:
            return int(proc.name)
    raise AssertionError(f"no process of SLURM job {job_id} runs")


@pytest.mark.slurm
@pytest.mark.parametrize("how, state", [("scancel", "CANCELLED"), ("kill-9", "FAILED")])
def test_a_slurm_job_cancelled_or_killed_is_failed_then_run_again_by_the_same_command(tmp_path, how, state):
    """`scancel` of the running job, or kill -9 of its process on the node (what the out-of-memory killer does;
    `scancel --signal=KILL` is a cancel to SLURM). A node going down (scontrol update State=DOWN) is not
    simulated: on the one-node dev cluster it would fail every other SLURM test running at the same time."""
    r = subprocess.run([str(ROOT / "scripts" / "slurm-dev-cluster"), "start"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sweep = tmp_path / "sweep"
    args = ["-m", *SLURM, "pipeline=evaluate", "policy=random", "mission=training_facility_1", "mission.max_steps=400",
            "evaluation.episodes=200", "evaluation.num_envs=1", "seed=0,1,2", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "daf_hydra.run", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    job_id = None
    try:
        episodes = sweep / "0" / "episodes.jsonl"
        deadline = time.time() + 180
        while len(lines(episodes)) < 1:
            assert time.time() < deadline and proc.poll() is None, "job 0 never started playing"
            time.sleep(0.1)
        job_id = read_json(sweep / "0" / "run.json")["slurm_job_id"]
        if how == "scancel":
            subprocess.run(["scancel", job_id], check=True)
        else:
            os.kill(job_process(job_id), signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            if job_id:
                subprocess.run(["scancel", job_id.split("_")[0]])
    assert proc.returncode != 0
    failed = read_json(sweep / "0" / "metrics.json")
    assert failed["status"] == "failed" and f"SLURM job {job_id} {state}" in failed["error"], failed
    assert len(lines(sweep / "0" / "episodes.jsonl")) < 200
    for job in ("1", "2"):
        assert read_json(sweep / job / "metrics.json")["status"] == "completed"
    before = {job: {n: (sweep / job / n).read_bytes() for n in RECORDS} for job in ("1", "2")}

    r = run_cli(*args, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    again = read_json(sweep / "0" / "metrics.json")
    assert again["status"] == "completed" and again["episodes"] == 200
    assert sorted(by_seed(sweep / "0" / "episodes.jsonl")) == list(range(200))
    assert read_json(sweep / "0" / "run.json")["resumed"] == 1
    for job in ("1", "2"):  # completed: no-ops, their records untouched
        assert {n: (sweep / job / n).read_bytes() for n in RECORDS} == before[job]


def test_an_unwritable_output_directory_is_one_line_and_touches_nothing_else(cli, tmp_path):
    """A run directory below a regular file cannot be created, by root either (permission bits would not stop
    root)."""
    earlier = tmp_path / "earlier"
    fast = ["pipeline=evaluate", "policy=random", "mission.max_steps=30", "evaluation.episodes=2"]
    r = cli(*fast, f"hydra.run.dir={earlier}")
    assert r.returncode == 0, r.stderr
    recorded = {p.relative_to(earlier): p.read_bytes() for p in earlier.rglob("*") if p.is_file()}
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    for mode in ([f"hydra.run.dir={blocker / 'run'}"], ["-m", f"hydra.sweep.dir={blocker / 'sweep'}"]):
        r = cli(*fast, *mode)
        assert r.returncode != 0
        assert "Traceback" not in r.stderr
        errors = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: ") and str(blocker) in errors[0], r.stderr
    assert blocker.read_text() == "not a directory\n"
    assert {p.relative_to(earlier): p.read_bytes() for p in earlier.rglob("*") if p.is_file()} == recorded


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs inside the test's directory, unmounted after: an output device that fills up."""
    if os.geteuid() != 0:  # a user's laptop; in CI (root) this must run, so a missing root fails there
        reason = "mounting a tmpfs needs root (make test and .ci/run run as root)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def files_of(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), r.stderr[-3000:]
    return errors[0]


def test_a_full_output_device_is_one_line_loses_nothing_and_the_same_command_goes_on(cli, tmp_path, small_disk):
    """The device fills while the run records its episodes (~1.6 kB each: 2 MB hold ~1,300): one line, the
    episodes recorded before it and an earlier run on the device kept; run again while still full: refused before
    any work; with room again: the same command plays only the missing seeds and ends as an uninterrupted run."""
    fast = ["pipeline=evaluate", "policy=random", "mission.max_steps=20", "evaluation.num_envs=1"]
    earlier = small_disk / "earlier"
    assert cli(*fast, "evaluation.episodes=3", f"hydra.run.dir={earlier}").returncode == 0
    recorded = files_of(earlier)
    run = small_disk / "run"
    args = [*fast, "evaluation.episodes=1500", f"hydra.run.dir={run}"]

    line = error_line(cli(*args))
    assert f"no space left on the device to write {run / 'episodes.jsonl'}" in line and "same command" in line
    assert not (run / "metrics.json").exists()  # no room to record it failed: it reads as interrupted
    kept = [e["seed"] for e in read_jsonl(run / "episodes.jsonl")]  # a torn last line is ignored
    assert 500 < len(kept) < 1500 and kept == list(range(len(kept)))
    assert files_of(earlier) == recorded

    episodes = (run / "episodes.jsonl").read_bytes()
    line = error_line(cli(*args))  # still full: refused before Hydra writes anything
    assert f"cannot write the output directory {run}: its device has" in line and "bytes free" in line
    assert (run / "episodes.jsonl").read_bytes() == episodes

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    r = cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(kept)} of 1500 episodes" in r.stdout and f"playing the {1500 - len(kept)} missing" in r.stdout
    reference = tmp_path / "reference"
    assert cli(*args[:-1], f"hydra.run.dir={reference}").returncode == 0
    assert by_seed(run / "episodes.jsonl") == by_seed(reference / "episodes.jsonl")
    assert read_json(run / "metrics.json")["mean_reward"] == read_json(reference / "metrics.json")["mean_reward"]
    assert read_json(run / "run.json")["resumed"] == 1
    assert files_of(earlier) == recorded
