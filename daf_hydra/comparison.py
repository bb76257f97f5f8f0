"""Comparing policies honestly: paired evaluation, interval estimates, corrected pairwise tests.

Design (see docs and the statistics notes):
- Every policy plays its OWN episodes (it controls all agents) on the same seeds of every mission: episode k of
  a mission uses seed+k for every policy, so episodes are paired by (mission, seed) and the same maps are met.
- Each policy x mission is an ordinary evaluate run (run.json, episodes.jsonl, metrics.json) under
  `<run_dir>/members/`; the statistics read the episodes back through the aggregator, so what is analysed is
  exactly what is on disk, and a comparison of any tree of runs (`python -m daf_hydra.report`) uses the same code.
- Statistics only on complete pairs: per mission, the seeds that every policy has. Anything else (failed runs,
  missing or duplicate episodes, missions a policy lacks) is named in `completeness`, never filled in.
- Aggregates over missions pool the per-mission scores (stats.py); when every mission states `max_reward` the
  scores are normalised by it first (so missions weigh alike and the optimality gap is defined), otherwise raw
  total rewards are pooled and the report says so.

Policy entries (`compare.policies`, or the `policies` argument): a conf/policy name (`lstm`), a short name
mettagrid/cogames registers, an importable class path, a bundle directory with policy_spec.json,
`name:checkpoint` (policy `name` with `data_path=checkpoint`), a mettagrid `PolicySpec`, or a `PolicyEntry`.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from daf_hydra import stats
from daf_hydra.config import StatisticsConfig
from daf_hydra.errors import DAFError
from daf_hydra.identity import policy_name

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

ALL_MISSIONS = "(all missions)"
MEMBERS_DIR = "members"
RESULTS_DIR = "comparison"
PROFILE_POINTS = 51
UNITS = ("episode", "run")
SUMMARY_COLUMNS = [
    "policy", "mission", "score", "unit", "n_episodes", "mean", "stderr", "mean_low", "mean_high", "median", "median_low",
    "median_high", "iqm", "iqm_low", "iqm_high", "optimality_gap", "optimality_gap_low", "optimality_gap_high",
    "std", "min", "max", "success_rate",
]
POI_COLUMNS = ["policy_x", "policy_y", "probability", "low", "high", "missions"]
PROFILE_COLUMNS = ["policy", "tau", "fraction", "low", "high"]
TEST_COLUMNS = ["scope", "policy_x", "policy_y", "test", "statistic", "p_value", "p_adjusted", "significant",
                "effect_size", "effect_size_name", "n_x", "n_y", "mean_x", "mean_y", "verdict", "note"]


# ------------------------------------------------------------------------------------------------------------
# Policy entries
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyEntry:
    """One policy of a comparison: its label in tables and reports and how to load it."""

    label: str
    class_path: str
    data_path: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def as_policy_config(self) -> dict[str, Any]:
        """The `policy:` node of the member run's config (the shape of `PolicyConfig`)."""
        return {"name": self.label, "class_path": self.class_path, "data_path": self.data_path,
                "kwargs": dict(self.kwargs)}


def parse_policy(entry: Any) -> PolicyEntry:
    """Resolve one user policy entry (see the module docstring) into a `PolicyEntry`."""
    if isinstance(entry, PolicyEntry):
        return entry
    if isinstance(entry, str):
        return _parse_policy_string(entry)
    if hasattr(entry, "class_path") and hasattr(entry, "init_kwargs"):  # mettagrid PolicySpec
        return PolicyEntry(entry.name, entry.class_path, entry.data_path, dict(entry.init_kwargs or {}))
    if hasattr(entry, "class_path"):  # PolicyConfig or its DictConfig
        from omegaconf import OmegaConf

        kwargs = OmegaConf.to_container(entry.kwargs) if OmegaConf.is_config(entry.kwargs) else entry.kwargs
        named = {"name": entry.name, "class_path": entry.class_path, "data_path": entry.data_path}
        return PolicyEntry(policy_name(named), str(entry.class_path), entry.data_path, dict(kwargs or {}))
    if isinstance(entry, Mapping) and "class_path" in entry:
        return PolicyEntry(policy_name(entry), str(entry["class_path"]), entry.get("data_path"),
                           dict(entry.get("kwargs") or {}))
    raise DAFError(f"cannot use {entry!r} as a policy: give a policy name, class path, bundle directory, "
                   "name:checkpoint, a mettagrid PolicySpec or a PolicyEntry")


