"""Learning is real: a trained policy beats `random` on its mission with non-overlapping 95% intervals.

    .venv/bin/python bench/train_learns.py [--policy lstm] [--mission training_facility_1]
                                           [--steps 600000] [--episodes 50] [--seed 0]

Runs the real CLI twice: `pipeline=train` (PPO for --steps agent steps with the default training settings, then
--episodes evaluation episodes of the final checkpoint) and `pipeline=evaluate policy=random` on the same
evaluation seeds. Prints both means with t-based 95% intervals, the training time, and exits non-zero unless
the trained policy's interval lies entirely above random's.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy import stats


def _run(args: list[str], out: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "daf_hydra.run", *args, f"hydra.run.dir={out}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(args)}):\n{proc.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["wall_s"] = time.perf_counter() - t0
    return metrics


def _interval(m: dict) -> tuple[float, float, float]:
    n, mean, se = m["episodes"], m["mean_reward"], m["stderr_reward"]
    half = stats.t.ppf(0.975, n - 1) * se if n > 1 else math.inf
    return mean, mean - half, mean + half


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="lstm")
    ap.add_argument("--mission", default="training_facility_1")
    ap.add_argument("--steps", type=int, default=600_000)
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    # both play evaluation seeds 0..episodes-1 whatever the training seed (paired)
    common = [f"mission={args.mission}", f"evaluation.episodes={args.episodes}", f"seed={args.seed}",
              "evaluation.seed=0"]
    with tempfile.TemporaryDirectory() as tmp:
        trained = _run(["pipeline=train", f"policy={args.policy}", f"training.total_steps={args.steps}", *common],
                       Path(tmp) / "trained")
        random = _run(["pipeline=evaluate", "policy=random", *common], Path(tmp) / "random")
    t = trained["training"]
    print(f"{args.policy} trained on {args.mission}: {t['agent_steps']:,} agent steps in {t['wall_time_s']:.0f} s "
          f"({t['sps']:,.0f} SPS); whole run (training + {args.episodes} evaluation episodes) "
          f"{trained['wall_s']:.0f} s")
    rows = [(args.policy, _interval(trained)), ("random", _interval(random))]
    for name, (mean, lo, hi) in rows:
        print(f"  {name:10s} mean reward {mean:7.2f}   95% CI [{lo:.2f}, {hi:.2f}]   ({args.episodes} episodes)")
    beats = rows[0][1][1] > rows[1][1][2]
    print("trained beats random with non-overlapping 95% intervals" if beats else "NOT separated from random")
    if not beats:
        sys.exit(1)


if __name__ == "__main__":
    main()
