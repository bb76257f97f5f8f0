"""The README's table: `baseline` vs `random` on every catalog mission, 95% bootstrap intervals of the mean.

    .venv/bin/python bench/baseline_vs_random.py [--episodes 20]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from daf_hydra import stats
from daf_hydra.compose import compose_config
from daf_hydra.missions import catalog_names
from daf_hydra.runs import evaluate_policy
from daf_hydra.records import read_run


def mission_scores(mission: str, policy: str, episodes: int) -> np.ndarray:
    """Episode totals of one policy on one mission, played by the evaluate pipeline (seeds 0..episodes-1)."""
    from daf_hydra.runs import start_run

    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config([f"mission={mission}", f"policy={policy}", f"evaluation.episodes={episodes}"],
                             output_dir=out)
        recorder, device = start_run(cfg, out, "evaluate")
        recorder.complete(evaluate_policy(cfg, device, recorder))
        return np.array([e["total_reward"] for e in read_run(out).episodes])


def interval(scores: np.ndarray) -> tuple[float, float, float]:
    low, high = stats.stratified_bootstrap_ci({"m": scores}, stats.mean, reps=10_000, seed=0)
    return float(scores.mean()), float(low), float(high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--episodes", type=int, default=20)
    args = ap.parse_args()
    print("| mission | agents | random: mean [95% CI] | baseline: mean [95% CI] | intervals overlap |")
    print("|---|---|---|---|---|")
    for mission in catalog_names():
        row = {p: interval(mission_scores(mission, p, args.episodes)) for p in ("random", "baseline")}
        agents = compose_config([f"mission={mission}"]).mission.num_agents
        overlap = row["random"][2] >= row["baseline"][1]
        cells = [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in (row["random"], row["baseline"])]
        print(f"| {mission} | {agents} | {cells[0]} | {cells[1]} | {'yes' if overlap else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
