"""Tests for daf_hydra.stats against independent computations on fixed data."""

from __future__ import annotations

import itertools
import math
import statistics
import time

import numpy as np
import pytest
import scipy.stats

from daf_hydra import stats

RNG = np.random.default_rng(20240601)
# Ragged scores for one policy, deliberately inserted out of sorted order.
SCORES = {
    "mission_b": RNG.normal(1.0, 0.5, size=7).round(3),
    "mission_a": RNG.normal(0.0, 1.0, size=5).round(3),
    "mission_c": np.array([0.5, 0.5, 2.0, -1.0, 0.25, 0.5]),
}
POOLED = [v for task in sorted(SCORES) for v in SCORES[task]]


def hand_iqm(values) -> float:
    """Interquartile mean as rliable defines it: drop floor(n/4) sorted scores at each end."""
    ordered = sorted(values)
    cut = len(ordered) // 4
    middle = ordered[cut : len(ordered) - cut]
    return sum(middle) / len(middle)


def loop_bootstrap(groups, statistic_of_groups, reps, seed, confidence=0.95):
    """Plain-Python stratified bootstrap on the documented random stream.

    Per repetition, one uniform per resampled score, groups in order; index floor(u * n).
    """
    rng = np.random.default_rng(seed)
    total = sum(len(g) for g in groups)
    values = []
    for _ in range(reps):
        u = rng.random(total)
        resampled, position = [], 0
        for g in groups:
            n = len(g)
            resampled.append([g[min(int(u[position + j] * n), n - 1)] for j in range(n)])
            position += n
        values.append(statistic_of_groups(resampled))
    tail = 50 * (1 - confidence)
    return np.percentile(np.array(values), [tail, 100 - tail], axis=0)


def brute_prob_greater(x, y) -> float:
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)
    return wins / (len(x) * len(y))


# ---------------------------------------------------------------------------------------------
# Point aggregates
# ---------------------------------------------------------------------------------------------


def test_pool_concatenates_tasks_in_sorted_order():
    assert stats.pool(SCORES).tolist() == POOLED


@pytest.mark.parametrize(
    "bad",
    [{}, {"t": []}, {"t": [1.0, float("nan")]}, {"t": [1.0, float("inf")]}, {"t": [[1.0, 2.0]]}],
)
def test_invalid_scores_are_rejected_not_guessed(bad):
    with pytest.raises(ValueError):
        stats.pool(bad)


def test_iqm_matches_hand_sorted_slicing():
    assert len(POOLED) == 18  # cut 4 from each end
    assert stats.iqm(SCORES) == pytest.approx(hand_iqm(POOLED), rel=1e-12)
    rows = np.array([[5.0, 1.0, 3.0, 100.0, 2.0, 4.0, -50.0, 3.5], [1.0] * 8])
    assert np.allclose(stats.iqm(rows), [hand_iqm(rows[0]), 1.0])
    assert stats.iqm(rows[0]) == pytest.approx((2.0 + 3.0 + 3.5 + 4.0) / 4)


def test_mean_median_pooled_match_statistics_module():
    assert stats.mean(SCORES) == pytest.approx(statistics.fmean(POOLED), rel=1e-12)
    assert stats.median(SCORES) == pytest.approx(statistics.median(POOLED), rel=1e-12)


def test_optimality_gap_by_hand():
    scores = {"a": [0.2, 1.5], "b": [0.9, 1.0]}
    # min(score, 1) = 0.2, 1, 0.9, 1 -> mean 0.775
    assert stats.optimality_gap(scores, gamma=1.0) == pytest.approx(0.225)
    assert stats.optimality_gap(scores, gamma=0.0) == pytest.approx(0.0)


def test_performance_profile_counts_strictly_greater():
    taus = [-1.0, 0.5, 3.0]
    expected = [sum(v > t for v in POOLED) / len(POOLED) for t in taus]
    assert np.allclose(stats.performance_profile(SCORES, taus), expected)
    # Strictly greater: a score equal to tau does not count.
    at_tau = stats.performance_profile({"t": [0.5, 0.5, 1.0]}, [0.5])
    assert at_tau.tolist() == [pytest.approx(1 / 3)]


