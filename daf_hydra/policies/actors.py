"""Actors: how a policy chooses actions for every agent of several episodes at once.

The evaluator keeps `slots` episodes running side by side and hands the actor their raw observation buffers,
`(slots, agents, tokens, 3)` uint8, exactly what the environment writes and what training feeds the network.
Each actor picks the fastest faithful path for its policy:

- `NetworkActor`: any policy whose `network()` has `forward_eval` (lstm, mlp, mettagrid_lstm, stateless, trained checkpoints): one
  forward pass for all agents of all slots (mettagrid's evaluator steps one agent at a time, and pads the
  observation differently from training).
- `BaselineActor`, `RandomActor`, `NoopActor`: numpy over the whole buffer.
- `StepBatchActor`: policies that implement mettagrid's `step_batch(raw_observations, raw_actions)`.
- `AgentPolicyActor`: everything else, one `AgentPolicy.step(AgentObservation)` per agent, as mettagrid does.

Randomness is per episode: every slot draws from a generator seeded with its episode's seed, so an episode's
actions do not depend on which other episodes share the batch, and policy A and policy B see the same
seeds on the same maps (the paired design of comparisons).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

RNG_SALT = 0x5EED  # separates action-sampling streams from the map seed
NOISE_BLOCK = 64  # steps of sampling noise drawn per slot at once: one generator call, not one per step


def episode_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, RNG_SALT])


class Actor(Protocol):
    def start(self, slot: int, seed: int, simulation: Any) -> None:
        """A new episode with `seed` begins in `slot`: reset that slot's memory and random stream."""

    def act(self, obs: np.ndarray, sims: Sequence[Any]) -> np.ndarray:
        """obs (slots, agents, tokens, 3) -> actions (slots, agents) int32."""


class _SlotRngs:
    def __init__(self, slots: int):
        self.rngs = [episode_rng(0) for _ in range(slots)]

    def start(self, slot: int, seed: int) -> None:
        self.rngs[slot] = episode_rng(seed)


class RandomActor(_SlotRngs):
    """Same distribution as mettagrid's `random` (primary actions uniform; vibe actions with probability
    `vibe_action_p` when the mission has them), seeded per episode instead of Python's global `random`."""

    def __init__(self, slots: int, agents: int, num_primary: int, num_vibe: int, vibe_action_p: float = 0.5):
        super().__init__(slots)
        self._agents, self._primary, self._vibe, self._p = agents, num_primary, num_vibe, vibe_action_p

    def start(self, slot: int, seed: int, simulation: Any) -> None:
        super().start(slot, seed)

    def act(self, obs: np.ndarray, sims: Sequence[Any]) -> np.ndarray:
        out = np.empty(obs.shape[:2], np.int32)
        for s, rng in enumerate(self.rngs):
            out[s] = rng.integers(0, self._primary, self._agents)
            if self._vibe:
                vibe = rng.random(self._agents) < self._p
                out[s] = np.where(vibe, self._primary + rng.integers(0, self._vibe, self._agents), out[s])
        return out


class NoopActor:
    def __init__(self, noop_index: int):
        self._noop = noop_index

    def start(self, slot: int, seed: int, simulation: Any) -> None:
        pass

    def act(self, obs: np.ndarray, sims: Sequence[Any]) -> np.ndarray:
        return np.full(obs.shape[:2], self._noop, np.int32)


class BaselineActor(_SlotRngs):
    def __init__(self, pei: Any, slots: int, agents: int):
        from daf_hydra.policies.baseline import BaselineBrain

        super().__init__(slots)
        self._agents = agents
        self._brain = BaselineBrain(pei, slots * agents)

    def start(self, slot: int, seed: int, simulation: Any) -> None:
        super().start(slot, seed)
        self._brain.reset_rows(slice(slot * self._agents, (slot + 1) * self._agents))

    def act(self, obs: np.ndarray, sims: Sequence[Any]) -> np.ndarray:
        draws = np.concatenate([rng.random(self._agents) for rng in self.rngs])
        flat = obs.reshape(-1, *obs.shape[2:])
        return self._brain.act(flat, draws).reshape(obs.shape[:2])


