"""Optuna studies shared by many processes: storages with heartbeats, pruners, a study's budget, and a trial's
own link to its study.

A sweep's trials run in other processes (submitit jobs, SLURM jobs) or in the sweeper's own; either way the run
that *is* the trial (config `trial.*`, set by the sweeper) holds the link: it sends heartbeats while it works,
reports its validation scores (`report`: the pruner may stop it), and tells its own end (complete, pruned,
failed). The sweeper only asks trials and launches them; a trial whose process died without a word is found by
its silent heartbeat, failed and retried with its parameters (Optuna's RetryHeartbeatStaleTrialCallback), so a
killed sweep or a lost node leaves no trial RUNNING for ever.

Storages are Optuna's RDB storages: SQLite for one machine (the default), a server database (MySQL/MariaDB via
PyMySQL, PostgreSQL) for workers on many machines; both keep heartbeats.
"""

from __future__ import annotations

import math
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence

from daf_hydra.config import PRUNERS
from daf_hydra.errors import DAFError

GRACE_FACTOR = 3  # a trial is dead after this many heartbeat intervals without one
STORAGE_SCHEMES = ("sqlite", "mysql", "postgresql")


def open_storage(url: str, heartbeat_interval: Optional[int] = None, max_retry: int = 2) -> Any:
    """An RDB storage at `url`; with `heartbeat_interval` (seconds) trials are watched: one silent for
    GRACE_FACTOR intervals is failed and re-enqueued with its parameters, at most `max_retry` times."""
    import optuna

    quiet_optuna()
    scheme = str(url).split(":", 1)[0].split("+", 1)[0]
    if scheme not in STORAGE_SCHEMES:
        raise DAFError(f"storage={url!r} is invalid: give a database URL ({', '.join(STORAGE_SCHEMES)}), e.g. "
                       "sqlite:///multirun/sweeps/optuna.db or mysql+pymysql://user:password@host:3306/optuna")
    # SQLite: wait for a writer instead of failing at once ("database is locked"); servers: drop dead connections
    engine = {"connect_args": {"timeout": 60}} if scheme == "sqlite" else {"pool_pre_ping": True}
    if not heartbeat_interval:
        return optuna.storages.RDBStorage(str(url), engine_kwargs=engine)
    return optuna.storages.RDBStorage(
        str(url), engine_kwargs=engine, heartbeat_interval=int(heartbeat_interval),
        grace_period=GRACE_FACTOR * int(heartbeat_interval),
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
    )


def quiet_optuna() -> None:
    """Silence Optuna's warnings about what we use on purpose: heartbeats and their retry callback are marked
    experimental, and heartbeats outside `Study.optimize` warn at every ask (our trials run in other processes)."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def validations(cfg: Any) -> int | None:
    """How many validations a training run makes (training.validate_every, and one at the end): the pruner's
    steps."""
    training = cfg.get("training")
    if cfg.pipeline.name != "train" or training is None or not training.get("validate_every"):
        return None
    return math.ceil(int(training.total_steps) / int(training.validate_every))


def make_pruner(name: str, evaluations: Optional[int] = None) -> Any:
    """Optuna's pruner called `name` (config.PRUNERS). Steps are validation numbers 1..`evaluations`, the same
    for every trial, so successive halving and hyperband rungs fall on validations."""
    import optuna

    if name not in PRUNERS:
        raise DAFError(f"pruner={name!r} is invalid: valid pruners are {', '.join(PRUNERS)}")
    pruners = optuna.pruners
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=3)
    if name == "percentile":
        return pruners.PercentilePruner(25.0, n_startup_trials=3)
    if name == "successive_halving":
        return pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return pruners.HyperbandPruner(min_resource=1, max_resource=max(1, evaluations or 1), reduction_factor=3)
    return pruners.NopPruner()


def superseded(trials: Sequence[Any]) -> set[int]:
    """Numbers of failed trials that were retried (a later trial carries their parameters)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def budget_used(trials: Sequence[Any]) -> int:
    """How much of a study's `n_trials` its trials use: every trial (running, waiting, finished in any state)
    except failed ones that were retried (their retry counts instead)."""
    gone = superseded(trials)
    return sum(1 for t in trials if t.number not in gone)


