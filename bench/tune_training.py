"""Training defaults tuned by our own sweep machinery: which PPO settings make `lstm` learn fastest on 2 CPU cores.

    .venv/bin/python bench/tune_training.py [--trials 40] [--steps 1000000] [--episodes 20] [--n-jobs 1]
                                            [--pruner hyperband] [--policy lstm] [--mission training_facility_1]

Runs one Optuna study (multivariate TPE, seeded by --seed) through the real CLI: `python -m daf_hydra.run -m
pipeline=train hydra/sweeper=tpe` over SPACE below, every trial training --steps agent steps, validating 10 times
on fixed validation seeds (the pruner's rungs; hyperband stops bad trials there) and scoring its best validated
checkpoint on --episodes evaluation episodes (objective: their mean reward). The study lives in
bench/out/tune_training/optuna.db, named after the options: the same command continues it up to --trials in
all (a killed sweep loses nothing finished). Each invocation's sweep directory (trials.csv, sweep_report.html,
best_config.yaml, every trial's run) is bench/out/tune_training/<study>/<time>/, the sweep's whole output in
sweep.log there.

Prints the best trial's parameters as the override list to adopt as defaults (also written to best_overrides.txt
beside the study) and its score with a bootstrap 95% interval over its evaluation episodes: one training run, so
evaluation noise only, and the best of many trials is optimistic: `bench/train_learns.py --seeds 0 1 2 <overrides>`
is the honest check. Its training time and speed say how many agent steps fit in --minutes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import optuna

from daf_hydra.records import EPISODES_FILE, METRICS_FILE, read_jsonl
from daf_hydra.stats import aggregate_with_ci
from daf_hydra.studies import superseded
from daf_hydra.sweeps import study_trials

OUT = Path(__file__).resolve().parent / "out" / "tune_training"

# What decides learning speed at a fixed step budget on 2 cores. Every combination is a valid run: with 4 agents,
# num_envs >= 32 and bptt_horizon <= 32 the batch (num_envs x 4 x bptt) is a multiple of 1024, which every
# minibatch_size below divides, and each minibatch_size is a multiple of every bptt_horizon.
SPACE = {
    "lr": "tag(log, interval(1e-4, 1e-2))",
    "training.ent_coef": "tag(log, interval(1e-3, 1e-1))",
    "training.update_epochs": "choice(1, 2, 4)",
    "training.bptt_horizon": "choice(8, 16, 32)",
    "training.minibatch_size": "choice(256, 512, 1024)",
    "training.num_envs": "choice(32, 64)",
    "training.gamma": "interval(0.95, 0.999)",
    "training.gae_lambda": "interval(0.8, 0.98)",
    "policy.kwargs.hidden_size": "choice(64, 128)",
}
VALIDATIONS = 10  # per training: the pruner's rungs, and the checkpoints the evaluation chooses from


def _sweep(args: argparse.Namespace, study: str, storage: str) -> tuple[int, Path]:
    """Run (or continue) the study through the CLI; its lines go to sweep.log, the sweeper's trial lines here too."""
    sweep_dir = OUT / study / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    sweep_dir.mkdir(parents=True)
    cmd = [sys.executable, "-m", "daf_hydra.run", "-m", "pipeline=train", f"policy={args.policy}",
           f"mission={args.mission}", f"training.total_steps={args.steps}",
           f"training.validate_every={max(1, args.steps // VALIDATIONS)}", f"evaluation.episodes={args.episodes}",
           f"seed={args.seed}", "hydra/sweeper=tpe", f"hydra.sweeper.n_trials={args.trials}",
           f"hydra.sweeper.n_jobs={args.n_jobs}", f"hydra.sweeper.pruner={args.pruner}",
           "hydra.sweeper.sampler.multivariate=true",  # the knobs interact (lr with epochs and minibatches)
           "hydra.sweeper.sampler.n_startup_trials=10",  # random trials first: 9 knobs need more than 4
           "hydra.sweeper.max_failure_rate=0.2",  # a diverged trial is recorded failed; the study goes on
           f"hydra.sweeper.storage={storage}", f"sweep_name={study}", f"hydra.sweep.dir={sweep_dir}",
           *(f"{key}={value}" for key, value in SPACE.items())]
    if args.n_jobs > 1:
        cmd.append("hydra/launcher=local")
    with open(sweep_dir / "sweep.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            if line.startswith(("[sweep", "error:")):
                print(line, end="", flush=True)
        return proc.wait(), sweep_dir


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=40, help="the study's total (a rerun continues it)")
    ap.add_argument("--steps", type=int, default=1_000_000, help="agent steps per trial")
    ap.add_argument("--episodes", type=int, default=20, help="evaluation episodes of each trial")
    ap.add_argument("--n-jobs", type=int, default=1, help="trials at once (1: each training has both cores)")
    ap.add_argument("--pruner", default="hyperband")
    ap.add_argument("--policy", default="lstm")
    ap.add_argument("--mission", default="training_facility_1")
    ap.add_argument("--seed", type=int, default=0, help="training seed of every trial and the sampler's seed")
    ap.add_argument("--minutes", type=float, default=10.0, help="training time the adopted defaults must fit in")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    study_name = f"tune-{args.policy}-{args.mission}-{args.steps}steps-{args.episodes}ep-{args.pruner}-seed{args.seed}"
    storage = f"sqlite:///{OUT / 'optuna.db'}"
    code, sweep_dir = _sweep(args, study_name, storage)

    study = optuna.load_study(study_name=study_name, storage=storage)
    retried = superseded(study.trials)  # failed trials of dead processes, run again with their parameters
    states = [t.state.name for t in study.trials if t.number not in retried]
    print(f"study {study_name}: {len(states)} trials, {states.count('COMPLETE')} complete, "
          f"{states.count('PRUNED')} pruned, {states.count('FAIL')} failed ({len(retried)} more retried); "
          f"report {sweep_dir / 'sweep_report.html'}")
    if "COMPLETE" not in states:
        raise SystemExit(f"no completed trial (sweep exit code {code}): see {sweep_dir / 'sweep.log'}")
    runs = {t.number: Path(t.run_dir) for t in study_trials(study, OUT / study_name) if t.run_dir}
    ranked = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value, reverse=True)
    print(f"top trials (objective at {args.steps:,} steps; a slower setting fits fewer steps in {args.minutes:g} min):")
    for trial in ranked[:5]:
        training = json.loads((runs[trial.number] / METRICS_FILE).read_text())["training"]
        print(f"  trial {trial.number:3d}: {trial.value:6.2f}; trained {training['agent_steps']:,} agent steps in "
              f"{training['wall_time_s']:.0f} s ({training['sps']:,.0f} SPS, validations included): "
              f"{args.minutes:g} min hold ~{training['sps'] * 60 * args.minutes:,.0f} steps")
    best = ranked[0]
    rewards = [e["total_reward"] for e in read_jsonl(runs[best.number] / EPISODES_FILE)]
    score = aggregate_with_ci({args.mission: rewards}, seed=0)["mean"]
    overrides = " ".join(f"{k}={_value(v)}" for k, v in sorted(best.params.items()))
    print(f"best: trial {best.number}, mean reward {score['point']:.2f} [{score['low']:.2f}, {score['high']:.2f}] "
          f"(bootstrap 95% over its {len(rewards)} evaluation episodes: one training, evaluation noise only); "
          f"run {runs[best.number]}")
    print(f"overrides to adopt: {overrides}")
    (OUT / study_name / "best_overrides.txt").write_text(
        f"{overrides}\n# trial {best.number}: mean reward {score['point']:.2f} [{score['low']:.2f}, "
        f"{score['high']:.2f}] over {len(rewards)} episodes; {runs[best.number]}\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
