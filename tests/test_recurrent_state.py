"""One rule for recurrent state (daf_hydra.recurrent_state): training's rollout, training's update and evaluation
all run an agent's LSTM state through its whole episode and zero it only when a new episode begins.

Real PuffeRL trainings on a real mission shortened to 40 steps, so that episodes end inside rollout segments
(bptt 16) and states cross segment boundaries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from daf_hydra.compose import compose_config
from daf_hydra.records import read_jsonl
from daf_hydra.runs import missions_of, start_run

EPISODE = 40
SHORT = ["policy=lstm", "policy.kwargs.hidden_size=32", "mission=training_facility_1", f"mission.max_steps={EPISODE}",
         "training.num_envs=2", "training.bptt_horizon=16", "training.minibatch_size=64", "training.update_epochs=2",
         "device=cpu"]
AGENTS = 2 * 4


class _Recorder(nn.Module):
    """The network as PuffeRL sees it, noting every rollout step: observations, logits, and which agents' episodes
    ended at that step."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.hidden_size, self.steps = net, net.hidden_size, []
        with torch.no_grad():  # a sharper initial policy (its head starts near uniform): memory shows in its actions
            net.action_head.weight.mul_(100)

    def forward(self, obs, state=None):
        return self.net(obs, state)

    def forward_eval(self, obs, state):
        logits, value = self.net.forward_eval(obs, state)
        self.steps.append((obs.clone(), logits.detach().clone(), state["done"].clone()))
        return logits, value


def _train(tmp_path: Path, overrides: list[str], updates: int) -> tuple[_Recorder, Path]:
    from daf_hydra.training import train

    cfg = compose_config([*SHORT, f"training.total_steps={updates * AGENTS * 16}", *overrides], output_dir=tmp_path)
    recorder, _ = start_run(cfg, tmp_path, "train")
    missions, _ = missions_of(cfg)
    box: list[_Recorder] = []
    train(cfg, missions, tmp_path, recorder, wrap_network=lambda net: box.append(_Recorder(net)) or box[0])
    return box[0], tmp_path


def _replay_through_evaluator(rec: _Recorder) -> np.ndarray:
    """The recorded rollout's observations through the evaluator's actor (daf_hydra.policies.actors), one slot per
    environment, a slot's episode restarted where the environment's episode ended: its logits at every step."""
    from daf_hydra.policies.actors import NetworkActor

    actor = NetworkActor(rec.net, slots=2, agents=4, recurrent=True, deterministic=True, device="cpu")
    out, ended = [], torch.ones(AGENTS, dtype=torch.bool)
    for obs, _, done in rec.steps:
        for slot in range(2):
            if ended[4 * slot]:  # this environment's episode ended at the previous step: a new one begins
                actor.start(slot, 0, None)
        ended = done.bool()
        out.append(actor.logits(obs.numpy().reshape(2, 4, *obs.shape[1:])).reshape(AGENTS, -1))
    return np.stack(out)


@pytest.mark.slow
def test_training_rollout_acts_with_the_memory_evaluation_gives(tmp_path):
    """Same observations, same weights: training's rollout and the evaluator give the same logits at every step of
    several episodes (here 3 x 40 steps, 7 segment boundaries). PuffeRL's own rule (zero every 16 steps) or an
    evaluator that never resets would differ from the 17th step on."""
    # weights stay fixed; environments in this process, so each recorded step holds both environments' agents
    rec, _ = _train(tmp_path, ["lr=1e-30", "training.anneal_lr=false", "training.vec_workers=0"], updates=8)
    rec.steps = rec.steps[: 3 * EPISODE]
    rollout = np.stack([logits.numpy() for _, logits, _ in rec.steps])
    assert sum(bool(done.any()) for _, _, done in rec.steps) >= 2  # episodes did end inside the recording
    evaluator = _replay_through_evaluator(rec)
    gap = np.abs(rollout - evaluator).max(axis=(1, 2))
    print(f"max |logit difference| per step: {gap.max():.2e}")
    assert gap.max() < 1e-5, np.flatnonzero(gap > 1e-5)[:10]
    # the rule matters for this network: with the state zeroed every 16 steps the logits really differ
    with torch.no_grad():
        fresh_at_16 = rec.net.forward(torch.stack([o for o, _, _ in rec.steps[16:32]], 1), None)[0]
    fresh_at_16 = fresh_at_16.reshape(AGENTS, 16, -1).transpose(0, 1).numpy()
    assert np.abs(fresh_at_16 - rollout[16:32]).max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_the_update_sees_the_policy_that_acted(tmp_path, workers):
    """With weights fixed, PPO's update recomputes exactly the rollout's action probabilities (importance ratio 1,
    KL 0, nothing clipped): its unroll starts each segment from the carried state and resets where episodes began.
    With 2 workers the two environments are stepped in alternation (each rollout step holds one of them)."""
    _, out = _train(tmp_path, ["lr=1e-30", "training.anneal_lr=false", f"training.vec_workers={workers}"],
                    updates=8)
    curve = read_jsonl(out / "curve.jsonl")
    assert len(curve) == 8
    for record in curve:
        assert abs(record["approx_kl"]) < 1e-7 and record["clipfrac"] == 0.0, record
        assert record["importance"] == pytest.approx(1.0, abs=1e-6)


def test_segment_unroll_equals_step_by_step_memory():
    """TokenNet.forward over a segment (initial state, resets) equals forward_eval stepped with the carried state."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.compose import load_mission
    from daf_hydra.missions import build_env
    from daf_hydra.policies.networks import TokenLSTMPolicy

    torch.manual_seed(0)
    pei = PolicyEnvInterface.from_mg_cfg(build_env(load_mission("training_facility_1")))
    net = TokenLSTMPolicy(pei, hidden_size=16).network()
    obs = torch.full((3, 10, *pei.observation_shape), 255, dtype=torch.uint8)
    obs[..., :30, 0] = torch.randint(0, 160, (3, 10, 30), dtype=torch.uint8)
    obs[..., :30, 1] = torch.randint(0, 8, (3, 10, 30), dtype=torch.uint8)
    obs[..., :30, 2] = torch.randint(0, 4, (3, 10, 30), dtype=torch.uint8)
    h0, c0 = torch.randn(3, 16), torch.randn(3, 16)
    resets = torch.zeros(3, 10, dtype=torch.bool)
    resets[0, 4] = resets[2, 7] = True
    with torch.no_grad():
        logits, _ = net.forward(obs, {"lstm_h": h0, "lstm_c": c0, "resets": resets})
        state, stepped = {"lstm_h": h0.clone(), "lstm_c": c0.clone()}, []
        for t in range(10):
            keep = (~resets[:, t]).float().unsqueeze(1)
            state = {k: v * keep for k, v in state.items()}
            stepped.append(net.forward_eval(obs[:, t], state)[0])
    assert torch.allclose(logits.reshape(3, 10, -1), torch.stack(stepped, 1), atol=1e-6)
