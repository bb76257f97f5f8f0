"""Hyperparameter sweeps: Optuna studies run by Hydra's Optuna sweeper, and what a finished sweep leaves behind.

A sweep is a Hydra multirun (`-m +sweep=lstm_lr`, or `-m hydra/sweeper=tpe hydra.sweeper.params.lr=...`): each
trial is an ordinary daf_hydra run with its own run directory, and its objective is what the pipeline returns.
Studies live in a SQLite file (`multirun/sweeps/optuna.db`) or any database URL. A study belongs to one sweep
definition (`DAFOptunaSweeper`): unnamed, it is named after it (`sweep-<hash>`), so re-running the same command
resumes it, several machines can share it, and a different sweep never lands in it.

When the multirun ends, `SweepResultsCallback` writes into the sweep directory:
  trials.csv          every trial of the study: number, state, objective(s), params, duration, run dir, error
  best_config.yaml    the full composed config of the best trial (rerun it with --config-path/--config-name)
  best_overrides.yaml the overrides of the best trial
  sweep.json          study, storage, directions, best trial, its checkpoint
  sweep_report.html   optimisation history, parameter importances, parallel coordinates, slices (offline)

The Python API (`DAFSweepConfig`, `daf_launch_sweep`, `daf_sweep_best_config`) launches the same multirun.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import datetime
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import hydra.utils
from hydra.experimental.callback import Callback
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig, OmegaConf

from daf_hydra.config import DAFSweepConfig, literal, parameter_key
from daf_hydra.errors import DAFError
from daf_hydra.identity import SECTIONS, run_identity
from daf_hydra.records import METRICS_FILE, check_writable, write_json_atomic
from daf_hydra.studies import superseded

TRIALS_FILE = "trials.csv"
BEST_CONFIG_FILE = "best_config.yaml"
BEST_OVERRIDES_FILE = "best_overrides.yaml"
SWEEP_FILE = "sweep.json"
SWEEP_REPORT_FILE = "sweep_report.html"
# Validations per training of a pruned sweep's trials when training.validate_every is not given: the pruner's
# rungs; 10 stops a bad trial after a tenth of its training (bench/sweep_efficiency.py: 5 spent 0.57 of an
# unpruned study's agent steps).
VALIDATIONS = 10
# Study user attributes: the definition a study was created for, and the settings behind its `settings` id.
DEFINITION_ATTR = "daf_sweep_definition"
SETTINGS_ATTR = "daf_sweep_settings"


def register_sweeper() -> None:
    """Make `DAFOptunaSweeper` instantiable: Hydra instantiates only the sweepers it knows (plugins it found, or
    registered so), whatever `_target_` says."""
    from hydra.core.plugins import Plugins

    Plugins.instance().register(DAFOptunaSweeper)


# ---------------------------------------------------------------------------------------------------------------
# One study per sweep definition
# ---------------------------------------------------------------------------------------------------------------


class DAFOptunaSweeper(OptunaSweeper):
    """Hydra's Optuna sweeper (the `_target_` of conf/hydra/sweeper/*.yaml), with one study per sweep definition
    and our own trial loop (study_runner): asynchronous trials, `n_trials` as the study's total, heartbeats,
    retries and pruning.

    The plugin creates, or silently resumes, whatever study `study_name` names, so unrelated sweeps that share a
    name mix their trials (and TPE learns from both). Here, before any trial runs, an unnamed sweep (`sweep_name`
    empty) gets the study `sweep-<hash of its definition>`, and a named study must have been created for this
    sweep's definition (kept in its user attributes) or the sweep stops with one line naming both. Every trial
    gets the name as `sweep_name`, and its own trial as `trial.*` (studies.TrialLink).

    `pruner` (config.PRUNERS): trials validate during training (`training.validate_every`, by default VALIDATIONS
    per training) and report to the study, whose pruner stops bad ones. The sampler is seeded with `seed` and the
    number of trials the study holds, so a resumed sweep does not propose the first run's parameters again."""

    def __init__(self, pruner: str = "none", heartbeat_interval: int = 10, max_retry: int = 2,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pruner, self.heartbeat_interval, self.max_retry = str(pruner), int(heartbeat_interval), int(max_retry)
        self.sampler_config = kwargs["sampler"]

    def sweep(self, arguments: list[str]) -> None:
        try:
            self._sweep(arguments)
        except DAFError as exc:  # a user's mistake or too many failed trials: one line, exit 2
            self._write_results()  # what the trials that ran left: trials.csv, the report (nothing is lost)
            if os.environ.get("HYDRA_FULL_ERROR"):
                raise
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    def _write_results(self) -> None:
        """The results of a sweep that stopped early, as SweepResultsCallback writes them after a full one."""
        config = getattr(self.sweeper, "config", None)
        if config is None or not config.get("sweep_name"):
            return  # it stopped before its study was known: no trial ran
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            SweepResultsCallback().on_multirun_end(config)

    def _sweep(self, arguments: list[str]) -> None:
        import optuna
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher
        from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

        from daf_hydra.study_runner import StudyRunner
        from daf_hydra.studies import make_pruner, open_storage, validations

        impl = self.sweeper  # the plugin's implementation: its options and, after setup, the sweep's config
        directions = impl._get_directions()
        fixed_overrides = self._check_pruning(impl.config, directions)
        definition, settings = sweep_definition(impl.config, impl.params, arguments)
        if self.pruner != "none":
            definition["pruner"] = self.pruner
        name = impl.study_name or derived_study_name(definition)
        if impl.storage is None:
            raise DAFError("hydra.sweeper.storage=null is invalid: trials report to their study from their own "
                           "processes, so it must be a database (e.g. sqlite:///multirun/sweeps/optuna.db)")
        storage = open_storage(str(impl.storage), self.heartbeat_interval, self.max_retry)
        claim_study(storage, name, definition, settings, directions)
        impl.study_name = name
        impl.config.sweep_name = name  # the sweep's own config: its sweep dir, SweepResultsCallback

        impl._process_searchspace_config()
        space, fixed, given = create_params_from_overrides([*impl._parse_sweeper_params_config(), *arguments])
        for key in fixed:
            space.pop(key, None)
        n_trials = int(impl.n_trials)
        existing = len(optuna.load_study(study_name=name, storage=storage).trials)
        sampler = hydra.utils.instantiate(self.sampler_config, seed=_resumed_seed(self.sampler_config, existing))
        if isinstance(sampler, functools.partial):  # the grid: its points are the space's choices
            grid = {k: impl._to_grid_sampler_choices(d) for k, d in space.items()}
            sampler = sampler(grid)
            n_trials = min(n_trials, math.prod(len(v) for v in grid.values()))
        evaluations = validations(impl.config) if self.pruner != "none" else None
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, directions=directions,
                                    pruner=make_pruner(self.pruner, evaluations), load_if_exists=True)
        trial_overrides = [
            f"sweep_name={name}", f"trial.storage={literal(str(impl.storage))}", f"trial.study={name}",
            f"trial.pruner={self.pruner}", f"trial.heartbeat_interval={self.heartbeat_interval}",
        ]

        def configure(trial: Any) -> list[str]:
            for key, distribution in space.items():
                trial._suggest(key, distribution)
            for key, value in fixed.items():
                trial.set_user_attr(key, value)
            return [*(f"{k}={v}" for k, v in {**trial.params, **fixed}.items()), *given, *fixed_overrides,
                    *trial_overrides, f"trial.number={trial.number}"]

        sweep_dir = Path(study_sweep_dir(impl.config, name))
        sweep_dir.mkdir(parents=True, exist_ok=True)  # its results, even when the study had nothing left to run
        StudyRunner(
            study=study, n_trials=n_trials, workers=max(1, int(impl.n_jobs)), configure=configure,
            launch=lambda overrides, idx: impl.launcher.launch([overrides], initial_job_idx=idx)[0],
            run_dir=lambda idx: sweep_dir / str(idx), heartbeat_interval=self.heartbeat_interval,
            max_retry=self.max_retry, max_failure_rate=float(impl.max_failure_rate),
            in_process=isinstance(impl.launcher, BasicLauncher),
        ).run()

    def _check_pruning(self, config: DictConfig, directions: list[str]) -> list[str]:
        """Whether this sweep can prune, before any trial; the overrides pruning adds to every trial (the
        validations it judges, when `training.validate_every` is not given: VALIDATIONS per training)."""
        from daf_hydra.studies import make_pruner

        make_pruner(self.pruner)  # an unknown name: one line
        if self.pruner == "none":
            return []
        if str(config.pipeline.name) != "train":
            raise DAFError(f"hydra.sweeper.pruner={self.pruner} needs pipeline=train (trials that train and "
                           f"validate), not pipeline={config.pipeline.name}; or hydra.sweeper.pruner=none")
        if len(directions) > 1:
            raise DAFError(f"hydra.sweeper.pruner={self.pruner} cannot prune a multi-objective study "
                           f"({len(directions)} objectives): use one objective.metric or hydra.sweeper.pruner=none")
        if config.training.validate_every:
            return []
        config.training.validate_every = max(1, int(config.training.total_steps) // VALIDATIONS)
        return [f"training.validate_every={config.training.validate_every}"]


def study_sweep_dir(config: DictConfig, study: str) -> str:
    """Where this sweep's runs and results go: `hydra.sweep.dir` when the command line sets it, else
    `multirun/sweeps/<study>/<time>/`, the layout the Python API (DAFSweepConfig.output_root) and pipeline=sweep
    use too, so every sweep of a study sits beside the others whichever road started it."""
    from omegaconf import read_write

    if not any(o.split("=", 1)[0].lstrip("+~") == "hydra.sweep.dir" for o in config.hydra.overrides.hydra):
        with read_write(config.hydra):
            now = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")  # as DAFSweepConfig.overrides() names it
            config.hydra.sweep.dir = str(Path("multirun", "sweeps", study, now))
    return str(config.hydra.sweep.dir)


def _resumed_seed(sampler_config: Any, existing: int) -> Optional[int]:
    """The sampler's seed for a study that holds `existing` trials: the configured seed for a new study (the same
    command reproduces it), another one derived from it for a resumed one (so it does not replay its proposals)."""
    seed = sampler_config.get("seed") if sampler_config is not None else None
    if seed is None or existing == 0:
        return seed
    return (int(seed) * 1_000_003 + existing) % 2**31


def sweep_definition(cfg: DictConfig, params: Mapping[str, Any] | None,
                     arguments: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a study is about, and the settings it was run with.

    The definition: the search space (as Optuna reads it: `hydra.sweeper.params` and the command line's sweep
    expressions), the objective, policy, mission and pipeline, and `settings`, the id of everything else that
    decides a trial's numbers (`identity.run_identity`'s arm of the sweep's own config, where no swept key has a
    trial's value yet). Sweeps that differ in any of it (episodes, training steps, a mission override) measure
    different things, so they never share a study. The settings themselves are returned to say what differs."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    space, fixed, _ = create_params_from_overrides([*(f"{k}={v}" for k, v in (params or {}).items()), *arguments])
    sections = SECTIONS.get(str(cfg.pipeline.name))  # only what the identity reads is resolved
    plain = {k: _plain(cfg[k]) for k in cfg if k not in ("hydra", "output_dir")
             and (sections is None or k in ("pipeline", "seed", "objective", *sections))}
    identity = run_identity(plain)
    definition = {
        "search_space": ", ".join(f"{k}={d!r}" for k, d in sorted(space.items()) if k not in fixed),
        "objective": f"{plain['objective']['metric']} {plain['objective']['direction']}",
        "policy": identity.policy, "mission": identity.mission, "pipeline": identity.pipeline,
        "settings": identity.arm_id,
    }
    return definition, identity.arm


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def derived_study_name(definition: Mapping[str, Any]) -> str:
    """`sweep-<12 hex>`: the study of an unnamed sweep, the same for the same definition on every machine."""
    return "sweep-" + hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:12]


def describe(definition: Mapping[str, Any]) -> str:
    """A definition on one line, for the error that names two of them."""
    return "; ".join(f"{k} {v}" for k, v in definition.items())


def claim_study(storage: Any, name: str, definition: dict[str, Any], settings: dict[str, Any],
                directions: list[str]) -> None:
    """Open (or create) study `name`, recording the definition it is created for; refuse one created for another.

    Studies made before definitions were recorded have none: they are claimed by the first sweep that resumes them."""
    import optuna

    study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    stored = study.user_attrs.get(DEFINITION_ATTR)
    if stored is None:
        study.set_user_attr(DEFINITION_ATTR, definition)
        study.set_user_attr(SETTINGS_ATTR, settings)
    elif stored != definition:
        before = study.user_attrs.get(SETTINGS_ATTR) or {}
        changed = sorted(k for k in before.keys() | settings.keys() if before.get(k) != settings.get(k))
        raise DAFError(f"study {name!r} ({getattr(storage, 'url', storage)}) was created for another sweep [{describe(stored)}], not this one "
                       f"[{describe(definition)}]" + (f" (settings differ in {', '.join(changed)})" if changed else "")
                       + ": give this sweep another sweep_name, or none to get a study of its own")


# ---------------------------------------------------------------------------------------------------------------
# Reading a study back and matching trials to run directories
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class TrialRecord:
    number: int
    state: str
    values: list[float] | None
    params: dict[str, Any]
    duration_s: float | None
    run_dir: str | None = None
    error: str | None = None
    checkpoint: str | None = None


def _job_dirs(search_root: Path, study_name: str) -> dict[int, Path]:
    """The run directory of every trial of this study below `search_root`, by trial number (each trial's run
    records its study and number: config `trial.*`)."""
    jobs = {}
    for config_file in sorted(search_root.rglob(".hydra/config.yaml")):
        try:
            trial = OmegaConf.load(config_file).get("trial") or {}
        except Exception:  # a torn file, or a run of another kind: not one of this study's trials
            continue
        if trial.get("study") == study_name and trial.get("number") is not None:
            jobs[int(trial["number"])] = config_file.parent.parent
    return jobs


def study_trials(study: Any, search_root: Path) -> list[TrialRecord]:
    """All trials of a study, each with its run directory below `search_root` (sweeps of the same study: the
    one that just ended and those it resumed), its error and its best checkpoint."""
    jobs = _job_dirs(search_root, study.study_name)
    records = []
    for trial in study.trials:
        record = TrialRecord(
            number=trial.number,
            state=trial.state.name,
            values=list(trial.values) if trial.values is not None else None,
            params=dict(trial.params),
            duration_s=trial.duration.total_seconds() if trial.duration is not None else None,
            error=trial.user_attrs.get("error"),
        )
        job_dir = jobs.get(trial.number)
        if job_dir is not None:
            record.run_dir = str(job_dir)
            metrics_path = job_dir / METRICS_FILE
            if metrics_path.is_file():
                metrics = json.loads(metrics_path.read_text())
                record.error = record.error or metrics.get("error")
                record.checkpoint = metrics.get("best_checkpoint") or metrics.get("final_checkpoint")
        records.append(record)
    return records


def write_trials_csv(path: Path, trials: Sequence[TrialRecord], objective_names: Sequence[str]) -> None:
    params = sorted({k for t in trials for k in t.params})
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "state", *objective_names, *params, "duration_s", "run_dir", "error"])
        for t in trials:
            values = t.values or [None] * len(objective_names)
            writer.writerow([t.number, t.state, *values, *[t.params.get(p) for p in params], t.duration_s,
                             t.run_dir, t.error])
    os.replace(tmp, path)


