"""The evaluate pipeline: play `evaluation.episodes` episodes of one policy on one mission, record them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from daf_hydra.runs import evaluate_policy, recording, start_run


def run_evaluate(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Returns the run's metrics (its objective among them); those recorded when `run_dir` holds this run,
    completed (runs.start_run: an interrupted one goes on with the seeds it had not played)."""
    recorder, device = start_run(cfg, run_dir, "evaluate")
    if recorder.completed is not None:
        return recorder.completed
    with recording(recorder):
        metrics = evaluate_policy(cfg, device, recorder)
    metrics = recorder.complete({**metrics, "objective": metrics["mean_reward"]})
    print(
        f"{metrics['policy']} on {metrics['mission']}: mean reward {metrics['mean_reward']:.2f} "
        f"+- {metrics['stderr_reward']:.2f} (s.e.) over {metrics['episodes']} episodes -> {run_dir}"
    )
    return metrics
