"""Records that never duplicate (docs/records.md, "A run directory holds one run"), through the real CLI: the same
command after a kill plays only the missing seeds and ends with the episodes of an uninterrupted run; a completed
run is not run again; a directory holding another run is refused; restart=true starts over; the same for the
members of a comparison."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import read_json

EVAL = ["pipeline=evaluate", "policy=lstm", "mission=training_facility_1", "mission.max_steps=40",
        "evaluation.episodes=5", "evaluation.num_envs=2"]
COMPARE = ["pipeline=compare", "compare.policies=[baseline,random]", "mission.max_steps=30",
           "compare.episodes_per_mission=4", "statistics.bootstrap_reps=200", "statistics.profile_bootstrap_reps=100"]


def lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def by_seed(path: Path) -> dict[int, dict]:
    """The episodes of a run by seed, without their wall time (the one field a replay may change); every seed
    recorded exactly once."""
    records = [json.loads(line) for line in lines(path)]
    seeds = [r["seed"] for r in records]
    assert len(seeds) == len(set(seeds)), f"duplicate seeds in {path}: {sorted(seeds)}"
    return {r["seed"]: {k: v for k, v in r.items() if k != "wall_time_s"} for r in records}


def simulate_kill(run_dir: Path, keep: int) -> None:
    """What kill -9 leaves: no metrics.json, `keep` whole lines of episodes.jsonl and a torn one after them."""
    episodes = run_dir / "episodes.jsonl"
    kept = lines(episodes)
    (run_dir / "metrics.json").unlink()
    episodes.write_text("".join(line + "\n" for line in kept[:keep]) + kept[keep][: len(kept[keep]) // 2])


@pytest.fixture
def reference(cli, tmp_path):
    """An uninterrupted evaluate run."""
    out = tmp_path / "reference"
    r = cli(*EVAL, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr
    return out


def test_a_killed_evaluation_plays_only_its_missing_seeds(cli, tmp_path, reference):
    out = tmp_path / "killed"
    shutil.copytree(reference, out)
    simulate_kill(out, keep=2)
    run_id = read_json(out / "run.json")["run_id"]
    r = cli(*EVAL, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr
    assert "2 of 5 episodes" in r.stdout and "playing the 3 missing" in r.stdout
    assert by_seed(out / "episodes.jsonl") == by_seed(reference / "episodes.jsonl")
    metrics, expected = read_json(out / "metrics.json"), read_json(reference / "metrics.json")
    assert metrics["status"] == "completed" and metrics["episodes"] == 5
    assert metrics["mean_reward"] == expected["mean_reward"] and metrics["objective"] == expected["objective"]
    run = read_json(out / "run.json")
    assert run["run_id"] == run_id and run["resumed"] == 1  # the same run, gone on


def test_a_completed_run_is_not_run_again(cli, reference):
    before = {name: (reference / name).read_bytes() for name in ("run.json", "episodes.jsonl", "metrics.json")}
    r = cli(*EVAL, f"hydra.run.dir={reference}")
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stdout.splitlines() if "completed earlier" in line]
    assert len(said) == 1 and "nothing to do" in said[0]
    assert {name: (reference / name).read_bytes() for name in before} == before


def test_a_completed_run_returns_its_recorded_objective(tmp_path):
    """What a sweep trial re-run hands its sweeper: the same objective, in memory, with nothing played."""
    from daf_hydra.compose import compose_config
    from daf_hydra.orchestrators import run_pipeline

    out = tmp_path / "run"
    first = run_pipeline(compose_config([*EVAL, "device=cpu"], out))
    episodes = (out / "episodes.jsonl").read_bytes()
    again = run_pipeline(compose_config([*EVAL, "device=cpu"], out))
    assert again == first == read_json(out / "metrics.json")["objective"]
    assert (out / "episodes.jsonl").read_bytes() == episodes


def test_a_directory_holding_another_run_is_refused(cli, reference):
    before = {name: (reference / name).read_bytes() for name in ("run.json", "episodes.jsonl", "metrics.json")}
    signature = read_json(reference / "run.json")["config_signature"]
    r = cli(*EVAL, "mission.max_steps=41", f"hydra.run.dir={reference}")
    assert r.returncode != 0
    errors = [line for line in (r.stdout + r.stderr).splitlines() if "holds another run" in line]
    assert len(errors) == 1 and signature in errors[0] and "restart=true" in errors[0]
    assert "Traceback" not in r.stderr
    assert {name: (reference / name).read_bytes() for name in before} == before


def test_restart_clears_the_run_and_starts_over(cli, reference):
    r = cli(*EVAL, "mission.max_steps=41", "evaluation.episodes=3", "restart=true", f"hydra.run.dir={reference}")
    assert r.returncode == 0, r.stderr
    assert sorted(by_seed(reference / "episodes.jsonl")) == [0, 1, 2]
    assert all(e["max_steps"] == 41 for e in by_seed(reference / "episodes.jsonl").values())
    run = read_json(reference / "run.json")
    assert "resumed" not in run and run["config"]["restart"] is True
    # restart is not part of what a run is: the same command without it finds this run completed
    r = cli(*EVAL, "mission.max_steps=41", "evaluation.episodes=3", f"hydra.run.dir={reference}")
    assert r.returncode == 0 and "completed earlier" in r.stdout
    assert len(lines(reference / "episodes.jsonl")) == 3


def test_restart_plays_a_completed_run_again(cli, reference):
    expected = by_seed(reference / "episodes.jsonl")
    r = cli(*EVAL, "restart=true", f"hydra.run.dir={reference}")
    assert r.returncode == 0, r.stderr
    assert "completed earlier" not in r.stdout
    assert by_seed(reference / "episodes.jsonl") == expected


@pytest.mark.slow
def test_a_real_kill_then_the_same_command_equals_an_uninterrupted_run(cli, tmp_path):
    settings = ["pipeline=evaluate", "policy=lstm", "mission=training_facility_1", "mission.max_steps=50",
                "evaluation.episodes=60", "evaluation.num_envs=1"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "daf_hydra.run", *settings, f"hydra.run.dir={killed}"],
                            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    episodes = killed / "episodes.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if episodes.is_file() and len(lines(episodes)) >= 2:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it was killed: make it longer"
    played = len(lines(episodes))
    assert 2 <= played < 60
    r = cli(*settings, f"hydra.run.dir={killed}")
    assert r.returncode == 0, r.stderr
    reference = tmp_path / "reference"
    assert cli(*settings, f"hydra.run.dir={reference}").returncode == 0
    assert by_seed(episodes) == by_seed(reference / "episodes.jsonl")
    assert len(lines(episodes)) == 60
    assert read_json(killed / "metrics.json")["mean_reward"] == read_json(reference / "metrics.json")["mean_reward"]


@pytest.mark.slow
def test_a_compare_rerun_after_a_member_was_killed_plays_only_what_is_missing(cli, tmp_path):
    reference = tmp_path / "reference"
    r = cli(*COMPARE, f"hydra.run.dir={reference}")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed"
    shutil.copytree(reference, out)
    member = out / "members" / "p1-random__training_facility_1"
    (out / "metrics.json").unlink()  # the comparison was killed while its second member played
    simulate_kill(member, keep=1)
    finished = (out / "members" / "p0-baseline__training_facility_1" / "episodes.jsonl").read_bytes()
    r = cli(*COMPARE, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr
    assert "1 of 4 episodes of random" in r.stdout and "playing the 3 missing" in r.stdout
    assert (out / "members" / "p0-baseline__training_facility_1" / "episodes.jsonl").read_bytes() == finished
    for name in ("p0-baseline__training_facility_1", "p1-random__training_facility_1"):
        assert by_seed(out / "members" / name / "episodes.jsonl") == \
            by_seed(reference / "members" / name / "episodes.jsonl")
    metrics, expected = read_json(out / "metrics.json"), read_json(reference / "metrics.json")
    assert metrics["complete"] is True
    assert (metrics["iqm"], metrics["objective"]) == (expected["iqm"], expected["objective"])
    # and once more: the comparison completed, nothing is played or written
    before = (out / "metrics.json").read_bytes()
    r = cli(*COMPARE, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stdout.splitlines() if "completed earlier" in line] == \
        [f"{out}: this run ({read_json(out / 'run.json')['config_signature']}) completed earlier: nothing to do, "
         "its recorded metrics stand (restart=true runs it again)"]
    assert (out / "metrics.json").read_bytes() == before


FAST_STATS = ["statistics.bootstrap_reps=200", "statistics.profile_bootstrap_reps=100"]
KILLED = {  # pipeline -> its command, the metrics a resumed run must share with an uninterrupted one
    "analyze": (["pipeline=analyze", "policy=random", "mission.max_steps=30", "evaluation.episodes=6", *FAST_STATS],
                ("mean_reward", "episodes")),
    "crossplay": (["pipeline=crossplay", "crossplay.episodes=3", "crossplay.rating_bootstrap_reps=10",
                   "mission.max_steps=30", *FAST_STATS], ("objective", "mean_reward", "rating", "episodes")),
}


@pytest.mark.parametrize("pipeline", sorted(KILLED))
def test_a_killed_analysis_or_crossplay_plays_only_what_is_missing(cli, tmp_path, pipeline):
    """Keyed by mission and seed (and composition, in cross-play): the episodes kept are not played again (their
    wall times are the killed run's), the others are, and the records end as an uninterrupted run's."""
    from daf_hydra.records import episode_key, read_jsonl

    args, same = KILLED[pipeline]
    reference = tmp_path / "reference"
    r = cli(*args, f"hydra.run.dir={reference}")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "killed"
    shutil.copytree(reference, out)
    simulate_kill(out, keep=2)
    kept = {episode_key(e): e for e in read_jsonl(out / "episodes.jsonl")}
    r = cli(*args, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr
    episodes, expected = read_jsonl(out / "episodes.jsonl"), read_jsonl(reference / "episodes.jsonl")
    keys = [episode_key(e) for e in episodes]
    assert len(keys) == len(set(keys)) == len(expected) > len(kept) == 2
    assert all(e == kept[episode_key(e)] for e in episodes if episode_key(e) in kept)

    def timeless(records: list[dict]) -> dict:
        return {episode_key(e): {k: v for k, v in e.items() if k != "wall_time_s"} for e in records}

    assert timeless(episodes) == timeless(expected)
    metrics, reference_metrics = read_json(out / "metrics.json"), read_json(reference / "metrics.json")
    assert metrics["status"] == "completed" and read_json(out / "run.json")["resumed"] == 1
    assert {k: metrics[k] for k in same} == {k: reference_metrics[k] for k in same}