class NetworkActor(_SlotRngs):
    """One `forward_eval` over all agents of all slots; LSTM state kept per agent row, zeroed at episode start and
    carried through the episode: the rule daf_hydra's training uses too (daf_hydra.recurrent_state).
    Sampling is Gumbel-max with per-episode noise: the same distribution as `Categorical(logits).sample()`. The
    noise is drawn `NOISE_BLOCK` steps at a time: the same numbers, in the same order, as one draw per step."""

    def __init__(self, network: Any, slots: int, agents: int, recurrent: bool, deterministic: bool, device: str):
        import torch

        super().__init__(slots)
        self._torch = torch
        self._net = network.eval()
        self._agents = agents
        self._device = device
        self._deterministic = deterministic
        self._state: dict[str, Any] | None = None
        self._noise: np.ndarray | None = None  # (slots, NOISE_BLOCK, agents, actions), sized at the first step
        self._noise_at = np.full(slots, NOISE_BLOCK)  # each slot's next step in its block; NOISE_BLOCK: draw anew
        if recurrent:
            hidden = int(network.hidden_size)
            rows = slots * agents
            self._state = {
                "lstm_h": torch.zeros(rows, 1, hidden, device=device),
                "lstm_c": torch.zeros(rows, 1, hidden, device=device),
            }

    def start(self, slot: int, seed: int, simulation: Any) -> None:
        super().start(slot, seed)
        self._noise_at[slot] = NOISE_BLOCK
        if self._state is not None:
            rows = slice(slot * self._agents, (slot + 1) * self._agents)
            with self._torch.inference_mode():  # the state is an inference tensor once a step has run
                for key in ("lstm_h", "lstm_c"):
                    self._state[key][rows] = 0

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """obs (slots, agents, tokens, 3) -> logits (slots, agents, actions); advances the memory one step."""
        torch = self._torch
        flat = torch.from_numpy(obs.reshape(-1, *obs.shape[2:])).to(self._device)
        with torch.inference_mode():
            state = self._state if self._state is not None else {}
            logits, _ = self._net.forward_eval(flat, state)
            if self._state is not None:  # some networks return new tensors instead of writing in place
                self._state = {k: state[k] for k in ("lstm_h", "lstm_c")}
            return logits.float().cpu().numpy().reshape(obs.shape[0], self._agents, -1)

    def act(self, obs: np.ndarray, sims: Sequence[Any]) -> np.ndarray:
        logits = self.logits(obs)
        if self._deterministic:
            return logits.argmax(-1).astype(np.int32)
        if self._noise is None:
            self._noise = np.empty((len(self.rngs), NOISE_BLOCK, *logits.shape[1:]))
        for slot in np.flatnonzero(self._noise_at == NOISE_BLOCK):
            self._noise[slot] = self.rngs[slot].gumbel(size=self._noise.shape[1:])
            self._noise_at[slot] = 0
        noise = self._noise[np.arange(len(self.rngs)), self._noise_at]
        self._noise_at += 1
        return (logits + noise).argmax(-1).astype(np.int32)


class StepBatchActor:
    """A `MultiAgentPolicy` per slot (its own memory), stepped through its `step_batch` on the raw buffer."""

    def __init__(self, make_policy: Any, slots: int):
        self._make = make_policy
        self._policies: list[Any] = [None] * slots

    def start(self, slot: int, seed: int, simulation: Any) -> None:
        self._policies[slot] = self._make(seed)

    def act(self, obs: np.ndarray, sims: Sequence[Any]) -> np.ndarray:
        out = np.zeros(obs.shape[:2], np.int32)
        for s, policy in enumerate(self._policies):
            if policy is not None and sims[s] is not None:
                policy.step_batch(obs[s], out[s])
        return out


class AgentPolicyActor:
    """mettagrid's own per-agent path, for policies that offer nothing faster."""

    def __init__(self, make_policy: Any, slots: int, action_ids: dict[str, int]):
        self._make = make_policy
        self._agents: list[list[Any] | None] = [None] * slots
        self._action_ids = action_ids

    def start(self, slot: int, seed: int, simulation: Any) -> None:
        policy = self._make(seed)
        agents = [policy.agent_policy(i) for i in range(simulation.num_agents)]
        for agent in agents:
            agent.reset(simulation) if _takes_simulation(agent) else agent.reset()
        self._agents[slot] = agents

    def act(self, obs: np.ndarray, sims: Sequence[Any]) -> np.ndarray:
        out = np.zeros(obs.shape[:2], np.int32)
        for s, agents in enumerate(self._agents):
            if agents is None or sims[s] is None:
                continue
            for i, agent in enumerate(agents):
                action = agent.step(sims[s].agent(i).observation)
                out[s, i] = self._action_ids[action.name]
        return out


def _takes_simulation(agent: Any) -> bool:
    import inspect

    try:
        return len(inspect.signature(agent.reset).parameters) >= 1
    except (TypeError, ValueError):
        return False


def make_actor(policy: Any, make_policy: Any, pei: Any, slots: int, deterministic: bool, device: str) -> Actor:
    """Pick the fastest faithful actor for a loaded policy (see the module docstring)."""
    from mettagrid.policy.noop import NoopPolicy
    from mettagrid.policy.policy import MultiAgentPolicy
    from mettagrid.policy.random_agent import RandomMultiAgentPolicy

    from daf_hydra.policies.baseline import BaselinePolicy

    agents = pei.num_agents
    names = list(pei.action_names)
    if type(policy) is RandomMultiAgentPolicy:
        return RandomActor(slots, agents, len(names), len(pei.vibe_action_names), policy._vibe_action_p)
    if type(policy) is NoopPolicy:
        return NoopActor(names.index("noop"))
    if type(policy) is BaselinePolicy:
        return BaselineActor(pei, slots, agents)
    network = policy.network()
    if network is not None and hasattr(network, "forward_eval"):
        recurrent = bool(getattr(policy, "is_recurrent", lambda: False)())
        return NetworkActor(network.to(device), slots, agents, recurrent, deterministic, device)
    if type(policy).step_batch is not MultiAgentPolicy.step_batch:
        return StepBatchActor(make_policy, slots)
    return AgentPolicyActor(make_policy, slots, {name: i for i, name in enumerate(names)})
