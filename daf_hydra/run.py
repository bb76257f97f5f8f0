"""`python -m daf_hydra.run`: the Hydra application. Compose a config, run its pipeline, return the objective.

    python -m daf_hydra.run pipeline=evaluate policy=baseline mission=training_facility_1 evaluation.episodes=5
    python -m daf_hydra.run -m pipeline=evaluate policy=random,baseline mission=training_facility_1,assembler_2

A user's mistake (bad value, unknown name, missing file) ends a single run with one line on stderr and exit code 2
(`HYDRA_FULL_ERROR=1` shows the traceback); in a multirun the job is recorded as failed and the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator, TextIO

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from daf_hydra.compose import check_group_choices, prepare_config_store, smoke_factor, smoke_scaled
from daf_hydra.errors import DAFError
from daf_hydra.config import CONF_DIR
from daf_hydra.records import disk_full
from daf_hydra.sweeps import register_sweeper


# Config-selected targets Hydra may instantiate: our callbacks and launcher, Optuna's samplers.
EXECUTION_WHITELIST = ["daf_hydra.*", "optuna.*"]


class _Tee:
    """A console stream that also writes to the job's log file: the run's printed lines (progress, results,
    where its outputs are) are what a user reads, so run.log holds them as the terminal showed them."""

    def __init__(self, stream: TextIO, log: TextIO):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.log.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.log.flush()
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: the console's
        return getattr(self.stream, name)


@contextlib.contextmanager
def console_in_job_log() -> Iterator[None]:
    """While the job runs, stdout and stderr also go to the file Hydra's job logging writes (`run.log`), which
    otherwise stays empty; jobs whose logging has no file (SLURM tasks > 0) are left alone."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        yield
        return
    handler = files[0]
    handler.acquire()
    try:
        handler.flush()
    finally:
        handler.release()
    with open(handler.baseFilename, "a", buffering=1) as log:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err


@hydra.main(config_path=str(CONF_DIR), config_name="config", execution_whitelist=EXECUTION_WHITELIST)
def main(cfg: DictConfig) -> Any:
    from daf_hydra.orchestrators import run_pipeline

    try:
        with console_in_job_log():
            return run_pipeline(smoke_scaled(cfg))
    except (DAFError, OSError) as exc:
        error = exc if isinstance(exc, DAFError) else disk_full(exc, cfg.output_dir)  # a full disk: one line too
        if error is not None and HydraConfig.get().mode == RunMode.RUN and not os.environ.get("HYDRA_FULL_ERROR"):
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        raise


# `hydra/sweeper=optuna` (the plugin's own name) means our TPE preset: the plugin's bare defaults would minimise
# into an in-memory study, against daf_hydra's objective direction and its persistent studies.
SWEEPER_ALIASES = {"hydra/sweeper=optuna": "hydra/sweeper=tpe"}


SEARCH_SPACE_PREFIX = "hydra.sweeper.params."


def _normalise(arg: str) -> str:
    """`hydra.sweeper.params.lr=tag(log, interval(...))` on the command line is the Optuna sweeper's own
    `lr=tag(log, interval(...))` (Hydra refuses sweep expressions on its own keys); `hydra/sweeper=optuna`
    is our TPE preset."""
    arg = SWEEPER_ALIASES.get(arg, arg)
    return arg[len(SEARCH_SPACE_PREFIX):] if arg.startswith(SEARCH_SPACE_PREFIX) else arg


