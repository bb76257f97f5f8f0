"""Statistics for comparing RL policies honestly.

A small functional API in the spirit of rliable (Agarwal et al., "Deep RL at the Edge of the
Statistical Precipice", NeurIPS 2021): pure functions over numpy arrays, no global state.

Data convention
---------------
Scores of ONE policy are a ``Mapping[str, array]``: task (mission) name -> 1-D array of
per-episode scores. Episodes are the "runs" and tasks are the strata. Arrays may have different
lengths (ragged). For two policies, the episodes of a task are paired by index (same seed), so
paired analyses need arrays of equal length per task.

Pooling
-------
Aggregates (IQM, mean, median, optimality gap, performance profile) are computed over the POOLED
scores: all episodes of all tasks concatenated, as rliable does over its runs x tasks matrix.
With ragged data a task weighs in proportion to its number of episodes, which is why the
evaluation should give every task the same number of episodes. Tasks are always visited in
sorted-name order so that results (and bootstrap random streams) do not depend on the insertion
order of a mapping.

Uncertainty comes from the stratified bootstrap: episodes are resampled with replacement WITHIN
each task, so every resample keeps the design's number of episodes per task; the between-task
composition is fixed, as it is in the experiment itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

ScoresByTask = Mapping[str, ArrayLike]
"""task name -> 1-D per-episode scores of one policy."""

Scores = ScoresByTask | ArrayLike
"""Either scores by task (pooled before use) or an array whose LAST axis holds the scores."""

Statistic = Callable[[np.ndarray], ArrayLike]
"""Reduces the last axis of an array: (..., n) -> (...) or (..., k) for k-valued statistics."""

# Bootstrap resamples are generated in blocks of about this many scores, so memory stays bounded
# (~32 MiB per float64 block) whatever the number of repetitions. Block size does not change the
# result: one uniform float64 is drawn per resampled score, in row-major order, and numpy's
# Generator.random yields the same stream whether asked for it in one call or in several.
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _as_scores(values: ArrayLike, name: str) -> np.ndarray:
    """A non-empty, finite, 1-D float array, or ValueError.

    Missing or failed episodes must be dealt with (and reported) upstream; a NaN silently
    averaged away or an invented placeholder score would bias every statistic below.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of scores, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: no scores")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: scores must be finite (found NaN or inf)")
    return x


def _strata(scores_by_task: ScoresByTask) -> list[np.ndarray]:
    """Validated per-task arrays in sorted task order (the order fixes the bootstrap stream)."""
    if not isinstance(scores_by_task, Mapping):
        raise TypeError("expected a mapping task name -> per-episode scores")
    if not scores_by_task:
        raise ValueError("no tasks")
    return [_as_scores(scores_by_task[task], f"task {task!r}") for task in sorted(scores_by_task)]


def pool(scores_by_task: ScoresByTask) -> np.ndarray:
    """All episodes of all tasks concatenated (tasks in sorted-name order)."""
    return np.concatenate(_strata(scores_by_task))


def _pooled(scores: Scores) -> np.ndarray:
    # Mappings are validated and pooled; arrays pass through untouched because the bootstrap
    # calls the aggregates on large (reps, n) blocks it has already built from validated data.
    if isinstance(scores, Mapping):
        return pool(scores)
    return np.asarray(scores, dtype=float)


def _check_common_tasks(x_by_task: ScoresByTask, y_by_task: ScoresByTask) -> list[str]:
    """Sorted task names, or ValueError when the two policies were not run on the same tasks."""
    only_x = sorted(set(x_by_task) - set(y_by_task))
    only_y = sorted(set(y_by_task) - set(x_by_task))
    if only_x or only_y:
        raise ValueError(f"policies cover different tasks: only in x {only_x}, only in y {only_y}")
    return sorted(x_by_task)


# --------------------------------------------------------------------------------------------
# Point aggregates (reduce the last axis; mappings are pooled first)
# --------------------------------------------------------------------------------------------


