"""evaluation.replays: real episodes written in mettagrid's replay format by mettagrid's writer, the examples kept
(lowest, median, highest by total reward; an analysis adds its failure modes' examples), the index in the run's
records, and the compact view a report's player embeds, checked against the replay file it came from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daf_hydra import replays
from daf_hydra.records import read_jsonl

SHORT = ["mission=training_facility_1", "mission.max_steps=60", "evaluation.num_envs=3"]


def run(tmp_path: Path, name: str, *overrides: str) -> Path:
    run_dir = tmp_path / name
    r = subprocess.run([sys.executable, "-m", "daf_hydra.run", *SHORT, *overrides, f"hydra.run.dir={run_dir}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return run_dir


def test_examples_keep_the_lowest_median_and_highest_episode_in_mettagrids_format(tmp_path):
    run_dir = run(tmp_path, "ex", "pipeline=evaluate", "policy=random", "evaluation.episodes=7",
                  "evaluation.replays=examples")
    episodes = {e["seed"]: e for e in read_jsonl(run_dir / "episodes.jsonl")}
    ranked = sorted(episodes.values(), key=lambda e: (e["total_reward"], e["seed"]))
    index = replays.read_index(run_dir)["training_facility_1"]
    assert index["mode"] == "examples"
    kept = {e["seed"]: e["roles"] for e in index["episodes"]}
    expected: dict[int, list[str]] = {}
    for role, e in zip(("lowest", "median", "highest"), (ranked[0], ranked[3], ranked[-1])):
        expected.setdefault(e["seed"], []).append(role)
    assert kept == expected
    files = sorted(p.name for p in (run_dir / "replays" / "training_facility_1").iterdir())
    assert files == sorted(f"seed_{s}.json.z" for s in expected)  # the others were deleted
    for entry in index["episodes"]:
        replay = replays.load(run_dir / entry["path"])  # zlib JSON, as mettascope reads it
        record = episodes[entry["seed"]]
        assert replay["version"] == 4 and replay["num_agents"] == 4 and replay["max_steps"] == record["steps"] == 60
        assert replay["infos"]["attributes"]["seed"] == entry["seed"]
        assert replay["infos"]["episode_rewards"] == pytest.approx(record["rewards"], abs=1e-4)  # this episode's


def test_all_keeps_every_episode_and_none_writes_nothing(tmp_path):
    every = run(tmp_path, "all", "pipeline=evaluate", "policy=baseline", "evaluation.episodes=4",
                "evaluation.replays=all", "seed=10")
    assert sorted(e["seed"] for e in replays.read_index(every)["training_facility_1"]["episodes"]) == [10, 11, 12, 13]
    assert len(list((every / "replays" / "training_facility_1").glob("*.json.z"))) == 4
    nothing = run(tmp_path, "none", "pipeline=evaluate", "policy=baseline", "evaluation.episodes=2")
    assert (nothing / "metrics.json").is_file() and not (nothing / "replays").exists()  # evaluate's default


def test_player_view_matches_the_replay_file(tmp_path):
    run_dir = run(tmp_path, "view", "pipeline=evaluate", "policy=baseline", "evaluation.episodes=1",
                  "evaluation.replays=all")
    path = run_dir / replays.read_index(run_dir)["training_facility_1"]["episodes"][0]["path"]
    replay = replays.load(path)
    view = replays.player_view(replay)
    assert (view["width"], view["height"], view["steps"]) == (*replay["map_size"], 60)
    rewards = [0.0] * 4
    for step in range(view["steps"]):
        cells = replays.agent_cells(replay, step)
        assert {a["id"]: (a["x"][step], a["y"][step]) for a in view["agents"]} == cells
        for a in view["agents"]:
            rewards[a["id"]] += a["reward"][step]
    assert rewards == pytest.approx(replay["infos"]["episode_rewards"], abs=1e-3)
    moves = {(a["x"][s], a["y"][s]) for a in view["agents"] for s in range(view["steps"])}
    assert len(moves) > 4  # the agents move: not a frozen first frame
    assert view["walls"] and {o["type"] for o in view["objects"]} >= {"assembler", "extractor_red"}


def test_analyze_keeps_each_failure_modes_examples_and_its_report_embeds_them(tmp_path):
    run_dir = run(tmp_path, "an", "pipeline=analyze", "policy=noop", "evaluation.episodes=4",
                  "analyze.example_seeds=2")
    analysis = json.loads((run_dir / "analysis.json").read_text())
    modes = {m["name"]: m["example_seeds"] for m in analysis["failure_modes"]}
    assert modes  # noop fails every episode
    kept = {e["seed"]: e["roles"] for e in replays.read_index(run_dir)["training_facility_1"]["episodes"]}
    for mode, seeds in modes.items():
        assert len(seeds) == 2
        for seed in seeds:
            assert f"failure:{mode}" in kept[seed]
    html = (run_dir / "report.html").read_text()
    assert 'id="replay-player"' in html and "failure:" in html
