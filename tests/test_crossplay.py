"""Cross-play (issue 13): real mixed-team episodes on mettagrid, their records, matrix, ratings, value over
replacement and report; and that a cross-play run is never read as a policy's solo score."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import read_json
from test_report_browser import EVIL, browser, open_report  # noqa: F401 (browser: the shared Chromium fixture)

pytestmark = pytest.mark.slow
FAST_STATS = ["statistics.bootstrap_reps=2000"]


@pytest.fixture(scope="module")
def baseline_random(tmp_path_factory):
    from daf_hydra.orchestrators import daf_crossplay

    out = tmp_path_factory.mktemp("crossplay") / "run"
    results = daf_crossplay(["baseline", "random"], ["training_facility_1"], episodes=8, rating_bootstrap_reps=200,
                            output_dir=out, overrides=FAST_STATS)
    return results, out


def test_baseline_and_random_give_a_2x2_matrix_ratings_and_value_over_replacement(baseline_random):
    results, out = baseline_random
    matrix = results.matrix.set_index(["a", "b"])
    assert sorted(matrix.index) == [("baseline", "baseline"), ("baseline", "random"), ("random", "baseline"),
                                    ("random", "random")]
    assert (matrix["low"] <= matrix["mean"]).all() and (matrix["mean"] <= matrix["high"]).all()
    # half of the agents (2 of 4) each: (baseline, random) and (random, baseline) are one composition
    assert matrix.loc[("baseline", "random"), "composition"] == matrix.loc[("random", "baseline"), "composition"]
    assert matrix.loc[("baseline", "baseline"), "mean"] > matrix.loc[("baseline", "random"), "mean"] \
        > matrix.loc[("random", "random"), "mean"]
    ratings = results.ratings.set_index("policy")
    assert ratings.loc["baseline", "rating"] > ratings.loc["random", "rating"]
    assert ratings.loc["baseline", "low"] > ratings.loc["random", "high"]  # intervals do not overlap
    vor = results.value_over_replacement.set_index("policy")
    assert vor.loc["baseline", "low"] > 0 > vor.loc["random", "high"]
    saved = read_json(out / "crossplay.json")
    assert saved["mixed_teams"] is True and len(saved["matrix"]) == 4
    metrics = read_json(out / "metrics.json")
    assert metrics["status"] == "completed" and metrics["objective"] == pytest.approx(vor.loc["baseline", "value"])
    assert read_json(out / "run.json")["identity"]["mixed_teams"] is True


def test_every_composition_plays_the_same_seeds_with_slots_rotated(baseline_random):
    _, out = baseline_random
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    seeds = {}
    for e in episodes:
        assert "policy" not in e  # a mixed-team episode is no policy's solo score
        seeds.setdefault(e["composition"], []).append(e["seed"])
    assert len(seeds) == 3 and all(sorted(s) == list(range(8)) for s in seeds.values())
    mixed = [e for e in episodes if e["composition"] == "baseline x2 + random x2"]
    assert all(Counter(e["agent_policies"]) == {"baseline": 2, "random": 2} for e in mixed)
    # over 8 seeds every one of the 4 slots is baseline's 4 times: the assignment rotates
    per_slot = Counter(i for e in mixed for i, p in enumerate(e["agent_policies"]) if p == "baseline")
    assert per_slot == {0: 4, 1: 4, 2: 4, 3: 4}


def test_the_report_shows_the_matrix_as_a_heatmap(baseline_random):
    _, out = baseline_random
    text = (out / "report.html").read_text()
    assert '"type":"heatmap"' in text and "Value over replacement" in text and "baseline x2 + random x2" in text
    assert "<script src=" not in text  # self-contained


def test_the_aggregator_never_reads_cross_play_episodes_as_solo_scores(baseline_random, tmp_path):
    from daf_hydra.aggregate import daf_aggregate_runs
    from daf_hydra.orchestrators import daf_run_comparison_pipeline

    _, out = baseline_random
    solo = daf_run_comparison_pipeline(["baseline"], ["training_facility_1"], 2, output_dir=tmp_path / "solo",
                                       overrides=FAST_STATS, generate_html_report=False)
    assert solo.is_success()
    import shutil

    shutil.copytree(out, tmp_path / "tree" / "crossplay")
    shutil.copytree(tmp_path / "solo", tmp_path / "tree" / "solo")
    tables = daf_aggregate_runs(tmp_path / "tree", use_index=False)
    assert "crossplay" in set(tables.runs["run_dir"].str.split("/").str[0])
    assert not tables.episodes["run_dir"].str.startswith("crossplay").any()
    assert len(tables.episodes) == 2 and set(tables.episodes["policy"]) == {"baseline"}


def test_each_agent_is_played_by_the_policy_its_record_names(tmp_path):
    """noop only ever takes noop; the movers only ever move: an agent's own action counts show who played it."""
    from daf_hydra.orchestrators import daf_crossplay

    policies = ["noop", "policies_for_tests.AlwaysEast", "policies_for_tests.BatchedNorth"]
    results = daf_crossplay(policies, ["training_facility_1"], episodes=4, k=1, rating_bootstrap_reps=10,
                            output_dir=tmp_path / "run", overrides=[*FAST_STATS, "mission.max_steps=40"])
    assert len(results.matrix) == 9 and results.matrix["composition"].nunique() == 9  # k=1 of 4: (A,B) != (B,A)
    episodes = [json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 9 * 4
    for e in episodes:
        for who, agent in zip(e["agent_policies"], e["agent_stats"]):
            moves = agent.get("action.move.success", 0) + agent.get("action.move.failed", 0)
            noops = agent.get("action.noop.success", 0)
            if who == "noop":
                assert (noops, moves) == (e["steps"], 0), (e["composition"], e["seed"], who, agent)
            else:
                assert (noops, moves) == (0, e["steps"]), (e["composition"], e["seed"], who, agent)
    one = [e for e in episodes if e["composition"] == "noop x1 + policies_for_tests.AlwaysEast x3"]
    assert {e["agent_policies"].index("noop") for e in one} == {0, 1, 2, 3}  # the lone slot rotates


def test_a_neural_policy_plays_in_a_mixed_team(tmp_path):
    """mettagrid's stateless network through the batched network actor, on the two agents it controls."""
    from daf_hydra.orchestrators import daf_crossplay

    results = daf_crossplay(["stateless", "noop"], ["training_facility_1"], episodes=2, rating_bootstrap_reps=10,
                            output_dir=tmp_path / "run", overrides=[*FAST_STATS, "mission.max_steps=30"])
    episodes = [json.loads(line) for line in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    mixed = [e for e in episodes if e["composition"] == "stateless x2 + noop x2"]
    assert len(mixed) == 2 and len(results.matrix) == 4
    for e in mixed:
        for who, agent in zip(e["agent_policies"], e["agent_stats"]):
            if who == "noop":
                assert agent.get("action.noop.success", 0) == e["steps"]
            else:
                assert agent.get("action.noop.success", 0) < e["steps"]


def test_the_cli_runs_it_and_a_second_run_is_not_played_again(cli, tmp_path):
    args = ("pipeline=crossplay", "crossplay.episodes=2", "crossplay.rating_bootstrap_reps=10",
            "mission.max_steps=30", *FAST_STATS, f"hydra.run.dir={tmp_path / 'run'}")
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "rating baseline" in r.stdout and "value over replacement" in r.stdout
    lines = (tmp_path / "run" / "episodes.jsonl").read_text()
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "completed earlier" in r.stdout and (tmp_path / "run" / "episodes.jsonl").read_text() == lines


@pytest.mark.browser
def test_the_report_renders_in_chromium_and_shows_names_as_text(browser, tmp_path):
    """The analysis and report of real code over made-up team rewards (a policy cannot be named <script>)."""
    from types import SimpleNamespace

    from daf_hydra.crossplay import CrossplayPlan, analyse
    from daf_hydra.crossplay_report import daf_export_crossplay_html
    from daf_hydra.policy_entries import PolicyEntry

    labels = [EVIL, "random", "baseline"]
    plan = CrossplayPlan([PolicyEntry(p, p) for p in labels], [SimpleNamespace(name="<b>m</b>")], {"<b>m</b>": 4},
                         {"<b>m</b>": 1}, list(range(6)), labels)
    episodes = [{"mission": "<b>m</b>", "composition": c.name, "seed": s,
                 "total_reward": float(10 * labels.index(c.a) + labels.index(c.b) + s % 3)}
                for c in plan.compositions("<b>m</b>") for s in plan.seeds]
    results = analyse(episodes, plan, SimpleNamespace(bootstrap_reps=500, confidence=0.95, bootstrap_seed=0), 20)
    path = daf_export_crossplay_html(results, tmp_path / "report.html")
    page, problems = open_report(browser, path, tmp_path / "report.png")
    assert problems == []
    assert page.locator(".js-plotly-plot").count() == 3  # the heatmap, ratings, value over replacement
    assert page.locator(".js-plotly-plot .heatmaplayer").count() == 1
    text = page.inner_text("body")
    assert EVIL in text and "<b>m</b>" in text and page.locator("img").count() == 0
    cells = page.eval_on_selector_all(".js-plotly-plot .heatmaplayer text", "els => els.map(e => e.textContent)")
    assert len(cells) == 9  # every composition's mean [interval], k=1 of 4: 3 x 3 distinct cells
    page.close()