def iqm(scores: Scores) -> np.ndarray | float:
    """Interquartile mean: mean of the middle 50% of scores (25% trimmed from each end).

    Robust to a few outlier episodes yet far less noisy than the median. Uses
    ``scipy.stats.trim_mean(x, 0.25)`` exactly as rliable does (``int(0.25 * n)`` scores cut
    from each end, no interpolation).
    """
    return scipy.stats.trim_mean(_pooled(scores), 0.25, axis=-1)


def mean(scores: Scores) -> np.ndarray | float:
    """Mean of the scores (sensitive to outliers; reported because it is the familiar number)."""
    return np.mean(_pooled(scores), axis=-1)


def median(scores: Scores) -> np.ndarray | float:
    """Median of the scores."""
    return np.median(_pooled(scores), axis=-1)


def optimality_gap(scores: Scores, gamma: float) -> np.ndarray | float:
    """``gamma - mean(min(score, gamma))``: how far scores fall short of the target ``gamma``.

    Scores above the target earn no extra credit, so one policy cannot hide failures behind a
    few spectacular episodes. Lower is better.
    """
    return gamma - np.mean(np.minimum(_pooled(scores), gamma), axis=-1)


def performance_profile(scores: Scores, taus: ArrayLike) -> np.ndarray:
    """Fraction of scores strictly greater than each threshold tau; shape (..., len(taus)).

    Shows the whole score distribution, so two policies with the same mean but different
    reliability are told apart.
    """
    x = _pooled(scores)
    thresholds = np.asarray(taus, dtype=float).reshape(-1)
    # One pass per threshold instead of a (reps, n, n_taus) comparison that would not fit in
    # memory for long bootstrap runs.
    return np.stack([np.mean(x > tau, axis=-1) for tau in thresholds], axis=-1)


def mean_and_standard_error(x: ArrayLike) -> tuple[float, float]:
    """Mean and standard error ``std(ddof=1) / sqrt(n)`` of one sample (e.g. one mission).

    The standard error is NaN for a single episode: its uncertainty is unknown, not zero.
    """
    values = _as_scores(x, "x")
    if values.size < 2:
        return float(values[0]), float("nan")
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


# --------------------------------------------------------------------------------------------
# Stratified bootstrap
# --------------------------------------------------------------------------------------------


