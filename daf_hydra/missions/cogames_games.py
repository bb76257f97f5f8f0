"""Missions of installed cogames games, through cogames' own registry.

No cogames game installs from PyPI, but a user may have some (or register their own with
`cogames.game.register_game`). Each of their missions becomes a Hydra option `mission=cogames:<game>.<mission>`:
`register_cogames_missions()` stores one `MissionConfig` per mission in Hydra's ConfigStore.
"""

from __future__ import annotations

from typing import Any

from daf_hydra.errors import DAFError


def installed_games() -> dict[str, Any]:
    """Registered cogames games plus the standalone games whose packages are installed."""
    from cogames import game as cg

    for name in list(getattr(cg, "STANDALONE_GAMES", {})):
        try:
            cg.get_game(name)
        except (ValueError, ImportError):
            continue
    return dict(cg._GAMES)


def register_cogames_missions() -> list[str]:
    """Store `cogames:<game>.<mission>` options in the `mission` config group; returns their names."""
    from hydra.core.config_store import ConfigStore

    from daf_hydra.config import COGAMES_PREFIX, MissionConfig

    cs = ConfigStore.instance()
    names = []
    for game_name, game in installed_games().items():
        for mission in [*game.missions, *game.eval_missions]:
            full = mission.full_name()
            option = f"{COGAMES_PREFIX}{game_name}.{full}"
            node = MissionConfig(
                name=option,
                source="cogames",
                description=str(getattr(mission, "description", "")),
                num_agents=int(mission.num_cogs or mission.min_cogs),
                max_steps=int(mission.max_steps),
                game=game_name,
                cogames_mission=full,
            )
            cs.store(group="mission", name=option, node=node)
            names.append(option)
    return names


def build_cogames_env(m: Any) -> Any:
    from cogames.cli.mission import resolve_mission
    from cogames.game import get_game

    try:
        game = get_game(m.game)
    except ValueError as exc:
        raise DAFError(f"cogames game {m.game!r} is not installed: {str(exc).splitlines()[0]}") from None
    try:
        _, env_cfg, _ = resolve_mission(game, m.cogames_mission)
    except (ValueError, KeyError) as exc:
        raise DAFError(f"cogames mission {m.cogames_mission!r} of game {m.game!r}: {str(exc).splitlines()[0]}") from None
    env_cfg.game.max_steps = int(m.max_steps)  # the mission's own value unless the user overrode mission.max_steps
    return env_cfg
