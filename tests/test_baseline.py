"""`baseline` separates good play from bad on every mission of the catalog."""

from __future__ import annotations

import numpy as np
import pytest

from daf_hydra import stats
from daf_hydra.compose import compose_config
from daf_hydra.evaluation import LoadedPolicy, play
from daf_hydra.missions import build_env, catalog_names
from daf_hydra.policies import loading


@pytest.mark.slow
@pytest.mark.parametrize("mission", catalog_names())
def test_baseline_beats_random_with_non_overlapping_95_percent_intervals(mission):
    cfg = compose_config([f"mission={mission}"])
    env = build_env(cfg.mission)
    intervals = {}
    for name in ("random", "baseline"):
        episodes = play(env, LoadedPolicy(name, loading.resolve(name), "cpu"), list(range(20)), 8)
        scores = np.array([e["total_reward"] for e in episodes])
        intervals[name] = stats.stratified_bootstrap_ci({mission: scores}, stats.mean, reps=10_000, seed=0)
    assert intervals["random"][1] < intervals["baseline"][0], intervals


def test_baseline_walks_into_a_visible_stocked_extractor():
    """Unit check of the decision rule on a hand-made observation: extractor two cells east, nothing held."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.policies.baseline import BaselineBrain

    cfg = compose_config(["mission=training_facility_1"])
    pei = PolicyEnvInterface.from_mg_cfg(build_env(cfg.mission))
    features = {f.name: f.id for f in pei.obs_features}
    tags = list(pei.tags)
    obs = np.full((1, 500, 3), 255, np.uint8)
    east2 = (6 << 4) | 8
    obs[0, 0] = (east2, features["tag"], tags.index("type:extractor_red"))
    obs[0, 1] = (east2, features["inv:ore_red"], 1)
    brain = BaselineBrain(pei, 1)
    action = brain.act(obs, np.zeros(1))[0]
    assert pei.action_names[action] == "move_east"
    obs[0, 1] = (255, 255, 255)  # an empty extractor shows no stock: not a goal, so the agent explores
    brain.reset_rows(slice(None))
    assert pei.action_names[brain.act(obs, np.zeros(1))[0]] == "move_north"  # first free direction for draw 0
