"""Sweeps that spend their compute on good trials: hyperband pruning vs none, asynchronous vs batched trials.

    .venv/bin/python bench/sweep_efficiency.py pruning [--trials 12] [--steps 150000] [--episodes 20]
    .venv/bin/python bench/sweep_efficiency.py async [--trials 8]

pruning: two TPE studies of `lstm` on `training_facility_1`, lr over log [1e-5, 1e-1], the same sampler seed,
through the real CLI (`hydra.sweeper.pruner=hyperband|none`; a pruned study validates 10 times per training on 8
fixed validation episodes). Prints each study's best objective (the best trial's evaluation: mean over its
episodes with a t-based 95% interval), the agent steps each study trained (pruned trials count the steps they
trained before they were stopped), and their ratio. Target: the pruned best within the unpruned best's interval
using <= 50% of its agent steps.

async: 2 workers (hydra/launcher=local, n_jobs=2) on evaluate trials of unequal length (evaluation.episodes
swept over {2, 48}). Runs the study and reads each trial's start and end from the study; the batched schedule
(Hydra's Optuna sweeper: pairs of trials in the same order, each pair waiting for its slower trial) is computed
from the same trials' durations. Prints both wall times, their ratio, and the idle worker-seconds of each.
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

import optuna
from scipy import stats


def _sweep(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "daf_hydra.run", "-m", *args], cwd=cwd, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({' '.join(args)}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _runs(sweep_dir: Path) -> dict[int, Path]:
    out = {}
    for run in sweep_dir.glob("[0-9]*"):
        config = json.loads((run / "run.json").read_text())["config"]
        out[int(config["trial"]["number"])] = run
    return out


def _steps_trained(run: Path) -> int:
    lines = (run / "curve.jsonl").read_text().splitlines() if (run / "curve.jsonl").is_file() else []
    return json.loads(lines[-1])["agent_steps"] if lines else 0


def _best(study: optuna.Study, runs: dict[int, Path]) -> tuple[float, float, float]:
    best = runs[study.best_trial.number]
    rewards = [json.loads(line)["total_reward"] for line in (best / "episodes.jsonl").read_text().splitlines()]
    n, mean = len(rewards), sum(rewards) / len(rewards)
    sd = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (n - 1)) if n > 1 else math.inf
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else math.inf
    return mean, mean - half, mean + half


def pruning(args: argparse.Namespace, tmp: Path) -> None:
    results = {}
    for pruner in args.pruners.split(","):
        storage = f"sqlite:///{tmp / f'{pruner}.db'}"
        sweep_dir = tmp / pruner
        wall = _sweep(["pipeline=train", "policy=lstm", "mission=training_facility_1",
                       f"training.total_steps={args.steps}", f"evaluation.episodes={args.episodes}",
                       "hydra/sweeper=tpe", "hydra.sweeper.params.lr=tag(log, interval(1e-5, 1e-1))",
                       f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.pruner={pruner}",
                       f"hydra.sweeper.storage={storage}", f"sweep_name={pruner}", f"seed={args.seed}",
                       f"hydra.sweep.dir={sweep_dir}"], tmp)
        study = optuna.load_study(study_name=pruner, storage=storage)
        runs = _runs(sweep_dir)
        steps = sum(_steps_trained(run) for run in runs.values())
        states = [t.state.name for t in study.trials]
        results[pruner] = (_best(study, runs), steps, wall, states.count("PRUNED"), study.best_trial.params["lr"])
    for pruner, ((mean, low, high), steps, wall, pruned, lr) in results.items():
        print(f"pruner={pruner:9s} best {mean:6.2f} [{low:.2f}, {high:.2f}] (lr={lr:.2e}); {args.trials} trials, "
              f"{pruned} pruned; {steps:,} agent steps trained; {wall:.0f} s")
    if set(results) != {"none", "hyperband"}:
        return
    (_, low, high), none_steps = results["none"][0], results["none"][1]
    pruned_best, pruned_steps = results["hyperband"][0][0], results["hyperband"][1]
    within = low <= pruned_best <= high or pruned_best > high
    print(f"agent steps, hyperband / none: {pruned_steps / none_steps:.2f}; the pruned best is "
          f"{'at or above' if within else 'below'} the unpruned best's interval")


def asynchronous(args: argparse.Namespace, tmp: Path) -> None:
    storage = f"sqlite:///{tmp / 'async.db'}"
    wall = _sweep(["pipeline=evaluate", "policy=baseline", "mission=training_facility_1", "evaluation.num_envs=2",
                   "hydra/sweeper=random", "hydra.sweeper.params.evaluation.episodes=choice(2,48)",
                   f"hydra.sweeper.n_trials={args.trials}", "hydra.sweeper.n_jobs=2", "hydra/launcher=local",
                   f"hydra.sweeper.storage={storage}", "sweep_name=async", f"hydra.sweep.dir={tmp / 'async'}"], tmp)
    trials = sorted(optuna.load_study(study_name="async", storage=storage).trials, key=lambda t: t.number)
    starts = [t.datetime_start.timestamp() for t in trials]
    ends = [t.datetime_complete.timestamp() for t in trials]
    durations = [e - s for s, e in zip(starts, ends)]
    span = max(ends) - min(starts)
    busy = sum(durations)
    batched = sum(max(durations[i:i + 2]) for i in range(0, len(durations), 2))
    print(f"{len(trials)} trials on 2 workers, durations {', '.join(f'{d:.0f}' for d in durations)} s "
          f"(whole sweep {wall:.0f} s)")
    print(f"asynchronous (measured): {span:.0f} s, idle worker-seconds {2 * span - busy:.0f}")
    print(f"batched (same trials, pairs wait for their slower trial): {batched:.0f} s, idle worker-seconds "
          f"{2 * batched - busy:.0f}")
    print(f"wall time, asynchronous / batched: {span / batched:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["pruning", "async"])
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--steps", type=int, default=150_000)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pruners", default="none,hyperband", help="pruning: the studies to run (both by default)")
    args = ap.parse_args()
    args.trials = args.trials or (12 if args.part == "pruning" else 8)
    with tempfile.TemporaryDirectory() as tmp:
        (pruning if args.part == "pruning" else asynchronous)(args, Path(tmp))


if __name__ == "__main__":
    main()
