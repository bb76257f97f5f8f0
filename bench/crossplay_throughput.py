"""Cross-play speed: a mixed team (policy A in half of the agent slots, B in the rest) against a solo evaluation of
its slower member, on the same seeds, through daf_hydra's batched evaluator. The mixed team's actor runs one
forward pass per member per step over the agents that member controls (daf_hydra.teams). Measured on the shared
2-core machine (load ~7, so +-25%): lstm + random 1.21x the solo lstm, lstm + baseline 0.73x, lstm + stateless 0.81x:
a cheap partner costs less than the agents it takes over, two costly members pay each one's fixed cost per step.
    .venv/bin/python bench/crossplay_throughput.py [--episodes 8] [--pairs lstm+random,lstm+stateless]
"""

from __future__ import annotations

import argparse
import time

import torch

from daf_hydra.compose import load_mission
from daf_hydra.crossplay import Composition
from daf_hydra.evaluation import LoadedPolicy, Player, play
from daf_hydra.missions import build_env
from daf_hydra.policies import loading
from daf_hydra.teams import MixedTeam


def sps(env_cfg, player: Player, episodes: int, num_envs: int, repeats: int) -> float:
    """Env steps per CPU second of this process (one torch thread), best of `repeats`: the cost of a step, not
    how busy the other processes on a shared machine kept the cores."""
    best = 0.0
    for _ in range(repeats):
        start = time.process_time()
        records = play(env_cfg, player, list(range(episodes)), num_envs, progress=False)
        best = max(best, sum(r["steps"] for r in records) / (time.process_time() - start))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mission", default="training_facility_1")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pairs", default="lstm+random,lstm+baseline,lstm+stateless")
    args = ap.parse_args()
    torch.set_num_threads(1)
    env_cfg = build_env(load_mission(args.mission))
    n = env_cfg.game.num_agents
    print(f"mission {args.mission} ({n} agents, {env_cfg.game.max_steps} steps), {args.episodes} episodes, "
          f"{args.num_envs} at once, env steps per CPU second, best of {args.repeats}")
    print(f"{'team':28s} {'solo A':>10s} {'solo B':>10s} {'mixed':>10s} {'mixed / slower solo':>20s}")
    for pair in args.pairs.split(","):
        a, b = pair.split("+")
        members = [LoadedPolicy(name, loading.resolve(name), "cpu") for name in (a, b)]
        comp = Composition(a, b, n // 2, n)
        team = MixedTeam(comp.name, members, comp.counts, comp.owners)
        solo = [sps(env_cfg, m, args.episodes, args.num_envs, args.repeats) for m in members]
        mixed = sps(env_cfg, team, args.episodes, args.num_envs, args.repeats)
        print(f"{comp.name:28s} {solo[0]:8.0f}/s {solo[1]:8.0f}/s {mixed:8.0f}/s {mixed / min(solo):19.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
