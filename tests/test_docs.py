"""The docs say what the code does: the config reference is generated from the configs, and every documented
command names config groups, options and keys that exist."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT
from daf_hydra.compose import check_group_choices, compose_config

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_config_reference_is_generated_from_the_current_configs():
    generated = subprocess.run([sys.executable, str(ROOT / "scripts" / "config-reference")],
                               capture_output=True, text=True, check=True).stdout
    assert (ROOT / "docs" / "config-reference.md").read_text() == generated, \
        "docs/config-reference.md is stale: run scripts/config-reference > docs/config-reference.md"


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
