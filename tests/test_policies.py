"""Every documented way to name a policy plays real episodes, and weights load safely."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from daf_hydra.compose import compose_config
from daf_hydra.errors import DAFError
from daf_hydra.runs import evaluate_policy
from daf_hydra.policies import loading

FAST = ["mission=training_facility_1", "mission.max_steps=50", "evaluation.episodes=2", "evaluation.num_envs=2"]


def evaluate(tmp_path, *overrides):
    cfg = compose_config([*FAST, *overrides], output_dir=tmp_path)
    return evaluate_policy(cfg, "cpu")


def test_agent_policy_and_step_batch_class_paths_play_their_own_actions(tmp_path):
    east = evaluate(tmp_path, "policy.class_path=policies_for_tests.AlwaysEast", "policy.name=east")
    north = evaluate(tmp_path, "policy.class_path=policies_for_tests.BatchedNorth", "policy.name=north")
    noop = evaluate(tmp_path, "policy=noop")
    assert east["episodes"] == north["episodes"] == 2
    assert noop["mean_reward"] == 0.0


def test_stateless_evaluates_despite_the_upstream_bug(tmp_path):
    assert evaluate(tmp_path, "policy=stateless")["episodes"] == 2


def _lstm_weights(tmp_path):
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.compose import load_mission
    from daf_hydra.missions import build_env

    pei = PolicyEnvInterface.from_mg_cfg(build_env(load_mission("training_facility_1")))
    policy = loading.instantiate(loading.resolve("mettagrid_lstm"), pei)
    with torch.no_grad():
        for p in policy.network().parameters():
            p.fill_(0.01)
    path = tmp_path / "lstm.pt"
    torch.save(policy.network().state_dict(), path)
    return pei, policy, path


def test_data_path_and_bundle_directory_load_the_same_weights(tmp_path):
    pei, policy, path = _lstm_weights(tmp_path)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "weights.pt").write_bytes(path.read_bytes())
    (bundle / "policy_spec.json").write_text(json.dumps(
        {"class_path": "mettagrid.policy.lstm.LSTMPolicy", "data_path": "weights.pt", "init_kwargs": {}}))
    for resolved in (loading.resolve("mettagrid_lstm", str(path)), loading.resolve(str(bundle)),
                     loading.resolve("mettagrid_lstm", str(bundle))):
        loaded = loading.instantiate(resolved, pei)
        for a, b in zip(policy.network().state_dict().values(), loaded.network().state_dict().values()):
            assert torch.equal(a, b)
    run = evaluate(tmp_path, f"policy.class_path={bundle}", "policy.name=bundled")
    assert run["episodes"] == 2


def test_ddp_prefixed_checkpoints_load(tmp_path):
    pei, policy, path = _lstm_weights(tmp_path)
    prefixed = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in policy.network().state_dict().items()}, prefixed)
    loaded = loading.instantiate(loading.resolve("mettagrid_lstm", str(prefixed)), pei)
    assert all(torch.equal(a, b) for a, b in zip(policy.network().parameters(), loaded.network().parameters()))


def test_a_checkpoint_carrying_code_is_refused(tmp_path):
    pei, _, _ = _lstm_weights(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"obj": subprocess.Popen}, evil)  # needs unpickling of arbitrary objects
    with pytest.raises(DAFError, match="corrupt or not a weights file"):
        loading.instantiate(loading.resolve("mettagrid_lstm", str(evil)), pei)


def test_neural_evaluation_feeds_the_training_encoding(tmp_path):
    """The batched evaluator gives the network the env buffer (rows padded with 255s), as training does."""
    from daf_hydra.policies.actors import NetworkActor

    seen = []

    class Spy(torch.nn.Module):
        def forward_eval(self, x, state):
            seen.append(x.numpy().copy())
            return torch.zeros(x.shape[0], 5), torch.zeros(x.shape[0], 1)

    actor = NetworkActor(Spy(), slots=1, agents=2, recurrent=False, deterministic=True, device="cpu")
    obs = np.full((1, 2, 500, 3), 255, np.uint8)
    obs[0, :, 0] = (102, 7, 1)
    actor.start(0, 0, None)
    actor.act(obs, [None])
    assert (seen[0][:, 1:] == 255).all() and seen[0].shape == (2, 500, 3)


def test_registered_cogames_game_is_a_mission_option(tmp_path):
    code = f"""
import sys
from cogames.core import CoGameMission
from cogames.game import CoGame, register_game
from daf_hydra.compose import load_mission
from daf_hydra.missions import build_env

class Tiny(CoGameMission):
    def make_base_env(self):
        return build_env(load_mission("solo_forage"))

register_game(CoGame("testgame", missions=[Tiny(name="tiny", description="one agent", map_builder=build_env(load_mission("solo_forage")).game.map_builder, max_steps=77)], variants=[]))
sys.argv = ["daf_hydra.run", "pipeline=evaluate", "mission=cogames:testgame.tiny", "evaluation.episodes=2", "hydra.run.dir={tmp_path / 'cg'}"]
from daf_hydra.run import cli
cli()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "cg" / "metrics.json").read_text())
    assert metrics["mission"] == "cogames:testgame.tiny" and metrics["episodes"] == 2
    assert metrics["mean_steps"] == 77
