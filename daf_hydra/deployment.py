"""Deployment packages: one policy as a bundle anyone can load, shipped with the evidence for it.

A package is a directory and a `.tar.gz` of that directory:

    <name>/policy_spec.json   class_path, data_path, init_kwargs, policy_env_interface: cogames' bundle format,
                              read by mettagrid's `load_policy_spec_from_path` + `initialize_or_load_policy` and
                              by daf_hydra (`policy.class_path=<name>/`, `compare.policies=[<name>/]`)
    <name>/weights.pt         the network's state_dict (policies without weights have none, data_path null)
    <name>/config.yaml        the resolved config of the run that produced it
    <name>/evaluation.json    its evaluation on every mission (and the comparison summary, when there was one)
    <name>/report.html        the report of that run, when one was written
    <name>/SHA256SUMS         sha256 of every other file: `sha256sum -c SHA256SUMS` inside the directory

Training checkpoints also hold the optimizer state for resuming; a package holds only what playing needs. The
package is assembled in a temporary directory, loaded back through daf_hydra's loader and checked to hold the
same weights, and only then moved into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from daf_hydra.errors import DAFError
from daf_hydra.policies.loading import POLICY_SPEC_FILENAME, untrained_network

WEIGHTS_FILE = "weights.pt"
MANIFEST_FILE = "SHA256SUMS"
NOTICE_FILE = "NOTICE.txt"


@dataclass
class DeploymentPackage:
    directory: Path
    archive: Path
    files: dict[str, str]  # relative path -> sha256
    untrained: bool = False  # a network shipped without weights (NOTICE.txt in the package says so)

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "archive": str(self.archive), "files": dict(self.files),
                "untrained": self.untrained}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def policy_spec(policy: Any, mission: Any) -> tuple[dict[str, Any], Optional[Path]]:
    """The bundle spec of a policy entry (`policy_entries.PolicyEntry`) and its weights file (None: no weights).

    The environment interface is the one the checkpoint recorded when it is a bundle, else `mission`'s."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.missions import build_env
    from daf_hydra.policies import loading

    resolved = loading.resolve(policy.class_path, policy.data_path, dict(policy.kwargs))
    bundle = next((Path(p) for p in (policy.class_path, policy.data_path)
                   if p and (Path(p) / POLICY_SPEC_FILENAME).is_file()), None)
    recorded = json.loads((bundle / POLICY_SPEC_FILENAME).read_text()) if bundle else {}
    pei = recorded.get("policy_env_interface") or PolicyEnvInterface.from_mg_cfg(build_env(mission)).model_dump(
        mode="json")
    weights = Path(resolved.data_path) if resolved.data_path else None
    spec = {"class_path": resolved.class_path, "data_path": WEIGHTS_FILE if weights else None,
            "init_kwargs": dict(resolved.kwargs), "policy_env_interface": pei}
    return spec, weights


def daf_create_deployment_package(
    policy: Any,
    output_dir: str | Path,
    *,
    mission: Any,
    config: dict[str, Any],
    evaluation: dict[str, Any],
    report: Optional[str | Path] = None,
    name: Optional[str] = None,
) -> DeploymentPackage:
    """Write the package of `policy` (a `PolicyEntry` or anything `policy_entries.parse_policy` takes) into
    `output_dir/<name>/` and `output_dir/<name>.tar.gz`, replacing an earlier package of the same name.

    `mission`: a mission config, whose environment interface the spec records when the policy is not a bundle
    that recorded its own; `config`: the resolved config to ship; `evaluation`: the evaluation results to ship."""
    from daf_hydra.policy_entries import parse_policy, slug

    entry = parse_policy(policy)
    name = name or slug(entry.label)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{name}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    spec, weights = policy_spec(entry, mission)
    if weights is not None:
        if not weights.is_file():
            raise DAFError(f"policy {entry.label!r}: weights {str(weights)!r} do not exist")
        shutil.copyfile(weights, staging / WEIGHTS_FILE)
    (staging / POLICY_SPEC_FILENAME).write_text(json.dumps(spec, indent=2))
    (staging / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (staging / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=str))
    if report is not None:
        shutil.copyfile(report, staging / "report.html")
    untrained = untrained_network(entry.class_path, entry.data_path)
    if untrained:
        (staging / NOTICE_FILE).write_text(f"{entry.label} is an untrained network: this package holds no weights, "
                                           "so the policy plays as initialised.\n")
    _verify(staging, weights, mission)
    files = {p.relative_to(staging).as_posix(): sha256_file(p) for p in sorted(staging.rglob("*")) if p.is_file()}
    (staging / MANIFEST_FILE).write_text("".join(f"{digest}  {rel}\n" for rel, digest in files.items()))

    directory = out / name
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(staging, directory)
    archive = out / f"{name}.tar.gz"
    tmp_archive = out / f".{name}.tar.gz.tmp"
    with tarfile.open(tmp_archive, "w:gz") as tar:
        tar.add(directory, arcname=name)
    os.replace(tmp_archive, archive)
    return DeploymentPackage(directory, archive, files, untrained)


def _verify(bundle: Path, weights: Optional[Path], mission: Any) -> None:
    """The staged bundle must load through daf_hydra's bundle loader and hold exactly the source weights."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.missions import build_env
    from daf_hydra.policies import loading

    pei = PolicyEnvInterface.from_mg_cfg(build_env(mission))
    network = loading.instantiate(loading.resolve(str(bundle)), pei, "cpu").network()
    if weights is None or network is None:  # nothing to compare: no weights, or a policy with its own format
        return
    import torch

    from daf_hydra.training import weights_digest

    if weights_digest(network) != weights_digest(torch.load(weights, map_location="cpu", weights_only=True)):
        raise RuntimeError(f"the packaged policy does not hold the weights of {weights}")


def verify_manifest(directory: str | Path) -> list[str]:
    """Files whose sha256 differs from SHA256SUMS, or that are missing (empty: the package is intact)."""
    directory = Path(directory)
    bad = []
    for line in (directory / MANIFEST_FILE).read_text().splitlines():
        digest, rel = line.split("  ", 1)
        path = directory / rel
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(rel)
    return bad
