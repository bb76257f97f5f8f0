"""Cross-play: how well policies play *with each other* in cooperative missions (issue 13).

A composition (A, B) puts policy A in `k` of a mission's n agent slots and B in the other n-k; (A, A) is A's own
team. The slots A holds rotate with the episode's seed (agents (seed + i) mod n, i < k), so over n seeds every
slot is played by every member, and every composition plays the same seeds of every mission (paired). When
2k = n, (A, B) and (B, A) are the same composition and are played once.

Mixing policies inside an episode is right here and wrong for a solo comparison (shared notes, statistics.md):
a cross-play run's identity says `mixed_teams`, its episodes carry no `policy` field but `agent_policies` (who
played each agent) and `composition`, and the aggregator never reads them as a policy's score.

Out (crossplay.json, report.html): the matrix of mean team reward by composition with bootstrap intervals, per
policy ratings (daf_hydra.ratings: OpenSkill over the compositions' team rewards, bootstrap intervals over the
seeds) and value over replacement (cogames' pickup scoring): the team reward with the policy in the k slots
beside a pool member, minus the average of the pool's members in those slots, averaged over the pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from daf_hydra import records, stats
from daf_hydra.errors import DAFError
from daf_hydra.policy_entries import PolicyEntry, parse_policies

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

CROSSPLAY_FILE = "crossplay.json"
REPORT_FILE = "report.html"
OWNED = (CROSSPLAY_FILE, REPORT_FILE)


@dataclass(frozen=True)
class Composition:
    """Policy `a` in `k` of `n` agent slots, `b` in the rest (`a == b`: one policy's own team)."""

    a: str
    b: str
    k: int
    n: int

    @property
    def name(self) -> str:
        return self.a if self.a == self.b else f"{self.a} x{self.k} + {self.b} x{self.n - self.k}"

    @property
    def counts(self) -> list[int]:
        return [self.n] if self.a == self.b else [self.k, self.n - self.k]

    @property
    def team(self) -> dict[str, float]:
        """Each policy's share of the agents."""
        return {self.a: 1.0} if self.a == self.b else {self.a: self.k / self.n, self.b: (self.n - self.k) / self.n}

    def owners(self, seed: int) -> np.ndarray:
        """Per agent slot, 0 where `a` plays it and 1 where `b` does, for the episode of `seed`."""
        owner = np.zeros(self.n, np.intp)
        if self.a != self.b:
            owner[:] = 1
            owner[(seed + np.arange(self.k)) % self.n] = 0
        return owner

    def agent_policies(self, seed: int) -> list[str]:
        return [(self.a, self.b)[i] for i in self.owners(seed)]


def compositions(labels: Sequence[str], k: int, n: int) -> list[Composition]:
    """Every (A, B) of `labels`, A's own team included; one of (A, B) and (B, A) when they are the same (2k = n)."""
    return [Composition(a, b, k, n) for i, a in enumerate(labels) for j, b in enumerate(labels)
            if not (2 * k == n and j < i)]


def composition_of(played: dict[tuple[str, str], Composition], a: str, b: str) -> Composition:
    """The composition that puts `a` in the k slots beside `b` (its mirror when 2k = n)."""
    return played[(a, b)] if (a, b) in played else played[(b, a)]


@dataclass
class CrossplayPlan:
    """What a cross-play run plays, checked before any work."""

    entries: list[PolicyEntry]
    missions: list[Any]  # mission configs
    agents: dict[str, int]  # mission -> n
    k: dict[str, int]  # mission -> agents policy A controls
    seeds: list[int]
    pool: list[str]  # labels

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    def compositions(self, mission: str) -> list[Composition]:
        return compositions(self.labels, self.k[mission], self.agents[mission])


def plan_crossplay(cfg: "DictConfig") -> CrossplayPlan:
    """Check `cfg.crossplay` against its policies and missions (one-line DAFError before any episode): at least
    two distinct policies that resolve, known missions, k in 1..n-1 on every mission, a pool among the policies."""
    from daf_hydra.compose import load_mission
    from daf_hydra.config import COGAMES_PREFIX, validate_crossplay
    from daf_hydra.policies import loading

    c = cfg.crossplay
    validate_crossplay(c)
    entries = parse_policies(list(c.policies))
    for e in entries:
        resolved = loading.resolve(e.class_path, e.data_path, e.kwargs)
        loading.import_policy_class(resolved.class_path)
        if resolved.data_path and not Path(resolved.data_path).exists():
            raise DAFError(f"policy {e.label!r}: checkpoint {resolved.data_path!r} does not exist")
    missions = [cfg.mission if name == cfg.mission.name else load_mission(str(name)) for name in c.missions]
    agents, ks = {}, {}
    for m in missions:
        if str(m.name).startswith(COGAMES_PREFIX) or m.get("source") == "cogames":
            from daf_hydra.missions import build_env

            n = int(build_env(m).game.num_agents)
        else:
            n = int(m.num_agents)
        if n < 2:
            raise DAFError(f"crossplay.missions: {m.name} has {n} agent, and cross-play mixes policies in one team: "
                           "choose missions of at least 2 agents")
        k = int(c.k) if c.k is not None else n // 2
        if not 1 <= k < n:
            raise DAFError(f"crossplay.k={k} is out of range for mission {m.name} ({n} agents): policy A controls "
                           f"1..{n - 1} agents and B the rest")
        agents[str(m.name)], ks[str(m.name)] = n, k
    first = cfg.evaluation.seed if cfg.evaluation.get("seed") is not None else cfg.seed
    labels = [e.label for e in entries]
    pool = [labels[list(c.policies).index(p)] for p in c.pool] if c.pool is not None else labels
    return CrossplayPlan(entries, missions, agents, ks, [int(first) + i for i in range(int(c.episodes))], pool)


# ------------------------------------------------------------------------------------------------------------
# Playing
# ------------------------------------------------------------------------------------------------------------


def play_compositions(plan: CrossplayPlan, cfg: "DictConfig", device: str,
                      recorder: records.RunRecorder) -> list[dict[str, Any]]:
    """Play every composition on every mission and seed into `recorder` (episodes.jsonl); episodes an earlier,
    interrupted run of the same identity recorded are kept, not played again. Returns all episode records."""
    from daf_hydra.evaluation import LoadedPolicy, play, seed_everything
    from daf_hydra.missions import build_env
    from daf_hydra.policies import loading
    from daf_hydra.teams import MixedTeam

    kept = {records.episode_key(e): e for e in records.read_jsonl(recorder.run_dir / records.EPISODES_FILE)}
    loaded = {e.label: LoadedPolicy(e.label, loading.resolve(e.class_path, e.data_path, e.kwargs), device)
              for e in plan.entries}
    index = {seed: i for i, seed in enumerate(plan.seeds)}
    out = list(kept.values())
    for mission in plan.missions:
        name = str(mission.name)
        env_cfg = build_env(mission)
        threshold = float(mission.success_threshold) if mission.get("source", "catalog") == "catalog" else None
        for comp in plan.compositions(name):
            missing = [s for s in plan.seeds if (name, comp.name, s) not in kept]
            if not missing:
                continue
            player = loaded[comp.a] if comp.a == comp.b else MixedTeam(
                comp.name, [loaded[comp.a], loaded[comp.b]], comp.counts, comp.owners)

            def record(e: dict[str, Any], comp: Composition = comp, name: str = name) -> dict[str, Any]:
                return {"mission": name, "composition": comp.name, "team": comp.team,
                        "agent_policies": comp.agent_policies(e["seed"]), **e, "episode": index[e["seed"]]}

            seed_everything(int(cfg.seed))
            played = play(env_cfg, player, missing, int(cfg.evaluation.num_envs),
                          deterministic=bool(cfg.evaluation.deterministic),
                          on_episode=lambda e, record=record: recorder.episode(record(e)),
                          progress=cfg.evaluation.progress, success_threshold=threshold, build_seed=plan.seeds[0])
            out += [record(e) for e in played]
    return out


# ------------------------------------------------------------------------------------------------------------
# Analysis
# ------------------------------------------------------------------------------------------------------------


@dataclass
class CrossplayResults:
    """The analysis of a cross-play run (crossplay.json holds `to_dict()`)."""

    policies: list[str]
    missions: list[str]
    k: dict[str, int]
    agents: dict[str, int]
    seeds: list[int]
    pool: list[str]
    matrix: "pd.DataFrame"  # mission, a, b, composition, episodes, mean, low, high
    ratings: "pd.DataFrame"  # policy, rating, low, high
    value_over_replacement: "pd.DataFrame"  # policy, value, low, high
    settings: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "crossplay", "mixed_teams": True, "policies": self.policies, "missions": self.missions,
            "k": self.k, "agents": self.agents, "seeds": self.seeds, "pool": self.pool, "settings": self.settings,
            "matrix": self.matrix.to_dict(orient="records"), "ratings": self.ratings.to_dict(orient="records"),
            "value_over_replacement": self.value_over_replacement.to_dict(orient="records"),
        }


