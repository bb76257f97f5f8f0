"""Batched evaluation plays every episode exactly as if it were played alone, and the fast paths that make it
fast compute what the network defines.

Real episodes of a real mission (shortened to 60 steps). The networks are untrained (built under a seed): `lstm`
with its action head sharpened (x1000), so that its memory shows in its actions (as in tests/test_recurrent_state.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from daf_hydra.compose import load_mission
from daf_hydra.evaluation import LoadedPolicy, play
from daf_hydra.missions import build_env
from daf_hydra.policies import loading

SEEDS = list(range(7))


def _env() -> Any:
    env_cfg = build_env(load_mission("training_facility_1"))
    env_cfg.game.max_steps = 60
    return env_cfg


class _ActionLog:
    """A player whose actor notes, per episode seed, the actions it chose at every step."""

    def __init__(self, name: str, data_path: str | None):
        self.inner = LoadedPolicy(name, loading.resolve(name, data_path), "cpu")
        self.label = name
        self.actions: dict[int, list[np.ndarray]] = {}

    def actor(self, pei: Any, slots: int, deterministic: bool, build_seed: int) -> Any:
        inner, log, seed_of = self.inner.actor(pei, slots, deterministic, build_seed), self.actions, {}

        class Logged:
            def start(self, slot: int, seed: int, simulation: Any) -> None:
                seed_of[slot] = seed
                log[seed] = []
                inner.start(slot, seed, simulation)

            def act(self, obs: np.ndarray, sims: Any) -> np.ndarray:
                actions = inner.act(obs, sims)
                for slot, sim in enumerate(sims):
                    if sim is not None:
                        log[seed_of[slot]].append(actions[slot].copy())
                return actions

        return Logged()


def _sharp_lstm(tmp_path: Path) -> str:
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.policies.networks import TokenLSTMPolicy

    torch.manual_seed(0)
    net = TokenLSTMPolicy(PolicyEnvInterface.from_mg_cfg(_env())).network()
    with torch.no_grad():
        net.action_head.weight.mul_(1000)
    torch.save(net.state_dict(), tmp_path / "sharp.pt")
    return str(tmp_path / "sharp.pt")


@pytest.mark.parametrize("name", ["lstm", "mettagrid_lstm"])
def test_an_episode_plays_the_same_alone_or_batched_with_others(name, tmp_path):
    """Same seeds alone (num_envs=1), 4 and 3 at a time (episodes then share batches with different neighbours and
    start in mid-batch): the same actions at every step and the same records. Sampling is stochastic, so a memory,
    noise stream or token encoding leaking between batch rows would change them."""
    env_cfg = _env()
    runs = {}
    for num_envs in (1, 4, 3):
        player = _ActionLog(name, _sharp_lstm(tmp_path) if name == "lstm" else None)
        records = play(env_cfg, player, SEEDS, num_envs, progress=False)
        runs[num_envs] = (player.actions, [{k: v for k, v in r.items() if k != "wall_time_s"} for r in records])
    alone_actions, alone_records = runs[1]
    assert [len(alone_actions[s]) for s in SEEDS] == [60] * len(SEEDS)
    assert len({tuple(np.concatenate(alone_actions[s])) for s in SEEDS}) == len(SEEDS)  # episodes do differ
    for num_envs in (4, 3):
        actions, records = runs[num_envs]
        for seed in SEEDS:
            assert np.array_equal(np.stack(actions[seed]), np.stack(alone_actions[seed])), (num_envs, seed)
        assert records == alone_records


def _encoder_and_observations() -> tuple[Any, Any, torch.Tensor]:
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface
    from mettagrid.simulator.simulator import Simulation

    from daf_hydra.evaluation import seeded_env
    from daf_hydra.policies.networks import TokenLSTMPolicy

    env_cfg = _env()
    pei = PolicyEnvInterface.from_mg_cfg(env_cfg)
    torch.manual_seed(0)
    encoder = TokenLSTMPolicy(pei).network().encoder
    rng = np.random.default_rng(0)
    seen = []
    for seed in range(3):
        sim = Simulation(seeded_env(env_cfg, seed), seed)
        for _ in range(30):
            sim._c_sim.actions()[:] = rng.integers(0, len(pei.action_names), pei.num_agents)
            sim.step()
            seen.append(np.array(sim._c_sim.observations()))
        sim.close()
    obs = torch.from_numpy(np.concatenate(seen))
    # and tokens no mission writes: unknown features and tags, off-window and global cells, a token after a gap
    odd = torch.full((4, *obs.shape[1:]), 255, dtype=torch.uint8)
    odd[:, :60] = torch.from_numpy(rng.integers(0, 256, (4, 60, 3), dtype=np.uint8))
    odd[:, 70] = torch.tensor([0xFE, encoder.tag_fid, 1], dtype=torch.uint8)
    return encoder, pei, torch.cat([obs, odd])


def _defining_encoder(encoder: Any, pei: Any, tokens: torch.Tensor) -> torch.Tensor:
    """The encoding as TokenEncoder's docstring defines it, in per-token arithmetic with EmbeddingBag skipping the
    padding row (the implementation before the lookup tables), for a network of the mission's own vocabulary."""
    features = {f.id: f for f in pei.obs_features}
    feature_index, scale = torch.full((256,), -1), torch.ones(256)
    for fid, f in features.items():
        feature_index[fid] = sorted(features.values(), key=lambda f: f.id).index(f)
        scale[fid] = 1.0 / float(f.normalization or 1.0)
    tag_index = torch.full((256,), -1)
    tag_index[: len(pei.tags)] = torch.arange(len(pei.tags))
    loc, fid, val = tokens.long().unbind(-1)
    row, col = loc >> 4, loc & 0xF
    feature, tag = feature_index[fid], tag_index[val]
    is_tag = fid == encoder.tag_fid
    known = torch.where(is_tag, tag >= 0, feature >= 0)
    spatial = (loc < 0xFE) & (row < encoder.rows) & (col < encoder.cols) & known
    glob = (loc == 0xFE) & known & ~is_tag
    channel = torch.where(is_tag, encoder.num_features + tag, feature)
    index = torch.where(spatial, (row * encoder.cols + col) * encoder.channels + channel,
                        torch.where(glob, encoder.grid_rows + feature.clamp(min=0), encoder.pad))
    weight = torch.where(is_tag, 1.0, val.float() * scale[fid])
    embedded = encoder.embed(index, per_sample_weights=torch.where(spatial | glob, weight, 0.0))
    return torch.relu(encoder.mlp(torch.relu(embedded + encoder.bias)))


