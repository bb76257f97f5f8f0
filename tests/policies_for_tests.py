"""Small user-style policies, importable by class path in the tests."""

from __future__ import annotations

import numpy as np

from mettagrid.policy.policy import AgentPolicy, MultiAgentPolicy
from mettagrid.simulator import Action


class AlwaysEast(AgentPolicy):
    """A plain AgentPolicy: daf_hydra must wrap it per agent."""

    def step(self, obs):
        return Action(name="move_east")


class BatchedNorth(MultiAgentPolicy):
    """A MultiAgentPolicy offering only step_batch over the raw buffer."""

    def step_batch(self, raw_observations: np.ndarray, raw_actions: np.ndarray) -> None:
        raw_actions[:] = self.policy_env_info.action_names.index("move_north")
