"""Comparisons: the statistics wiring on fixed data, policy entries, and real paired comparisons."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from daf_hydra import stats
from daf_hydra.comparison import daf_compare_policies
from daf_hydra.comparison_stats import ALL_MISSIONS, compare_episodes
from daf_hydra.policy_entries import PolicyEntry, parse_policies, parse_policy
from daf_hydra.errors import DAFError
from daf_hydra.records import read_run
from daf_hydra.orchestrators.compare import daf_run_comparison_pipeline

FAST = {"bootstrap_reps": 2000, "profile_bootstrap_reps": 500, "bootstrap_seed": 7}


def table(scores: dict[str, dict[str, list[float]]], seed0: int = 100) -> pd.DataFrame:
    """policy -> mission -> totals (episode k has seed seed0 + k) as a tidy episodes table."""
    return pd.DataFrame([
        {"policy": p, "mission": m, "seed": seed0 + k, "total_reward": v, "success": v >= 5, "run_dir": f"{p}/{m}"}
        for p, missions in scores.items() for m, values in missions.items() for k, v in enumerate(values)
    ])


RNG = np.random.default_rng(3)
A1, A2 = RNG.normal(10, 2, 12), RNG.normal(30, 5, 12)
# Untied paired differences: with ties scipy's Wilcoxon falls back to a ~1 s permutation test (n <= 13).
UP1, UP2 = 4 + RNG.uniform(0, 1, 12), 6 + RNG.uniform(0, 1, 12)
FIXED = {
    "strong": {"m1": list(A1 + UP1), "m2": list(A2 + UP2)},
    "weak": {"m1": list(A1), "m2": list(A2)},
    "twin": {"m1": list(A1), "m2": list(A2)},  # identical to weak, episode by episode
}


def test_summary_uses_the_stats_functions_on_the_paired_scores():
    r = compare_episodes(table(FIXED), FAST, max_reward={"m1": 20.0, "m2": 50.0})
    row = r.summary_statistics.set_index(["policy", "mission"]).loc[("strong", "m1")]
    ci = stats.aggregate_with_ci({"m1": A1 + UP1}, 2000, 0.95, 7, gamma=20.0)
    assert row["iqm"] == pytest.approx(ci["iqm"]["point"])
    assert (row["iqm_low"], row["iqm_high"]) == pytest.approx((ci["iqm"]["low"], ci["iqm"]["high"]))
    assert (row["optimality_gap"], row["optimality_gap_low"]) == pytest.approx(
        (ci["optimality_gap"]["point"], ci["optimality_gap"]["low"]))
    mean, se = stats.mean_and_standard_error(A1 + UP1)
    assert (row["mean"], row["stderr"], row["n_episodes"]) == pytest.approx((mean, se, 12))
    # every mission states max_reward: the all-missions aggregate pools normalised scores, gap target 1
    overall = r.summary_statistics.set_index(["policy", "mission"]).loc[("strong", ALL_MISSIONS)]
    normalised = {"m1": (A1 + UP1) / 20.0, "m2": (A2 + UP2) / 50.0}
    assert overall["iqm"] == pytest.approx(stats.iqm(normalised))
    assert overall["optimality_gap"] == pytest.approx(stats.optimality_gap(normalised, 1.0))
    assert r.settings["aggregate_score"] == "total reward / mission max_reward"
    assert r.settings["bootstrap_reps"] == 2000 and r.settings["bootstrap_seed"] == 7
    poi = r.probability_of_improvement.set_index(["policy_x", "policy_y"]).loc[("strong", "weak")]
    assert poi["probability"] == pytest.approx(stats.probability_of_improvement(
        {"m1": A1 + UP1, "m2": A2 + UP2}, {"m1": A1, "m2": A2}))
    profile = r.performance_profiles[r.performance_profiles["policy"] == "weak"]
    assert len(profile) == 51 and profile["fraction"].is_monotonic_decreasing
    assert r.completeness.complete


def test_pairwise_tests_are_holm_corrected_and_identical_samples_are_never_significant():
    r = compare_episodes(table(FIXED), {**FAST, "significance_level": 0.05})
    t = r.pairwise_significance_tests
    assert set(t["scope"]) == {ALL_MISSIONS, "m1", "m2"}
    assert set(t["test"]) == {"wilcoxon_signed_rank", "welch_t", "mann_whitney_u"}
    pooled = {p: {m: np.array(v) for m, v in ms.items()} for p, ms in FIXED.items()}
    expected = {(c.policy_x, c.policy_y): c for c in stats.compare_pairwise(pooled, alpha=0.05, paired=True)}
    wilcoxon = t[(t["scope"] == ALL_MISSIONS) & (t["test"] == "wilcoxon_signed_rank")]
    for row in wilcoxon.itertuples():
        c = expected[(row.policy_x, row.policy_y)]
        assert row.p_value == pytest.approx(c.result.p_value) and row.p_adjusted == pytest.approx(c.p_adjusted)
    twin = t[(t["policy_x"] == "weak") & (t["policy_y"] == "twin")]
    assert len(twin) == 9 and not twin["significant"].any()
    assert set(twin["verdict"]) == {"identical samples"}
    strong = wilcoxon[(wilcoxon["policy_x"] == "strong") & (wilcoxon["policy_y"] == "weak")].iloc[0]
    assert strong["significant"] and strong["verdict"] == "strong better (significant)"
    assert strong["effect_size"] == pytest.approx(1.0)  # every paired difference favours strong
    assert ("strong", "weak") in r.significant() and ("weak", "twin") not in r.significant()
    # one test decides (paired episodes: Wilcoxon); the others are labelled secondary, in the table and the text
    assert set(t[t["role"] == "primary"]["test"]) == {"wilcoxon_signed_rank"}
    assert set(t[t["role"] == "secondary"]["test"]) == {"welch_t", "mann_whitney_u"}
    assert r.decided_by().startswith("Wilcoxon signed-rank over seed-matched episodes")


def test_training_runs_are_decided_by_welch_not_by_an_absent_wilcoxon():
    runs = {"strong": {"m1": [9.0, 9.5, 10.0, 10.5]}, "weak": {"m1": [1.0, 1.5, 2.0, 2.5]}}
    r = compare_episodes(table(runs), FAST, unit="run")
    t = r.pairwise_significance_tests
    assert set(t[t["role"] == "primary"]["test"]) == {"welch_t"}
    assert r.significant() == [("strong", "weak")]  # was always empty: it asked for Wilcoxon rows
    assert r.decided_by() == "Welch's t over training runs, Holm-corrected (Mann-Whitney U secondary)"


def test_zero_variance_samples_are_reported_not_called_significant():
    r = compare_episodes(table({"a": {"m": [3.0] * 6}, "b": {"m": [1.0] * 6}}), FAST)
    t = r.pairwise_significance_tests.set_index("test")
    assert math.isnan(t.loc["welch_t", "p_value"]) and not t.loc["welch_t", "significant"]
    assert t.loc["welch_t", "verdict"].startswith("undefined (zero variance")
    # paired differences all +2: Wilcoxon has real evidence (exact p = 2 / 2**6)
    assert t.loc["wilcoxon_signed_rank", "p_value"] == pytest.approx(2 / 2**6)
    same = compare_episodes(table({"a": {"m": [3.0] * 6}, "b": {"m": [3.0] * 6}}), FAST)
    assert not same.pairwise_significance_tests["significant"].any()


def test_completeness_names_missing_episodes_and_analyses_only_paired_seeds():
    episodes = table(FIXED)
    dropped = episodes[(episodes["policy"] == "weak") & (episodes["mission"] == "m2") & (episodes["seed"] == 105)]
    episodes = episodes.drop(dropped.index)
    runs = pd.DataFrame([{"run_dir": "weak/m2", "status": "failed", "policy": "weak", "mission": "m2",
                          "error": "RuntimeError: died at episode 5"}])
    r = compare_episodes(episodes, FAST, runs=runs)
    c = r.completeness
    assert not c.complete and "1 missing" in c.summary()
    assert c.missing.to_dict("records") == [{"policy": "weak", "mission": "m2", "seed": 105,
                                             "reason": "run weak/m2 failed: RuntimeError: died at episode 5"}]
    assert sorted(c.left_out["policy"]) == ["strong", "twin"]  # their seed 105 on m2 has no partner
    n = r.summary_statistics.set_index(["policy", "mission"])["n_episodes"]
    assert n[("strong", "m2")] == 11 and n[("strong", "m1")] == 12  # never filled in, never made up
    # a duplicate recording of an episode is named and not used
    twice = pd.concat([table(FIXED), table(FIXED).iloc[:1]])
    assert len(compare_episodes(twice, FAST).completeness.duplicates) == 1


def test_missions_not_every_policy_played_are_analysed_alone_not_pooled():
    scores = {"a": {"m1": [1.0, 2.0, 3.0], "m2": [5.0, 6.0, 7.0]}, "b": {"m1": [0.0, 1.0, 1.0]}}
    r = compare_episodes(table(scores), FAST)
    assert r.settings["pooled_missions"] == ["m1"]
    assert r.completeness.unpooled_missions == ["m2"] and not r.completeness.complete
    assert ("a", "m2") in set(zip(r.summary_statistics["policy"], r.summary_statistics["mission"]))


def test_policy_entries():
    assert parse_policy("baseline") == PolicyEntry("baseline", "baseline")
    assert parse_policy("lstm:/ckpt/model.pt") == PolicyEntry("lstm:/ckpt/model.pt", "lstm", "/ckpt/model.pt",
                                                              {"hidden_size": 64})
    assert parse_policy("pkg.mod.Cls").class_path == "pkg.mod.Cls"
    from mettagrid.policy.policy import PolicySpec

    spec = parse_policy(PolicySpec(class_path="lstm", data_path="/w/a.pt"))
    assert (spec.label, spec.class_path, spec.data_path) == ("lstm-a.pt", "lstm", "/w/a.pt")
    with pytest.raises(DAFError, match="more than once"):
        parse_policies(["random", "random"])
    with pytest.raises(DAFError, match="checkpoint"):
        parse_policy("lstm:")


@pytest.mark.slow
def test_baseline_beats_random_significantly_and_random_against_itself_does_not(tmp_path):
    results = daf_compare_policies(
        policies=["baseline", "random", PolicyEntry("random-again", "random")], missions=["training_facility_1"],
        episodes_per_mission=12, output_dir=tmp_path, overrides=["statistics.bootstrap_reps=2000",
                                                                   "statistics.profile_bootstrap_reps=500"],
    )
    assert results.completeness.complete
    t = results.pairwise_significance_tests
    wilcoxon = t[t["test"] == "wilcoxon_signed_rank"].set_index(["policy_x", "policy_y"])
    assert wilcoxon.loc[("baseline", "random"), "significant"]
    assert wilcoxon.loc[("baseline", "random"), "p_adjusted"] < 0.01
    # the same policy on the same seeds plays the same episodes: identical, never significant
    again = t[t["policy_y"] == "random-again"]
    assert not again[again["policy_x"] == "random"]["significant"].any()
    assert set(again[again["policy_x"] == "random"]["verdict"]) == {"identical samples"}
    assert ("baseline", "random") in results.significant()
    # the episodes are the members' records, same seeds for every policy
    seeds = results.episodes.groupby("policy")["seed"].apply(list)
    assert seeds["baseline"] == seeds["random"] == list(range(12))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "baseline > random" in metrics["significant_pairs"]
    assert (tmp_path / "comparison" / "pairwise_significance_tests.csv").is_file()


@pytest.mark.slow
def test_cli_compare_pipeline_in_parallel_processes(cli, tmp_path):
    out = cli("pipeline=compare", "compare.policies=[baseline,random]", "compare.missions=[solo_forage]",
              "compare.episodes_per_mission=6", "compare.parallel=true", "compare.workers=2",
              "statistics.bootstrap_reps=1000", "statistics.profile_bootstrap_reps=200", "hydra.run.dir=cmp")
    assert out.returncode == 0, out.stderr[-3000:]
    assert ("significantly better (Wilcoxon signed-rank over seed-matched episodes, Holm-corrected (Welch's t and "
            "Mann-Whitney U secondary)): baseline > random") in out.stdout
    run = tmp_path / "cmp"
    assert sorted(p.name for p in (run / "members").iterdir()) == ["p0-baseline__solo_forage",
                                                                     "p1-random__solo_forage"]
    for member in (run / "members").iterdir():
        assert json.loads((member / "metrics.json").read_text())["status"] == "completed"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["complete"] is True
    assert metrics["candidate"] == "baseline" and metrics["objective"] == metrics["iqm"]["baseline"]
    assert metrics["stages_completed"] == ["environment_check", "comparison", "significance_testing", "report"]
    assert (run / "report.html").stat().st_size > 1_000_000  # plotly.js inline


@pytest.mark.slow
def test_pipeline_api_reports_a_failed_member_as_partial_with_its_missing_episodes(tmp_path):
    from mettagrid.policy.policy import PolicySpec

    result = daf_run_comparison_pipeline(
        policies=["noop", PolicySpec(class_path="lstm"), "lstm:/no/such/checkpoint.pt"], missions=["solo_forage"],
        episodes_per_mission=3, output_dir=tmp_path,
        overrides=["statistics.bootstrap_reps=200", "statistics.profile_bootstrap_reps=100"],
    )
    assert result.status == "partial" and not result.is_success()
    assert result.stages_completed == ["environment_check", "comparison", "significance_testing", "report"]
    assert any("checkpoint" in e and "does not exist" in e for e in result.errors)
    missing = result.outputs["results"].completeness.missing
    assert list(missing["seed"]) == [0, 1, 2] and set(missing["policy"]) == {"lstm:/no/such/checkpoint.pt"}
    assert missing["reason"].str.contains("failed: DAFError: checkpoint").all()
    assert result.total_time_seconds > 0 and result.outputs["report"].is_file()
    summary = result.outputs["results"].summary_statistics
    assert set(summary["policy"]) == {"noop", "lstm (untrained)"}  # the untrained network played, marked


def test_pipeline_api_stops_at_the_environment_check_for_an_unknown_policy(tmp_path):
    result = daf_run_comparison_pipeline(policies=["random", "no_such_policy_name"], missions=["solo_forage"],
                                         episodes_per_mission=2, output_dir=tmp_path)
    assert result.status == "failed" and result.stages_failed == ["environment_check"]
    assert "no_such_policy_name" in result.errors[0]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


def test_invalid_settings_fail_before_any_episode(tmp_path):
    with pytest.raises(DAFError, match="statistics.confidence=1.5"):
        compare_episodes(table(FIXED), {"confidence": 1.5})
    with pytest.raises(DAFError, match="compare.episodes_per_mission=0 is invalid"):  # before any work
        daf_run_comparison_pipeline(policies=["random"], missions=["solo_forage"], episodes_per_mission=0,
                                    output_dir=tmp_path)
    assert not (tmp_path / "members").exists()


def test_the_python_api_fails_as_loudly_as_the_cli_on_a_member_that_cannot_run(tmp_path):
    from mettagrid.policy.policy import PolicySpec

    with pytest.raises(DAFError, match=r"lstm\S* on solo_forage: .*model.pt. does not exist") as caught:
        daf_compare_policies([PolicySpec(class_path="lstm", data_path=str(tmp_path / "ckpt" / "model.pt")),
                              "random"], ["solo_forage"], episodes_per_mission=2, output_dir=tmp_path / "cmp",
                             overrides=["mission.max_steps=30"])
    assert len(str(caught.value).splitlines()) == 1
    assert read_run(tmp_path / "cmp").metrics["status"] == "failed"  # recorded as failed, never scored
