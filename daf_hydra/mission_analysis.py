"""Where does a policy fail on a mission? Success rate, reward with its interval, failure modes, per agent.

An episode succeeds by the mission's own criterion (`success_threshold` on the total episode reward of all
agents; episode records carry `success`). Each failed episode is put in the first failure mode it matches, read
from the stats mettagrid records for every agent (`agent_stats`):

1. stuck_without_motion: most agents spent `stuck_fraction` of the episode or more without moving
   (`status.max_steps_without_motion`): blocked, or a policy that stands still.
2. action_failures: `action_failure_fraction` or more of all actions failed (`action.failed`): the policy keeps
   trying moves or uses that the game refuses.
3. never_reached_reward_source: no agent gained any resource (`*.gained`) and no reward came in.
4. partial_progress_out_of_steps: the episode ran to `max_steps` with some progress (reward or resources), short of
   the threshold: too slow, or the chain was not completed.
5. ended_early: the episode ended before `max_steps` without reaching the threshold.
6. other: none of the above.

`daf_analyze_mission_performance()` (Python) and `pipeline=analyze` (CLI) play the episodes as an ordinary
evaluate-shaped run and analyse the episodes read back from its records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from daf_hydra import stats
from daf_hydra.config import AnalyzeConfig

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

FAILURE_MODES = {
    "stuck_without_motion": "most agents went a large part of the episode without moving",
    "action_failures": "a large fraction of actions failed",
    "never_reached_reward_source": "no agent gained any resource and no reward came in",
    "partial_progress_out_of_steps": "ran out of steps with partial progress, short of the success threshold",
    "ended_early": "ended before max_steps without reaching the success threshold",
    "other": "failed, with none of the patterns above",
}


@dataclass
class FailureMode:
    name: str
    description: str
    count: int
    example_seeds: list[int]


@dataclass
class MissionAnalysis:
    """The findings for one policy on one mission (see the module docstring)."""

    policy: str
    mission: str
    episodes: int
    seeds: list[int]
    success_criterion: str
    success_rate: float | None  # None when the mission states no criterion (e.g. a cogames mission)
    success_rate_ci: tuple[float, float] | None  # Wilson interval
    mean_reward: float
    mean_reward_ci: tuple[float, float]  # stratified (single-stratum) bootstrap percentile interval
    failed_episodes: int
    failure_modes: list[FailureMode]
    per_agent: "pd.DataFrame"
    episode_records: list[dict[str, Any]] = field(repr=False, default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.95  # coverage of both intervals
    provenance: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None

    def failure_modes_table(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(
            [{"mode": m.name, "count": m.count, "share of failures": m.count / self.failed_episodes,
              "example seeds": ", ".join(map(str, m.example_seeds)), "description": m.description}
             for m in self.failure_modes],
            columns=["mode", "count", "share of failures", "example seeds", "description"],
        )

    def episode_table(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(
            [{"episode": e["episode"], "seed": e["seed"], "total_reward": e["total_reward"], "steps": e["steps"],
              "success": e.get("success"), "failure_mode": e.get("failure_mode")} for e in self.episode_records],
            columns=["episode", "seed", "total_reward", "steps", "success", "failure_mode"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "mission": self.mission, "episodes": self.episodes, "seeds": self.seeds,
            "success_criterion": self.success_criterion, "success_rate": self.success_rate,
            "success_rate_ci": self.success_rate_ci, "mean_reward": self.mean_reward,
            "mean_reward_ci": self.mean_reward_ci, "failed_episodes": self.failed_episodes,
            "failure_modes": [vars(m) for m in self.failure_modes],
            "per_agent": [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
                          for row in self.per_agent.astype(object).to_dict("records")],
            "episodes_detail": [{k: e.get(k) for k in ("episode", "seed", "total_reward", "steps", "success",
                                                       "failure_mode")} for e in self.episode_records],
            "thresholds": self.thresholds, "confidence": self.confidence, "provenance": self.provenance,
        }


# ------------------------------------------------------------------------------------------------------------
# Classifying episodes
# ------------------------------------------------------------------------------------------------------------


def _gained(agent: dict[str, float]) -> float:
    return sum(v for k, v in agent.items() if k.endswith(".gained"))


def classify_failure(episode: dict[str, Any], settings: Any = None) -> str:
    """The failure mode of one failed episode record (first match in the module docstring's order)."""
    settings = settings or AnalyzeConfig()
    agents = episode.get("agent_stats") or []
    steps = max(int(episode.get("steps") or 0), 1)
    if agents:
        stuck = sum(a.get("status.max_steps_without_motion", 0.0) >= settings.stuck_fraction * steps for a in agents)
        if stuck > len(agents) / 2:
            return "stuck_without_motion"
        failed = sum(a.get("action.failed", 0.0) for a in agents)
        if failed >= settings.action_failure_fraction * steps * len(agents):
            return "action_failures"
    progress = episode["total_reward"] > 0 or any(_gained(a) > 0 for a in agents)
    if not progress:
        return "never_reached_reward_source"
    if episode.get("max_steps") is not None and episode["steps"] >= episode["max_steps"]:
        return "partial_progress_out_of_steps"
    if episode.get("max_steps") is not None:
        return "ended_early"
    return "other"


def per_agent_table(episodes: Sequence[dict[str, Any]], settings: Any = None) -> "pd.DataFrame":
    """One row per agent slot: mean reward (and its standard error over episodes), resources gained, hearts,
    action failure rate, longest stretch without motion, share of episodes stuck, cells visited."""
    import pandas as pd

    settings = settings or AnalyzeConfig()
    n_agents = max((len(e["rewards"]) for e in episodes), default=0)
    rows = []
    for i in range(n_agents):
        rewards = np.array([e["rewards"][i] for e in episodes if i < len(e["rewards"])], dtype=float)
        agent_stats = [e["agent_stats"][i] for e in episodes if i < len(e.get("agent_stats") or [])]
        steps = [max(int(e["steps"]), 1) for e in episodes if i < len(e.get("agent_stats") or [])]
        row: dict[str, Any] = {"agent": i, "episodes": int(rewards.size)}
        row["mean_reward"], row["stderr_reward"] = stats.mean_and_standard_error(rewards)
        if agent_stats:
            row["mean_resources_gained"] = float(np.mean([_gained(a) - a.get("heart.gained", 0.0)
                                                          for a in agent_stats]))
            row["mean_hearts_gained"] = float(np.mean([a.get("heart.gained", 0.0) for a in agent_stats]))
            row["action_failure_rate"] = float(np.mean([a.get("action.failed", 0.0) / s
                                                        for a, s in zip(agent_stats, steps)]))
            row["mean_max_steps_without_motion"] = float(np.mean(
                [a.get("status.max_steps_without_motion", 0.0) for a in agent_stats]))
            row["share_stuck"] = float(np.mean([a.get("status.max_steps_without_motion", 0.0)
                                                >= settings.stuck_fraction * s for a, s in zip(agent_stats, steps)]))
            row["mean_cells_visited"] = float(np.mean([a.get("cell.unique_visited", math.nan) for a in agent_stats]))
        rows.append(row)
    return pd.DataFrame(rows)


def analyse_episodes(
    episodes: Sequence[dict[str, Any]],
    policy: str,
    mission: Any,
    settings: Any = None,
    statistics: Any = None,
) -> MissionAnalysis:
    """Analyse episode records (as `evaluation.play` writes them) of `policy` on `mission` (a mission config)."""
    import scipy.stats

    from daf_hydra.comparison_stats import statistics_settings
    from daf_hydra.errors import DAFError

    settings = settings or AnalyzeConfig()
    s = statistics_settings(statistics)
    if not episodes:
        raise DAFError(f"no episodes of {policy} on {mission.name} to analyse")
    totals = np.array([e["total_reward"] for e in episodes], dtype=float)
    mean_low, mean_high = stats.stratified_bootstrap_ci(
        {mission.name: totals}, stats.mean, s["bootstrap_reps"], s["confidence"], s["bootstrap_seed"])
    judged = [e for e in episodes if e.get("success") is not None]
    records = [dict(e) for e in episodes]
    modes = _failure_seeds(records, settings)
    if judged:
        successes = sum(bool(e["success"]) for e in judged)
        interval = scipy.stats.binomtest(successes, len(judged)).proportion_ci(s["confidence"], method="wilson")
        success_rate: float | None = successes / len(judged)
        success_ci: tuple[float, float] | None = (float(interval.low), float(interval.high))
        criterion = f"total reward of all agents >= {getattr(mission, 'success_threshold', '?')}"
    else:
        success_rate, success_ci, criterion = None, None, "none (the mission states no success threshold)"
    failure_modes = [
        FailureMode(name, FAILURE_MODES[name], len(modes[name]), modes[name][: settings.example_seeds])
        for name in FAILURE_MODES if name in modes
    ]
    return MissionAnalysis(
        policy=policy, mission=mission.name, episodes=len(episodes), seeds=[int(e["seed"]) for e in episodes],
        success_criterion=criterion, success_rate=success_rate, success_rate_ci=success_ci,
        mean_reward=float(totals.mean()), mean_reward_ci=(mean_low, mean_high),
        failed_episodes=sum(m.count for m in failure_modes), failure_modes=failure_modes,
        per_agent=per_agent_table(episodes, settings), episode_records=records,
        thresholds={"stuck_fraction": settings.stuck_fraction,
                    "action_failure_fraction": settings.action_failure_fraction},
        confidence=s["confidence"],
    )


def _failure_seeds(records: list[dict[str, Any]], settings: Any) -> dict[str, list[int]]:
    """Failure mode -> seeds of its episodes, in episode order; marks each failed record's `failure_mode`."""
    modes: dict[str, list[int]] = {}
    for e in records:
        if e.get("success") is False:
            e["failure_mode"] = classify_failure(e, settings)
            modes.setdefault(e["failure_mode"], []).append(int(e["seed"]))
    return modes


def failure_replays(episodes: Sequence[dict[str, Any]], settings: Any) -> dict[int, list[str]]:
    """seed -> `failure:<mode>` for each failure mode's example episodes (the seeds the analysis lists): the
    replays an analysis keeps beside the lowest, median and highest episode."""
    keep: dict[int, list[str]] = {}
    for mode, seeds in _failure_seeds([dict(e) for e in _in_order(list(episodes))], settings).items():
        for seed in seeds[: settings.example_seeds]:
            keep.setdefault(seed, []).append(f"failure:{mode}")
    return keep


# ------------------------------------------------------------------------------------------------------------
# Running an analysis
# ------------------------------------------------------------------------------------------------------------


def run_analysis(cfg: "DictConfig", run_dir: Path) -> MissionAnalysis:
    """Play `evaluation.episodes` episodes of `cfg.policy` on `cfg.mission` into an analyze run at `run_dir`,
    analyse what was recorded, write analysis.json and report.html; metrics.json last."""
    from daf_hydra import records
    from daf_hydra.compose import to_container
    from daf_hydra.config import validate_analyze, validate_statistics
    from daf_hydra.runs import evaluate_policy, start_run
    from daf_hydra.provenance import code_version, package_versions
    from daf_hydra.visualization import daf_export_mission_analysis_html

    recorder, device = start_run(cfg, run_dir, "analyze", ("analysis.json", "report.html"))
    if recorder.completed is not None:  # completed earlier: its analysis, recomputed from its records, no writes
        analysis = analyse_episodes(_in_order(records.read_jsonl(run_dir / records.EPISODES_FILE)),
                                    recorder.completed["policy"], cfg.mission, cfg.analyze, cfg.statistics)
        analysis.output_dir = run_dir
        return analysis
    try:
        validate_analyze(cfg.analyze)
        validate_statistics(cfg.statistics)
        metrics = evaluate_policy(cfg, device, recorder, keep_replays=lambda eps: failure_replays(eps, cfg.analyze))
        episodes = _in_order(records.read_jsonl(run_dir / records.EPISODES_FILE))
        analysis = analyse_episodes(episodes, metrics["policy"], cfg.mission, cfg.analyze, cfg.statistics)
        analysis.output_dir = run_dir
        analysis.provenance = {
            "run_id": recorder.provenance.get("run_id"), "run_dir": str(run_dir), "device": device,
            "policy": to_container(cfg.policy), "mission": str(cfg.mission.name), "seed": int(cfg.seed),
            "statistics": to_container(cfg.statistics), "code": code_version(), "packages": package_versions(),
        }
        records.write_json_atomic(run_dir / "analysis.json", analysis.to_dict())
        daf_export_mission_analysis_html(analysis, run_dir / "report.html")
    except BaseException as exc:
        recorder.fail(exc)
        raise
    recorder.complete({
        **metrics, "objective": analysis.success_rate if analysis.success_rate is not None else metrics["mean_reward"],
        "failure_modes": {m.name: m.count for m in analysis.failure_modes},
    })
    return analysis


def _in_order(episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Episodes by their index (a resumed run recorded them out of order)."""
    return sorted(episodes, key=lambda e: int(e.get("episode") or 0))


def daf_analyze_mission_performance(
    policy_class_path: str,
    mission_name: str,
    episodes: int = 20,
    *,
    seed: int = 0,
    output_dir: str | Path | None = None,
    device: str = "cpu",
    overrides: Sequence[str] = (),
) -> MissionAnalysis:
    """Analyse a policy on a mission from Python: the same steps and records as `pipeline=analyze`.

    `policy_class_path`: any policy entry a comparison accepts (conf/policy name, short name, class path, bundle
    directory, `name:checkpoint`); `mission_name`: a catalog mission or `cogames:<game>.<mission>`. Records,
    analysis.json and report.html land in `output_dir` (default: outputs/<date>/<time>-<id>).
    """
    from daf_hydra.policy_entries import parse_policy
    from daf_hydra.compose import api_output_dir, compose_config

    from daf_hydra.config import validate_seed

    validate_seed("seed", seed)
    entry = parse_policy(policy_class_path)
    cfg = compose_config(
        ["pipeline=analyze", f"mission={mission_name}", f"evaluation.episodes={episodes}", f"seed={seed}",
         f"device={device}", *overrides],
        api_output_dir(output_dir),
    )
    for key, value in entry.as_policy_config().items():  # field by field: the node is typed (PolicyConfig)
        cfg.policy[key] = value
    return run_analysis(cfg, Path(cfg.output_dir))