def _best_trials(study: Any) -> list[Any]:
    """The best trial, or the Pareto front of a multi-objective study; empty when no trial completed."""
    import optuna

    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        return []
    return [study.best_trial] if len(study.directions) == 1 else list(study.best_trials)


def write_sweep_results(sweep_dir: Path, storage: str, study_name: str, objective_names: Sequence[str]) -> dict[str, Any]:
    """Everything a finished sweep leaves in its directory (see the module docstring)."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study_trials(study, sweep_dir.parent)
    retried = superseded(study.trials)
    write_trials_csv(sweep_dir / TRIALS_FILE, trials, objective_names)
    best = _best_trials(study)
    by_number = {t.number: t for t in trials}
    summary: dict[str, Any] = {
        "study_name": study_name,
        "storage": storage,
        "directions": [d.name.lower() for d in study.directions],
        "objectives": list(objective_names),
        "trials": len(trials),
        "completed": sum(t.state == "COMPLETE" for t in trials),
        "failed": sum(t.state == "FAIL" and t.number not in retried for t in trials),
        "retried": len(retried),  # failed trials of dead processes, run again with their parameters
        "pruned": sum(t.state == "PRUNED" for t in trials),
        "best": [vars(by_number[t.number]) for t in best],
    }
    if best and by_number[best[0].number].run_dir:
        run_dir = Path(by_number[best[0].number].run_dir)
        config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        (sweep_dir / BEST_CONFIG_FILE).write_text(
            "# The composed config of the best trial. Rerun it:\n"
            f"#   python -m daf_hydra.run --config-path {sweep_dir.resolve()} --config-name best_config\n"
            "defaults:\n  - daf_run_schema\n  - _self_\n\n" + OmegaConf.to_yaml(config)
        )
        (sweep_dir / BEST_OVERRIDES_FILE).write_text((run_dir / ".hydra" / "overrides.yaml").read_text())
    write_json_atomic(sweep_dir / SWEEP_FILE, summary)
    write_sweep_report(sweep_dir / SWEEP_REPORT_FILE, study, trials)
    return summary


def write_sweep_report(path: Path, study: Any, trials: Sequence[TrialRecord] = ()) -> None:
    """Optuna's own plotly figures in one offline HTML page (plotly.js inlined): optimisation history, slices and
    parallel coordinates (log axes for log-scale parameters, as Optuna draws them), parameter importances,
    every trial's validations with pruned trials marked, and the best trial's learning curve."""
    import html

    import optuna.visualization as ov

    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    counts = {state: sum(t.state.name == state for t in study.trials) for state in ("COMPLETE", "PRUNED", "FAIL")}
    sections = [f"<h1>Sweep {html.escape(study.study_name)}</h1>",
                f"<p>{len(study.trials)} trials: {counts['COMPLETE']} complete, {counts['PRUNED']} PRUNED, "
                f"{counts['FAIL']} failed.</p>"]
    figures = []
    if completed:
        targets = range(len(study.directions))
        for i in targets:
            target = (lambda t, i=i: t.values[i]) if len(study.directions) > 1 else None
            name = f"objective {i}" if len(study.directions) > 1 else "objective"
            figures.append(ov.plot_optimization_history(study, target=target, target_name=name))
            if len({tuple(sorted(t.params.items())) for t in completed}) > 1 and completed[0].params:
                figures.append(ov.plot_slice(study, target=target, target_name=name))
                figures.append(ov.plot_parallel_coordinate(study, target=target, target_name=name))
                if len(completed[0].params) > 1 or len(completed) > 2:
                    try:
                        figures.append(ov.plot_param_importances(study, target=target, target_name=name))
                    except (RuntimeError, ValueError) as exc:  # too few distinct trials to estimate importances
                        sections.append(f"<p>No parameter importances: {html.escape(str(exc))}</p>")
    if any(t.intermediate_values for t in study.trials):
        figures.append(_validations_figure(study))
    best = _best_trials(study)
    by_number = {t.number: t for t in trials}
    if best and by_number.get(best[0].number) and by_number[best[0].number].run_dir:
        curve = _learning_curve_figure(Path(by_number[best[0].number].run_dir), best[0].number)
        if curve is not None:
            figures.append(curve)
    for k, fig in enumerate(figures):
        sections.append(fig.to_html(full_html=False, include_plotlyjs="inline" if k == 0 else False))
    page = "<!doctype html><html><head><meta charset='utf-8'><title>sweep</title></head><body>" + "".join(sections)
    path.write_text(page + "</body></html>")


def _validations_figure(study: Any) -> Any:
    """Optuna's intermediate-values plot (one line per trial: its validations), pruned trials dotted and named."""
    import optuna.visualization as ov

    fig = ov.plot_intermediate_values(study)
    states = {f"Trial{t.number}": t.state.name for t in study.trials}
    for trace in fig.data:
        if states.get(trace.name) == "PRUNED":
            trace.name = f"{trace.name} (PRUNED)"
            trace.line = {"dash": "dot"}
    fig.update_layout(title="Validations during training (x: validation number)", showlegend=True)
    return fig