# Flags after which Hydra does not run jobs from conf/config.yaml (help, another config, shell completion): the
# command line is left to Hydra as it is. Flags taking a value are skipped with it.
UNCHECKED_FLAGS = {"-h", "--help", "--hydra-help", "-i", "--info", "-sc", "--shell-completion", "-cp",
                   "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "--experimental-rerun"}
VALUE_FLAGS = {"-c", "--cfg", "-p", "--package"}
MAX_CHECKED_COMPOSITIONS = 32


def check_command_line(args: list[str]) -> DictConfig | None:
    """Compose the config as Hydra will, with the user's overrides, and check it (`orchestrators.validate_run`)
    before Hydra launches anything, and that its output directory can be written (records.check_writable), so a
    mistake is one line (DAFError) instead of Hydra's multi-line dump, a
    traceback, or a failure found only after every job's work. In a multirun each value of a sweep is checked
    (the others at their first value; a sweeper's range `interval(...)` at both ends) and the command is refused
    when no job could run: a mistake outside the swept values, or every value of a sweep bad. A bad value of a
    sweep beside good ones fails its own job only, recorded as failed, and the others go on. Returns the
    composed config (with `hydra:`; a multirun's first good variant), None when the command is left to Hydra."""
    from daf_hydra.compose import compose_config
    from daf_hydra.orchestrators import validate_run
    from daf_hydra.records import check_writable

    multirun, overrides, skip = False, [], False
    for arg in args:
        if skip:
            skip = False
        elif arg.split("=", 1)[0] in UNCHECKED_FLAGS:
            return None
        elif arg in VALUE_FLAGS:
            skip = True
        elif arg in ("-m", "--multirun"):
            multirun = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    check_group_choices(overrides)
    if not multirun:
        cfg = compose_config(overrides, hydra_config=True)
        validate_run(cfg)
        check_writable(str(cfg.hydra.run.dir))
        return cfg
    errors = []
    for variant in _variants(overrides):
        try:
            cfg = compose_config(variant, hydra_config=True)
            validate_run(cfg)
        except DAFError as exc:
            errors.append(exc)
        else:
            check_writable(str(cfg.hydra.sweep.dir))
            folder = cfg.hydra.launcher.get("submitit_folder")  # local and SLURM launchers: each job's own files
            if folder:
                check_writable(str(folder).split("%")[0], "hydra.launcher.submitit_folder (each job's files)")
            return cfg
    raise errors[0]


def _variants(overrides: list[str]) -> list[list[str]]:
    """The single-run command lines a multirun's checks compose: every sweep at its first value, then each
    other value of each sweep in turn."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep
    from hydra.errors import HydraException

    from daf_hydra.compose import hydra_error_line

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise DAFError(hydra_error_line(exc)) from None
    values: list[list[str]] = []
    for override, text in zip(parsed, overrides):
        if not override.is_sweep_override():
            values.append([text])
            continue
        key = override.get_key_element()
        sweep = override.value()
        if isinstance(sweep, IntervalSweep):
            options = [str(sweep.start), str(sweep.end)]
        else:
            try:
                options = list(override.sweep_string_iterator())
            except Exception:  # a glob, which needs the group's options: left to Hydra
                options = []
        values.append([f"{key}={v}" for v in options] or [text])
    first = [v[0] for v in values]
    variants = [first]
    for i, options in enumerate(values):
        for option in options[1:]:
            variants.append([*first[:i], option, *first[i + 1:]])
    return variants[:MAX_CHECKED_COMPOSITIONS]


def cli() -> None:
    args = [_normalise(a) for a in sys.argv[1:]]
    sys.argv[1:] = args
    prepare_config_store(args)
    register_sweeper()
    if not os.environ.get("HYDRA_FULL_ERROR"):  # HYDRA_FULL_ERROR=1: Hydra's own errors, with their tracebacks
        try:
            cfg = check_command_line(args)
        except DAFError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        trials = OmegaConf.select(cfg, "hydra.sweeper.n_trials") if cfg is not None else None
        if smoke_factor() is not None and isinstance(trials, int):  # compose_config scaled it (a test aid)
            sys.argv[1:] = [a for a in args if not a.startswith("hydra.sweeper.n_trials=")] + \
                [f"hydra.sweeper.n_trials={trials}"]
    main()


if __name__ == "__main__":
    cli()
