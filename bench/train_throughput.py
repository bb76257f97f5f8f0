"""Training throughput: daf_hydra's trainer against `cogames.train.train` on the same work.

    .venv/bin/python bench/train_throughput.py [--mission training_facility_1] [--policy lstm] [--num-envs 32]
                                               [--steps 300000] [--minibatch 4096] [--repeats 1]

Both train the same policy on the same mission with the same number of environments, the same batch
(num_envs x agents x 64 steps: cogames' bptt for recurrent policies, 1 for others), the same minibatch and one
epoch per update (cogames hard-codes it), on the CPU, each in a fresh process, one after the other. Timed: the
training call itself (environments, policy, every update, the final checkpoint), steps read from what was
trained. cogames runs twice: as it ships (torch's default thread count, its rich dashboard to a discarded
stdout) and with one torch thread like daf_hydra's default (`training.torch_threads=1`). The ratio that counts
is against the faster of the two. daf_hydra runs twice too: with two environment worker processes (`training.vec_workers=2`)
and with every environment in the training process (`training.vec_workers=0`); the better of the two counts. Last, the raw environment alone (one process,
random actions, resets included) gives the limit of this machine: training SPS is also printed as a fraction of
its agent steps/s. Target: ratio >= 1.5. On a shared machine, read the ratios (measured side by side), not the
absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.5
RAW_SECONDS = 5.0


def _bptt(policy: str) -> int:
    """cogames' rule: 64 for recurrent policies, 1 otherwise (read from the policy itself)."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.compose import load_mission
    from daf_hydra.missions import build_env
    from daf_hydra.policies import loading

    pei = PolicyEnvInterface.from_mg_cfg(build_env(load_mission("training_facility_1")))
    policy_obj = loading.instantiate(loading.resolve(policy), pei, "cpu")
    return 64 if policy_obj.is_recurrent() else 1


def run_cogames(args: argparse.Namespace, out: Path) -> dict:
    import torch
    from cogames.train import train

    from daf_hydra.compose import load_mission
    from daf_hydra.missions import build_env
    from daf_hydra.policies import loading

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    env_cfg = build_env(load_mission(args.mission))
    class_path = loading.resolve(args.policy).class_path
    t0 = time.perf_counter()
    train(env_cfg=env_cfg, policy_class_path=class_path, device=torch.device("cpu"), initial_weights_path=None,
          num_steps=args.steps, checkpoints_path=out, seed=args.seed, minibatch_size=args.minibatch,
          vector_num_envs=args.num_envs, checkpoint_interval=10**9)
    wall = time.perf_counter() - t0
    state = torch.load(next(out.rglob("trainer_state.pt")), weights_only=True)
    return {"agent_steps": int(state["global_step"]), "wall_s": wall, "threads": torch.get_num_threads()}


def run_raw(args: argparse.Namespace) -> dict:
    """The mission's environment alone, as training builds it, stepped with random actions for RAW_SECONDS."""
    import numpy as np

    from daf_hydra.compose import load_mission
    from daf_hydra.missions import build_env
    from daf_hydra.training import _EnvFactory

    mission = load_mission(args.mission)
    env = _EnvFactory([build_env(mission)], [mission.name], args.seed, 0, 0)(0)
    env.reset()
    rng = np.random.default_rng(args.seed)
    n_actions = int(env.single_action_space.n)
    actions = rng.integers(0, n_actions, (1024, env.num_agents)).astype(np.int32)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < RAW_SECONDS:
        for a in actions:
            env.step(a)
        steps += len(actions)
    wall = time.perf_counter() - t0
    return {"agent_steps": steps * env.num_agents, "wall_s": wall, "threads": 0}