def test_the_token_encoder_computes_its_definition_on_every_device():
    """The lookup tables give what the per-token arithmetic defines (to float rounding), the numpy lookup used on
    the CPU equals the torch one used elsewhere bit for bit, and unread tokens get no gradient (their zero row
    stays zero through training)."""
    encoder, pei, obs = _encoder_and_observations()
    with torch.no_grad():
        assert torch.allclose(encoder(obs), _defining_encoder(encoder, pei, obs), atol=1e-5)
    for batch in (obs, obs[:1], obs[-4:], torch.full((2, *obs.shape[1:]), 255, dtype=torch.uint8)):
        for from_numpy, from_torch in zip(encoder._lookup_numpy(batch), encoder._lookup(batch)):
            assert torch.equal(from_numpy, from_torch)
    encoder(obs).sum().backward()
    assert encoder.embed.weight.grad[encoder.pad].abs().max() == 0
    assert encoder.embed.weight.grad.abs().max() > 0


def test_a_long_evaluation_off_a_terminal_says_how_far_it_got(monkeypatch, capsys):
    """In a log file or a SLURM job's output (no terminal, no bar) a line says `k of n` every PROGRESS_EVERY_S
    seconds (0 here, so every episode but the last); with progress=False nothing is said."""
    from daf_hydra import evaluation

    monkeypatch.setattr(evaluation, "PROGRESS_EVERY_S", 0.0)
    policy = LoadedPolicy("baseline", loading.resolve("baseline"), "cpu")
    play(_env(), policy, [0, 1, 2], 1)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("episodes ")]
    assert [line.split(" (")[0] for line in lines] == ["episodes baseline: 1 of 3", "episodes baseline: 2 of 3"]
    play(_env(), policy, [0, 1, 2], 1, progress=False)
    assert "episodes " not in capsys.readouterr().err
