"""`baseline`: a scripted agent that reads its observation and works the resource chain.

Each step, for every agent at once (numpy over the raw `(agents, tokens, 3)` observation buffer, no per-agent
Python objects), it picks a goal from its own inventory:
  holding a heart and a chest exists -> the nearest chest;
  holding one unit of every ore       -> the nearest assembler;
  otherwise                           -> the nearest stocked extractor of an ore it lacks;
walks toward the nearest visible goal (moving into an object uses it) and otherwise explores, keeping a direction
for a few steps. It knows nothing of the map beyond its 13x13 view, so it is a floor a trained policy should beat,
not a ceiling.

`BaselinePolicy` is also a regular mettagrid `MultiAgentPolicy` (short name `baseline`, `step_batch` over the raw
buffer), so mettagrid's and cogames' own tools can run it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mettagrid.policy.policy import AgentPolicy, MultiAgentPolicy
from mettagrid.policy.policy_env_interface import PolicyEnvInterface
from mettagrid.simulator import Action, AgentObservation

EMPTY = 0xFF
GLOBAL = 0xFE
EXPLORE_STEPS = 6
# (row delta, col delta) of move_north, move_south, move_west, move_east
_MOVES = ("move_north", "move_south", "move_west", "move_east")
_DELTAS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])


class BaselineBrain:
    """The vectorised decision rule, shared by the evaluator and the mettagrid policy wrapper."""

    def __init__(self, pei: PolicyEnvInterface, num_rows: int):
        features = {f.name: f.id for f in pei.obs_features}
        self._tag_fid = features["tag"]
        tags = list(pei.tags)
        tag_id = {name.removeprefix("type:"): i for i, name in enumerate(tags)}
        self._resources = sorted(
            f.removeprefix("inv:") for f in features if f.startswith("inv:ore_") and not f.endswith(":p1")
        )
        self._inv_fid = {r: features[f"inv:{r}"] for r in [*self._resources, "heart"] if f"inv:{r}" in features}
        self._extractor_tag = {r: tag_id.get(f"extractor_{r.removeprefix('ore_')}") for r in self._resources}
        self._assembler_tag = tag_id.get("assembler")
        self._chest_tag = tag_id.get("chest")
        rows, cols = pei.egocentric_shape
        self._center = (rows // 2) << 4 | (cols // 2)
        self._center_rc = (rows // 2, cols // 2)
        names = list(pei.action_names)
        self._move_idx = np.array([names.index(m) for m in _MOVES])
        self._noop = names.index("noop") if "noop" in names else int(self._move_idx[0])
        self._dir = np.zeros(num_rows, np.int64)
        self._left = np.zeros(num_rows, np.int64)

    def reset_rows(self, rows: slice | np.ndarray) -> None:
        self._left[rows] = 0

    def act(self, obs: np.ndarray, explore_draws: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """obs: (B, T, 3) uint8 for the agents in `rows` of this brain's state; explore_draws: (B,) uniform in
        [0, 1), used when an agent needs a new explore direction."""
        loc = obs[..., 0].astype(np.int64)
        fid = obs[..., 1]
        val = obs[..., 2].astype(np.int64)
        spatial = loc < GLOBAL
        at_center = loc == self._center
        inv = {r: np.where(at_center & (fid == f), val, 0).sum(axis=1) for r, f in self._inv_fid.items()}
        agents = rows
        b = obs.shape[0]
        row_idx = np.arange(b)[:, None]

        is_tag = (fid == self._tag_fid) & spatial & ~at_center
        occupied = np.zeros((b, 256), bool)
        occupied[np.broadcast_to(row_idx, loc.shape)[is_tag], loc[is_tag]] = True

        goal = np.zeros(loc.shape, bool)
        holds_all = np.ones(b, bool)
        for r in self._resources:
            holds_all &= inv.get(r, 0) >= 1
        has_heart = inv.get("heart", np.zeros(b, np.int64)) >= 1
        want_chest = has_heart & (self._chest_tag is not None)
        if self._chest_tag is not None:
            goal |= want_chest[:, None] & is_tag & (val == self._chest_tag)
        if self._assembler_tag is not None:
            goal |= (holds_all & ~want_chest)[:, None] & is_tag & (val == self._assembler_tag)
        for r in self._resources:
            tag = self._extractor_tag[r]
            if tag is None:
                continue
            stocked = np.zeros((b, 256), bool)
            has_unit = (fid == self._inv_fid[r]) & spatial & (val > 0)
            stocked[np.broadcast_to(row_idx, loc.shape)[has_unit], loc[has_unit]] = True
            lacks = (inv.get(r, 0) < 1) & ~holds_all & ~want_chest
            here = is_tag & (val == tag) & np.take_along_axis(stocked, np.where(spatial, loc, 0), axis=1)
            goal |= lacks[:, None] & here

        dr = (loc >> 4) - self._center_rc[0]
        dc = (loc & 0xF) - self._center_rc[1]
        dist = np.where(goal, np.abs(dr) + np.abs(dc), 10_000)
        k = dist.argmin(axis=1)
        rows = np.arange(b)
        found = dist[rows, k] < 10_000
        tdr, tdc = dr[rows, k], dc[rows, k]

        # Neighbour cells (N, S, W, E) as packed locations; blocked unless the neighbour is the goal itself.
        nr = self._center_rc[0] + _DELTAS[:, 0]
        nc = self._center_rc[1] + _DELTAS[:, 1]
        neighbour_loc = (nr << 4) | nc
        blocked = occupied[:, neighbour_loc]
        is_goal = (_DELTAS[None, :, 0] == tdr[:, None]) & (_DELTAS[None, :, 1] == tdc[:, None])
        free = ~blocked | is_goal

        # Prefer the axis with the larger distance, then the other one.
        vertical = np.where(tdr < 0, 0, 1)
        horizontal = np.where(tdc < 0, 2, 3)
        first = np.where(np.abs(tdr) >= np.abs(tdc), vertical, horizontal)
        second = np.where(np.abs(tdr) >= np.abs(tdc), horizontal, vertical)
        first_ok = free[rows, first] & np.where(first < 2, tdr != 0, tdc != 0)
        second_ok = free[rows, second] & np.where(second < 2, tdr != 0, tdc != 0)
        approach = np.where(first_ok, first, np.where(second_ok, second, -1))
        approach = np.where(found, approach, -1)

        # Explore: keep a direction for a few steps, draw a new free one when it runs out or is blocked.
        state_dir, state_left = self._dir[agents], self._left[agents]
        need = (approach < 0) & ((state_left <= 0) | ~free[rows, state_dir])
        n_free = free.sum(axis=1)
        pick = np.minimum((explore_draws * np.maximum(n_free, 1)).astype(np.int64), np.maximum(n_free - 1, 0))
        order = np.argsort(~free, axis=1, kind="stable")  # free directions first, in N, S, W, E order
        new_dir = order[rows, pick]
        state_dir = np.where(need, new_dir, state_dir)
        exploring = approach < 0
        state_left = np.where(exploring, np.where(need, EXPLORE_STEPS, state_left) - 1, 0)
        self._dir[agents], self._left[agents] = state_dir, state_left
        direction = np.where(exploring, state_dir, approach)
        actions = self._move_idx[direction]
        stuck = exploring & (n_free == 0)
        return np.where(stuck, self._noop, actions).astype(np.int32)


class _BaselineAgent(AgentPolicy):
    """Per-agent view for mettagrid tools that step agents one at a time."""

    def __init__(self, parent: "BaselinePolicy", agent_id: int):
        super().__init__(parent.policy_env_info)
        self._parent = parent
        self._id = agent_id

    def step(self, obs: AgentObservation) -> Action:
        shape = self._parent.policy_env_info.observation_shape
        raw = np.full((1, *shape), EMPTY, np.uint8)
        tokens = [t.raw_token for t in obs.tokens][: shape[0]]
        if tokens:
            raw[0, : len(tokens)] = tokens
        action = self._parent.brain.act(raw, self._parent.rng.random(1), np.array([self._id]))[0]
        return Action(name=self._parent.policy_env_info.action_names[int(action)])

    def reset(self, simulation: Any = None) -> None:
        self._parent.brain.reset_rows(np.array([self._id]))


class BaselinePolicy(MultiAgentPolicy):
    short_names = ["baseline"]

    def __init__(self, policy_env_info: PolicyEnvInterface, device: str = "cpu", seed: int = 0, **kwargs: Any):
        super().__init__(policy_env_info, device=device)
        self.brain = BaselineBrain(policy_env_info, policy_env_info.num_agents)
        self.rng = np.random.default_rng(seed)

    def agent_policy(self, agent_id: int) -> AgentPolicy:
        return _BaselineAgent(self, agent_id)

    def step_batch(self, raw_observations: np.ndarray, raw_actions: np.ndarray) -> None:
        raw_actions[:] = self.brain.act(raw_observations, self.rng.random(raw_observations.shape[0]))

    def reset(self) -> None:
        self.brain.reset_rows(slice(None))
