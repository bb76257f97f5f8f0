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
swept over {4, 160}, the same seeded random sampler): daf_hydra's sweeper (a new trial as soon as one ends)
against Hydra's Optuna sweeper itself (batches of 2, each waiting for its slower trial), both for real. Prints
both wall times, their ratio, and each one's idle worker-seconds (2 x wall time - the seconds the runs worked).
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


BATCHED_SWEEPER = """
import sys
from daf_hydra.run import main, prepare_config_store
prepare_config_store(sys.argv[1:])
main()
"""


def _busy_seconds(sweep_dir: Path) -> float:
    """Seconds the trials' runs worked (run.json start to metrics.json end), whoever scheduled them."""
    total = 0.0
    for metrics in sweep_dir.glob("[0-9]*/metrics.json"):
        m = json.loads(metrics.read_text())
        total += m["ended_at"] - m["started_at"]
    return total


def asynchronous(args: argparse.Namespace, tmp: Path) -> None:
    trials = ["pipeline=evaluate", "policy=baseline", "mission=training_facility_1", "evaluation.num_envs=4",
              "evaluation.episodes=choice(4,160)", f"hydra.sweeper.n_trials={args.trials}",
              "hydra.sweeper.n_jobs=2", "hydra/launcher=local", "hydra.sweeper.direction=maximize",
              "hydra.sweeper.sampler.seed=0"]
    walls, busy = {}, {}
    for road in ("asynchronous", "batched"):
        out = tmp / road
        common = [*trials, f"hydra.sweeper.storage=sqlite:///{tmp / (road + '.db')}", f"hydra.sweep.dir={out}"]
        t0 = time.perf_counter()
        if road == "asynchronous":  # daf_hydra's sweeper (conf/hydra/sweeper/random.yaml)
            cmd = [sys.executable, "-m", "daf_hydra.run", "-m", "hydra/sweeper=random", "sweep_name=async", *common]
        else:  # Hydra's Optuna sweeper itself: batches of n_jobs trials, each batch waiting for its slowest
            cmd = [sys.executable, "-c", BATCHED_SWEEPER, "-m", "hydra/sweeper=optuna",
                   "hydra/sweeper/sampler=random", "hydra.sweeper.study_name=batched", *common]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{road} sweep failed:\n{proc.stderr[-3000:]}")
        walls[road], busy[road] = time.perf_counter() - t0, _busy_seconds(out)
    for road in walls:
        print(f"{road:12s}: {args.trials} trials on 2 workers in {walls[road]:.0f} s; trials worked {busy[road]:.0f} "
              f"worker-seconds; idle worker-seconds {2 * walls[road] - busy[road]:.0f}")
    print(f"wall time, asynchronous / batched: {walls['asynchronous'] / walls['batched']:.2f}")


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
