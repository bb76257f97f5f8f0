"""Play episodes: the one place in daf_hydra where episodes are played.

A policy controls every agent of its own episodes (a comparison never mixes policies inside an episode); only
cross-play plays mixed teams on purpose (`teams.MixedTeam`: each policy steps the agents it controls). Episode
k of a run uses seed+k for its map and for the policy's random stream, so two policies evaluated with the same
seed meet the same maps, and the same config and seed give the same numbers in any process.

`num_envs` episodes run side by side in mettagrid simulations whose observation buffers are slices of one array,
so a neural policy steps all their agents in a single forward pass (see `policies/actors.py`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from daf_hydra import replays
from daf_hydra.policies import loading
from daf_hydra.policies.actors import Actor, make_actor

PROGRESS_EVERY_S = 30.0  # between progress lines of an evaluation off a terminal


@dataclass
class LoadedPolicy:
    """A resolved policy plus a factory for per-episode instances (policies with per-agent state)."""

    label: str
    resolved: loading.ResolvedPolicy
    device: str

    def build(self, pei: Any, seed: int | None = None) -> Any:
        if seed is not None:
            seed_everything(seed)
        return loading.instantiate(self.resolved, pei, self.device)

    def actor(self, pei: Any, slots: int, deterministic: bool, build_seed: int) -> Actor:
        """The actor that steps this policy for every agent of `slots` episodes (policies/actors.py)."""
        template = self.build(pei, build_seed)
        return make_actor(template, lambda seed: self.build(pei, seed), pei, slots, deterministic, self.device)


class Player(Protocol):
    """What `play` plays: a policy for every agent (`LoadedPolicy`), or a mixed team (`teams.MixedTeam`)."""

    label: str

    def actor(self, pei: Any, slots: int, deterministic: bool, build_seed: int) -> Actor:
        """An actor for `slots` episodes side by side, built under `build_seed`."""


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch global generators: policies that draw from them become reproducible."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def play(
    env_cfg: Any,
    policy: Player,
    seeds: list[int],
    num_envs: int,
    deterministic: bool = False,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
    progress: bool | None = None,
    success_threshold: float | None = None,
    build_seed: int | None = None,
    replay_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Play one episode per seed; returns the episode records in seed order and reports each as it finishes.
    `build_seed`: the seed the policy is built under (default: the first seed), so a run that plays only some of
    its seeds (the rest were recorded before it was interrupted) builds the same policy. `replay_dir`: write each
    episode's replay there (daf_hydra.replays) before it is reported."""
    import torch
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface
    from mettagrid.simulator.simulator import Buffers, Simulation

    pei = PolicyEnvInterface.from_mg_cfg(env_cfg)
    slots = max(1, min(num_envs, len(seeds)))
    agents = pei.num_agents
    obs = np.full((slots, agents, *pei.observation_shape), 0xFF, np.uint8)
    actions = np.zeros((slots, agents), np.int32)
    rewards = np.zeros((slots, agents), np.float32)
    terminals = np.zeros((slots, agents), bool)
    truncations = np.zeros((slots, agents), bool)
    masks = np.ones((slots, agents), bool)
    teacher = np.zeros((slots, agents), np.int32)

    first = build_seed if build_seed is not None else (seeds[0] if seeds else 0)
    actor = policy.actor(pei, slots, deterministic, first)
    sims: list[Any] = [None] * slots
    writers: list[Any] = [None] * slots  # replay recorders
    running: list[tuple[int, int, float] | None] = [None] * slots  # (episode index, seed, start time)
    pending: Iterator[tuple[int, int]] = iter(enumerate(seeds))
    results: dict[int, dict[str, Any]] = {}
    bar = _progress(len(seeds), policy.label, progress)

    def start(slot: int) -> None:
        nxt = next(pending, None)
        if nxt is None:
            sims[slot], running[slot] = None, None
            return
        k, seed = nxt
        buffers = Buffers(
            observations=obs[slot], terminals=terminals[slot], truncations=truncations[slot],
            rewards=rewards[slot], masks=masks[slot], actions=actions[slot], teacher_actions=teacher[slot],
        )
        writers[slot] = replays.recorder() if replay_dir is not None else None
        handlers = [writers[slot]] if writers[slot] is not None else []
        sims[slot] = Simulation(seeded_env(env_cfg, seed), seed, buffers=buffers, event_handlers=handlers)
        running[slot] = (k, seed, time.perf_counter())
        actor.start(slot, seed, sims[slot])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small forward passes: a second thread costs more than it gives (measured)
    try:
        for slot in range(slots):
            start(slot)
        while any(s is not None for s in sims):
            actions[:] = actor.act(obs, sims)
            for slot, sim in enumerate(sims):
                if sim is None:
                    continue
                sim.step()
                if sim.is_done():
                    k, seed, t0 = running[slot]  # type: ignore[misc]
                    record = _episode_record(sim, k, seed, time.perf_counter() - t0, success_threshold)
                    if replay_dir is not None:  # before close: mettagrid's writer reads the episode's stats
                        replays.save(writers[slot], replay_dir, seed)
                    sim.close()
                    sims[slot] = None  # closed: not closed again below when on_episode raises (a full disk)
                    results[k] = record
                    if on_episode is not None:
                        on_episode(record)
                    bar.update(1)
                    start(slot)
    finally:
        torch.set_num_threads(threads)
        bar.close()
        for sim in sims:
            if sim is not None:
                sim.close()
    return [results[k] for k in sorted(results)]


def seeded_env(env_cfg: Any, seed: int) -> Any:
    """The environment config with its map generator seeded: mettagrid draws an unseeded map otherwise.
    Only the map generator is copied (the rest is shared, read-only): a deep copy of the whole config cost
    a fifth of a 300-step episode's time (measured)."""
    game = env_cfg.game
    if hasattr(game.map_builder, "seed"):
        builder = game.map_builder.model_copy(update={"seed": seed}, deep=True)
        env_cfg = env_cfg.model_copy(update={"game": game.model_copy(update={"map_builder": builder})})
    return env_cfg


def _episode_record(sim: Any, k: int, seed: int, wall: float, success_threshold: float | None) -> dict[str, Any]:
    rewards = [float(r) for r in sim.episode_rewards]
    stats = sim.episode_stats
    total = float(np.sum(rewards))
    return {
        "episode": k,
        "seed": seed,
        "rewards": rewards,
        "total_reward": total,
        "steps": int(sim.current_step),
        "max_steps": int(sim.config.game.max_steps),
        "success": None if success_threshold is None else bool(total >= success_threshold),
        "game_stats": {key: float(v) for key, v in stats["game"].items()},
        "agent_stats": [{key: float(v) for key, v in agent.items()} for agent in stats["agent"]],
        "wall_time_s": round(wall, 4),
    }


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _ProgressLines:
    """Off a terminal (a log file, a SLURM job's output), a line every PROGRESS_EVERY_S seconds: a long evaluation
    shows it is alive and how far it got, and a short one stays silent."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = total, label, 0
        self.start = self.last = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S and self.done < self.total:
            self.last = now
            print(f"episodes {self.label}: {self.done} of {self.total} ({now - self.start:.0f} s)", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        pass


def _progress(total: int, label: str, enabled: bool | None) -> Any:
    """A progress bar on a terminal; off a terminal (enabled None) a line every PROGRESS_EVERY_S seconds;
    nothing with enabled False."""
    if enabled is None:
        if not sys.stderr.isatty():
            return _ProgressLines(total, label)
        enabled = True
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=f"episodes {label}", unit="ep", leave=False)
