"""Mission analysis: failure modes from recorded stats (fixed records), and real analyses of real policies."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from daf_hydra.config import AnalyzeConfig
from daf_hydra.mission_analysis import (
    FAILURE_MODES,
    analyse_episodes,
    classify_failure,
    daf_analyze_mission_performance,
    per_agent_table,
)

MISSION = SimpleNamespace(name="m", success_threshold=5.0)
FAST = {"bootstrap_reps": 1000}


def record(seed: int, total: float, steps: int = 100, max_steps: int = 100, success: bool | None = None,
           **agent: float) -> dict:
    stats = {"status.max_steps_without_motion": 3.0, "action.failed": 5.0, **agent}
    return {"episode": seed, "seed": seed, "rewards": [total / 2, total / 2], "total_reward": total, "steps": steps,
            "max_steps": max_steps, "success": total >= 5.0 if success is None else success,
            "agent_stats": [dict(stats), dict(stats)]}


@pytest.mark.parametrize("rec, mode", [
    (record(0, 0.0, **{"status.max_steps_without_motion": 100.0}), "stuck_without_motion"),
    (record(1, 0.0, **{"action.failed": 60.0}), "action_failures"),
    (record(2, 0.0), "never_reached_reward_source"),
    (record(3, 0.0, **{"ore_red.gained": 2.0}), "partial_progress_out_of_steps"),
    (record(4, 1.5), "partial_progress_out_of_steps"),
    (record(5, 1.5, steps=40), "ended_early"),
])
def test_each_failure_mode_is_recognised_from_the_recorded_stats(rec, mode):
    assert classify_failure(rec, AnalyzeConfig()) == mode


def test_thresholds_decide_the_mode():
    half_stuck = record(0, 0.0, **{"status.max_steps_without_motion": 40.0})
    assert classify_failure(half_stuck, AnalyzeConfig(stuck_fraction=0.5)) == "never_reached_reward_source"
    assert classify_failure(half_stuck, AnalyzeConfig(stuck_fraction=0.3)) == "stuck_without_motion"


def test_analysis_of_fixed_records():
    episodes = [record(0, 8.0, **{"ore_red.gained": 3.0})] + [
        record(s, 0.0, **{"status.max_steps_without_motion": 100.0}) for s in range(1, 8)] + [record(9, 2.0)]
    a = analyse_episodes(episodes, "p", MISSION, AnalyzeConfig(example_seeds=3), FAST)
    assert a.success_rate == pytest.approx(1 / 9)
    low, high = a.success_rate_ci
    assert 0 < low < 1 / 9 < high < 0.5  # Wilson: never [0, 0] or [1, 1] from a finite sample
    assert a.mean_reward == pytest.approx(10 / 9) and a.mean_reward_ci[0] <= 10 / 9 <= a.mean_reward_ci[1]
    modes = {m.name: m for m in a.failure_modes}
    assert modes["stuck_without_motion"].count == 7 and modes["stuck_without_motion"].example_seeds == [1, 2, 3]
    assert modes["partial_progress_out_of_steps"].count == 1 and a.failed_episodes == 8
    assert set(modes) <= set(FAILURE_MODES)
    assert a.episode_table()["failure_mode"].isna().tolist()[:2] == [True, False]
    assert a.episode_table()["failure_mode"][1] == "stuck_without_motion"
    json.dumps(a.to_dict(), allow_nan=False)  # analysis.json is strict JSON (no NaN)


def test_per_agent_breakdown():
    eps = [record(0, 4.0, **{"ore_red.gained": 2.0, "heart.gained": 1.0}),
           record(1, 8.0, **{"ore_red.gained": 4.0, "heart.gained": 1.0})]
    t = per_agent_table(eps).set_index("agent")
    assert list(t.index) == [0, 1]
    assert t.loc[0, "mean_reward"] == pytest.approx(3.0) and t.loc[0, "mean_resources_gained"] == pytest.approx(3.0)
    assert t.loc[0, "mean_hearts_gained"] == pytest.approx(1.0)
    assert t.loc[0, "action_failure_rate"] == pytest.approx(0.05)


def test_a_mission_without_a_criterion_reports_no_success_rate():
    eps = [{**record(0, 1.0), "success": None}, {**record(1, 2.0), "success": None}]
    a = analyse_episodes(eps, "p", SimpleNamespace(name="cogames_m"), None, FAST)
    assert a.success_rate is None and a.failure_modes == [] and a.success_criterion.startswith("none")


@pytest.mark.slow
def test_noop_fails_every_episode_by_standing_still(tmp_path):
    a = daf_analyze_mission_performance("noop", "training_facility_1", episodes=4, output_dir=tmp_path,
                                        overrides=["statistics.bootstrap_reps=500"])
    assert a.success_rate == 0.0 and a.mean_reward == 0.0
    assert [(m.name, m.count, m.example_seeds) for m in a.failure_modes] == [
        ("stuck_without_motion", 4, [0, 1, 2, 3])]
    assert (a.per_agent["share_stuck"] == 1.0).all() and len(a.per_agent) == 4
    assert json.loads((tmp_path / "analysis.json").read_text())["failure_modes"][0]["count"] == 4
    assert (tmp_path / "report.html").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["failure_modes"] == {"stuck_without_motion": 4}


@pytest.mark.slow
def test_cli_analyze_pipeline(cli, tmp_path):
    out = cli("pipeline=analyze", "policy=random", "mission=training_facility_1", "evaluation.episodes=8",
              "statistics.bootstrap_reps=500", "hydra.run.dir=an")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "success rate" in out.stdout and "partial_progress_out_of_steps" in out.stdout
    analysis = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert analysis["episodes"] == 8 and analysis["seeds"] == list(range(8))
    assert sum(m["count"] for m in analysis["failure_modes"]) == analysis["failed_episodes"]
    assert analysis["failed_episodes"] == 8 - round(analysis["success_rate"] * 8)
