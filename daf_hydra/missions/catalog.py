"""Build a mettagrid environment config from a catalog `MissionConfig`.

No cogames mission installs from PyPI, so daf_hydra ships its own missions as YAML in `conf/mission/`, each one a
set of fields of `MissionConfig`; this module turns those fields into a `MettaGridConfig` with mettagrid's own
config and map-generation API. One generic builder, so every mission field is overridable from the command line
(`mission.max_steps=800`, `mission.regen_period=5`) and sweepable like any other parameter.
"""

from __future__ import annotations

from typing import Any

from daf_hydra.errors import DAFError

HEART = "heart"


def _extractor_name(resource: str) -> str:
    return f"extractor_{resource.removeprefix('ore_')}"


def validate_mission(m: Any) -> None:
    """Reject a mission that cannot be built, with the field and what is valid."""
    if m.num_agents < 1:
        raise DAFError(f"mission.num_agents={m.num_agents} is invalid: it must be >= 1")
    if m.max_steps < 1:
        raise DAFError(f"mission.max_steps={m.max_steps} is invalid: it must be >= 1")
    if not m.resources:
        raise DAFError(f"mission {m.name!r} has no resources: list at least one, e.g. [ore_red]")
    bad = [r for r in m.resources if not r.startswith("ore_") or r == HEART]
    if bad:
        raise DAFError(f"mission.resources has {bad}: resource names must start with 'ore_' (e.g. ore_red)")
    if m.extractor_uses is None and m.regen_period is None:
        raise DAFError(
            f"mission {m.name!r} has neither extractor_uses nor regen_period: set one, an unlimited source "
            "would let any agent saturate the mission"
        )
    if m.regen_period is not None and m.regen_period < 1:
        raise DAFError(f"mission.regen_period={m.regen_period} is invalid: it must be >= 1 or null")
    if m.extractor_uses is not None and m.extractor_uses < 1:
        raise DAFError(f"mission.extractor_uses={m.extractor_uses} is invalid: it must be >= 1 or null")
    cells = (m.width - 2) * (m.height - 2)
    objects = m.num_agents + m.walls + m.assemblers + m.chests + m.extractors_per_resource * len(m.resources)
    if m.width < 5 or m.height < 5 or objects > cells // 2:
        raise DAFError(
            f"mission {m.name!r}: a {m.width}x{m.height} map cannot hold {objects} agents and objects; "
            f"make the map larger or use fewer objects (at most half of the {cells} inner cells)"
        )


def build_catalog_env(m: Any) -> Any:
    """MissionConfig fields -> mettagrid.MettaGridConfig (imports mettagrid lazily: it is slow to import)."""
    import mettagrid.mapgen.scenes.random as random_scene
    from mettagrid.builder import building
    from mettagrid.config.event_config import EventConfig, periodic
    from mettagrid.config.filter import actorHas, targetHas
    from mettagrid.config.game_value import StatValue
    from mettagrid.config.handler_config import Handler
    from mettagrid.config.mettagrid_config import (
        ActionsConfig,
        AgentConfig,
        AttackActionConfig,
        ChangeVibeActionConfig,
        GameConfig,
        GridObjectConfig,
        InventoryConfig,
        MettaGridConfig,
        MoveActionConfig,
        NoopActionConfig,
        ResourceLimitsConfig,
    )
    from mettagrid.config.mutation import deposit, logStat, updateActor, withdraw
    from mettagrid.config.mutation.stats_mutation import StatsEntity, StatsTarget
    from mettagrid.config.query import query
    from mettagrid.config.reward_config import reward
    from mettagrid.config.tag import typeTag
    from mettagrid.mapgen.mapgen import MapGen

    validate_mission(m)
    resources = list(m.resources)
    objects: dict[str, Any] = {"wall": building.wall}
    events: dict[str, Any] = {}
    for res in resources:
        name = _extractor_name(res)
        stock = m.extractor_uses if m.extractor_uses is not None else 1
        inventory = InventoryConfig(initial={res: stock})
        if m.regen_period is not None:
            # Holds at most one unit (limited uses add up to `extractor_uses`): a refill event is the cooldown.
            inventory.limits = {res: ResourceLimitsConfig(base=max(1, stock), resources=[res])}
            events[f"regen_{res}"] = EventConfig(
                name=f"regen_{res}",
                target_query=query(typeTag(name)),
                timesteps=periodic(start=m.regen_period, period=m.regen_period),
                mutations=[_refill(res)],
            )
        objects[name] = GridObjectConfig(
            name=name,
            inventory=inventory,
            on_use_handler=Handler(filters=[targetHas({res: 1})], mutations=[withdraw({res: 1})]),
        )
    recipe = {res: 1 for res in resources}
    objects["assembler"] = GridObjectConfig(
        name="assembler",
        on_use_handler=Handler(
            filters=[actorHas(recipe)],
            mutations=[
                updateActor({**{res: -1 for res in resources}, HEART: 1}),
                logStat("assembled", target=StatsTarget.AGENT, entity=StatsEntity.ACTOR),
            ],
        ),
    )
    if m.chests:
        objects["chest"] = GridObjectConfig(
            name="chest",
            inventory=InventoryConfig(default_limit=65535),
            on_use_handler=Handler(filters=[actorHas({HEART: 1})], mutations=[deposit({HEART: 1})]),
        )

    # Rewards count what an agent achieved (monotone stats), so depositing a heart is never a loss.
    rewards = {HEART: reward(StatValue(name=f"{HEART}.gained"), weight=m.heart_reward)}
    if m.ore_reward:
        for res in resources:
            rewards[res] = reward(StatValue(name=f"{res}.gained"), weight=m.ore_reward)
    if m.chests and m.deposit_reward:
        rewards["deposit"] = reward(StatValue(name=f"{HEART}.deposited"), weight=m.deposit_reward)

    placed = {"wall": m.walls, "assembler": m.assemblers, **{_extractor_name(r): m.extractors_per_resource for r in resources}}
    if m.chests:
        placed["chest"] = m.chests
    game = GameConfig(
        num_agents=m.num_agents,
        max_steps=m.max_steps,
        resource_names=[*resources, HEART],
        actions=ActionsConfig(
            noop=NoopActionConfig(),
            move=MoveActionConfig(),
            attack=AttackActionConfig(enabled=False),
            change_vibe=ChangeVibeActionConfig(enabled=False),
        ),
        objects=objects,
        events=events,
        agent=AgentConfig(
            inventory=InventoryConfig(
                default_limit=50, limits={HEART: ResourceLimitsConfig(base=255, resources=[HEART])}
            ),
            rewards=rewards,
        ),
        map_builder=MapGen.Config(
            num_agents=m.num_agents,
            width=m.width,
            height=m.height,
            border_width=1,
            instance_border_width=0,
            instance=random_scene.Random.Config(agents=m.num_agents, objects=placed),
        ),
    )
    return MettaGridConfig(label=m.name, game=game)


def _refill(resource: str) -> Any:
    from mettagrid.config.mutation import updateTarget

    return updateTarget({resource: 1})
