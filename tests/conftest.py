"""Shared fixtures: run the real CLI in a subprocess, into the test's own temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m daf_hydra.run ARGS` in `cwd`; outputs land under cwd (outputs/, multirun/)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "daf_hydra.run", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def cli(tmp_path: Path):
    def _run(*args: str, **kw):
        return run_cli(*args, cwd=tmp_path, **kw)

    return _run