def _parse_policy_string(text: str) -> PolicyEntry:
    from daf_hydra.compose import compose_config, group_options

    text = text.strip()
    if not text:
        raise DAFError("an empty policy entry: give a policy name, class path, bundle directory or name:checkpoint")
    name, sep, checkpoint = text.partition(":")
    if sep:
        if not checkpoint:
            raise DAFError(f"policy entry {text!r} names no checkpoint after ':' (name:path/to/weights)")
        base = _parse_policy_string(name)
        return PolicyEntry(text, base.class_path, checkpoint, base.kwargs)
    if text in group_options("policy"):
        return parse_policy(compose_config([f"policy={text}"]).policy)
    return PolicyEntry(text, text)


def _reject_repeats(names: list[str], message: str) -> None:
    """One line naming every repeated name: two entries with one label would mix their episodes."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DAFError(message.format(repeated))


def parse_policies(entries: Iterable[Any]) -> list[PolicyEntry]:
    parsed = [parse_policy(e) for e in entries]
    _reject_repeats([p.label for p in parsed], "policies {} appear more than once: every policy of a comparison "
                    "needs its own label")
    if not parsed:
        raise DAFError("no policies to compare: give at least one")
    return parsed


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

    def significant(self, scope: str = ALL_MISSIONS, test: str = "wilcoxon_signed_rank") -> list[tuple[str, str]]:
        """(better, worse) pairs whose Holm-adjusted test rejects equality in `scope`."""
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


# ------------------------------------------------------------------------------------------------------------
# Running a comparison
# ------------------------------------------------------------------------------------------------------------


@dataclass
class MemberOutcome:
    """How one policy x mission evaluation ended (its records are in `run_dir`)."""

    policy: str
    mission: str
    run_dir: Path
    status: str
    error: str | None = None


def slug(text: str) -> str:
    """A file-name-safe form of a label (labels may hold paths, colons, anything)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:60] or "x"


def member_tasks(
    cfg: "DictConfig", entries: Sequence[PolicyEntry], missions: Sequence[Any], run_dir: Path
) -> list[dict[str, Any]]:
    """One evaluate run per policy x mission, playing `compare.episodes_per_mission` episodes on the same seeds.

    A member's config is built as a CLI run's is: from the comparison's own config, which Hydra composed from the
    user's overrides into the typed schema, with the member's policy and mission set through that schema. So
    `evaluation.*`, `seed`, `device` and `resources.*` reach every member, `mission.*` overrides reach the members
    of the run's own mission (`load_missions`), and `policy.*` ones those that play the run's own policy
    (`own_policy`): a member is the same run, with the same identity, as `pipeline=evaluate` with those settings."""
    import copy

    from omegaconf import OmegaConf

    from daf_hydra.config import PipelineConfig, PolicyConfig

    tasks = []
    for i, entry in enumerate(entries):
        for mission in missions:
            member_dir = run_dir / MEMBERS_DIR / f"p{i}-{slug(entry.label)}__{slug(str(mission.name))}"
            member = copy.deepcopy(cfg)
            member.pipeline = OmegaConf.structured(PipelineConfig(name="evaluate"))
            member.policy = OmegaConf.structured(PolicyConfig(**own_policy(cfg, entry).as_policy_config()))
            member.mission = mission
            member.evaluation.episodes = int(cfg.compare.episodes_per_mission)
            member.output_dir = str(member_dir)
            OmegaConf.resolve(member)  # a worker process has no Hydra run to resolve `${hydra:...}` against
            tasks.append({"config": member, "run_dir": str(member_dir), "policy": entry.label,
                          "mission": str(mission.name)})
    return tasks


def own_policy(cfg: "DictConfig", entry: PolicyEntry) -> PolicyEntry:
    """`entry`, with the run's own `policy.kwargs` when it plays the run's own policy (the same name and weights):
    `policy=daf_lstm policy.kwargs.hidden_size=32` reaches the members (and trainings) of daf_lstm, as `mission.*`
    overrides reach the run's own mission."""
    from omegaconf import OmegaConf

    own = cfg.get("policy")
    if own is None or (entry.label, entry.data_path) != (policy_name(own), own.get("data_path")):
        return entry
    return PolicyEntry(entry.label, entry.class_path, entry.data_path, OmegaConf.to_container(own.kwargs))


def member_signatures(tasks: Sequence[dict[str, Any]]) -> list[str]:
    """The identity signatures of member runs: what their records are reused by on a re-run."""
    from daf_hydra.runs import identity_of

    return [identity_of(t["config"]).signature for t in tasks]


def run_member(task: dict[str, Any]) -> MemberOutcome:
    """Play one member (in this process or a worker): the evaluate pipeline's own steps, recorded the same way.

    A member that fails is recorded as failed (metrics.json, status failed) and reported; it never gets a score.
    """
    from daf_hydra.runs import evaluate_policy, start_run

    cfg = task["config"]
    run_dir = Path(task["run_dir"])
    recorder, device = start_run(cfg, run_dir, "evaluate")
    try:
        metrics = evaluate_policy(cfg, device, recorder)
    except Exception as exc:  # recorded in the member's metrics.json and in the comparison's completeness
        recorder.fail(exc)
        return MemberOutcome(task["policy"], task["mission"], run_dir, "failed", f"{type(exc).__name__}: {exc}")
    except BaseException as exc:
        recorder.fail(exc)
        raise
    recorder.complete({**metrics, "objective": metrics["mean_reward"]})
    return MemberOutcome(task["policy"], task["mission"], run_dir, "completed")


