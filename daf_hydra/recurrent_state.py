"""One rule for recurrent state, in training as in evaluation: an agent's LSTM state runs through its whole episode
and is zeroed only when a new episode begins.

PufferLib's PuffeRL zeroes the state at the start of every rollout segment (`bptt_horizon` steps) and never at an
episode's end, while the evaluator carries it through each episode: a trained policy was evaluated with a memory
it never had in training. `CarriedState` gives PuffeRL CleanRL's rule instead (LSTM PPO): the rollout carries each
agent's state across segments, zeroes it after the agent's episode ends, and stores every segment's initial state
and the steps where an episode began; the PPO update unrolls each segment from exactly that state with exactly
those resets (`TokenNet.forward`), so the update's network computes what the acting network computed.

Used for networks that declare `carries_state` (daf_hydra's `lstm`); other recurrent networks keep PuffeRL's rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn


class IndexedBuffer:
    """PuffeRL's observation buffer, remembering which segments the last minibatch read (PuffeRL draws them inside
    its update and passes only their observations to the network)."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self.last_index: Any = None

    def __getitem__(self, key: Any) -> torch.Tensor:
        self.last_index = key
        return self.tensor[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.tensor[key] = value


class FromSegmentStart(nn.Module):
    """What PuffeRL's update calls as its policy: the network's `forward`, handed the initial state and resets of
    the segments in the minibatch."""

    def __init__(self, model: nn.Module, memory: "CarriedState"):
        super().__init__()
        self.model = model
        self._memory = [memory]  # a list: not a submodule

    def forward(self, observations: torch.Tensor, state: dict[str, Any]) -> Any:
        memory = self._memory[0]
        idx = memory.observations.last_index
        state = {**state, "lstm_h": memory.segment_h[idx], "lstm_c": memory.segment_c[idx],
                 "resets": memory.resets[idx]}
        return self.model(observations, state)

    def forward_eval(self, observations: torch.Tensor, state: dict[str, Any]) -> Any:
        return self.model.forward_eval(observations, state)


class CarriedState:
    """The state of every agent across rollouts, and what each stored segment started from."""

    def __init__(self, trainer: Any, hidden_size: int):
        device = trainer.config["device"]
        agents, segments, horizon = trainer.total_agents, trainer.segments, trainer.config["bptt_horizon"]
        self.h = torch.zeros(agents, hidden_size, device=device)
        self.c = torch.zeros(agents, hidden_size, device=device)
        self.new_episode = torch.zeros(agents, dtype=torch.bool, device=device)  # its state was just zeroed
        self.segment_h = torch.zeros(segments, hidden_size, device=device)
        self.segment_c = torch.zeros(segments, hidden_size, device=device)
        self.resets = torch.zeros(segments, horizon, dtype=torch.bool, device=device)
        self.observations = IndexedBuffer(trainer.observations)

    def install(self, trainer: Any) -> None:
        """Route PuffeRL's update through `FromSegmentStart` (its optimizer already holds the same parameters)."""
        trainer.observations = self.observations
        trainer.policy = FromSegmentStart(trainer.policy, self)

    def evaluate(self, trainer: Any) -> dict[str, list[Any]]:
        """PuffeRL's `evaluate` (collect one batch of segments), with the state carried instead of zeroed."""
        import pufferlib
        import pufferlib.pytorch

        config, device = trainer.config, trainer.config["device"]
        horizon = config["bptt_horizon"]
        trainer.full_rows = 0
        while trainer.full_rows < trainer.segments:
            o, r, d, t, _, info, env_id, mask = trainer.vecenv.recv()
            env_id = slice(env_id[0], env_id[-1] + 1)
            trainer.global_step += int(mask.sum())
            o = torch.as_tensor(o)
            o_device = o.to(device)
            r = torch.as_tensor(r).to(device)
            ended = torch.as_tensor(np.logical_or(d, t)).to(device)
            d = torch.as_tensor(d).to(device)
            l = int(trainer.ep_lengths[env_id.start].item())
            rows = slice(int(trainer.ep_indices[env_id.start].item()),
                         1 + int(trainer.ep_indices[env_id.stop - 1].item()))
            if l == 0:  # a segment starts here: remember where its agents' memory stood
                self.segment_h[rows], self.segment_c[rows] = self.h[env_id], self.c[env_id]
            self.resets[rows, l] = self.new_episode[env_id]
            with torch.no_grad(), trainer.amp_context:
                state = {"reward": r, "done": d, "env_id": env_id, "mask": mask,
                         "lstm_h": self.h[env_id], "lstm_c": self.c[env_id]}
                logits, value = trainer.policy.forward_eval(o_device, state)
                action, logprob, _ = pufferlib.pytorch.sample_logits(logits)
                r = torch.clamp(r, -1, 1)
            with torch.no_grad():
                keep = (~ended).to(self.h.dtype).unsqueeze(1)  # an ended episode's agents start the next from zero
                self.h[env_id] = state["lstm_h"].reshape(-1, self.h.shape[1]) * keep
                self.c[env_id] = state["lstm_c"].reshape(-1, self.c.shape[1]) * keep
                self.new_episode[env_id] = ended
                self.observations.tensor[rows, l] = o if config["cpu_offload"] else o_device
                trainer.actions[rows, l] = action
                trainer.logprobs[rows, l] = logprob
                trainer.rewards[rows, l] = r
                trainer.terminals[rows, l] = d.float()
                trainer.values[rows, l] = value.flatten()
                trainer.ep_lengths[env_id] += 1
                if l + 1 >= horizon:
                    full = env_id.stop - env_id.start
                    trainer.ep_indices[env_id] = trainer.free_idx + torch.arange(full, device=device).int()
                    trainer.ep_lengths[env_id] = 0
                    trainer.free_idx += full
                    trainer.full_rows += full
            for i in info:
                for k, v in pufferlib.unroll_nested_dict(i):
                    if isinstance(v, np.ndarray):
                        v = v.tolist()
                    if isinstance(v, (list, tuple)):
                        trainer.stats[k].extend(v)
                    else:
                        trainer.stats[k].append(v)
            trainer.vecenv.send(action.cpu().numpy())
        trainer.free_idx = trainer.total_agents
        trainer.ep_indices = torch.arange(trainer.total_agents, device=device, dtype=torch.int32)
        trainer.ep_lengths.zero_()
        return trainer.stats
