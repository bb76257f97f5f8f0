"""Evaluation speed: daf_hydra's batched evaluator against the raw environment and mettagrid's rollout.

For each policy, side by side in one run on the same mission and the same episode seeds (0..episodes-1):
- raw env: the same episodes built and stepped by mettagrid's `Simulation` alone, actions drawn at random up
  front, no policy: the most any evaluator can reach on this machine;
- daf_hydra: `daf_hydra.evaluation.play`, `--num-envs` episodes side by side;
- mettagrid: `mettagrid.runner.rollout.run_multi_episode_rollout`, one agent at a time.
Prints env steps/s of each and daf_hydra's ratio to the raw env and to mettagrid's rollout. Everything on one
torch thread, as the evaluator runs. Each daf_hydra run (about a second) is followed by a raw env run; printed
are the medians of `--repeats` such pairs and the median of their ratios: on a shared machine both rates moved by
up to 2.7x from one run to the next (measured), so one run proves nothing. `lstm` is daf_hydra's network
(untrained here: a trained one costs the same).
    .venv/bin/python bench/eval_throughput.py [--episodes 16] [--num-envs 16] [--repeats 5] [--mission ...]
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import numpy as np
import torch

from daf_hydra.compose import load_mission
from daf_hydra.config import EvaluationConfig
from daf_hydra.evaluation import LoadedPolicy, play, seed_everything, seeded_env
from daf_hydra.missions import build_env
from daf_hydra.policies import loading

POLICIES = ("lstm", "mettagrid_lstm", "random")


def raw_sps(env_cfg, episodes: int) -> float:
    """Env steps/s of the episodes built and stepped with no policy (random actions drawn before the clock)."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface
    from mettagrid.simulator.simulator import Buffers, Simulation

    pei = PolicyEnvInterface.from_mg_cfg(env_cfg)
    agents, steps_max = pei.num_agents, env_cfg.game.max_steps
    actions = [np.random.default_rng(seed).integers(0, len(pei.action_names), (steps_max, agents), dtype=np.int32)
               for seed in range(episodes)]
    steps = 0
    start = time.perf_counter()
    for seed in range(episodes):
        buffers = Buffers(
            observations=np.full((agents, *pei.observation_shape), 0xFF, np.uint8),
            terminals=np.zeros(agents, bool), truncations=np.zeros(agents, bool),
            rewards=np.zeros(agents, np.float32), masks=np.ones(agents, bool),
            actions=np.zeros(agents, np.int32), teacher_actions=np.zeros(agents, np.int32),
        )
        sim = Simulation(seeded_env(env_cfg, seed), seed, buffers=buffers)
        while not sim.is_done():
            buffers.actions[:] = actions[seed][sim.current_step]
            sim.step()
        steps += sim.current_step
        sim.close()
    return steps / (time.perf_counter() - start)


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mission", default="training_facility_1")
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--num-envs", type=int, default=EvaluationConfig().num_envs,
                    help="daf_hydra's evaluation.num_envs (default: its default)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)  # all paths on one thread: a fair comparison on a shared 2-core machine
    env_cfg = build_env(load_mission(args.mission))
    print(f"mission {args.mission} ({env_cfg.game.num_agents} agents, {env_cfg.game.max_steps} steps), "
          f"{args.episodes} episodes each, daf_hydra num_envs={args.num_envs}", flush=True)
    print(f"{'policy':15s} {'daf_hydra':>9s} {'raw env':>9s} {'mettagrid':>9s} {'x raw env':>9s} {'x mettagrid':>11s}"
          "  (env steps/s)")
    for name in POLICIES:
        pairs = [(daf_sps(env_cfg, name, args.episodes, args.num_envs), raw_sps(env_cfg, args.episodes))
                 for _ in range(args.repeats)]
        ours, raw = median(p[0] for p in pairs), median(p[1] for p in pairs)
        theirs = mettagrid_sps(env_cfg, name, args.episodes)
        print(f"{name:15s} {ours:9.0f} {raw:9.0f} {theirs:9.0f} {median(d / r for d, r in pairs):8.2f}x "
              f"{ours / theirs:10.1f}x", flush=True)


if __name__ == "__main__":
    main()