def evaluate_members(tasks: list[dict[str, Any]], parallel: bool, workers: int | None) -> list[MemberOutcome]:
    """Play every member, in worker processes when `parallel` (one task per policy x mission).

    Workers are spawned, not forked: a fresh interpreter per worker avoids inheriting torch's thread pools. A
    worker that dies outright (killed, out of memory) is reported as a failed member.
    """
    if not parallel or len(tasks) < 2:
        return [run_member(t) for t in tasks]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    outcomes = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_member, t) for t in tasks]
        for task, future in zip(tasks, futures):
            try:
                outcomes.append(future.result())
            except Exception as exc:  # BrokenProcessPool and the like: the member's run.json stays, no metrics
                outcomes.append(MemberOutcome(task["policy"], task["mission"], Path(task["run_dir"]), "failed",
                                              f"worker process failed: {type(exc).__name__}: {exc}"))
    return outcomes


def load_missions(missions: Iterable[Any], own: Any = None) -> list[Any]:
    """Mission names (catalog or cogames:<game>.<mission>) or mission configs (MissionConfig, its DictConfig, or a
    dict of its fields) -> typed mission configs. `own`: the run's own `mission`, as composed with the user's
    `mission.*` overrides; a name equal to its name is that config, so the overrides apply to the missions of the
    run's mission name, as in a CLI run of it."""
    from omegaconf import OmegaConf

    from daf_hydra.compose import load_mission
    from daf_hydra.config import MissionConfig

    def typed(m: Any) -> Any:
        if not isinstance(m, str):
            return OmegaConf.merge(OmegaConf.structured(MissionConfig), m)
        return own if own is not None and m == own.name else load_mission(m)

    out = [typed(m) for m in missions]
    _reject_repeats([m.name for m in out], "missions {} appear more than once in the comparison")
    if not out:
        raise DAFError("no missions to compare on: give at least one")
    return out