def test_mean_and_standard_error():
    x = [1.0, 2.0, 4.0, 7.0]
    m, se = stats.mean_and_standard_error(x)
    assert m == pytest.approx(3.5)
    assert se == pytest.approx(statistics.stdev(x) / math.sqrt(4))
    m1, se1 = stats.mean_and_standard_error([3.0])
    assert m1 == 3.0 and math.isnan(se1)


# ---------------------------------------------------------------------------------------------
# Stratified bootstrap
# ---------------------------------------------------------------------------------------------


def test_bootstrap_ci_matches_plain_python_loop():
    groups = [list(SCORES[t]) for t in sorted(SCORES)]
    expected = loop_bootstrap(groups, lambda gs: hand_iqm([v for g in gs for v in g]), 400, seed=7)
    low, high = stats.stratified_bootstrap_ci(SCORES, stats.iqm, reps=400, seed=7)
    assert np.allclose([low, high], expected, rtol=0, atol=1e-12)


def test_bootstrap_block_size_does_not_change_result(monkeypatch):
    reference = stats.stratified_bootstrap_ci(SCORES, stats.median, reps=301, seed=3)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 40)  # about two repetitions per block
    assert stats.stratified_bootstrap_ci(SCORES, stats.median, reps=301, seed=3) == reference


def test_bootstrap_resamples_within_tasks():
    # A pooled (unstratified) resample would vary the share of ones; a stratified one cannot.
    scores = {"zeros": np.zeros(3), "ones": np.ones(7)}
    assert stats.stratified_bootstrap_ci(scores, stats.mean, reps=500) == pytest.approx((0.7, 0.7))


def test_bootstrap_agrees_with_scipy_percentile_bootstrap():
    x = np.random.default_rng(11).gamma(2.0, 1.0, size=60)
    ours = stats.stratified_bootstrap_ci({"only": x}, stats.mean, reps=20_000, seed=1)
    theirs = scipy.stats.bootstrap(
        (x,), np.mean, n_resamples=20_000, method="percentile", rng=np.random.default_rng(2)
    ).confidence_interval
    width = theirs.high - theirs.low
    assert abs(ours[0] - theirs.low) < 0.03 * width
    assert abs(ours[1] - theirs.high) < 0.03 * width


def test_bootstrap_is_deterministic_per_seed():
    a = stats.stratified_bootstrap_ci(SCORES, stats.iqm, reps=1000, seed=5)
    b = stats.stratified_bootstrap_ci(SCORES, stats.iqm, reps=1000, seed=5)
    c = stats.stratified_bootstrap_ci(SCORES, stats.iqm, reps=1000, seed=6)
    assert a == b
    assert a != c


def test_bootstrap_does_not_depend_on_task_insertion_order():
    reordered = {t: SCORES[t] for t in reversed(list(SCORES))}
    expected = stats.stratified_bootstrap_ci(SCORES, stats.iqm, reps=200)
    assert stats.stratified_bootstrap_ci(reordered, stats.iqm, reps=200) == expected