def analyse(episodes: Sequence[dict[str, Any]], plan: CrossplayPlan, statistics: Any,
            rating_reps: int) -> CrossplayResults:
    """Matrix, ratings and value over replacement from the episode records of every composition (complete:
    every composition played every seed of every mission)."""
    import pandas as pd

    from daf_hydra.ratings import ratings_with_ci

    reps, conf, boot_seed = int(statistics.bootstrap_reps), float(statistics.confidence), int(statistics.bootstrap_seed)
    labels = plan.labels
    reward = {(e["mission"], e["composition"], int(e["seed"])): float(e["total_reward"]) for e in episodes}
    matrix_rows, vor_by_mission, matches = [], {}, {}
    for mission in plan.missions:
        name = str(mission.name)
        played = {(c.a, c.b): c for c in plan.compositions(name)}
        missing = [(c.name, s) for c in played.values() for s in plan.seeds if (name, c.name, s) not in reward]
        if missing:
            raise DAFError(f"cross-play of {name} is incomplete: {len(missing)} episodes missing "
                           f"(e.g. {missing[0][0]} on seed {missing[0][1]})")

        def team_rewards(c: Composition, name: str = name) -> np.ndarray:
            return np.array([reward[(name, c.name, s)] for s in plan.seeds])

        for a in labels:
            for b in labels:
                c = composition_of(played, a, b)
                values = team_rewards(c)
                low, high = stats.stratified_bootstrap_ci({name: values}, stats.mean, reps, conf, boot_seed)
                matrix_rows.append({"mission": name, "a": a, "b": b, "composition": c.name, "k": c.k if a != b else
                                    plan.agents[name], "episodes": len(values), "mean": float(values.mean()),
                                    "low": low, "high": high})
        # value over replacement, per seed: R(P beside Q) - mean over pool R (R beside Q), averaged over Q in pool
        per_policy = {}
        for p in labels:
            diffs = [team_rewards(composition_of(played, p, q))
                     - np.mean([team_rewards(composition_of(played, r, q)) for r in plan.pool], axis=0)
                     for q in plan.pool]
            per_policy[p] = np.mean(diffs, axis=0)
        vor_by_mission[name] = per_policy
        matches[name] = [{c.name: (c.team, reward[(name, c.name, s)]) for c in played.values()} for s in plan.seeds]
    missions = [str(m.name) for m in plan.missions]
    vor_rows = []
    for p in labels:
        by_task = {m: vor_by_mission[m][p] for m in missions}
        low, high = stats.stratified_bootstrap_ci(by_task, stats.mean, reps, conf, boot_seed)
        vor_rows.append({"policy": p, "value": float(stats.mean(stats.pool(by_task))), "low": low, "high": high})
    rated = ratings_with_ci(matches, labels, rating_reps, conf, boot_seed)
    rating_rows = [{"policy": p, "rating": r["point"], "low": r["low"], "high": r["high"]} for p, r in rated.items()]
    return CrossplayResults(
        policies=labels, missions=missions, k=dict(plan.k), agents=dict(plan.agents), seeds=list(plan.seeds),
        pool=list(plan.pool), matrix=pd.DataFrame(matrix_rows),
        ratings=pd.DataFrame(rating_rows).sort_values("rating", ascending=False, ignore_index=True),
        value_over_replacement=pd.DataFrame(vor_rows).sort_values("value", ascending=False, ignore_index=True),
        settings={"bootstrap_reps": reps, "rating_bootstrap_reps": rating_reps, "confidence": conf,
                  "bootstrap_seed": boot_seed, "rating_model": "openskill PlackettLuce (team Bradley-Terry)",
                  "rotation": "policy A holds agents (seed + i) mod n, i < k"},
    )