def compose_compare_config(overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> "DictConfig":
    """The `pipeline=compare` config from Python: the same YAML and overrides as the CLI."""
    from daf_hydra.compose import api_output_dir, compose_config

    return compose_config(["pipeline=compare", *overrides], api_output_dir(output_dir))


class ComparisonRun:
    """One comparison recorded in `run_dir`: run.json once its settings are checked (or failed with the error),
    then members, statistics and tables, and metrics.json last. The steps are separate so the compare pipeline
    can report them as stages; `daf_compare_policies` runs them all.

    `cfg.compare.policies` and `.missions` are set to the labels and names compared, so run.json (and the
    comparison's identity) records what was compared, whatever road the policies came by."""

    def __init__(self, cfg: "DictConfig", policies: Sequence[Any], missions: Sequence[Any], run_dir: Path):
        from daf_hydra.config import validate_compare, validate_evaluation
        from daf_hydra.runs import start_run

        self.run_dir = Path(run_dir)
        self.cfg = cfg
        try:
            validate_evaluation(cfg.evaluation)
            self.settings = statistics_settings(cfg.statistics)
            self.entries = parse_policies(policies)
            self.missions = load_missions(missions, cfg.mission)
            cfg.compare.policies = [e.label for e in self.entries]
            cfg.compare.missions = [str(m.name) for m in self.missions]
            validate_compare(cfg.compare)
            self.tasks = member_tasks(cfg, self.entries, self.missions, self.run_dir)
        except BaseException as exc:
            start_run(cfg, self.run_dir, "compare")[0].fail(exc)
            raise
        self.recorder, self.device = start_run(cfg, self.run_dir, "compare")
        self.outcomes: list[MemberOutcome] = []
        self.results: ComparisonResults | None = None

    @property
    def seeds(self) -> list[int]:
        """The seeds every member plays (runs.evaluation_seeds: `evaluation.seed`, else the run's seed, onwards)."""
        from daf_hydra.runs import evaluation_seeds

        return evaluation_seeds(self.tasks[0]["config"], trained=False)

    def evaluate(self) -> list[MemberOutcome]:
        """Every policy plays its own episodes on every mission, on the same seeds."""
        self.outcomes = evaluate_members(self.tasks, bool(self.cfg.compare.parallel), self.cfg.compare.workers)
        return self.outcomes

    def analyse(self, significance: bool = True) -> ComparisonResults:
        """Statistics on the members' records as read back from disk (the aggregator)."""
        from daf_hydra.aggregate import daf_aggregate_runs

        members = self.run_dir / MEMBERS_DIR
        tables = daf_aggregate_runs(members, use_index=False) if members.is_dir() else None
        if tables is None or tables.episodes.empty:
            errors = "; ".join(f"{o.policy} on {o.mission}: {o.error}" for o in self.outcomes if o.error)
            raise DAFError(f"no member of the comparison completed an episode ({errors or 'no members ran'})")
        self.results = compare_episodes(
            tables.episodes, self.settings, significance=significance,
            policies=[e.label for e in self.entries], missions=[m.name for m in self.missions],
            expected_seeds={m.name: self.seeds for m in self.missions},
            max_reward={m.name: m.max_reward for m in self.missions}, runs=tables.runs,
        )
        self.results.output_dir = self.run_dir
        self.results.provenance = self._provenance(tables)
        return self.results

    def add_significance_tests(self) -> "pd.DataFrame":
        assert self.results is not None, "analyse() first"
        self.results.pairwise_significance_tests = significance_tests(self.results)
        return self.results.pairwise_significance_tests

    def finish(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the tables and comparison.json, then metrics.json (the run is complete once it exists)."""
        assert self.results is not None, "analyse() first"
        self.results.save(self.run_dir / RESULTS_DIR)
        r = self.results
        summary = r.summary_statistics
        overall = summary[summary["mission"] == ALL_MISSIONS]
        # The first policy is the candidate: its pooled numbers are what a sweep over comparisons optimises
        # (objective.metric=mean_reward or objective). Absent when it has no analysed episodes: never made up.
        candidate = overall[overall["policy"] == r.policies[0]]
        objective = {"candidate": r.policies[0], "mean_reward": float(candidate["mean"].iloc[0]),
                     "objective": float(candidate["iqm"].iloc[0])} if len(candidate) else {}
        return self.recorder.complete({
            "policy": None, "mission": None,  # a comparison measures several: see the members and the tables
            "policies": r.policies, "missions": [m.name for m in self.missions],
            "episodes_per_mission": int(self.cfg.compare.episodes_per_mission),
            "complete": r.completeness.complete, "completeness": r.completeness.summary(),
            "failed_members": [f"{o.policy} on {o.mission}: {o.error}" for o in self.outcomes if o.error],
            "iqm": dict(zip(overall["policy"], overall["iqm"])) if len(overall) else {},
            "significant_pairs": [f"{a} > {b}" for a, b in r.significant()],
            **objective,
            **(extra or {}),
        })

    def fail(self, error: BaseException | str) -> None:
        self.recorder.fail(error)

    def _provenance(self, tables: Any) -> dict[str, Any]:
        from daf_hydra import provenance
        from daf_hydra.runs import to_container

        return {
            "run_id": self.recorder.provenance.get("run_id"),
            "run_dir": str(self.run_dir),
            "config": to_container(self.cfg),
            "policies": [asdict(e) for e in self.entries],
            "missions": [m.name for m in self.missions],
            "seeds": self.seeds,
            "episodes_per_mission": int(self.cfg.compare.episodes_per_mission),
            "member_runs": len(tables.runs),
            "completed_member_runs": int((tables.runs["status"] == "completed").sum()),
            "code": provenance.code_version(),
            "packages": provenance.package_versions(),
            "device": self.device,
        }


def daf_compare_policies(
    policies: Sequence[Any],
    missions: Sequence[Any],
    episodes_per_mission: int = 10,
    *,
    seed: int = 0,
    output_dir: str | Path | None = None,
    parallel: bool = False,
    workers: int | None = None,
    device: str = "cpu",
    overrides: Sequence[str] = (),
) -> ComparisonResults:
    """Compare policies on missions from Python: the steps of `pipeline=compare` without its environment check
    and HTML report (`visualization.daf_export_comparison_html(results, output_path=...)` writes one).

    `policies`: entries as in the module docstring (strings, mettagrid `PolicySpec`, `PolicyEntry`); `missions`:
    names or mission configs; `overrides`: further config overrides (`statistics.bootstrap_reps=2000`,
    `evaluation.num_envs=4`). Records and tables land in `output_dir` (default: outputs/<date>/<time>-<id>).
    `parallel=True` starts worker processes with `spawn`: a script calling it needs the usual
    `if __name__ == "__main__":` guard.
    """
    cfg = compose_compare_config(
        [f"compare.episodes_per_mission={episodes_per_mission}", f"seed={seed}", f"device={device}",
         f"compare.parallel={str(parallel).lower()}", f"compare.workers={workers if workers else 'null'}",
         *overrides],
        output_dir,
    )
    run = ComparisonRun(cfg, policies, missions, Path(cfg.output_dir))
    try:
        run.evaluate()
        results = run.analyse()
        run.finish()
    except BaseException as exc:
        run.fail(exc)
        raise
    return results
