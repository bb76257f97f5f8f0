"""Missions: our catalog (YAML in conf/mission/, built on mettagrid) and any installed cogames game's missions.

`build_env(mission_cfg)` is the single entry from a mission config to a mettagrid environment config.
"""

from __future__ import annotations

from typing import Any

from daf_hydra.config import CONF_DIR
from daf_hydra.errors import DAFError


def catalog_names() -> list[str]:
    """The missions daf_hydra ships, by their YAML file names."""
    return sorted(p.stem for p in (CONF_DIR / "mission").glob("*.yaml"))


def build_env(mission: Any) -> Any:
    """A mission config (dataclass or DictConfig) -> mettagrid.MettaGridConfig."""
    if mission.source == "catalog":
        from daf_hydra.missions.catalog import build_catalog_env

        return build_catalog_env(mission)
    if mission.source == "cogames":
        from daf_hydra.missions.cogames_games import build_cogames_env

        return build_cogames_env(mission)
    raise DAFError(f"mission.source={mission.source!r} is invalid: valid sources are catalog, cogames")