# ------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------


def run_crossplay(cfg: "DictConfig", run_dir: Path) -> tuple[CrossplayResults, dict[str, Any]]:
    """One cross-play run in `run_dir`: run.json, episodes.jsonl (every composition), crossplay.json, report.html,
    metrics.json last. A completed run of the same identity is read back, not played again; an interrupted one
    plays only its missing episodes. Returns the results and the run's metrics."""
    from daf_hydra.crossplay_report import daf_export_crossplay_html
    from daf_hydra.runs import recording, start_run

    plan = plan_crossplay(cfg)
    recorder, device = start_run(cfg, run_dir, "crossplay", OWNED)
    reps = int(cfg.crossplay.rating_bootstrap_reps)
    if recorder.completed is not None:
        episodes = records.read_jsonl(run_dir / records.EPISODES_FILE)
        results = analyse(episodes, plan, cfg.statistics, reps)
        results.output_dir = run_dir
        return results, recorder.completed
    with recording(recorder):
        episodes = play_compositions(plan, cfg, device, recorder)
        results = analyse(episodes, plan, cfg.statistics, reps)
        results.output_dir = run_dir
        records.write_json_atomic(run_dir / CROSSPLAY_FILE, results.to_dict())
        daf_export_crossplay_html(results, run_dir / REPORT_FILE)
    first = results.policies[0]
    own_row = results.matrix[(results.matrix["a"] == first) & results.matrix["b"].isin(results.pool)]
    vor = results.value_over_replacement.set_index("policy")["value"]
    metrics = recorder.complete({
        "policies": results.policies, "missions": results.missions, "episodes": len(episodes),
        "compositions": int(results.matrix["composition"].nunique()),
        # the first policy is the candidate: its value over replacement is the objective, its mean team reward
        # beside the pool members `mean_reward`
        "objective": float(vor[first]), "mean_reward": float(own_row["mean"].mean()),
        "value_over_replacement": {p: float(v) for p, v in vor.items()},
        "rating": dict(zip(results.ratings["policy"], results.ratings["rating"].astype(float))),
    })
    return results, metrics
