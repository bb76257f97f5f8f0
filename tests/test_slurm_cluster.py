"""Checks against the real single-node SLURM cluster of ``scripts/slurm-dev-cluster``.

The session fixture runs ``scripts/slurm-dev-cluster start`` (idempotent: about a second when the
cluster is already up, a full install + start on a fresh machine), so these tests need root or a
cluster that is already running.

    python -m pytest tests/test_slurm_cluster.py -m slurm
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import submitit

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm-dev-cluster"


def _run(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Bring the cluster up (or confirm it is up) once per test session."""
    if os.geteuid() != 0 and _run(str(SCRIPT), "status").returncode != 0:
        pytest.fail("the SLURM dev cluster is not running and starting it needs root: run "
                    "scripts/install-system-deps as root, or leave these tests out with -m 'not slurm'", pytrace=False)
    if os.geteuid() == 0:
        proc = _run(str(SCRIPT), "start", timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"{SCRIPT.name} start failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    # client commands (ours and submitit's) must find the cluster's config even where
    # /etc/slurm/slurm.conf could not be pointed at it
    base = Path(os.environ.get("DAF_SLURM_DIR", "/var/tmp/daf-slurm"))
    conf = base / "etc" / "slurm.conf"
    if "SLURM_CONF" not in os.environ and conf.is_file():
        os.environ["SLURM_CONF"] = str(conf)


def _sacct_state(job_id: str) -> str:
    proc = _run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State")
    return proc.stdout.strip().splitlines()[0].split()[0] if proc.stdout.strip() else ""


def test_sbatch_wrap_completes_and_sacct_reports_it(slurm_cluster: None, tmp_path: Path) -> None:
    out = tmp_path / "job.out"
    proc = _run("sbatch", "--parsable", "-p", "debug", "-t", "1", "--mem=100M", "-o", str(out),
                "--wrap", "echo hello-from-slurm")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip().split(";")[0]

    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        state = _sacct_state(job_id)
        if state and state not in ("PENDING", "RUNNING", "COMPLETING"):
            break
        time.sleep(0.3)
    assert state == "COMPLETED", f"job {job_id}: sacct state {state!r}"
    assert out.read_text().strip() == "hello-from-slurm"


def _executor(folder: Path) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder)
    assert executor.cluster == "slurm"
    executor.update_parameters(slurm_partition="debug", timeout_min=5, cpus_per_task=1, mem_gb=1, nodes=1,
                               tasks_per_node=1)
    return executor


def test_submitit_runs_a_function_and_returns_its_value(slurm_cluster: None, tmp_path: Path) -> None:
    # defined here (not at module level) so that cloudpickle ships it by value: the job's
    # interpreter does not need to import this test module
    def work(x: int) -> tuple[int, str | None]:
        import os

        return x * 7, os.environ.get("SLURM_JOB_ID")

    job = _executor(tmp_path).submit(work, 6)
    value, slurm_job_id = job.result()
    assert value == 42
    assert slurm_job_id == job.job_id


def test_scancel_is_reported_as_uncompleted(slurm_cluster: None, tmp_path: Path) -> None:
    job = _executor(tmp_path).submit(time.sleep, 600)

    deadline = time.monotonic() + 60
    while job.state != "RUNNING":
        assert time.monotonic() < deadline, f"job {job.job_id} never started (state {job.state})"
        time.sleep(0.3)

    t0 = time.monotonic()
    proc = _run("scancel", job.job_id)
    assert proc.returncode == 0, proc.stderr
    while not job.done():
        assert time.monotonic() - t0 < 60, f"job {job.job_id} still {job.state} 60 s after scancel"
        time.sleep(0.5)
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="CANCELLED"):
        job.result()
    assert time.monotonic() - t0 < 60
    assert _sacct_state(job.job_id) == "CANCELLED"


def _sbatch(*args: str) -> subprocess.CompletedProcess[str]:
    return _run("sbatch", "--parsable", "-p", "debug", "-t", "1", "--mem=100M", "-o", "/dev/null", *args,
                "--wrap", "true")


def test_a_job_that_can_never_start_is_named_with_its_request_and_the_limit(slurm_cluster: None) -> None:
    from daf_hydra.slurm_jobs import unschedulable_reason

    ids: dict[str, str] = {}
    try:
        for name, args in (("nodes", ("-N", "2")), ("cpus", ("-c", "64")), ("held", ("--hold",))):
            proc = _sbatch(*args)
            assert proc.returncode == 0, proc.stderr
            ids[name] = proc.stdout.strip().split(";")[0]
        reasons: dict[str, object] = {}
        deadline = time.monotonic() + 30  # SLURM sets a pending reason when it first looks at the job
        while time.monotonic() < deadline:
            reasons = {name: unschedulable_reason(job_id) for name, job_id in ids.items()}
            if reasons["nodes"] and reasons["cpus"]:
                break
            time.sleep(0.5)
        assert re.fullmatch(rf"job {ids['nodes']} asks 2 nodes; partition debug allows 1 "
                            r"\(Partition(NodeLimit|Config)\)", str(reasons["nodes"])), reasons
        assert re.fullmatch(rf"job {ids['cpus']} asks 64 CPUs per node; partition debug's nodes have at most \d+ "
                            r"\(PartitionConfig\)", str(reasons["cpus"])), reasons
        assert reasons["held"] is None  # held by its user: it can start once released
    finally:
        if ids:
            _run("scancel", *ids.values())


def test_an_sbatch_refusal_is_one_line_saying_what_the_cluster_has(slurm_cluster: None) -> None:
    from daf_hydra.slurm_jobs import sbatch_refusal

    proc = _sbatch("--gres=gpu:1")
    assert proc.returncode != 0
    assert sbatch_refusal(proc.stderr) == ("Invalid generic resource (gres) specification; this cluster's nodes "
                                           "have no gres (no GPUs)")
