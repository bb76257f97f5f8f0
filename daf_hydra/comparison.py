"""Running a comparison: every policy plays its own episodes (it controls all agents) on the same seeds of every
mission, each policy x mission an ordinary evaluate run under `<run_dir>/members/`; the statistics
(`comparison_stats`) read those records back through the aggregator, so what is analysed is exactly what is on
disk, and a comparison of any tree of runs (`python -m daf_hydra.report`) uses the same code.

    results = daf_compare_policies(policies=["baseline", "random"], missions=["training_facility_1"])
    results.summary_statistics, results.pairwise_significance_tests
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from daf_hydra.comparison_stats import (ALL_MISSIONS, ComparisonResults, compare_episodes, significance_tests,
                                        statistics_settings)
from daf_hydra.errors import DAFError
from daf_hydra.identity import policy_name
from daf_hydra.policy_entries import PolicyEntry, entry_text, mark_untrained, parse_policies, reject_repeats, slug

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

MEMBERS_DIR = "members"
RESULTS_DIR = "comparison"
# What a comparison writes besides its records: cleared with them when it is started over (restart=true).
OWNED = (MEMBERS_DIR, RESULTS_DIR, "report.html", "check.json", "pipeline.json")


@dataclass
class MemberOutcome:
    """How one policy x mission evaluation ended (its records are in `run_dir`)."""

    policy: str
    mission: str
    run_dir: Path
    status: str
    error: str | None = None


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
    `policy=lstm policy.kwargs.hidden_size=32` reaches the members (and trainings) of lstm, as `mission.*`
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
    if recorder.completed is not None:  # completed by an earlier run of the comparison
        return MemberOutcome(task["policy"], task["mission"], run_dir, "completed")
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


def clear_stale_members(tasks: Sequence[dict[str, Any]]) -> None:
    """The members directory belongs to the comparison (or benchmark stage) that plays these tasks: records of
    another design (a member no task plays, or a task's directory holding a run of another identity signature,
    e.g. the checkpoint of a training with another lr) are removed, so they are neither refused nor analysed. A
    member of the same signature is kept: an interrupted one plays only its missing seeds (runs.start_run)."""
    import shutil

    from daf_hydra.records import RUN_FILE, clear_run

    dirs = {Path(t["run_dir"]): sig for t, sig in zip(tasks, member_signatures(tasks))}
    for root in {d.parent for d in dirs}:
        for member in (root.iterdir() if root.is_dir() else ()):
            if member.is_dir() and member not in dirs:
                shutil.rmtree(member)
    for member, signature in dirs.items():
        recorded = member / RUN_FILE
        if recorded.is_file() and json.loads(recorded.read_text()).get("config_signature") != signature:
            clear_run(member)


def evaluate_members(tasks: list[dict[str, Any]], parallel: bool, workers: int | None) -> list[MemberOutcome]:
    """Play every member, in worker processes when `parallel` (one task per policy x mission).

    Workers are spawned, not forked: a fresh interpreter per worker avoids inheriting torch's thread pools. A
    worker that dies outright (killed, out of memory) is reported as a failed member.
    """
    clear_stale_members(tasks)
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
    reject_repeats([m.name for m in out], "missions {} appear more than once in the comparison")
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

    `cfg.compare.policies` and `.missions` are set to the entries (with their weights) and names compared, so
    run.json (and the comparison's identity) records what was compared, whatever road the policies came by: a
    re-run with other weights under the same label (a benchmark's new training) is another comparison."""

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
            cfg.compare.policies = [entry_text(e) for e in self.entries]
            cfg.compare.missions = [str(m.name) for m in self.missions]
            self.entries = [mark_untrained(own_policy(cfg, e)) for e in self.entries]
            validate_compare(cfg.compare)
            self.tasks = member_tasks(cfg, self.entries, self.missions, self.run_dir)
        except BaseException as exc:
            start_run(cfg, self.run_dir, "compare", OWNED)[0].fail(exc)
            raise
        self.recorder, self.device = start_run(cfg, self.run_dir, "compare", OWNED)
        self.outcomes: list[MemberOutcome] = []
        self.results: ComparisonResults | None = None

    @property
    def completed(self) -> dict[str, Any] | None:
        """The metrics of this comparison when an earlier run of it completed in `run_dir` (nothing to do)."""
        return self.recorder.completed

    @property
    def seeds(self) -> list[int]:
        """The seeds every member plays (runs.evaluation_seeds: `evaluation.seed`, else the run's seed, onwards)."""
        from daf_hydra.runs import evaluation_seeds

        return evaluation_seeds(self.tasks[0]["config"], trained=False)

    def evaluate(self) -> list[MemberOutcome]:
        """Every policy plays its own episodes on every mission, on the same seeds."""
        self.outcomes = evaluate_members(self.tasks, bool(self.cfg.compare.parallel), self.cfg.compare.workers)
        return self.outcomes

    def unfinished_members(self) -> list[str]:
        """The members whose runs have no completed record (an interrupted run of the comparison)."""
        from daf_hydra.records import completed_metrics

        return [f"{t['policy']} on {t['mission']}" for t in self.tasks if completed_metrics(t["run_dir"]) is None]

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
        from daf_hydra.compose import to_container

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
    `if __name__ == "__main__":` guard. A member that fails (a missing checkpoint, a policy that crashes) raises
    DAFError naming it, after its failure is recorded.
    """
    from daf_hydra.config import validate_seed

    validate_seed("seed", seed)
    cfg = compose_compare_config(
        [f"compare.episodes_per_mission={episodes_per_mission}", f"seed={seed}", f"device={device}",
         f"compare.parallel={str(parallel).lower()}", f"compare.workers={workers if workers else 'null'}",
         *overrides],
        output_dir,
    )
    run = ComparisonRun(cfg, policies, missions, Path(cfg.output_dir))
    if run.completed is not None:
        return run.analyse()
    try:
        run.evaluate()
        failed = [f"{o.policy} on {o.mission}: {str(o.error).splitlines()[0]}" for o in run.outcomes if o.error]
        if failed:  # as loud as the CLI: never a silently smaller comparison (the members' records say why)
            raise DAFError(f"comparison member(s) failed: {'; '.join(failed)} (records in {run.run_dir})")
        results = run.analyse()
        run.finish()
    except BaseException as exc:
        run.fail(exc)
        raise
    return results
