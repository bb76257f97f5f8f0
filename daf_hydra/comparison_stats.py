"""Comparison statistics over a table of episodes (or of training runs): paired designs, interval estimates,
corrected pairwise tests, and what was complete.

- Fixed policies: every policy plays its own episodes on the same seeds of every mission, so episodes pair by
  (mission, seed); statistics only on complete pairs, and anything else (failed runs, missing or duplicate
  episodes, missions a policy lacks) is named in `completeness`, never filled in.
- Trained policies: the training run is the unit (`analysis_units`): one score per run and mission, unpaired.
- One test decides significance, chosen by the unit (`PRIMARY_TEST`): Wilcoxon signed-rank on seed-matched
  episodes, Welch's t over independent training runs (with 3 runs a side Mann-Whitney U cannot reach p < 0.05);
  the others are in the table as secondary checks (`role`), never a second verdict.
- Aggregates over missions pool the per-mission scores (stats.py); when every mission states `max_reward` the
  scores are normalised by it first (so missions weigh alike and the optimality gap is defined), otherwise raw
  total rewards are pooled and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from daf_hydra import stats
from daf_hydra.config import StatisticsConfig
from daf_hydra.errors import DAFError

if TYPE_CHECKING:
    import pandas as pd

ALL_MISSIONS = "(all missions)"
PRIMARY_TEST = {"episode": "wilcoxon_signed_rank", "run": "welch_t"}
TEST_NAMES = {"wilcoxon_signed_rank": "Wilcoxon signed-rank", "welch_t": "Welch's t", "mann_whitney_u": "Mann-Whitney U"}
PROFILE_POINTS = 51
UNITS = ("episode", "run")
SUMMARY_COLUMNS = [
    "policy", "mission", "score", "unit", "n_episodes", "mean", "stderr", "mean_low", "mean_high", "median", "median_low",
    "median_high", "iqm", "iqm_low", "iqm_high", "optimality_gap", "optimality_gap_low", "optimality_gap_high",
    "std", "min", "max", "success_rate",
]
POI_COLUMNS = ["policy_x", "policy_y", "probability", "low", "high", "missions"]
PROFILE_COLUMNS = ["policy", "tau", "fraction", "low", "high"]
TEST_COLUMNS = ["scope", "policy_x", "policy_y", "test", "role", "statistic", "p_value", "p_adjusted", "significant",
                "effect_size", "effect_size_name", "n_x", "n_y", "mean_x", "mean_y", "verdict", "note"]


# ------------------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Completeness:
    """What the design asked for and what was analysed (marl-eval's check before any statistic)."""

    expected_episodes: int
    analysed_episodes: int
    missing: "pd.DataFrame"  # policy, mission, seed, reason: episodes the design asked for and nobody recorded
    left_out: "pd.DataFrame"  # policy, mission, seed: recorded, but unpaired (another policy lacks the seed)
    duplicates: "pd.DataFrame"  # policy, mission, seed, run_dir: second recordings of an episode, not used
    failed_runs: "pd.DataFrame"  # run_dir, status, policy, mission, error
    excluded_missions: list[str] = field(default_factory=list)  # no seed every policy that played it has
    unpooled_missions: list[str] = field(default_factory=list)  # analysed, but not every policy played them
    unit: str = "episode"  # what was counted: episodes, or training runs (compare_episodes' `unit`)

    @property
    def complete(self) -> bool:
        return (self.missing.empty and self.duplicates.empty and self.failed_runs.empty
                and not self.excluded_missions and not self.unpooled_missions)

    def summary(self) -> str:
        counted = f"{self.analysed_episodes} of {self.expected_episodes} {self.unit}s analysed"
        if self.complete:
            return f"complete: {counted}"
        parts = [counted]
        if len(self.missing):
            parts.append(f"{len(self.missing)} missing")
        if len(self.left_out):
            parts.append(f"{len(self.left_out)} left out unpaired")
        if len(self.duplicates):
            parts.append(f"{len(self.duplicates)} duplicates not used")
        if len(self.failed_runs):
            parts.append(f"{len(self.failed_runs)} runs not completed")
        if self.excluded_missions:
            parts.append(f"missions left out: {', '.join(self.excluded_missions)}")
        if self.unpooled_missions:
            parts.append(f"not in the all-missions aggregate (not every policy played them): "
                         f"{', '.join(self.unpooled_missions)}")
        return "INCOMPLETE: " + "; ".join(parts)


@dataclass
class ComparisonResults:
    """Everything a comparison found; tables are tidy pandas DataFrames (one row per observation).

    `summary_statistics`: one row per policy x mission plus one per policy for `ALL_MISSIONS` (mean +- standard
    error, median, IQM, optimality gap, each with its stratified-bootstrap interval; success rate).
    `pairwise_significance_tests`: one row per scope (ALL_MISSIONS, and each mission when there are several) x
    policy pair x test, with Holm-adjusted p-values within each scope x test family and a verdict.
    """

    policies: list[str]
    missions: list[str]
    episodes: "pd.DataFrame"
    summary_statistics: "pd.DataFrame"
    pairwise_significance_tests: "pd.DataFrame"
    probability_of_improvement: "pd.DataFrame"
    performance_profiles: "pd.DataFrame"
    completeness: Completeness
    settings: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    runs: "pd.DataFrame | None" = None
    output_dir: Path | None = None

    @property
    def primary_test(self) -> str:
        """The test that decides significance for this comparison's unit of analysis."""
        return PRIMARY_TEST[self.settings.get("unit", "episode")]

    def decided_by(self) -> str:
        """Which test decides, and which are shown as secondary: one phrase for the console and the reports."""
        secondary = [TEST_NAMES[t] for t in self.pairwise_significance_tests["test"].unique()
                     if t != self.primary_test] if len(self.pairwise_significance_tests) else []
        unit = "seed-matched episodes" if self.primary_test == PRIMARY_TEST["episode"] else "training runs"
        return (f"{TEST_NAMES[self.primary_test]} over {unit}, Holm-corrected"
                + (f" ({' and '.join(secondary)} secondary)" if secondary else ""))

    def significant(self, scope: str = ALL_MISSIONS, test: str | None = None) -> list[tuple[str, str]]:
        """(better, worse) pairs whose Holm-adjusted test (default: the primary test) rejects equality in `scope`."""
        test = test or self.primary_test
        t = self.pairwise_significance_tests
        if t.empty:
            return []
        rows = t[(t["scope"] == scope) & (t["test"] == test) & t["significant"]]
        return [(r.policy_x, r.policy_y) if r.effect_size > 0 else (r.policy_y, r.policy_x) for r in rows.itertuples()]

    def save(self, directory: str | Path) -> list[Path]:
        """Tables as CSV, everything as comparison.json; returns the files written."""
        from daf_hydra.records import write_json_atomic

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in ("episodes", "summary_statistics", "pairwise_significance_tests", "probability_of_improvement",
                     "performance_profiles"):
            path = out / f"{name}.csv"
            getattr(self, name).to_csv(path, index=False)
            written.append(path)
        write_json_atomic(out / "comparison.json", self.to_dict())
        written.append(out / "comparison.json")
        return written

    def to_dict(self) -> dict[str, Any]:
        c = self.completeness
        return {
            "policies": self.policies,
            "missions": self.missions,
            "settings": self.settings,
            "completeness": {
                "complete": c.complete, "summary": c.summary(), "expected_episodes": c.expected_episodes,
                "analysed_episodes": c.analysed_episodes, "excluded_missions": c.excluded_missions,
                "unpooled_missions": c.unpooled_missions,
                "missing": _records(c.missing), "left_out": _records(c.left_out),
                "duplicates": _records(c.duplicates), "failed_runs": _records(c.failed_runs),
            },
            "summary_statistics": _records(self.summary_statistics),
            "pairwise_significance_tests": _records(self.pairwise_significance_tests),
            "probability_of_improvement": _records(self.probability_of_improvement),
            "provenance": self.provenance,
        }


def _records(table: "pd.DataFrame") -> list[dict[str, Any]]:
    """JSON-ready rows: NaN becomes null (records.py writes null for non-finite numbers)."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
            for row in table.astype(object).to_dict("records")]


# ------------------------------------------------------------------------------------------------------------
# Statistics over a table of episodes
# ------------------------------------------------------------------------------------------------------------


def statistics_settings(statistics: Any = None, **overrides: Any) -> dict[str, Any]:
    """A plain dict of the statistics settings: StatisticsConfig defaults <- `statistics` <- overrides."""
    from daf_hydra.config import validate_statistics

    settings = asdict(StatisticsConfig())
    if statistics is not None:
        for f in fields(StatisticsConfig):
            value = statistics.get(f.name) if isinstance(statistics, Mapping) else getattr(statistics, f.name, None)
            if value is not None:
                settings[f.name] = value
    settings.update({k: v for k, v in overrides.items() if v is not None})
    validate_statistics(StatisticsConfig(**settings))
    return settings


def compare_episodes(
    episodes: "pd.DataFrame",
    statistics: Any = None,
    *,
    policies: Sequence[str] | None = None,
    missions: Sequence[str] | None = None,
    expected_seeds: Mapping[str, Sequence[int]] | None = None,
    max_reward: Mapping[str, float | None] | None = None,
    runs: "pd.DataFrame | None" = None,
    significance: bool = True,
    unit: str = "episode",
) -> ComparisonResults:
    """Statistics of a tidy episodes table (columns policy, mission, seed, total_reward, optional success,
    run_dir), e.g. `daf_aggregate_runs(dir).episodes`.

    `expected_seeds` (mission -> seeds) states the design; by default every seed any policy played on a mission is
    expected from all. `max_reward` (mission -> best reachable total) enables optimality gaps and normalisation.
    `runs` (the aggregator's runs table) names the runs that did not complete as reasons for missing episodes.
    `significance=False` leaves the pairwise tests to a later `significance_tests(results)`.
    `unit`: what one row is. "episode" (fixed policies: rows paired by (mission, seed)), or "run" (trained
    policies, `analysis_units`: one row per training run and mission, `seed` its training seed; runs of
    different arms are independent, so nothing is paired and only unpaired tests are run).
    """
    import pandas as pd

    settings = statistics_settings(statistics)
    episodes = episodes[["policy", "mission", "seed", "total_reward", *[c for c in ("success", "run_dir")
                                                                       if c in episodes]]]
    policies = list(policies) if policies is not None else list(dict.fromkeys(episodes["policy"]))
    missions = list(missions) if missions is not None else list(dict.fromkeys(episodes["mission"]))
    if not policies or not missions:
        raise DAFError("no episodes to compare: the runs hold no completed episodes")
    max_reward = {m: v for m, v in (max_reward or {}).items() if v is not None and v > 0}
    ep = episodes[episodes["policy"].isin(policies) & episodes["mission"].isin(missions)]
    dup = ep.duplicated(["policy", "mission", "seed"], keep="first")
    duplicates = ep[dup].reset_index(drop=True)
    ep = ep[~dup]
    if unit not in UNITS:
        raise DAFError(f"unit={unit!r} is invalid: valid units are {', '.join(UNITS)}")
    seeds = {(p, m): set(g["seed"].tolist()) for (p, m), g in ep.groupby(["policy", "mission"], sort=False)}
    expected = {m: sorted(set(expected_seeds[m]) if expected_seeds and m in expected_seeds
                          else set().union(*(seeds.get((p, m), set()) for p in policies))) for m in missions}
    present = {m: [p for p in policies if seeds.get((p, m))] for m in missions}
    if unit == "run":  # independent runs: every run is analysed, none is expected of another arm
        expected = {m: sorted(set().union(*(seeds.get((p, m), set()) for p in policies))) for m in missions}
        common = dict(expected)
    else:
        common = {m: sorted(set(expected[m]).intersection(*(seeds[(p, m)] for p in present[m]))
                            if present[m] else []) for m in missions}
    analysed_missions = [m for m in missions if common[m]]
    pooled_missions = [m for m in analysed_missions if len(present[m]) == len(policies)]
    failed = _failed_runs(runs)
    missing = pd.DataFrame(
        [{"policy": p, "mission": m, "seed": s, "reason": _missing_reason(failed, p, m)}
         for m in missions for p in policies for s in expected[m]
         if s not in seeds.get((p, m), set()) and (unit == "episode" or not seeds.get((p, m)))],
        columns=["policy", "mission", "seed", "reason"],
    )
    paired = ep.set_index(["mission", "seed"]).index.isin([(m, s) for m in analysed_missions for s in common[m]])
    left_out = ep.loc[~paired, ["policy", "mission", "seed"]].reset_index(drop=True)
    ep = ep[paired].sort_values(["mission", "seed"], kind="stable")
    normalised = bool(pooled_missions) and all(m in max_reward for m in pooled_missions)
    ep = ep.assign(score=ep["total_reward"] / ep["mission"].map(max_reward) if normalised else ep["total_reward"])
    settings = {
        **settings,
        "aggregate_score": "total reward / mission max_reward" if normalised else "total reward (raw, pooled)",
        "optimality_gap_target": 1.0 if normalised else None,
        "pooled_missions": pooled_missions,
        "unit": unit,
        "pairing": ("episodes matched by (mission, seed); per mission, only the seeds every policy that played it "
                    "has are analysed; '(all missions)' pools the missions every policy played") if unit == "episode"
        else ("one score per training run and mission (the mean of its evaluation episodes, played on the same "
              "seeds by every run); runs are independent, so tests are unpaired; '(all missions)' pools the "
              "missions every policy played"),
    }
    completeness = Completeness(
        expected_episodes=(sum(len(expected[m]) for m in missions) * len(policies) if unit == "episode"
                           else len(ep) + len(missing)),
        analysed_episodes=len(ep), missing=missing, left_out=left_out,
        duplicates=duplicates[[c for c in ("policy", "mission", "seed", "run_dir") if c in duplicates]],
        failed_runs=failed, excluded_missions=[m for m in missions if not common[m]],
        unpooled_missions=[m for m in analysed_missions if m not in pooled_missions], unit=unit,
    )
    results = ComparisonResults(
        policies=policies, missions=analysed_missions, episodes=ep.reset_index(drop=True),
        summary_statistics=pd.DataFrame(columns=SUMMARY_COLUMNS),
        pairwise_significance_tests=pd.DataFrame(columns=TEST_COLUMNS),
        probability_of_improvement=pd.DataFrame(columns=POI_COLUMNS),
        performance_profiles=pd.DataFrame(columns=PROFILE_COLUMNS),
        completeness=completeness, settings=settings, runs=runs,
    )
    if not analysed_missions:
        return results  # nothing paired: completeness says why
    by_policy, pooled = _score_maps(results.episodes, policies, analysed_missions, pooled_missions)
    results.summary_statistics = _summary(results.episodes, by_policy, pooled, max_reward, settings, normalised)
    if pooled:
        results.performance_profiles = _profiles(pooled, settings)
    results.probability_of_improvement = _improvement_matrix(by_policy, settings)
    if significance:
        results.pairwise_significance_tests = significance_tests(results)
    return results


def significance_tests(results: ComparisonResults) -> "pd.DataFrame":
    """The pairwise tests of a comparison, from its analysed (paired) episodes."""
    if not results.missions:
        return results.pairwise_significance_tests
    by_policy, pooled = _score_maps(results.episodes, results.policies, results.missions,
                                    results.settings["pooled_missions"])
    return pairwise_tests(by_policy, pooled, results.settings)


def analysis_units(runs: "pd.DataFrame", episodes: "pd.DataFrame") -> tuple["pd.DataFrame", str, list[str]]:
    """The rows a tree's comparison analyses, per arm (`arm` label of the aggregator's tables, shown as the policy):
    (table, unit, notes).

    Trained policies are compared over training runs (rliable's runs x missions; docs/statistics): when an arm
    that trained has two or more runs, every run becomes one row per mission holding the mean of its episodes,
    with `seed` its training seed (unit "run"). Otherwise episodes are the unit, and each trained arm with a
    single run is named in `notes`: its interval then reflects evaluation noise only."""
    done = runs[(runs["status"] == "completed") & runs["arm"].notna()] if "arm" in runs else runs.iloc[0:0]
    ep = episodes.assign(policy=episodes["arm"]) if "arm" in episodes else episodes
    trained = done[done["trained"].fillna(False).astype(bool)] if "trained" in done else done.iloc[0:0]
    replicates = trained.groupby("arm")["run_dir"].nunique()
    how = "add replicates with -m seed=0,1,2 (or seeds=[0,1,2] in one run)"
    if not (replicates >= 2).any():
        notes = [f"{arm}: one training run; its interval reflects evaluation noise only ({how})"
                 for arm, n in replicates.items() if n == 1]
        return ep, "episode", notes
    seed_of = dict(zip(done["run_dir"], done["seed"]))
    units = (ep.assign(success=ep["success"].astype(float) if "success" in ep else math.nan)
             .groupby(["run_dir", "policy", "mission"], sort=False)
             .agg(total_reward=("total_reward", "mean"), success=("success", "mean"), episodes=("seed", "size"))
             .reset_index())
    units["seed"] = units["run_dir"].map(seed_of)
    arms = done.groupby("arm")["run_dir"].nunique()
    notes = [f"{arm}: one run; its interval reflects evaluation noise only ({how})"
             for arm, n in arms.items() if n == 1]
    return units, "run", notes


def _score_maps(
    ep: "pd.DataFrame", policies: list[str], missions: list[str], pooled_missions: list[str]
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """policy -> mission -> total rewards in seed order, for the missions the policy played (the same seeds for
    every policy on a mission: the pairing); and policy -> pooled mission -> aggregate scores."""
    groups = {key: g for key, g in ep.groupby(["policy", "mission"], sort=False)}
    by_policy = {p: {m: groups[(p, m)]["total_reward"].to_numpy(float) for m in missions if (p, m) in groups}
                 for p in policies}
    pooled = {p: {m: groups[(p, m)]["score"].to_numpy(float) for m in pooled_missions} for p in policies} \
        if pooled_missions else {}
    return by_policy, pooled


def _summary(
    ep: "pd.DataFrame", by_policy: dict, pooled: dict, max_reward: dict, s: dict, normalised: bool
) -> "pd.DataFrame":
    """One row per policy x mission it played, and per policy over the pooled missions."""
    import pandas as pd

    rows = []
    for policy, per_mission in by_policy.items():
        scopes = [(m, {m: per_mission[m]}, max_reward.get(m), "total reward") for m in per_mission]
        if pooled:
            scopes.append((ALL_MISSIONS, pooled[policy], 1.0 if normalised else None, s["aggregate_score"]))
        for scope, scores, gamma, score_name in scopes:
            values = stats.pool(scores)
            intervals = stats.aggregate_with_ci(scores, s["bootstrap_reps"], s["confidence"], s["bootstrap_seed"],
                                                gamma)
            _, stderr = stats.mean_and_standard_error(values)
            mask = (ep["policy"] == policy) & ep["mission"].isin(list(scores))
            success = ep.loc[mask, "success"].dropna() if "success" in ep else pd.Series(dtype=float)
            row = {"policy": policy, "mission": scope, "score": score_name, "unit": s.get("unit", "episode"),
                   "n_episodes": int(values.size),
                   "stderr": stderr, "std": float(values.std(ddof=1)) if values.size > 1 else math.nan,
                   "min": float(values.min()), "max": float(values.max()),
                   "success_rate": float(success.astype(float).mean()) if len(success) else math.nan}
            for name in ("iqm", "median", "mean", "optimality_gap"):  # no gap without a target: NaN, not 0
                estimate = intervals.get(name, {"point": math.nan, "low": math.nan, "high": math.nan})
                row[name] = estimate["point"]
                row[f"{name}_low"], row[f"{name}_high"] = estimate["low"], estimate["high"]
            rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _profiles(pooled: dict, s: dict) -> "pd.DataFrame":
    """Performance profiles on the pooled aggregate score, at thresholds spanning every policy's scores."""
    import pandas as pd

    everything = np.concatenate([stats.pool(v) for v in pooled.values()])
    taus = np.linspace(everything.min(), everything.max(), PROFILE_POINTS)
    rows = []
    for policy, scores in pooled.items():
        point, low, high = stats.performance_profile_ci(
            scores, taus, s["profile_bootstrap_reps"], s["confidence"], s["bootstrap_seed"])
        rows += [{"policy": policy, "tau": float(t), "fraction": float(p), "low": float(lo), "high": float(hi)}
                 for t, p, lo, hi in zip(taus, point, low, high)]
    return pd.DataFrame(rows, columns=PROFILE_COLUMNS)


def _improvement_matrix(by_policy: dict, s: dict) -> "pd.DataFrame":
    """P(X > Y) for every ordered pair, over the missions both played: rank based per mission, so raw scores
    serve (no normalisation needed)."""
    import pandas as pd

    rows = []
    for x in by_policy:
        for y in by_policy:
            shared = [m for m in by_policy[x] if m in by_policy[y]]
            if x == y or not shared:
                continue
            point, low, high = stats.probability_of_improvement_ci(
                {m: by_policy[x][m] for m in shared}, {m: by_policy[y][m] for m in shared},
                s["profile_bootstrap_reps"], s["confidence"], s["bootstrap_seed"])
            rows.append({"policy_x": x, "policy_y": y, "probability": point, "low": low, "high": high,
                         "missions": len(shared)})
    return pd.DataFrame(rows, columns=POI_COLUMNS)


def pairwise_tests(by_policy: dict, pooled: dict, s: dict) -> "pd.DataFrame":
    """Wilcoxon signed-rank (seed-matched), Welch's t and Mann-Whitney U for every policy pair, Holm-corrected
    within each scope x test family. Scopes: the pooled missions (on the aggregate score), and each mission on
    its own (the policies that played it) when there are several missions or nothing is pooled."""
    import pandas as pd

    missions = list(dict.fromkeys(m for per_mission in by_policy.values() for m in per_mission))
    scopes: list[tuple[str, dict]] = [(ALL_MISSIONS, pooled)] if pooled else []
    if len(missions) > 1 or not pooled:
        scopes += [(m, {p: {m: v[m]} for p, v in by_policy.items() if m in v}) for m in missions]
    rows = []
    for scope, scores in scopes:
        if len(scores) < 2:
            continue
        kinds = (True, False) if s.get("unit", "episode") == "episode" else (False,)
        tests = [c for paired in kinds
                 for c in stats.compare_pairwise(scores, alpha=s["significance_level"], paired=paired)]
        pairs = list(dict.fromkeys((c.policy_x, c.policy_y) for c in tests))
        for c in sorted(tests, key=lambda c: pairs.index((c.policy_x, c.policy_y))):  # stable: test order kept
            r = c.result
            rows.append({
                "scope": scope, "policy_x": c.policy_x, "policy_y": c.policy_y, "test": r.test,
                "role": "primary" if r.test == PRIMARY_TEST[s.get("unit", "episode")] else "secondary",
                "statistic": r.statistic, "p_value": r.p_value, "p_adjusted": c.p_adjusted,
                "significant": c.reject, "effect_size": r.effect_size, "effect_size_name": r.effect_size_name,
                "n_x": r.n_x, "n_y": r.n_y, "mean_x": float(stats.mean(scores[c.policy_x])),
                "mean_y": float(stats.mean(scores[c.policy_y])), "verdict": _verdict(c), "note": r.note,
            })
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def _verdict(c: stats.PairwiseComparison) -> str:
    """One phrase a reader can trust: identical and zero-variance samples are named, never called significant."""
    r = c.result
    if r.note.startswith("identical"):
        return "identical samples"
    if math.isnan(r.p_value):
        return f"undefined ({r.note})"
    if "zero variance" in r.note:
        return f"no difference ({r.note})"
    if c.reject:
        better = c.policy_x if r.effect_size > 0 else c.policy_y
        return f"{better} better (significant)"
    return "no significant difference"


def _failed_runs(runs: "pd.DataFrame | None") -> "pd.DataFrame":
    import pandas as pd

    columns = ["run_dir", "status", "policy", "mission", "error"]
    if runs is None or runs.empty:
        return pd.DataFrame(columns=columns)
    return runs.loc[runs["status"] != "completed", columns].reset_index(drop=True)


def _missing_reason(failed: "pd.DataFrame", policy: str, mission: str) -> str:
    hit = failed[(failed["policy"] == policy) & (failed["mission"] == mission)]
    if hit.empty:
        return "no episode recorded"
    r = hit.iloc[0]
    if r["status"] == "running":
        return f"run {r['run_dir']} did not finish (no metrics.json)"
    return f"run {r['run_dir']} {r['status']}: {r['error']}"
