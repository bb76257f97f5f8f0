"""The check pipeline: list the missions and check the environment; exits non-zero when unhealthy."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from daf_hydra.compose import load_mission
from daf_hydra.environment_checks import daf_check_environment
from daf_hydra.errors import DAFError
from daf_hydra.missions import catalog_names
from daf_hydra.policies.loading import BUILTIN_POLICIES, POLICIES
from daf_hydra.records import write_json_atomic


def run_check(cfg: DictConfig, run_dir: Path) -> float:
    missions = [load_mission(name) for name in catalog_names()]
    if cfg.mission.name not in catalog_names():
        missions.append(cfg.mission)
    policies = [*BUILTIN_POLICIES, *([] if cfg.policy.class_path in BUILTIN_POLICIES else [cfg.policy.class_path])]
    result = daf_check_environment(missions=missions, policies=policies, output_dir=run_dir, device=cfg.device)
    print("Missions:")
    for m in missions:
        where = f"{m.width}x{m.height}" if m.source == "catalog" else f"cogames {m.game}"
        agents = "agent" if m.num_agents == 1 else "agents"
        print(f"  {m.name:22s} {m.num_agents:3d} {agents:7s} {where:8s} {m.max_steps:5d} steps  {m.description}")
    print("Policies (policy=<name>; trainable: has a network pipeline=train trains, fixed: plays as it is):")
    for p in POLICIES:
        print(f"  {p.name:15s} {p.kind:9s}  {p.class_path}: {p.what}")
    print("Checks:")
    for c in result.checks:
        mark = "ok  " if c.ok else ("WARN" if c.severity == "warning" else "FAIL")
        print(f"  [{mark}] {c.name}: {c.detail}")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "check.json", result.to_dict())
    if not result.is_healthy():
        raise DAFError(f"environment check failed: {'; '.join(result.errors)}")
    print(f"healthy (device {result.device}); {len(result.warnings)} warning(s)")
    return 1.0
