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


# --- one meaning per policy name (issue 15) ---------------------------------------------------------------------

TINY_TRAIN = ["pipeline=train", "mission=training_facility_1", "mission.max_steps=40", "training.num_envs=4",
              "training.bptt_horizon=8", "training.minibatch_size=128", "training.update_epochs=1",
              "training.total_steps=256", "evaluation.episodes=1"]
TINY_EVAL = ["pipeline=evaluate", "mission=training_facility_1", "mission.max_steps=40", "evaluation.episodes=2"]


def _pei():
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.compose import load_mission
    from daf_hydra.missions import build_env

    return PolicyEnvInterface.from_mg_cfg(build_env(load_mission("training_facility_1")))


def test_every_policy_option_is_listed_once_with_its_class_and_whether_it_trains():
    """conf/policy, the catalog (what pipeline=check prints), and what each class really is agree."""
    from daf_hydra.config import group_options

    assert sorted(group_options("policy")) == sorted(loading.BUILTIN_POLICIES)
    pei = _pei()
    for info in loading.POLICIES:
        cfg = compose_config([f"policy={info.name}"])
        assert loading.resolve(cfg.policy.class_path).class_path == info.class_path
        policy = loading.instantiate(loading.resolve(info.name), pei)
        assert (policy.network() is not None) == info.trainable, info.name
    assert loading.resolve("lstm").class_path.endswith("TokenLSTMPolicy")  # ours: the one that learns here
    assert loading.resolve("mettagrid_lstm").class_path == "mettagrid.policy.lstm.LSTMPolicy"


def test_readme_config_reference_and_check_list_the_same_policies(cli):
    from conftest import ROOT

    rows = [p.row() for p in loading.POLICIES]
    for doc in ("README.md", "docs/config-reference.md"):
        text = (ROOT / doc).read_text()
        assert "\n".join([loading.POLICY_TABLE_HEADER, *rows]) in text, doc
    r = cli("pipeline=check", "hydra.run.dir=check", timeout=300)
    assert r.returncode == 0, r.stderr
    listed = r.stdout.split("Policies")[1].split("Checks:")[0].splitlines()[1:]
    assert [line.split()[:3] for line in listed] == [[p.name, p.kind, f"{p.class_path}:"] for p in loading.POLICIES]


@pytest.mark.parametrize("old,new", [("daf_lstm", "lstm"), ("daf_mlp", "mlp")])
def test_old_names_are_refused_in_one_line_naming_the_new_one(old, new):
    from daf_hydra.run import check_command_line

    for args in ([f"policy={old}"], [f"policy.class_path={old}"]):
        with pytest.raises(DAFError, match=f"policy {old} is now called {new}: use policy={new}"):
            check_command_line([*args, "pipeline=evaluate"]) if args[0].startswith("policy=") else \
                loading.resolve(old)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A real checkpoint bundle of each of our networks, written by a (tiny) real training."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for name in ("lstm", "mlp"):
        r = run_cli(*TINY_TRAIN, f"policy={name}", f"hydra.run.dir={name}", cwd=root, timeout=600)
        assert r.returncode == 0, r.stderr
        out[name] = max((root / name / "checkpoints").glob("update_*"))
    return root, out


def _one_line_error(r) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    return lines[0]


@pytest.mark.slow
def test_a_bundle_loads_under_the_policy_that_trained_it_and_another_policy_is_one_line(bundles):
    from conftest import read_json, run_cli

    root, bundle = bundles
    assert read_json(bundle["lstm"] / loading.POLICY_SPEC_FILENAME)["class_path"].endswith("TokenLSTMPolicy")
    r = run_cli(*TINY_EVAL, "policy=lstm", f"policy.data_path={bundle['lstm']}", "hydra.run.dir=ok", cwd=root)
    assert r.returncode == 0, r.stderr
    assert read_json(root / "ok" / "metrics.json")["episodes"] == 2
    # the weights file inside a bundle is the bundle
    r = run_cli(*TINY_EVAL, "policy=lstm", f"policy.data_path={bundle['lstm'] / 'weights.pt'}", "hydra.run.dir=w",
                cwd=root)
    assert r.returncode == 0, r.stderr
    for asked, held in (("lstm", "mlp"), ("mettagrid_lstm", "lstm"), ("mlp", "lstm")):
        r = run_cli(*TINY_EVAL, f"policy={asked}", f"policy.data_path={bundle[held]}", f"hydra.run.dir=bad-{asked}",
                    cwd=root)
        line = _one_line_error(r)
        assert f"holds a {held} checkpoint" in line and f"the policy is {asked}" in line and f"policy={held}" in line
        assert not (root / f"bad-{asked}" / "metrics.json").exists() or \
            read_json(root / f"bad-{asked}" / "metrics.json").get("status") != "completed"


def test_an_untrained_network_is_marked_in_console_lines_tables_and_its_deployment_package(cli, tmp_path):
    """Compared without weights, `lstm` plays as initialised: every line and table naming it says "(untrained)";
    a trained one (weights given) and a fixed policy are not marked."""
    from conftest import read_json

    r = cli("pipeline=compare", "compare.policies=[lstm,baseline]", "compare.episodes_per_mission=2",
            "mission=solo_forage", "mission.max_steps=30", "compare.missions=[solo_forage]", "hydra.run.dir=cmp",
            timeout=600)
    assert r.returncode == 0, r.stderr
    assert "lstm (untrained)" in r.stdout
    compared = read_json(tmp_path / "cmp" / "metrics.json")
    assert compared["policies"] == ["lstm (untrained)", "baseline"]
    r = cli(*TINY_EVAL, "policy=lstm", "hydra.run.dir=one", timeout=300)
    assert r.returncode == 0 and "lstm (untrained)" in r.stdout, r.stdout + r.stderr

    from daf_hydra.compose import load_mission
    from daf_hydra.deployment import NOTICE_FILE, daf_create_deployment_package

    mission = load_mission("solo_forage")
    package = daf_create_deployment_package("lstm", tmp_path / "dep", mission=mission, config={}, evaluation={})
    assert package.untrained and "untrained network" in (package.directory / NOTICE_FILE).read_text()
    fixed = daf_create_deployment_package("baseline", tmp_path / "dep", mission=mission, config={}, evaluation={})
    assert not fixed.untrained and not (fixed.directory / NOTICE_FILE).exists()
    assert loading.untrained_network("lstm", None) and not loading.untrained_network("lstm", "w.pt")
    assert not loading.untrained_network("random", None)
