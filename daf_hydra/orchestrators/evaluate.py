"""The evaluate pipeline: play `evaluation.episodes` episodes of one policy on one mission, record them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from daf_hydra import provenance
from daf_hydra.compose import to_container
from daf_hydra.config import validate_evaluation
from daf_hydra.environment_checks import apply_gpu_memory_fraction, resolve_device
from daf_hydra.evaluation import LoadedPolicy, play, seed_everything
from daf_hydra.missions import build_env
from daf_hydra.policies import loading
from daf_hydra.records import RunRecorder, summarize_episodes


def start_run(cfg: DictConfig, run_dir: Path, kind: str) -> tuple[RunRecorder, str]:
    """Write run.json (provenance) before any work, so even a run that fails at once leaves a record. Every run
    starts here, in whatever process plays it, so `resources.gpu_memory_fraction` is applied here too."""
    device = resolve_device(cfg.device)
    resources = cfg.get("resources")
    apply_gpu_memory_fraction(resources.get("gpu_memory_fraction") if resources is not None else None, device)
    meta = provenance.collect(to_container(cfg), int(cfg.seed), device, uuid.uuid4().hex[:12], kind)
    return RunRecorder(run_dir, meta), device


def evaluate_policy(cfg: DictConfig, device: str, recorder: RunRecorder | None = None) -> dict[str, Any]:
    """Play the configured episodes and return the summary (the evaluate pipeline's metrics)."""
    validate_evaluation(cfg.evaluation)
    seed_everything(int(cfg.seed))
    env_cfg = build_env(cfg.mission)
    policy = LoadedPolicy(
        cfg.policy.name,
        loading.resolve(cfg.policy.class_path, cfg.policy.data_path, dict(cfg.policy.kwargs)),
        device,
    )
    seeds = [int(cfg.seed) + k for k in range(int(cfg.evaluation.episodes))]
    episodes = play(
        env_cfg, policy, seeds, int(cfg.evaluation.num_envs),
        deterministic=bool(cfg.evaluation.deterministic),
        on_episode=(lambda e: recorder.episode({"policy": cfg.policy.name, "mission": cfg.mission.name, **e}))
        if recorder else None,
        progress=cfg.evaluation.progress,
        success_threshold=float(cfg.mission.success_threshold) if cfg.mission.source == "catalog" else None,
    )
    return {
        "policy": cfg.policy.name,
        "mission": cfg.mission.name,
        "seed": int(cfg.seed),
        **summarize_episodes(episodes),
    }


def run_evaluate(cfg: DictConfig, run_dir: Path) -> float:
    recorder, device = start_run(cfg, run_dir, "evaluate")
    try:
        metrics = evaluate_policy(cfg, device, recorder)
    except BaseException as exc:
        recorder.fail(exc)
        raise
    recorder.complete({**metrics, "objective": metrics["mean_reward"]})
    print(
        f"{cfg.policy.name} on {cfg.mission.name}: mean reward {metrics['mean_reward']:.2f} "
        f"+- {metrics['stderr_reward']:.2f} (s.e.) over {metrics['episodes']} episodes -> {run_dir}"
    )
    return float(metrics["mean_reward"])
