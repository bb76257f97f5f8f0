"""The docs say what the code does: the config reference is generated from the configs, every documented
command names config groups, options and keys that exist, and every ```bash block of README.md and docs/*.md runs
as written from a scratch directory outside the repository (test_bash_blocks_run_as_written)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from daf_hydra.compose import SMOKE_SCALE_VARIABLE, check_group_choices, compose_config

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The first line of a ```bash block may say why it is not run: `# needs: gpu|nodes|root` (composed and checked
# instead, as far as its commands are daf_hydra runs) or `# not-run: <reason>` (e.g. it would run this suite).
NEEDS = re.compile(r"#\s*needs:\s*(gpu|nodes|root)\b")
NOT_RUN = re.compile(r"#\s*not-run:\s*(\S.*)")
SMOKE_SCALE = "0.01"  # 500,000 training steps -> 5,000; 20 episodes -> 2 (never below what runs)
COMMAND_TIMEOUT_S = 300


def documented_commands() -> list[tuple[str, list[str]]]:
    out = []
    for doc in DOCS:
        blocks = re.findall(r"```[a-z]*\n(.*?)```", doc.read_text(), flags=re.S)  # commands in code blocks
        for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
            m = re.search(r"python -m daf_hydra\.run(.*)", line)
            if m:
                args = shlex.split(m.group(1).split("#")[0])
                out.append((f"{doc.name}: {line.strip()}", args))
    return out


def test_config_reference_is_generated_from_the_current_configs():
    generated = subprocess.run([sys.executable, str(ROOT / "scripts" / "config-reference")],
                               capture_output=True, text=True, check=True).stdout
    assert (ROOT / "docs" / "config-reference.md").read_text() == generated, \
        "docs/config-reference.md is stale: run scripts/config-reference > docs/config-reference.md"


@pytest.mark.parametrize("where,args", documented_commands(), ids=lambda v: v if isinstance(v, str) else None)
def test_documented_commands_compose(where, args):
    if "--config-path" in args:
        return  # reruns a sweep's best config: exercised in tests/test_sweeps.py
    check_group_choices(args)
    plain = [a for a in args if not a.startswith(("-", "hydra/", "hydra.", "+sweep", "+experiment"))]
    if "-m" in args or any("<" in a for a in plain):
        plain = [a for a in plain if "," not in a.split("=", 1)[-1] or a.split("=", 1)[-1].startswith("[")]
        plain = [a for a in plain if "(" not in a and "<" not in a]
    compose_config(plain)


def bash_blocks(doc: Path) -> list[str]:
    """The ```bash blocks of `doc`, in order."""
    return re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S)


def block_commands(block: str) -> list[str]:
    """The commands of a block: continuation lines joined, comment and blank lines dropped."""
    lines = block.replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def scratch_env(scratch: Path) -> dict[str, str]:
    """What a user has after `make demo` in a checkout, seen from another directory: `.venv/bin/python` and
    `python` are this interpreter (a `.venv` link in the scratch directory), daf_hydra is importable, and
    DAF_SMOKE_SCALE shrinks step and episode counts."""
    (scratch / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", SMOKE_SCALE_VARIABLE: SMOKE_SCALE,
           "PATH": f"{scratch / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


# Checks a command that cannot run here as the CLI would before launching anything, in the scratch directory.
CHECK = """
import shlex, sys
from daf_hydra.run import _normalise, check_command_line
words = shlex.split(sys.argv[1], comments=True)
if words[1:3] == ["-m", "daf_hydra.run"]:
    check_command_line([_normalise(w) for w in words[3:]])
"""


def run_doc(doc: Path, scratch: Path) -> list[str]:
    """Each command of each ```bash block of `doc`, in order, in `scratch` (one directory outside the repository,
    so a path that only works from the repository root fails); the failures, each with its output's tail. A block
    that needs what this machine lacks (`# needs:`) has its daf_hydra runs composed and checked as the CLI does
    before it launches anything (run.check_command_line), so a bad group, key or value still fails."""
    env = scratch_env(scratch)
    failures = []
    for block in bash_blocks(doc):
        first = block.lstrip().splitlines()[0] if block.strip() else ""
        if NOT_RUN.match(first):
            continue
        for command in block_commands(block):
            argv = [sys.executable, "-c", CHECK, command] if NEEDS.match(first) else ["bash", "-c", command]
            done = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                failures.append(f"{doc.name}: `{command}` exited {done.returncode}:\n{tail}")
                break  # later commands of the document may build on this one
        if failures:
            break
    return failures


@pytest.mark.slow
def test_bash_blocks_run_as_written(tmp_path: Path):
    """Every document's commands exit 0, run as `run_doc` says; the documents two at a time (each in its own
    scratch directory, its commands in order), as the machine has two cores."""
    from concurrent.futures import ThreadPoolExecutor

    # the documents with the most commands first, so the two threads end together
    docs = sorted((d for d in DOCS if bash_blocks(d)),
                  key=lambda d: -sum(len(block_commands(b)) for b in bash_blocks(d)))
    scratches = []
    for doc in docs:
        scratch = tmp_path / doc.stem
        scratch.mkdir()
        scratches.append(scratch)
    with ThreadPoolExecutor(2) as pool:
        failures = [f for found in pool.map(run_doc, docs, scratches) for f in found]
    assert not failures, "\n\n".join(failures)
