"""The aggregator: any tree of runs -> tables; problems listed, never fatal; the index re-reads only changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from daf_hydra import aggregate
from daf_hydra.aggregate import daf_aggregate_runs, write_tables
from daf_hydra.records import EPISODES_FILE, RunRecorder

ROOT = Path(__file__).resolve().parents[1]


def episode(policy: str, mission: str, k: int, total: float, seed0: int = 0) -> dict:
    return {"policy": policy, "mission": mission, "episode": k, "seed": seed0 + k, "rewards": [total / 2, total / 2],
            "total_reward": total, "steps": 100, "max_steps": 100, "success": total >= 5,
            "agent_stats": [{"ore_red.gained": 1.0}] * 2, "wall_time_s": 0.01}


def completed_run(path: Path, policy: str, mission: str, totals: list[float], **config) -> Path:
    rec = RunRecorder(path, {"run_id": path.name, "kind": "evaluate", "seed": 0,
                             "config": {"policy": {"name": policy}, "mission": {"name": mission}, **config},
                             "code": {"git_commit": "abc", "git_dirty": False}, "packages": {"mettagrid": "0.26"}})
    for k, total in enumerate(totals):
        rec.episode(episode(policy, mission, k, total))
    mean = sum(totals) / len(totals)
    rec.complete({"policy": policy, "mission": mission, "episodes": len(totals), "mean_reward": mean, "objective": mean})
    return path


def messy_tree(root: Path) -> Path:
    """Completed runs of two policies, plus every way a run can fail to complete."""
    completed_run(root / "multi" / "0", "good", "m1", [6.0, 7.0, 8.0])
    completed_run(root / "multi" / "1", "bad", "m1", [1.0, 2.0, 1.5])
    failed = RunRecorder(root / "failed", {"run_id": "f", "kind": "evaluate", "config": {"policy": {"name": "good"}}})
    failed.episode(episode("good", "m1", 0, 9.0))
    failed.fail(RuntimeError("boom"))
    died = RunRecorder(root / "died", {"run_id": "d", "kind": "evaluate", "config": {}})
    died.episode(episode("good", "m1", 0, 9.0))
    (root / "torn").mkdir()
    (root / "torn" / "run.json").write_text('{"run_id": "t", "config": {}}')
    (root / "torn" / "metrics.json").write_text('{"status": "compl')
    (root / "not_records").mkdir()
    (root / "not_records" / "run.json").write_text("[1, 2]")
    bad_episode = RunRecorder(root / "nan_episode", {"run_id": "n", "config": {}})
    bad_episode.episode({"episode": 0, "seed": 0, "total_reward": None})
    bad_episode.complete({})
    return root


def test_a_messy_tree_gives_tables_and_names_every_problem(tmp_path):
    tables = daf_aggregate_runs(messy_tree(tmp_path))
    status = dict(zip(tables.runs["run_dir"], tables.runs["status"]))
    assert status == {"multi/0": "completed", "multi/1": "completed", "failed": "failed", "died": "running",
                      "torn": "corrupt", "not_records": "corrupt", "nan_episode": "corrupt"}
    errors = dict(zip(tables.runs["run_dir"], tables.runs["error"]))
    assert errors["failed"] == "RuntimeError: boom"
    assert "JSONDecodeError" in errors["torn"]
    assert "not a JSON object" in errors["not_records"]
    assert "total_reward" in errors["nan_episode"]
    # only completed runs contribute episodes: the failed and the dead run's 9.0 never counts
    assert sorted(tables.episodes["run_dir"].unique()) == ["multi/0", "multi/1"]
    assert 9.0 not in set(tables.episodes["total_reward"])
    assert set(tables.problems["run_dir"]) == {"failed", "died", "torn", "not_records", "nan_episode"}
    good = tables.runs.set_index("run_dir").loc["multi/0"]
    assert good["policy"] == "good" and good["metric.mean_reward"] == 7.0 and good["git_commit"] == "abc"
    assert good["config.mission.name"] == "m1" and good["package.mettagrid"] == "0.26"
    assert list(tables.episodes.columns) == list(aggregate.EPISODE_COLUMNS)


def test_the_index_rereads_only_what_changed(tmp_path):
    for i in range(6):
        completed_run(tmp_path / str(i), "p", "m", [float(i), float(i + 1)])
    first = daf_aggregate_runs(tmp_path)
    assert (first.runs_read, first.runs_reused) == (6, 0)
    second = daf_aggregate_runs(tmp_path)
    assert (second.runs_read, second.runs_reused) == (0, 6)
    pd.testing.assert_frame_equal(first.episodes, second.episodes)
    pd.testing.assert_frame_equal(first.runs, second.runs, check_dtype=False)

    with open(tmp_path / "2" / EPISODES_FILE, "a") as f:  # a run that grows (still writing) changes its signature
        f.write(json.dumps(episode("p", "m", 2, 42.0)) + "\n")
    import shutil

    shutil.rmtree(tmp_path / "5")
    completed_run(tmp_path / "new", "q", "m", [3.0])
    third = daf_aggregate_runs(tmp_path)
    assert (third.runs_read, third.runs_reused) == (2, 4)
    fresh = daf_aggregate_runs(tmp_path, use_index=False)
    pd.testing.assert_frame_equal(third.episodes, fresh.episodes)
    assert 42.0 in set(third.episodes["total_reward"]) and "5" not in set(third.runs["run_dir"])


def test_an_index_of_another_version_or_damaged_is_rebuilt(tmp_path):
    completed_run(tmp_path / "a", "p", "m", [1.0])
    daf_aggregate_runs(tmp_path)
    meta = tmp_path / aggregate.INDEX_DIR / "meta.json"
    meta.write_text(json.dumps({"index_version": -1}))
    assert daf_aggregate_runs(tmp_path).runs_read == 1
    (tmp_path / aggregate.INDEX_DIR / "episodes.parquet").write_bytes(b"not parquet")
    assert daf_aggregate_runs(tmp_path).runs_read == 1


def test_reading_in_worker_processes_gives_the_same_tables(tmp_path, monkeypatch):
    for i in range(12):
        completed_run(tmp_path / f"r{i:02d}", f"p{i % 3}", "m", [float(i), 2.0 * i])
    serial = daf_aggregate_runs(tmp_path, use_index=False, workers=1)
    monkeypatch.setattr(aggregate, "PARALLEL_THRESHOLD", 2)
    parallel = daf_aggregate_runs(tmp_path, use_index=False, workers=2)
    pd.testing.assert_frame_equal(serial.runs, parallel.runs)
    pd.testing.assert_frame_equal(serial.episodes, parallel.episodes)


def test_tables_are_written_as_csv_and_parquet(tmp_path):
    root = messy_tree(tmp_path / "tree")
    completed_run(root / "lr_text", "good", "m1", [1.0], lr="high")  # a column mixing text and numbers
    completed_run(root / "lr_number", "good", "m1", [1.0], lr=0.1)
    tables = daf_aggregate_runs(root)
    files = write_tables(tables, tmp_path / "out")
    assert sorted(p.name for p in files) == sorted(f"{t}.{s}" for t in aggregate.TABLES for s in ("csv", "parquet"))
    back = pd.read_parquet(tmp_path / "out" / "episodes.parquet")
    pd.testing.assert_frame_equal(back, tables.episodes, check_dtype=False)
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == len(tables.runs)


def test_multiruns_and_optuna_sweeps_are_found_by_hydras_files(tmp_path):
    completed_run(tmp_path / "sweep" / "0", "p", "m", [1.0], lr=0.1)
    completed_run(tmp_path / "sweep" / "1", "p", "m", [2.0], lr=0.01)
    (tmp_path / "sweep" / "optimization_results.yaml").write_text("best_params:\n  lr: 0.01\nbest_value: 2.0\n")
    (tmp_path / "sweep" / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - lr=0.1,0.01\n")
    tables = daf_aggregate_runs(tmp_path)
    assert tables.sweeps == [{"path": "sweep", "overrides": ["lr=0.1,0.01"], "best_params": {"lr": 0.01},
                              "best_value": 2.0, "error": None}]


def report_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "daf_hydra.report", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_report_cli_writes_tables_and_report_and_lists_problems(tmp_path):
    root = messy_tree(tmp_path / "tree")
    out = report_cli(str(root), "--bootstrap-reps", "500", "--profile-bootstrap-reps", "200", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "7 runs (7 read, 0 from the index)" in out.stdout
    assert "corrupt   torn: unreadable records" in out.stdout
    assert "running   died: no metrics.json" in out.stdout
    agg = root / "aggregate"
    for name in ("runs.csv", "runs.parquet", "episodes.csv", "episodes.parquet", "report.html",
                 "comparison/summary_statistics.csv", "comparison/comparison.json"):
        assert (agg / name).is_file(), name
    comparison = json.loads((agg / "comparison" / "comparison.json").read_text())
    assert comparison["settings"]["bootstrap_reps"] == 500
    assert comparison["completeness"]["failed_runs"]  # the runs that did not complete are named
    again = report_cli(str(root), "--no-html", cwd=tmp_path)
    assert "(0 read, 7 from the index)" in again.stdout


def test_report_cli_names_a_missing_directory_in_one_line(tmp_path):
    out = report_cli(str(tmp_path / "nope"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error:") and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_multirun_ends_with_its_report_in_the_sweep_dir(cli, tmp_path):
    out = cli("-m", "pipeline=evaluate", "policy=random,baseline", "mission=solo_forage", "evaluation.episodes=3",
              "statistics.bootstrap_reps=500", "statistics.profile_bootstrap_reps=200", "hydra.sweep.dir=sweep")
    assert out.returncode == 0, out.stderr[-3000:]
    agg = tmp_path / "sweep" / "aggregate"
    assert (agg / "report.html").is_file()
    runs = pd.read_csv(agg / "runs.csv")
    assert sorted(runs["policy"]) == ["baseline", "random"] and set(runs["status"]) == {"completed"}
    summary = pd.read_csv(agg / "comparison" / "summary_statistics.csv")
    assert set(summary["policy"]) == {"baseline", "random"}
