"""Evaluation speed: daf_hydra's batched evaluator vs mettagrid's `run_multi_episode_rollout`.

Same mission, policy and number of episodes through both; prints env steps/s of each and the ratio.
    .venv/bin/python bench/eval_throughput.py [--episodes 8] [--mission training_facility_1]
"""

from __future__ import annotations

import argparse
import time

import torch

from daf_hydra.compose import load_mission
from daf_hydra.evaluation import LoadedPolicy, play, seed_everything
from daf_hydra.missions import build_env
from daf_hydra.policies import loading


def daf_sps(env_cfg, name: str, episodes: int, num_envs: int) -> float:
    policy = LoadedPolicy(name, loading.resolve(name), "cpu")
    start = time.perf_counter()
    records = play(env_cfg, policy, list(range(episodes)), num_envs, progress=False)
    return sum(r["steps"] for r in records) / (time.perf_counter() - start)


def mettagrid_sps(env_cfg, name: str, episodes: int) -> float:
    from mettagrid.policy.policy import PolicySpec
    from mettagrid.runner.rollout import run_multi_episode_rollout

    seed_everything(0)
    start = time.perf_counter()
    result, _ = run_multi_episode_rollout(
        policy_specs=[PolicySpec(class_path=loading.resolve(name).class_path)],
        assignments=[0] * env_cfg.game.num_agents, env_cfg=env_cfg, episodes=episodes, seed=0,
        max_action_time_ms=100_000, device="cpu",
    )
    return sum(e.steps for e in result.episodes) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mission", default="training_facility_1")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--num-envs", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)  # both paths on one thread: a fair comparison on a shared 2-core machine
    env_cfg = build_env(load_mission(args.mission))
    print(f"mission {args.mission} ({env_cfg.game.num_agents} agents, {env_cfg.game.max_steps} steps), "
          f"{args.episodes} episodes each")
    print(f"{'policy':10s} {'daf_hydra':>12s} {'mettagrid':>12s} {'ratio':>7s}")
    for name in ("mettagrid_lstm", "random"):
        ours = daf_sps(env_cfg, name, args.episodes, args.num_envs)
        theirs = mettagrid_sps(env_cfg, name, args.episodes)
        print(f"{name:10s} {ours:10.0f}/s {theirs:10.0f}/s {ours / theirs:6.1f}x", flush=True)


if __name__ == "__main__":
    main()