def run_daf(args: argparse.Namespace, out: Path) -> dict:
    import torch

    from daf_hydra import env_workers
    from daf_hydra.compose import compose_config
    from daf_hydra.runs import start_run
    from daf_hydra.runs import missions_of
    from daf_hydra.training import train

    bptt = _bptt(args.policy)
    cfg = compose_config([
        f"policy={args.policy}", f"mission={args.mission}", f"training.num_envs={args.num_envs}",
        f"training.bptt_horizon={bptt}", f"training.minibatch_size={args.minibatch}", "training.update_epochs=1",
        f"training.total_steps={args.steps}", f"seed={args.seed}", "device=cpu", "training.checkpoint_interval=1000000",
        f"training.vec_workers={args.workers}",
    ], output_dir=out)
    recorder, _ = start_run(cfg, out, "train")
    missions, _ = missions_of(cfg)
    t0 = time.perf_counter()
    result = train(cfg, missions, out, recorder)
    wall = time.perf_counter() - t0
    resources = env_workers.resolve(cfg.training.vec_workers, cfg.training.torch_threads, args.num_envs)
    return {"agent_steps": result.agent_steps, "wall_s": wall, "threads": resources.threads,
            "workers": resources.workers}


def _worker(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if args.worker == "daf":
            result = run_daf(args, out)
        elif args.worker == "raw":
            result = run_raw(args)
        else:
            stdout = sys.stdout
            sys.stdout = open(os.devnull, "w")  # cogames' dashboard and messages: rendered, then discarded
            try:
                result = run_cogames(args, out)
            finally:
                sys.stdout.close()
                sys.stdout = stdout
    print("RESULT " + json.dumps(result), flush=True)


def _spawn(args: argparse.Namespace, worker: str, threads: int = 0, workers: str = "auto") -> dict:
    cmd = [sys.executable, __file__, "--worker", worker, "--mission", args.mission, "--policy", args.policy,
           "--num-envs", str(args.num_envs), "--steps", str(args.steps), "--minibatch", str(args.minibatch),
           "--seed", str(args.seed), "--threads", str(threads), "--workers", workers]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{worker} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["sps"] = result["agent_steps"] / result["wall_s"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mission", default="training_facility_1")
    ap.add_argument("--policy", default="lstm")
    ap.add_argument("--num-envs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=300_000)
    ap.add_argument("--minibatch", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="runs per trainer; the best SPS of each counts")
    ap.add_argument("--worker", choices=["daf", "cogames", "raw"], help=argparse.SUPPRESS)
    ap.add_argument("--workers", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args)
        return
    runs: dict[str, list[dict]] = {"daf_hydra (2 workers)": [], "daf_hydra (no workers)": [], "cogames": [],
                                   "cogames (1 thread)": []}
    for _ in range(args.repeats):
        runs["daf_hydra (2 workers)"].append(_spawn(args, "daf", workers="2"))
        runs["daf_hydra (no workers)"].append(_spawn(args, "daf", workers="0"))
        runs["cogames"].append(_spawn(args, "cogames"))
        runs["cogames (1 thread)"].append(_spawn(args, "cogames", threads=1))
    raw = _spawn(args, "raw")
    best = {name: max(rs, key=lambda r: r["sps"]) for name, rs in runs.items()}
    print(f"{args.policy} on {args.mission}: {args.num_envs} envs, minibatch {args.minibatch}, "
          f"~{args.steps:,} agent steps, best of {args.repeats}; load average {os.getloadavg()[0]:.2f}")
    for name, r in best.items():
        workers = f", {r['workers']} env worker(s)" if "workers" in r else ""
        print(f"  {name:24s} {r['sps']:9,.0f} agent steps/s  ({r['agent_steps']:,} steps in {r['wall_s']:.1f} s, "
              f"{r['threads']} torch thread(s){workers})  {r['sps'] / raw['sps']:.2f} of the raw environment")
    print(f"  {'raw environment':24s} {raw['sps']:9,.0f} agent steps/s  (one process, random actions)")
    reference = max(best["cogames"]["sps"], best["cogames (1 thread)"]["sps"])
    ratio = max(best["daf_hydra (2 workers)"]["sps"], best["daf_hydra (no workers)"]["sps"]) / reference
    print(f"ratio daf_hydra / best cogames: with 2 workers {best['daf_hydra (2 workers)']['sps'] / reference:.2f}, "
          f"without {best['daf_hydra (no workers)']['sps'] / reference:.2f} (target >= {TARGET_RATIO}; "
          "training.vec_workers=auto picks workers on >= 3 cores)")
    if ratio < TARGET_RATIO:
        sys.exit(1)


if __name__ == "__main__":
    main()
