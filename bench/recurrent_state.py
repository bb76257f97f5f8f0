"""One checkpoint, two memory rules: LSTM state carried through each episode vs reset every `--horizon` steps.

    .venv/bin/python bench/recurrent_state.py CHECKPOINT_BUNDLE [--mission training_facility_1] [--episodes 50]
                                              [--horizon 16]

Why: PufferLib's PuffeRL zeroes the LSTM state at the start of every rollout segment (bptt_horizon steps), while
the evaluator carries it through the whole episode. A policy trained under one rule and evaluated under the other
meets a memory it never had in training; this bench shows how much that changes its score. Both rules play the
same seeds (0..episodes-1) with the same per-episode sampling noise; prints both means with t-based 95% intervals
and the paired difference (carried - reset).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from daf_hydra.compose import load_mission
from daf_hydra.evaluation import LoadedPolicy, play
from daf_hydra.missions import build_env
from daf_hydra.policies import loading
from daf_hydra.policies.actors import NetworkActor


class _ResetEvery(LoadedPolicy):
    """The checkpoint, played with its LSTM state zeroed every `horizon` steps of each episode."""

    def __init__(self, label: str, resolved: loading.ResolvedPolicy, horizon: int):
        super().__init__(label, resolved, "cpu")
        self.horizon = horizon

    def actor(self, pei: Any, slots: int, deterministic: bool, build_seed: int) -> Any:
        actor = super().actor(pei, slots, deterministic, build_seed)
        assert isinstance(actor, NetworkActor) and actor._state is not None, "a recurrent network policy is needed"
        steps = np.zeros(slots, int)
        act, start = actor.act, actor.start

        def start_slot(slot: int, seed: int, simulation: Any) -> None:
            steps[slot] = 0
            start(slot, seed, simulation)

        def act_reset(obs: np.ndarray, sims: Any) -> np.ndarray:
            for slot in np.flatnonzero(steps % self.horizon == 0):
                rows = slice(slot * pei.num_agents, (slot + 1) * pei.num_agents)
                for key in ("lstm_h", "lstm_c"):
                    actor._state[key][rows] = 0
            steps[:] += 1
            return act(obs, sims)

        actor.act, actor.start = act_reset, start_slot
        return actor


def _mean_ci(x: np.ndarray) -> str:
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return f"{x.mean():7.2f} [{x.mean() - half:.2f}, {x.mean() + half:.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="a checkpoint bundle directory (checkpoints/update_NNNNNN)")
    ap.add_argument("--mission", default="training_facility_1")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--horizon", type=int, default=16, help="the training run's bptt_horizon")
    args = ap.parse_args()
    env_cfg = build_env(load_mission(args.mission))
    resolved = loading.resolve(str(args.checkpoint))
    seeds = list(range(args.episodes))
    rewards = {}
    for name, player in (("carried", LoadedPolicy("carried", resolved, "cpu")),
                         (f"reset every {args.horizon}", _ResetEvery("reset", resolved, args.horizon))):
        records = play(env_cfg, player, seeds, num_envs=8, progress=False)
        rewards[name] = np.array([r["total_reward"] for r in records])
    print(f"{args.checkpoint} on {args.mission}, seeds 0-{args.episodes - 1}, mean reward per episode, 95% t CI:")
    for name, x in rewards.items():
        print(f"  state {name:16s} {_mean_ci(x)}")
    a, b = rewards.values()
    print(f"  paired difference (carried - reset) {_mean_ci(a - b)}")


if __name__ == "__main__":
    sys.exit(main())
