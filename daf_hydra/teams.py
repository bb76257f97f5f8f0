"""Mixed teams: several policies in one episode, each stepping only the agents it controls (cross-play).

`evaluation.play` plays a `MixedTeam` like a single policy. The team's actor keeps one actor per member
(policies/actors.py), built for the number of agents that member controls, so each step costs one forward pass
per member over its own agents (gathered from the shared observation buffer), never a pass over every agent
whose actions are then thrown away. Which agent slots a member holds is fixed per episode by `assign(seed)`
(cross-play rotates it over seeds); a member's count is the same in every episode, so its actor's buffers keep
their shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from daf_hydra.evaluation import LoadedPolicy
from daf_hydra.policies.actors import Actor


@dataclass
class MixedTeam:
    """Members and who plays which agent: `assign(seed)` gives, per agent slot, the index of its member in
    `members`; member m controls `counts[m]` agents in every episode."""

    label: str
    members: Sequence[LoadedPolicy]
    counts: Sequence[int]
    assign: Callable[[int], np.ndarray]

    def actor(self, pei: Any, slots: int, deterministic: bool, build_seed: int) -> Actor:
        return TeamActor(self, pei, slots, deterministic, build_seed)


class _AgentsView:
    """A simulation as one member sees it: only its agents, renumbered 0..count-1 (mettagrid's per-agent path
    asks `simulation.agent(i)` and `num_agents`)."""

    def __init__(self, simulation: Any, agents: np.ndarray):
        self._simulation = simulation
        self._agents = agents
        self.num_agents = len(agents)

    def agent(self, i: int) -> Any:
        return self._simulation.agent(int(self._agents[i]))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._simulation, name)


class TeamActor:
    """One actor per member over the agents it controls; their actions are scattered back into the team's."""

    def __init__(self, team: MixedTeam, pei: Any, slots: int, deterministic: bool, build_seed: int):
        if sum(team.counts) != pei.num_agents:
            raise ValueError(f"team {team.label}: counts {list(team.counts)} do not add up to {pei.num_agents} agents")
        self._team = team
        # each member sees the interface of the agents it controls (its batch shapes, its per-agent state)
        self._actors = [m.actor(pei.model_copy(update={"num_agents": c}), slots, deterministic, build_seed)
                        for m, c in zip(team.members, team.counts)]
        self._rows = [np.zeros((slots, c), np.intp) for c in team.counts]
        self._views: list[list[Any]] = [[None] * slots for _ in team.counts]

    def start(self, slot: int, seed: int, simulation: Any) -> None:
        owner = np.asarray(self._team.assign(seed))
        for m, actor in enumerate(self._actors):
            agents = np.flatnonzero(owner == m)
            if len(agents) != self._team.counts[m]:
                raise ValueError(f"team {self._team.label}: seed {seed} gives member {m} {len(agents)} agents, "
                                 f"not {self._team.counts[m]}")
            self._rows[m][slot] = agents
            self._views[m][slot] = _AgentsView(simulation, agents)
            actor.start(slot, seed, self._views[m][slot])

    def act(self, obs: np.ndarray, sims: Sequence[Any]) -> np.ndarray:
        out = np.zeros(obs.shape[:2], np.int32)
        slot = np.arange(obs.shape[0])[:, None]
        for m, actor in enumerate(self._actors):
            rows = self._rows[m]
            views = [view if sims[s] is not None else None for s, view in enumerate(self._views[m])]
            out[slot, rows] = actor.act(obs[slot, rows], views)
        return out
