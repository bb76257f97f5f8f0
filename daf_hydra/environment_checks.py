"""Pre-flight checks: is this machine ready to run what the config asks for?

`daf_check_environment()` is what `pipeline=check` runs; it never raises for a failed check, it reports it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from daf_hydra.device import daf_get_recommended_device, resolve_device  # noqa: F401 (the API names it here)
from daf_hydra.errors import DAFError

REQUIRED_PACKAGES = ("mettagrid", "cogames", "torch", "hydra-core", "omegaconf", "numpy", "scipy", "plotly")
MIN_FREE_GB = 1.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    severity: str = "error"  # error | warning: a failed warning check leaves the environment healthy


@dataclass
class EnvironmentCheckResult:
    checks: list[Check] = field(default_factory=list)
    device: str | None = None

    def add(self, name: str, ok: bool, detail: str, severity: str = "error") -> None:
        self.checks.append(Check(name, ok, detail, severity))

    @property
    def errors(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok and c.severity == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok and c.severity == "warning"]

    def is_healthy(self) -> bool:
        return not self.errors

    def merge(self, other: "EnvironmentCheckResult") -> None:
        self.checks.extend(other.checks)
        self.device = self.device or other.device

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.is_healthy(),
            "device": self.device,
            "errors": self.errors,
            "warnings": self.warnings,
            "checks": [vars(c) for c in self.checks],
        }


def daf_check_dependencies() -> EnvironmentCheckResult:
    """Package versions and pufferlib's compiled extension (needed for training, not for evaluation)."""
    from daf_hydra.provenance import package_versions

    result = EnvironmentCheckResult()
    versions = package_versions()
    for name in REQUIRED_PACKAGES:
        version = versions.get(name)
        result.add(f"package {name}", version is not None, version or "not installed")
    try:
        import pufferlib._C  # noqa: F401

        result.add("pufferlib compiled extension", True, f"pufferlib-core {versions.get('pufferlib-core')}")
    except ImportError as exc:
        result.add(
            "pufferlib compiled extension", False,
            f"cannot import pufferlib._C ({exc}); training needs it: run scripts/setup-venv", severity="warning",
        )
    return result


def check_missions(missions: Iterable[Any]) -> EnvironmentCheckResult:
    """Each mission builds and exposes an observation/action interface (mission configs, not names)."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.missions import build_env

    result = EnvironmentCheckResult()
    for mission in missions:
        try:
            pei = PolicyEnvInterface.from_mg_cfg(build_env(mission))
            result.add(
                f"mission {mission.name}", True,
                f"{pei.num_agents} agent{'s' * (pei.num_agents != 1)}, {mission.width}x{mission.height}, {mission.max_steps} steps"
                if mission.source == "catalog" else f"{pei.num_agents} agent{'s' * (pei.num_agents != 1)} (cogames {mission.game})",
            )
        except DAFError as exc:
            result.add(f"mission {mission.name}", False, str(exc))
    return result


def check_policies(class_paths: Iterable[str]) -> EnvironmentCheckResult:
    """Each policy resolves and its class imports."""
    from daf_hydra.policies import loading

    result = EnvironmentCheckResult()
    for class_path in class_paths:
        try:
            resolved = loading.resolve(class_path)
            loading.import_policy_class(resolved.class_path)
            result.add(f"policy {class_path}", True, resolved.class_path)
        except DAFError as exc:
            result.add(f"policy {class_path}", False, str(exc))
    return result


def check_output_dir(path: Path, min_free_gb: float = MIN_FREE_GB) -> EnvironmentCheckResult:
    result = EnvironmentCheckResult()
    path.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        result.add("output directory writable", True, str(path))
    except OSError as exc:
        result.add("output directory writable", False, f"{path}: {exc}")
    free_gb = shutil.disk_usage(path).free / 1e9
    result.add("free disk", free_gb >= min_free_gb, f"{free_gb:.1f} GB free (want >= {min_free_gb} GB)",
               severity="warning")
    return result


def daf_check_environment(
    missions: Iterable[Any] | None = None,
    policies: Iterable[str] | None = None,
    output_dir: str | Path = "outputs",
    device: str = "auto",
) -> EnvironmentCheckResult:
    """Everything a run needs: dependencies, device, missions (configs or catalog names), policies (None: every
    conf/policy option), disk.

    `missions` may hold mission names of the catalog (or `cogames:<game>.<mission>`) or mission configs;
    None checks the whole catalog.
    """
    from daf_hydra.compose import load_mission

    result = daf_check_dependencies()
    try:
        result.device = resolve_device(device)
        result.add("device", True, result.device)
    except DAFError as exc:
        result.add("device", False, str(exc))
    mission_cfgs = []
    from daf_hydra.missions import catalog_names

    for mission in missions if missions is not None else catalog_names():
        if isinstance(mission, str):
            try:
                mission = load_mission(mission)
            except DAFError as exc:
                result.add(f"mission {mission}", False, str(exc))
                continue
        mission_cfgs.append(mission)
    result.merge(check_missions(mission_cfgs))
    from daf_hydra.policies.loading import BUILTIN_POLICIES

    result.merge(check_policies(BUILTIN_POLICIES if policies is None else policies))
    result.merge(check_output_dir(Path(output_dir)))
    return result
