"""Wrap an `AgentPolicy` class as a `MultiAgentPolicy`: one independent instance per agent."""

from __future__ import annotations

from typing import Any

from mettagrid.policy.policy import AgentPolicy, MultiAgentPolicy
from mettagrid.policy.policy_env_interface import PolicyEnvInterface


class PerAgentPolicy(MultiAgentPolicy):
    """Lets users hand us a plain `AgentPolicy` subclass by class path, as the design documents promise."""

    def __init__(self, policy_env_info: PolicyEnvInterface, agent_class: type, device: str = "cpu", **kwargs: Any):
        super().__init__(policy_env_info, device=device)
        self._agent_class = agent_class
        self._kwargs = kwargs

    def agent_policy(self, agent_id: int) -> AgentPolicy:
        return self._agent_class(self.policy_env_info, **self._kwargs)