# ---------------------------------------------------------------------------------------------------------------
# The trial's side: the run that is the trial
# ---------------------------------------------------------------------------------------------------------------


class Heartbeat:
    """A daemon thread recording a heartbeat for each trial id in `ids` every `interval` seconds (and once at
    once), so the trials stay alive exactly as long as this process does."""

    def __init__(self, storage: Any, interval: float):
        self.storage, self.interval = storage, interval
        self.ids: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)
        self._thread.start()

    def add(self, trial_id: int) -> None:
        with self._lock:
            self.ids.add(trial_id)
        self.storage.record_heartbeat(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self.ids.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = list(self.ids)
            for trial_id in ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as exc:  # a database hiccup: the next beat tries again; said once, for the record
                    if not self._warned:
                        self._warned = True
                        print(f"heartbeat of trial id {trial_id} not recorded ({type(exc).__name__}: {exc}); "
                              "retrying every beat", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class TrialLink:
    """A run's link to the Optuna trial it is (config `trial.*`): heartbeats, validation reports, its end."""

    def __init__(self, trial_cfg: Any, evaluations: Optional[int] = None):
        import optuna

        self.storage = open_storage(str(trial_cfg.storage), int(trial_cfg.heartbeat_interval))
        self.pruner_name = str(trial_cfg.pruner)
        self.study = optuna.load_study(study_name=str(trial_cfg.study), storage=self.storage,
                                       pruner=make_pruner(self.pruner_name, evaluations))
        self.number = int(trial_cfg.number)
        study_id = self.storage.get_study_id_from_name(str(trial_cfg.study))
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        self.trial = optuna.trial.Trial(self.study, self.trial_id)
        self.heartbeat = Heartbeat(self.storage, float(trial_cfg.heartbeat_interval))
        self.heartbeat.add(self.trial_id)

    @property
    def prunes(self) -> bool:
        return self.pruner_name != "none"

    def report(self, value: float, step: int) -> bool:
        """Report validation `step`'s value; True when the pruner says stop."""
        if not math.isfinite(value):
            return False
        self.trial.report(float(value), int(step))
        return self.prunes and self.trial.should_prune()

    def tell(self, state: str, values: Optional[list[float]] = None, error: Optional[str] = None) -> None:
        """End the trial (`COMPLETE` with values, `PRUNED`, `FAIL` with the error). A trial already ended
        elsewhere (failed as stale while this process was cut off) keeps that end."""
        import optuna

        self.heartbeat.stop()
        try:
            if error:
                self.storage.set_trial_user_attr(self.trial_id, "error", error[:500])
            self.study.tell(self.number, values=values if state == "COMPLETE" else None,
                            state=getattr(optuna.trial.TrialState, state))
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError) as exc:
            print(f"trial {self.number} of study {self.study.study_name}: its end ({state}) was not recorded: "
                  f"{exc}", flush=True)


_active: Optional[TrialLink] = None


@contextmanager
def trial_link(cfg: Any, evaluations: Optional[int] = None) -> Iterator[Optional[TrialLink]]:
    """The link of a run that is a sweep's trial (`cfg.trial.number` set), active for the block (`active()`);
    None for every other run. A trial over several seeds (`seeds=[...]`) is not pruned: its validations would
    repeat each step once per seed."""
    global _active
    trial = cfg.get("trial")
    if trial is None or trial.get("number") is None:
        yield None
        return
    link = TrialLink(trial, evaluations)
    _active = None if cfg.get("seeds") else link
    try:
        yield link
    finally:
        _active = None
        link.heartbeat.stop()


def active() -> Optional[TrialLink]:
    """The trial this process is running now, if any (the train pipeline's validations report to it)."""
    return _active
