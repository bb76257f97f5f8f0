"""Time `daf_aggregate_runs` on 10,000 synthetic runs written with `records.RunRecorder`.

    .venv/bin/python bench/aggregate_10k.py [--runs 10000] [--episodes 10] [--root DIR] [--keep]

The runs look like real evaluate runs (run.json with a full config, episodes.jsonl lines with 4 agents' stats,
~2 KB each, metrics.json), laid out as a 100-job x 100-run tree; 2% are failed and 1% have no metrics.json (died).
Passes: first (no index), second (nothing changed: index only), third (1% of the runs appended to: re-read
only those). Targets: first pass < 10 s, second < 1 s. Writing the tree takes about 40 s on 2 cores (RunRecorder
fsyncs run.json and metrics.json); `--root DIR --keep` reuses a tree written before. The machine's load average
is printed: other work on the cores slows the first pass, which is CPU-bound JSON parsing in worker processes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from daf_hydra import records

TARGET_FIRST_S = 10.0
TARGET_SECOND_S = 1.0
AGENT_STATS = (
    "action.failed", "action.move.failed", "action.move.success", "action.noop.success", "assembled",
    "cell.max_distance_from_spawn", "cell.unique_visited", "cell.visited", "heart.amount", "heart.gained",
    "ore_red.amount", "ore_red.gained", "ore_red.lost", "status.max_steps_without_motion",
)
GAME_STATS = (
    "objects.agent.red.0", "objects.agent.red.1", "objects.agent.red.2", "objects.agent.red.3", "objects.assembler",
    "objects.extractor_red", "objects.wall", "tokens_dropped", "tokens_free_space", "tokens_written",
)


def config(i: int) -> dict:
    """A config shaped like a composed DAFRunConfig (a learning-rate-like value varies, as in a sweep)."""
    return {
        "pipeline": {"name": "evaluate"},
        "policy": {"name": ("baseline", "random")[i % 2], "class_path": ("baseline", "random")[i % 2],
                   "data_path": None, "kwargs": {}},
        "mission": {"name": "training_facility_1", "source": "catalog", "description": "4 agents, 13x13",
                    "num_agents": 4, "width": 13, "height": 13, "max_steps": 300, "resources": ["ore_red"],
                    "extractors_per_resource": 3, "extractor_uses": None, "regen_period": 10, "assemblers": 2,
                    "chests": 0, "walls": 6, "heart_reward": 1.0, "ore_reward": 0.1, "deposit_reward": 0.0,
                    "success_threshold": 8.0, "max_reward": None, "game": None, "cogames_mission": None},
        "evaluation": {"episodes": 10, "num_envs": 8, "deterministic": False, "progress": None},
        "statistics": {"bootstrap_reps": 50000, "profile_bootstrap_reps": 2000, "bootstrap_seed": 0,
                       "confidence": 0.95, "significance_level": 0.05},
        "seed": i, "device": "auto", "output_dir": f"/tmp/x/{i}", "lr": 10 ** -(1 + i % 4),
    }


def episode(rng: random.Random, policy: str, seed: int, k: int) -> dict:
    rewards = [round(rng.uniform(0, 20), 1) for _ in range(4)]
    return {
        "policy": policy, "mission": "training_facility_1", "episode": k, "seed": seed + k, "rewards": rewards,
        "total_reward": sum(rewards), "steps": 300, "max_steps": 300, "success": sum(rewards) >= 8,
        "game_stats": {s: float(rng.randint(0, 60000)) for s in GAME_STATS},
        "agent_stats": [{s: float(rng.randint(0, 300)) for s in AGENT_STATS} for _ in rewards],
        "wall_time_s": round(rng.uniform(0.1, 0.4), 4),
    }


def write_runs(args: tuple[str, int, int, int]) -> None:
    root, start, stop, episodes = args
    for i in range(start, stop):
        rng = random.Random(i)
        cfg = config(i)
        policy = cfg["policy"]["name"]
        recorder = records.RunRecorder(
            Path(root) / f"{i // 100:03d}" / f"{i % 100}",
            {"run_id": f"run{i:05d}", "kind": "evaluate", "config_signature": f"{i:012x}", "config": cfg,
             "seed": i, "device": "cpu", "code": {"git_commit": "0" * 40, "git_dirty": False}},
        )
        eps = [episode(rng, policy, i, k) for k in range(episodes)]
        for e in eps:
            recorder.episode(e)
        if i % 100 == 7:
            continue  # died: no metrics.json
        if i % 50 == 3:
            recorder.fail(RuntimeError("synthetic failure"))
            continue
        recorder.complete({"policy": policy, "mission": "training_facility_1", "seed": i,
                           **records.summarize_episodes(eps), "objective": 1.0})


def build_tree(root: Path, runs: int, episodes: int) -> float:
    t0 = time.perf_counter()
    step = 250
    jobs = [(str(root), s, min(s + step, runs), episodes) for s in range(0, runs, step)]
    with ProcessPoolExecutor(max_workers=8) as pool:  # fsync-bound: overlap the waits
        list(pool.map(write_runs, jobs))
    return time.perf_counter() - t0


def timed(label: str, root: Path, target: float | None) -> float:
    from daf_hydra.aggregate import daf_aggregate_runs

    t0 = time.perf_counter()
    tables = daf_aggregate_runs(root)
    elapsed = time.perf_counter() - t0
    ratio = f"  ratio to target {elapsed / target:.2f} (target < {target:.0f} s)" if target else ""
    print(f"{label:34s} {elapsed:7.3f} s  read {tables.runs_read:6d}  reused {tables.runs_reused:6d}  "
          f"runs {len(tables.runs)}  episodes {len(tables.episodes)}{ratio}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=10, help="episodes per run")
    parser.add_argument("--root", type=Path, help="tree to use (written when it has no runs yet)")
    parser.add_argument("--keep", action="store_true", help="keep the tree afterwards")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="daf_bench_aggregate_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if not any(root.iterdir()):
            print(f"writing {args.runs} runs x {args.episodes} episodes to {root}: "
                  f"{build_tree(root, args.runs, args.episodes):.1f} s")
        shutil.rmtree(root / ".daf_index", ignore_errors=True)
        import pandas  # noqa: F401  (import cost is not aggregation: ~0.5 s for pandas + pyarrow)
        import pyarrow.parquet  # noqa: F401

        first = timed("first pass (no index)", root, TARGET_FIRST_S)
        second = timed("second pass (nothing changed)", root, TARGET_SECOND_S)
        changed = sorted(records.find_runs(root))[:: 100]
        for run_dir in changed:
            with open(run_dir / records.EPISODES_FILE, "a") as f:
                f.write("\n")  # an append, as a running run makes: the signature changes
        timed(f"third pass ({len(changed)} runs changed)", root, None)
        ok = first < TARGET_FIRST_S and second < TARGET_SECOND_S
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"{'within targets' if ok else 'OVER TARGET'} ({os.cpu_count()} cores, load average {load})")
        return 0 if ok else 1
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