def _learning_curve_figure(run_dir: Path, number: int) -> Any:
    """The best trial's training curve (episode reward by agent step) and its validations, or None without one."""
    import plotly.graph_objects as go

    from daf_hydra.records import CURVE_FILE, VALIDATION_FILE, read_jsonl

    curve = [r for r in read_jsonl(run_dir / CURVE_FILE) if r.get("episode_reward") is not None]
    if not curve:
        return None
    fig = go.Figure(go.Scatter(x=[r["agent_steps"] for r in curve], y=[r["episode_reward"] for r in curve],
                               mode="lines", name="training episode reward"))
    validations = [r for r in read_jsonl(run_dir / VALIDATION_FILE) if r.get("value") is not None]
    if validations:
        fig.add_trace(go.Scatter(x=[r["agent_steps"] for r in validations], y=[r["value"] for r in validations],
                                 mode="lines+markers", name=f"validation {validations[0]['metric']}"))
    fig.update_layout(title=f"Best trial ({number}): learning curve", xaxis_title="agent steps")
    return fig


class SweepResultsCallback(Callback):
    """Hydra callback: after an Optuna multirun, write trials.csv, best_config.yaml and the sweep report.

    Nothing when no trial was launched (no sweep directory: the sweep stopped before, e.g. on another sweep's
    study) or the study was not stored."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        sweep_dir = Path(config.hydra.sweep.dir)
        if "optuna" not in str(sweeper.get("_target_", "")).lower() or not sweeper.study_name \
                or sweeper.storage is None or not sweep_dir.is_dir():
            return
        objective = config.get("objective")
        names = list(objective.metric) if objective is not None and OmegaConf.is_list(objective.metric) else [
            str(objective.metric) if objective is not None else "objective"]
        summary = write_sweep_results(sweep_dir, str(sweeper.storage), str(sweeper.study_name), names)
        print(f"study {summary['study_name']}: {summary['completed']} completed, {summary['pruned']} pruned, "
              f"{summary['failed']} failed trials "
              f"-> {sweep_dir / TRIALS_FILE}")


# ---------------------------------------------------------------------------------------------------------------
# The Python API of the design documents
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SweepResults:
    """What `daf_launch_sweep` returns: the sweep directory and its trials, read back from the records."""

    sweep_dir: Path | None
    returncode: int
    trials: list[dict[str, Any]]
    summary: dict[str, Any]
    config: DAFSweepConfig
    log_tail: str = ""

    @property
    def status(self) -> str:
        if self.summary.get("completed"):
            return "success" if self.returncode == 0 and not self.summary.get("failed") else "partial"
        return "failed"


@dataclass
class BestConfig:
    hyperparameters: dict[str, Any]
    value: float | list[float] | None
    run_dir: str | None
    checkpoint: str | None
    config_path: str | None


def daf_launch_sweep(cfg: DAFSweepConfig, timeout_s: float | None = None) -> SweepResults:
    """Run the sweep as the CLI's multirun (`python -m daf_hydra.run -m ...`) in a fresh process, and read back
    its results. A process of its own: a trial's crash, pufferlib's signal handlers or a hung job stay there."""
    cfg.validate()
    root = Path(cfg.output_root).resolve()  # sweep directories are <root>/<study>/<time>
    check_writable(root, "the sweeps' output_root")  # before the subprocess starts any trial
    before = set(root.glob("*/*"))
    proc = subprocess.run(
        [sys.executable, "-m", "daf_hydra.run", "-m", *cfg.overrides()],
        capture_output=True, text=True, timeout=timeout_s,
    )
    new_dirs = sorted((p for p in set(root.glob("*/*")) - before if p.is_dir()), key=lambda p: p.name)
    sweep_dir = new_dirs[-1] if new_dirs else None
    tail = "\n".join((proc.stderr or "").strip().splitlines()[-5:])
    if sweep_dir is None or not (sweep_dir / SWEEP_FILE).is_file():
        if proc.returncode != 0:
            raise DAFError(f"sweep {cfg.sweep_name or '(named after its definition)'} failed before any result "
                           f"(exit {proc.returncode}): {tail.splitlines()[-1] if tail else ''}")
        return SweepResults(sweep_dir, proc.returncode, [], {}, cfg, tail)
    results = read_sweep_results(sweep_dir, cfg, proc.returncode)
    results.log_tail = tail
    return results


def read_sweep_results(sweep_dir: str | Path, cfg: DAFSweepConfig, returncode: int = 0) -> SweepResults:
    """A finished sweep read back from its directory (sweep.json, trials.csv); raises OSError when they are gone."""
    sweep_dir = Path(sweep_dir)
    summary = json.loads((sweep_dir / SWEEP_FILE).read_text())
    with open(sweep_dir / TRIALS_FILE) as f:
        trials = list(csv.DictReader(f))
    return SweepResults(sweep_dir, returncode, trials, summary, cfg)


def daf_sweep_best_config(results: SweepResults) -> BestConfig:
    """The best trial of a sweep, its hyperparameters named as in the sweep's search space."""
    best = results.summary.get("best") or []
    if not best:
        raise DAFError(f"sweep {results.summary.get('study_name') or results.config.sweep_name!r} has no completed "
                       f"trial: see {results.sweep_dir}/{TRIALS_FILE}")
    top = best[0]
    names = {parameter_key(n): n for n in results.config.search_space}
    values = top["values"]
    config_path = results.sweep_dir / BEST_CONFIG_FILE if results.sweep_dir else None
    return BestConfig(
        hyperparameters={names.get(k, k): v for k, v in top["params"].items()},
        value=values[0] if values and len(values) == 1 else values,
        run_dir=top.get("run_dir"),
        checkpoint=top.get("checkpoint"),
        config_path=str(config_path) if config_path and config_path.is_file() else None,
    )
