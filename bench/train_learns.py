"""Learning that means something: trained `lstm` against the scripted `baseline` and `random`, over training runs.

    .venv/bin/python bench/train_learns.py [--seeds 0 1 2] [--steps 600000] [--episodes 50] [--minutes 10]
                                           [--policy lstm] [--mission training_facility_1] [OVERRIDE ...]

Runs the real CLI, one run after another (each has both cores): `pipeline=train` once per training seed (PPO for
--steps agent steps with the default training settings, or with the OVERRIDEs given, e.g. the list
bench/tune_training.py prints; then --episodes evaluation episodes of the final checkpoint), and `pipeline=evaluate`
of `baseline` and `random`: every one on the same evaluation seeds 0..episodes-1. Runs are kept under
bench/out/train_learns/<time>/.

Prints per training seed its mean reward and training wall time (and whether it is within --minutes); then, with
the training runs as the unit (docs: statistics), the IQM and mean over runs with bootstrap 95% intervals
(daf_hydra.stats, 50,000 resamples), the fraction of baseline's mean (the runs' mean over baseline's episode mean,
runs and baseline episodes resampled independently) with its interval, and the fixed policies' means (episodes as
the unit). With one seed the interval is over that run's episodes: evaluation noise only. Exits non-zero unless
the trained mean's interval lies entirely above random's, or when a run failed (reported, never scored).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from daf_hydra.records import EPISODES_FILE, METRICS_FILE, read_jsonl
from daf_hydra.stats import aggregate_with_ci, stratified_bootstrap_ci

OUT = Path(__file__).resolve().parent / "out" / "train_learns"
REPS = 50_000
GOAL = 0.60  # of baseline's mean within --minutes of training (issue 12)


def _run(args: list[str], out: Path) -> dict | None:
    """One CLI run; its metrics with its episodes' rewards, or None (said in one line) when it failed: recorded
    failed, never scored."""
    proc = subprocess.run([sys.executable, "-m", "daf_hydra.run", *args, f"hydra.run.dir={out}"],
                          capture_output=True, text=True)
    last_line = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    recorded = (out / METRICS_FILE).is_file()
    if proc.returncode == 2 and not recorded:  # refused before any work (a bad override): so would every other run
        raise SystemExit(f"refused: {' '.join(args)}: {last_line}")
    metrics = json.loads((out / METRICS_FILE).read_text()) if recorded else {}
    if proc.returncode != 0 or metrics.get("status") != "completed":
        print(f"  FAILED: {' '.join(args)}: {metrics.get('error') or last_line} (run dir {out})")
        return None
    metrics["rewards"] = [e["total_reward"] for e in read_jsonl(out / EPISODES_FILE)]
    return metrics


def _fraction_ci(runs: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
    """Bootstrap interval of mean(runs) / mean(baseline), each resampled within itself (two strata). The
    stratified bootstrap lays strata out in sorted-name order, so "0_runs" fills the first len(runs) columns."""
    n = runs.size

    def ratio(x: np.ndarray) -> np.ndarray:
        return x[..., :n].mean(axis=-1) / x[..., n:].mean(axis=-1)

    return stratified_bootstrap_ci({"0_runs": runs, "1_baseline": baseline}, ratio, reps=REPS, seed=0)


def _line(name: str, agg: dict, unit: str) -> str:
    return (f"  {name:10s} IQM {agg['iqm']['point']:6.2f} [{agg['iqm']['low']:.2f}, {agg['iqm']['high']:.2f}]   "
            f"mean {agg['mean']['point']:6.2f} [{agg['mean']['low']:.2f}, {agg['mean']['high']:.2f}]   ({unit})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="lstm")
    ap.add_argument("--mission", default="training_facility_1")
    ap.add_argument("--steps", type=int, default=600_000, help="agent steps per training")
    ap.add_argument("--episodes", type=int, default=50, help="evaluation episodes of every policy, same seeds")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (runs are the unit)")
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall time each training must fit in")
    ap.add_argument("overrides", nargs="*", help="settings of the trainings (lr=0.003 training.ent_coef=0.02 ...)")
    args = ap.parse_args()
    out = OUT / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    # every run plays evaluation seeds 0..episodes-1 whatever its training seed (paired)
    common = [f"mission={args.mission}", f"evaluation.episodes={args.episodes}", "evaluation.seed=0"]
    print(f"{args.policy} on {args.mission}, {args.steps:,} agent steps per training, seeds {args.seeds}, "
          f"overrides: {' '.join(args.overrides) or 'none (the defaults)'}; runs in {out}")
    trained = {}
    for seed in args.seeds:
        m = _run(["pipeline=train", f"policy={args.policy}", f"training.total_steps={args.steps}", f"seed={seed}",
                  *common, *args.overrides], out / f"seed_{seed}")
        if m is not None:
            t = m["training"]
            within = t["wall_time_s"] <= 60 * args.minutes
            print(f"  seed {seed}: mean reward {m['mean_reward']:6.2f} +- {m['stderr_reward']:.2f} (s.e., "
                  f"{m['episodes']} episodes); trained {t['agent_steps']:,} agent steps in {t['wall_time_s']:.0f} s "
                  f"({t['sps']:,.0f} SPS): {'within' if within else 'OVER'} {args.minutes:g} min")
            trained[seed] = m
    fixed = {name: _run(["pipeline=evaluate", f"policy={name}", "seed=0", *common], out / name)
             for name in ("baseline", "random")}
    if not trained or None in fixed.values():
        sys.exit(1)

    if len(trained) > 1:
        scores, unit = np.array([m["mean_reward"] for m in trained.values()]), f"{len(trained)} training runs"
    else:
        scores, unit = np.array(next(iter(trained.values()))["rewards"]), "ONE training run: its episodes"
    baseline = np.array(fixed["baseline"]["rewards"])
    aggs = {name: aggregate_with_ci({args.mission: np.asarray(values, dtype=float)}, reps=REPS)
            for name, values in [(args.policy, scores), *((n, m["rewards"]) for n, m in fixed.items())]}
    print(f"{args.mission}, bootstrap 95% intervals:")
    print(_line(args.policy, aggs[args.policy], unit))
    for name in fixed:
        print(_line(name, aggs[name], f"{args.episodes} episodes"))
    low, high = _fraction_ci(scores, baseline)
    fraction = scores.mean() / baseline.mean()
    print(f"fraction of baseline's mean: {fraction:.2f} [{low:.2f}, {high:.2f}] (goal {GOAL:.2f}: "
          f"{'met' if fraction >= GOAL else 'not met'}); "
          f"{sum(m['training']['wall_time_s'] <= 60 * args.minutes for m in trained.values())}/{len(trained)} "
          f"trainings within {args.minutes:g} min")
    beats = aggs[args.policy]["mean"]["low"] > aggs["random"]["mean"]["high"]
    print("trained beats random with non-overlapping 95% intervals" if beats else "NOT separated from random")
    if not beats or len(trained) < len(args.seeds):
        sys.exit(1)


if __name__ == "__main__":
    main()