def _check_bootstrap_args(reps: int, confidence: float) -> None:
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _bootstrap_distribution(
    groups: Sequence[np.ndarray], statistic: Statistic, reps: int, seed: int
) -> np.ndarray:
    """``statistic`` evaluated on ``reps`` stratified resamples; shape (reps, ...).

    Each resample is one row of length ``sum(len(g))``: the columns of group g hold a
    with-replacement resample of g (index ``floor(u * len(g))`` for a uniform u). Rows are built
    in blocks, so there is no Python loop over repetitions. The random stream is one
    ``rng.random()`` per resampled score, row by row, groups in the given order.
    """
    rng = np.random.default_rng(seed)
    sizes = np.array([g.size for g in groups])
    values = np.concatenate(groups)
    column_size = np.repeat(sizes, sizes)
    column_offset = np.repeat(np.cumsum(sizes) - sizes, sizes)
    block = max(1, _CHUNK_ELEMENTS // values.size)
    results = []
    for start in range(0, reps, block):
        u = rng.random((min(block, reps - start), values.size))
        # u < 1, but u * n can round up to n in floating point; clip to stay inside the group.
        index = np.minimum((u * column_size).astype(np.intp), column_size - 1) + column_offset
        results.append(np.asarray(statistic(values[index])))
    return np.concatenate(results, axis=0)


def _percentile_interval(distribution: np.ndarray, confidence: float) -> tuple:
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(distribution, [tail, 100.0 - tail], axis=0)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def stratified_bootstrap_ci(
    scores_by_task: ScoresByTask,
    statistic: Statistic,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Percentile confidence interval ``(low, high)`` of ``statistic`` over pooled scores.

    Episodes are resampled with replacement within each task (the stratum), pooled, and the
    statistic applied; the interval is the (1-confidence)/2 and (1+confidence)/2 percentiles of
    the ``reps`` bootstrap values. ``statistic`` must reduce the last axis of a (block, n)
    array, as :func:`iqm`, :func:`mean`, :func:`median` and ``partial(optimality_gap, gamma=g)``
    do. A k-valued statistic (shape (block, k)) gives arrays of k lows and highs, all computed
    on the same resamples. Deterministic for a given ``seed``.
    """
    _check_bootstrap_args(reps, confidence)
    distribution = _bootstrap_distribution(_strata(scores_by_task), statistic, reps, seed)
    return _percentile_interval(distribution, confidence)


def aggregate_with_ci(
    scores_by_task: ScoresByTask,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: int = 0,
    gamma: float | None = None,
) -> dict[str, dict[str, float]]:
    """IQM, median, mean (and optimality gap when ``gamma`` is given) with bootstrap CIs.

    Returns ``{name: {"point": ..., "low": ..., "high": ...}}``. All aggregates are evaluated
    on the same stratified resamples (as in rliable), which costs one resampling instead of
    four. The default of 50,000 repetitions follows the rliable README for aggregates.
    """
    functions: dict[str, Statistic] = {"iqm": iqm, "median": median, "mean": mean}
    if gamma is not None:
        functions["optimality_gap"] = partial(optimality_gap, gamma=gamma)

    def all_aggregates(x: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(f(x)) for f in functions.values()], axis=-1)

    pooled = pool(scores_by_task)
    lows, highs = stratified_bootstrap_ci(scores_by_task, all_aggregates, reps, confidence, seed)
    return {
        name: {"point": float(f(pooled)), "low": float(low), "high": float(high)}
        for (name, f), low, high in zip(functions.items(), lows, highs)
    }


def performance_profile_ci(
    scores_by_task: ScoresByTask,
    taus: ArrayLike,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Performance profile ``(point, low, high)`` at each tau, with stratified-bootstrap bands.

    Bands are pointwise percentile intervals computed on shared resamples.
    """
    profile = partial(performance_profile, taus=taus)
    low, high = stratified_bootstrap_ci(scores_by_task, profile, reps, confidence, seed)
    return profile(pool(scores_by_task)), np.atleast_1d(low), np.atleast_1d(high)


# --------------------------------------------------------------------------------------------
# Probability of improvement
# --------------------------------------------------------------------------------------------


def _prob_greater(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y)/2 along the last axis, i.e. Mann-Whitney U / (n_x * n_y).

    Computed from mid-ranks of the combined sample, so it vectorises over bootstrap rows and
    needs O(n log n) rather than O(n_x * n_y) work.
    """
    n_x, n_y = x.shape[-1], y.shape[-1]
    ranks = scipy.stats.rankdata(np.concatenate([x, y], axis=-1), axis=-1)
    u = ranks[..., :n_x].sum(axis=-1) - n_x * (n_x + 1) / 2.0
    return u / (n_x * n_y)


def probability_of_improvement(x_by_task: ScoresByTask, y_by_task: ScoresByTask) -> float:
    """P(X > Y): chance that an episode of policy x beats one of policy y, averaged over tasks.

    Per task it is ``U / (n_x * n_y)`` with ties counting 1/2 (0.5 means no difference); tasks
    weigh equally whatever their episode counts, as in rliable. Unpaired: episodes of the same
    task are compared all-against-all.
    """
    tasks = _check_common_tasks(x_by_task, y_by_task)
    per_task = [
        _prob_greater(_as_scores(x_by_task[t], f"x[{t!r}]"), _as_scores(y_by_task[t], f"y[{t!r}]"))
        for t in tasks
    ]
    return float(np.mean(per_task))


def probability_of_improvement_ci(
    x_by_task: ScoresByTask,
    y_by_task: ScoresByTask,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, low, high)`` for :func:`probability_of_improvement`.

    Stratified bootstrap as in rliable: within each task the episodes of x and of y are
    resampled independently with replacement.
    """
    _check_bootstrap_args(reps, confidence)
    tasks = _check_common_tasks(x_by_task, y_by_task)
    groups = []
    for t in tasks:
        groups += [_as_scores(x_by_task[t], f"x[{t!r}]"), _as_scores(y_by_task[t], f"y[{t!r}]")]
    bounds = np.cumsum([0] + [g.size for g in groups])

    def mean_over_tasks(rows: np.ndarray) -> np.ndarray:
        columns = [rows[..., a:b] for a, b in itertools.pairwise(bounds)]
        per_task = [_prob_greater(cx, cy) for cx, cy in zip(columns[::2], columns[1::2])]
        return np.mean(per_task, axis=0)

    low, high = _percentile_interval(
        _bootstrap_distribution(groups, mean_over_tasks, reps, seed), confidence
    )
    return probability_of_improvement(x_by_task, y_by_task), low, high


# --------------------------------------------------------------------------------------------
# Two-sample tests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoSampleResult:
    """Outcome of one two-sample test. ``effect_size > 0`` means x tends to score higher than y.

    ``p_value`` is NaN when the test is undefined for the data (see ``note``); it is never
    forced to 0.
    """

    test: str
    statistic: float
    p_value: float
    effect_size: float
    effect_size_name: str
    n_x: int
    n_y: int
    note: str = ""


def _same_values(x: np.ndarray, y: np.ndarray) -> bool:
    """True when x and y hold the same multiset of scores."""
    return x.size == y.size and bool(np.array_equal(np.sort(x), np.sort(y)))


def _constant(x: np.ndarray) -> bool:
    # max == min rather than var == 0: the variance of a constant float array can come out as a
    # tiny positive number through rounding of the mean.
    return bool(x.max() == x.min())


def paired_test(x: ArrayLike, y: ArrayLike) -> TwoSampleResult:
    """Wilcoxon signed-rank test on seed-matched episodes (``x[i]`` paired with ``y[i]``).

    Pairing removes the episode-to-episode variation shared by both policies (same seed, same
    map), so it detects smaller differences than an unpaired test. Zero differences are
    dropped (scipy's default ``zero_method='wilcox'``). scipy's default ``method='auto'`` is
    kept: exact for up to 50 pairs, but with tied or zero differences and at most 13 pairs it
    enumerates all sign permutations, which takes about a second per call. Effect size:
    matched-pairs rank-biserial correlation ``(T+ - T-) / (T+ + T-)`` over the ranks of the
    non-zero ``|x - y|``, in [-1, 1].
    """
    xs, ys = _as_scores(x, "x"), _as_scores(y, "y")
    if xs.size != ys.size:
        raise ValueError(f"paired samples need equal lengths, got {xs.size} and {ys.size}")
    diff = xs - ys
    nonzero = diff[diff != 0]
    name, effect_name = "wilcoxon_signed_rank", "rank_biserial"
    if nonzero.size == 0:
        return TwoSampleResult(
            name, float("nan"), 1.0, 0.0, effect_name, xs.size, ys.size,
            "identical samples: every paired difference is zero",
        )
    ranks = scipy.stats.rankdata(np.abs(nonzero))
    t_plus, t_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    result = scipy.stats.wilcoxon(xs, ys)
    dropped = xs.size - nonzero.size
    note = f"{dropped} zero difference(s) dropped" if dropped else ""
    return TwoSampleResult(
        name, float(result.statistic), float(result.pvalue),
        float((t_plus - t_minus) / (t_plus + t_minus)), effect_name, xs.size, ys.size, note,
    )


def _hedges_g(x: np.ndarray, y: np.ndarray) -> float:
    """Standardised mean difference with the pooled SD and the small-sample correction J.

    Needs at least 2 scores per sample. NaN when both samples are constant and differ (the
    difference is infinitely many SDs), 0 when they are equal constants.
    """
    if _constant(x) and _constant(y):
        # Compare the values, not the means: means of equal constants can differ by rounding.
        return 0.0 if x[0] == y[0] else float("nan")
    n_x, n_y = x.size, y.size
    diff = x.mean() - y.mean()
    pooled_var = ((n_x - 1) * x.var(ddof=1) + (n_y - 1) * y.var(ddof=1)) / (n_x + n_y - 2)
    correction = 1.0 - 3.0 / (4.0 * (n_x + n_y) - 9.0)
    return float(correction * diff / np.sqrt(pooled_var))


def welch_t_test(x: ArrayLike, y: ArrayLike) -> TwoSampleResult:
    """Welch's t-test (unequal variances) for independent samples; effect size Hedges' g.

    Welch rather than Student because two policies rarely have the same score variance, and
    scipy's ``ttest_ind`` assumes equal variances unless told otherwise. When both samples are
    constant and differ, t is infinite and scipy reports p = 0; that is an artefact, not
    evidence, so the result is NaN with a note (use :func:`mann_whitney_test` there).
    """
    xs, ys = _as_scores(x, "x"), _as_scores(y, "y")
    name, effect_name = "welch_t", "hedges_g"
    nan = float("nan")
    if xs.size < 2 or ys.size < 2:
        return TwoSampleResult(
            name, nan, nan, nan, effect_name, xs.size, ys.size,
            "needs at least 2 episodes per sample",
        )
    if _constant(xs) and _constant(ys):
        if xs[0] == ys[0]:
            return TwoSampleResult(
                name, nan, 1.0, 0.0, effect_name, xs.size, ys.size,
                "identical samples (zero variance, all scores equal)",
            )
        return TwoSampleResult(
            name, nan, nan, nan, effect_name, xs.size, ys.size,
            "zero variance in both samples: t statistic undefined",
        )
    if _same_values(xs, ys):
        return TwoSampleResult(
            name, 0.0, 1.0, 0.0, effect_name, xs.size, ys.size, "identical samples"
        )
    result = scipy.stats.ttest_ind(xs, ys, equal_var=False)
    return TwoSampleResult(
        name, float(result.statistic), float(result.pvalue), _hedges_g(xs, ys), effect_name,
        xs.size, ys.size,
    )


def mann_whitney_test(x: ArrayLike, y: ArrayLike) -> TwoSampleResult:
    """Two-sided Mann-Whitney U test for independent samples; effect size Cliff's delta.

    Rank based, so it suits bounded, skewed or tie-heavy episode scores (e.g. success 0/1).
    ``statistic`` is U for x; Cliff's delta ``P(X>Y) - P(X<Y) = 2U/(n_x n_y) - 1`` equals the
    rank-biserial correlation.
    """
    xs, ys = _as_scores(x, "x"), _as_scores(y, "y")
    name, effect_name = "mann_whitney_u", "cliffs_delta"
    half = xs.size * ys.size / 2.0
    if _same_values(xs, ys):
        return TwoSampleResult(
            name, half, 1.0, 0.0, effect_name, xs.size, ys.size, "identical samples"
        )
    if _constant(np.concatenate([xs, ys])):
        return TwoSampleResult(
            name, half, 1.0, 0.0, effect_name, xs.size, ys.size, "zero variance: all scores tied",
        )
    result = scipy.stats.mannwhitneyu(xs, ys, alternative="two-sided")
    delta = 2.0 * float(result.statistic) / (xs.size * ys.size) - 1.0
    return TwoSampleResult(
        name, float(result.statistic), float(result.pvalue), delta, effect_name, xs.size, ys.size,
    )


# --------------------------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------------------------


def holm_correction(p_values: ArrayLike, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjustment: ``(adjusted_p, reject)`` in the input order.

    Controls the family-wise error rate without assuming independence, and is uniformly more
    powerful than Bonferroni. Sorted p-values p_(1) <= ... <= p_(m) get
    ``max_{j<=i} min(1, (m - j + 1) p_(j))``, so adjusted values are monotone in the raw ones;
    a hypothesis is rejected when its adjusted p <= alpha. NaN p-values (undefined tests) stay
    NaN, are never rejected and do not count in m, as in R's ``p.adjust``.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"expected a 1-D array of p-values, got shape {p.shape}")
    defined = ~np.isnan(p)
    if np.any((p[defined] < 0) | (p[defined] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    raw = p[defined]
    m = raw.size
    order = np.argsort(raw, kind="stable")
    stepped = np.minimum(np.maximum.accumulate((m - np.arange(m)) * raw[order]), 1.0)
    adjusted_defined = np.empty(m)
    adjusted_defined[order] = stepped
    adjusted = np.full(p.shape, np.nan)
    adjusted[defined] = adjusted_defined
    reject = np.zeros(p.shape, dtype=bool)
    reject[defined] = adjusted_defined <= alpha
    return adjusted, reject


@dataclass(frozen=True)
class PairwiseComparison:
    """One test between two policies, with its Holm-adjusted p-value within its test family."""

    policy_x: str
    policy_y: str
    result: TwoSampleResult
    p_adjusted: float
    reject: bool


def _pooled_pair(
    x_by_task: ScoresByTask, y_by_task: ScoresByTask, paired: bool
) -> tuple[np.ndarray, np.ndarray]:
    tasks = _check_common_tasks(x_by_task, y_by_task)
    xs = [_as_scores(x_by_task[t], f"x[{t!r}]") for t in tasks]
    ys = [_as_scores(y_by_task[t], f"y[{t!r}]") for t in tasks]
    if paired:
        unequal = [t for t, a, b in zip(tasks, xs, ys) if a.size != b.size]
        if unequal:
            raise ValueError(
                f"paired comparison needs equal episode counts per task; differ in {unequal}"
            )
    return np.concatenate(xs), np.concatenate(ys)


def compare_pairwise(
    scores: Mapping[str, ScoresByTask], alpha: float = 0.05, paired: bool = True
) -> list[PairwiseComparison]:
    """Test every pair of policies on their pooled, task-matched episodes.

    What is pooled: for each pair, each policy's episodes are concatenated over the tasks both
    were run on (which must be the same set), tasks in sorted-name order and episodes in index
    order, so ``x[i]`` and ``y[i]`` are the same task and the same seed.

    Tests: with ``paired=True`` the Wilcoxon signed-rank test (:func:`paired_test`) on those
    matched episodes; otherwise Welch's t-test and the Mann-Whitney U test. Each kind of test is
    one family: Holm's correction is applied across all policy pairs within that family.

    Pooling mixes tasks, so a task with a wider score range dominates the ranks and the mean
    difference; normalise scores per task beforehand if tasks should weigh equally. Pairs come
    in the mapping's policy order: (p0, p1), (p0, p2), ..., each with its family's tests.
    """
    tests: dict[str, Callable[[ArrayLike, ArrayLike], TwoSampleResult]]
    if paired:
        tests = {"paired": paired_test}
    else:
        tests = {"welch": welch_t_test, "mann_whitney": mann_whitney_test}
    pairs = list(itertools.combinations(scores, 2))
    samples = [_pooled_pair(scores[a], scores[b], paired) for a, b in pairs]
    results = {name: [test(x, y) for x, y in samples] for name, test in tests.items()}
    corrected = {
        name: holm_correction([r.p_value for r in family], alpha)
        for name, family in results.items()
    }
    return [
        PairwiseComparison(
            a, b, results[name][i], float(corrected[name][0][i]), bool(corrected[name][1][i])
        )
        for i, (a, b) in enumerate(pairs)
        for name in tests
    ]
