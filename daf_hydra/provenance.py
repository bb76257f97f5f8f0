"""What a run records about where its numbers came from: its identity (arm, signature), code and package versions,
host."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from daf_hydra.identity import run_identity

PACKAGES = (
    "daf_hydra", "mettagrid", "cogames", "pufferlib-core", "torch", "numpy", "scipy", "hydra-core", "omegaconf",
    "hydra-optuna-sweeper", "hydra-submitit-launcher", "optuna", "submitit", "plotly", "pandas",
)


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The git commit of the daf_hydra checkout (and whether it had uncommitted changes), else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()
        )
        return {"git_commit": commit, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None, "package_version": package_versions().get("daf_hydra")}


def slurm_job_id() -> str | None:
    """The id `squeue`, `sacct` and `scancel` know the job by: `<array>_<task>` for a job array's task."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def collect(cfg: dict[str, Any], seed: int, device: str, run_id: str, kind: str) -> dict[str, Any]:
    """The provenance block of run.json. `identity` is what the run is (daf_hydra.identity); its signature is
    the run's config signature: same signature, same numbers."""
    identity = run_identity(cfg)
    return {
        "run_id": run_id,
        "kind": kind,
        "config_signature": identity.signature,
        "identity": identity.to_dict(),
        "config": cfg,
        "seed": seed,
        "device": device,
        "code": code_version(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "slurm_job_id": slurm_job_id(),
        "argv": sys.argv,
    }
