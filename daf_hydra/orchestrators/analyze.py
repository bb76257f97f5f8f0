"""The analyze pipeline: where does `policy` fail on `mission`? (daf_hydra.mission_analysis)

    python -m daf_hydra.run pipeline=analyze policy=random mission=training_facility_1 evaluation.episodes=20
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def run_analyze(cfg: DictConfig, run_dir: Path) -> float:
    """Play, analyse, print the findings; returns the success rate (or the mean reward without a criterion)."""
    from daf_hydra.mission_analysis import run_analysis

    a = run_analysis(cfg, run_dir)
    print(f"{a.policy} on {a.mission}: {a.episodes} episodes, seeds {a.seeds[0]}..{a.seeds[-1]}")
    if a.success_rate is not None and a.success_rate_ci is not None:
        low, high = a.success_rate_ci
        print(f"  success rate {a.success_rate:.1%} [{low:.1%}, {high:.1%}] ({a.success_criterion})")
    print(f"  mean total reward {a.mean_reward:.3f} [{a.mean_reward_ci[0]:.3f}, {a.mean_reward_ci[1]:.3f}]")
    for m in a.failure_modes:
        print(f"  {m.count:4d} x {m.name}: {m.description} (e.g. seeds {', '.join(map(str, m.example_seeds))})")
    print(f"report: {run_dir / 'report.html'}")
    return a.success_rate if a.success_rate is not None else a.mean_reward