def test_bootstrap_confidence_level_widens_interval():
    narrow = stats.stratified_bootstrap_ci(SCORES, stats.mean, reps=2000, confidence=0.5)
    wide = stats.stratified_bootstrap_ci(SCORES, stats.mean, reps=2000, confidence=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


@pytest.mark.parametrize("reps, confidence", [(0, 0.95), (10, 0.0), (10, 1.0)])
def test_bootstrap_rejects_bad_arguments(reps, confidence):
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci(SCORES, stats.mean, reps=reps, confidence=confidence)


def test_bootstrap_50k_iqm_is_fast():
    rng = np.random.default_rng(0)
    scores = {f"m{i}": rng.normal(size=40) for i in range(5)}  # 200 scores
    start = time.perf_counter()
    low, high = stats.stratified_bootstrap_ci(scores, stats.iqm, reps=50_000)
    assert time.perf_counter() - start < 5.0
    assert low < stats.iqm(scores) < high


def test_aggregate_with_ci_uses_shared_resamples():
    result = stats.aggregate_with_ci(SCORES, reps=3000, seed=9, gamma=1.0)
    assert list(result) == ["iqm", "median", "mean", "optimality_gap"]
    functions = {
        "iqm": stats.iqm,
        "median": stats.median,
        "mean": stats.mean,
        "optimality_gap": lambda x: stats.optimality_gap(x, 1.0),
    }
    for name, f in functions.items():
        # The random stream does not depend on the statistic, so one-at-a-time must agree.
        low, high = stats.stratified_bootstrap_ci(SCORES, f, reps=3000, seed=9)
        expected = {"point": f(SCORES), "low": low, "high": high}
        assert result[name] == pytest.approx(expected, abs=1e-12)
        assert result[name]["low"] <= result[name]["point"] <= result[name]["high"]
    assert "optimality_gap" not in stats.aggregate_with_ci(SCORES, reps=100)


def test_performance_profile_ci_matches_loop():
    taus = [-0.5, 0.5, 1.2]
    groups = [list(SCORES[t]) for t in sorted(SCORES)]

    def profile(gs):
        pooled = [v for g in gs for v in g]
        return [sum(v > t for v in pooled) / len(pooled) for t in taus]

    point, low, high = stats.performance_profile_ci(SCORES, taus, reps=300, seed=4)
    expected_low, expected_high = loop_bootstrap(groups, profile, 300, seed=4)
    assert np.allclose(point, profile(groups))
    assert np.allclose(low, expected_low) and np.allclose(high, expected_high)
    assert np.all(low <= point) and np.all(point <= high)


# ---------------------------------------------------------------------------------------------
# Probability of improvement
# ---------------------------------------------------------------------------------------------

X_TASKS = {"a": [1.0, 2.0, 3.0, 3.0], "b": [0.0, 5.0, 5.0]}
Y_TASKS = {"b": [5.0, 1.0], "a": [3.0, 0.5, 2.5]}


def test_probability_of_improvement_brute_force_pairs():
    per_task = [brute_prob_greater(X_TASKS[t], Y_TASKS[t]) for t in ("a", "b")]
    expected = sum(per_task) / 2  # tasks weigh equally despite 12 vs 6 pairs
    assert stats.probability_of_improvement(X_TASKS, Y_TASKS) == pytest.approx(expected, rel=1e-12)
    assert stats.probability_of_improvement(X_TASKS, Y_TASKS) + stats.probability_of_improvement(
        Y_TASKS, X_TASKS
    ) == pytest.approx(1.0)
    assert stats.probability_of_improvement(X_TASKS, X_TASKS) == pytest.approx(0.5)


def test_probability_of_improvement_requires_same_tasks():
    with pytest.raises(ValueError, match="different tasks"):
        stats.probability_of_improvement(X_TASKS, {"a": [1.0]})


def test_probability_of_improvement_ci_matches_loop():
    groups = [X_TASKS["a"], Y_TASKS["a"], X_TASKS["b"], Y_TASKS["b"]]

    def poi(gs):
        return (brute_prob_greater(gs[0], gs[1]) + brute_prob_greater(gs[2], gs[3])) / 2

    point, low, high = stats.probability_of_improvement_ci(X_TASKS, Y_TASKS, reps=500, seed=12)
    assert point == pytest.approx(poi(groups))
    assert np.allclose([low, high], loop_bootstrap(groups, poi, 500, seed=12), atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Two-sample tests
# ---------------------------------------------------------------------------------------------

X = np.array([3.1, 2.4, 5.0, 4.2, 3.3, 2.9, 4.8, 3.7, 4.1, 2.2, 3.9, 4.4])
# Distinct |X - Y| so that scipy uses its exact Wilcoxon distribution; with ties and n <= 13 it
# switches to exhaustive permutations, which are correct but take about a second.
Y = X - np.array([1.1, -0.2, 1.05, 0.95, -0.15, 1.3, 0.85, 1.25, 0.75, -0.1, 1.2, 1.45])


def test_paired_test_matches_scipy_wilcoxon():
    result = stats.paired_test(X, Y)
    reference = scipy.stats.wilcoxon(X, Y)
    assert result.test == "wilcoxon_signed_rank"
    assert result.statistic == reference.statistic
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (result.n_x, result.n_y) == (12, 12)


def test_paired_rank_biserial_by_hand():
    y = np.zeros(6)
    x = np.array([1.0, -2.0, 3.0, 4.0, -5.0, 0.0])  # one zero difference is dropped
    # ranks of |d| = 1..5; T+ = 1 + 3 + 4 = 8, T- = 2 + 5 = 7 -> r = (8 - 7) / 15
    result = stats.paired_test(x, y)
    assert result.effect_size == pytest.approx(1 / 15)
    assert "1 zero difference" in result.note


def test_paired_identical_samples_are_not_significant():
    result = stats.paired_test(X, X.copy())
    assert result.p_value == 1.0 and result.effect_size == 0.0
    assert "identical" in result.note


def test_paired_requires_equal_lengths():
    with pytest.raises(ValueError):
        stats.paired_test(X, Y[:-1])


def test_welch_matches_scipy_and_hedges_g_by_hand():
    result = stats.welch_t_test(X, Y[:9])
    reference = scipy.stats.ttest_ind(X, Y[:9], equal_var=False)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    nx, ny = 12, 9
    pooled_var = (nx - 1) * statistics.variance(X) + (ny - 1) * statistics.variance(Y[:9])
    pooled_sd = math.sqrt(pooled_var / (nx + ny - 2))
    g = (statistics.fmean(X) - statistics.fmean(Y[:9])) / pooled_sd * (1 - 3 / (4 * (nx + ny) - 9))
    assert result.effect_size == pytest.approx(g, rel=1e-12)


def test_welch_zero_variance_is_never_significant():
    different = stats.welch_t_test([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    assert math.isnan(different.p_value) and "zero variance" in different.note
    same = stats.welch_t_test([0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1])
    assert same.p_value == 1.0 and same.effect_size == 0.0
    shuffled = stats.welch_t_test(X, X[::-1])
    assert shuffled.p_value == 1.0 and "identical" in shuffled.note
    too_small = stats.welch_t_test([1.0], [2.0, 3.0])
    assert math.isnan(too_small.p_value)


def test_mann_whitney_matches_scipy_and_cliffs_delta_by_pairs():
    result = stats.mann_whitney_test(X, Y[:10])
    reference = scipy.stats.mannwhitneyu(X, Y[:10], alternative="two-sided")
    assert result.statistic == reference.statistic
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    delta = sum(np.sign(a - b) for a in X for b in Y[:10]) / (12 * 10)
    assert result.effect_size == pytest.approx(delta, rel=1e-12)


def test_mann_whitney_ties_and_identical_samples():
    tied = stats.mann_whitney_test([1.0, 1.0], [1.0, 1.0, 1.0])
    assert tied.p_value == 1.0 and tied.effect_size == 0.0 and "tied" in tied.note
    same = stats.mann_whitney_test(X, X[::-1])
    assert same.p_value == 1.0 and "identical" in same.note
    # Constant but different samples: rank test is well defined and maximal.
    apart = stats.mann_whitney_test([0.0] * 6, [1.0] * 6)
    assert apart.effect_size == -1.0 and apart.p_value < 0.01


def test_clearly_different_samples_are_significant():
    rng = np.random.default_rng(3)
    y = rng.normal(0.0, 1.0, size=60)
    x = y + rng.normal(1.0, 1.0, size=60)
    for test in (stats.paired_test, stats.welch_t_test, stats.mann_whitney_test):
        result = test(x, y)
        assert result.p_value < 1e-3 and result.effect_size > 0, result


def test_same_distribution_rejection_rate_is_near_alpha():
    rng = np.random.default_rng(4)
    draws = [(rng.normal(size=30), rng.normal(size=30)) for _ in range(300)]
    for test in (stats.paired_test, stats.welch_t_test, stats.mann_whitney_test):
        rate = np.mean([test(x, y).p_value < 0.05 for x, y in draws])
        assert 0.01 <= rate <= 0.10, (test.__name__, rate)


# ---------------------------------------------------------------------------------------------
# Multiple comparisons
# ---------------------------------------------------------------------------------------------


def test_holm_textbook_example():
    # Wikipedia, Holm-Bonferroni method: p = 0.01, 0.04, 0.03, 0.005 at alpha 0.05 rejects
    # H1 and H4. By hand: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> max 0.06.
    adjusted, reject = stats.holm_correction([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    assert np.allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert reject.tolist() == [True, False, False, True]


def test_holm_caps_at_one_and_is_monotone():
    p = [0.01, 0.02, 0.03, 0.04, 0.05, 0.5]
    adjusted, _ = stats.holm_correction(p)
    # by hand: 0.06, 0.10, 0.12, 0.12, 0.12, min(1, 0.5) = 0.5
    assert np.allclose(adjusted, [0.06, 0.10, 0.12, 0.12, 0.12, 0.5])
    assert stats.holm_correction([0.9, 0.6])[0].tolist() == [1.0, 1.0]


def test_holm_matches_sequential_procedure_on_random_p_values():
    rng = np.random.default_rng(8)
    for _ in range(50):
        p = rng.uniform(0, 0.1, size=rng.integers(1, 9))
        _, reject = stats.holm_correction(p, alpha=0.05)
        # Holm (1979): walk sorted p-values, reject while p_(k) <= alpha / (m - k + 1).
        expected = np.zeros(p.size, dtype=bool)
        for k, i in enumerate(np.argsort(p)):
            if p[i] > 0.05 / (p.size - k):
                break
            expected[i] = True
        assert reject.tolist() == expected.tolist()


def test_holm_ignores_nan():
    adjusted, reject = stats.holm_correction([0.01, float("nan"), 0.04])
    assert math.isnan(adjusted[1]) and not reject[1]
    assert np.allclose(adjusted[[0, 2]], [0.02, 0.04])
    assert reject.tolist() == [True, False, True]


# ---------------------------------------------------------------------------------------------
# Pairwise comparison of policies
# ---------------------------------------------------------------------------------------------


def _policies():
    rng = np.random.default_rng(21)
    base = {"m1": rng.normal(0, 1, 25), "m2": rng.normal(5, 2, 25)}
    noise = {t: rng.normal(0, 0.3, 25) for t in base}
    return {
        "strong": {t: base[t] + 1.0 + noise[t] for t in base},
        # inserted in reverse task order to check that pooling matches tasks by name
        "weak": {t: base[t] for t in reversed(list(base))},
        "weak_copy": {t: base[t] + rng.normal(0, 0.3, 25) for t in base},
    }


def test_compare_pairwise_paired_pools_by_task_and_applies_holm():
    policies = _policies()
    results = stats.compare_pairwise(policies, alpha=0.05, paired=True)
    assert [(r.policy_x, r.policy_y) for r in results] == list(itertools.combinations(policies, 2))
    for r in results:
        x = np.concatenate([policies[r.policy_x][t] for t in ("m1", "m2")])
        y = np.concatenate([policies[r.policy_y][t] for t in ("m1", "m2")])
        assert r.result == stats.paired_test(x, y)
    adjusted, reject = stats.holm_correction([r.result.p_value for r in results])
    assert [r.p_adjusted for r in results] == adjusted.tolist()
    assert [r.reject for r in results] == reject.tolist()
    by_pair = {(r.policy_x, r.policy_y): r for r in results}
    assert by_pair["strong", "weak"].reject and by_pair["strong", "weak"].result.effect_size > 0
    assert not by_pair["weak", "weak_copy"].reject


def test_compare_pairwise_unpaired_has_one_family_per_test():
    policies = _policies()
    policies["weak"] = {"m1": policies["weak"]["m1"][:20], "m2": policies["weak"]["m2"]}
    results = stats.compare_pairwise(policies, paired=False)
    assert len(results) == 6
    for test in ("welch_t", "mann_whitney_u"):
        family = [r for r in results if r.result.test == test]
        assert len(family) == 3
        adjusted, _ = stats.holm_correction([r.result.p_value for r in family])
        assert [r.p_adjusted for r in family] == adjusted.tolist()


def test_compare_pairwise_rejects_mismatched_designs():
    policies = _policies()
    with pytest.raises(ValueError, match="different tasks"):
        stats.compare_pairwise({"a": policies["strong"], "b": {"m1": policies["weak"]["m1"]}})
    with pytest.raises(ValueError, match="equal episode counts"):
        short_m1 = {"m1": np.ones(3), "m2": np.ones(25)}
        stats.compare_pairwise({"a": policies["strong"], "b": short_m1})
