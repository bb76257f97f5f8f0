"""Compose configs from Python exactly as the CLI does: the Python API builds a Hydra config from the same YAML
and the same overrides a user would type, then runs the same pipeline function.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from daf_hydra.config import COGAMES_PREFIX, CONF_DIR, group_options, register_configs
from daf_hydra.errors import DAFError
from daf_hydra.missions import catalog_names
from daf_hydra.policies.loading import check_not_renamed


def prepare_config_store(overrides: Sequence[str] = ()) -> None:
    """Register schemas, and cogames missions when an override names one (importing cogames costs ~1 s)."""
    register_configs()
    if any(COGAMES_PREFIX in o for o in overrides):
        from daf_hydra.missions.cogames_games import register_cogames_missions

        register_cogames_missions()


def check_group_choices(overrides: Sequence[str]) -> None:
    """Fail early, in one line, on `group=option` overrides naming an option that does not exist.

    Hydra would also refuse them, but with a multi-line dump of its search path; this names the bad value and
    the valid ones. Sweep expressions (`choice(...)`, `range(...)`) are left to Hydra.
    """
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+~")
        if not sep or "/" in key or "." in key or "(" in value or not (CONF_DIR / key).is_dir():
            continue
        valid = group_options(key)
        for option in value.split(","):
            if option and option not in valid and not option.startswith(COGAMES_PREFIX):
                if key == "policy":
                    check_not_renamed(option)
                raise DAFError(f"{key}={option!r} does not exist: valid {key} options are {', '.join(valid)}")


def compose_config(overrides: Sequence[str] = (), output_dir: str | Path | None = None,
                   hydra_config: bool = False) -> DictConfig:
    """The root config with `overrides` applied; `output_dir` replaces Hydra's run directory; `hydra_config`:
    with the `hydra:` node too (so `hydra/launcher=...` and `hydra.sweeper.*` overrides are checked)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    overrides = list(overrides)
    prepare_config_store(overrides)
    check_group_choices(overrides)
    if output_dir is not None:
        overrides.append(f"output_dir={Path(output_dir).resolve()}")
    try:
        if GlobalHydra.instance().is_initialized():  # inside a running Hydra app: compose with its search path
            return compose(config_name="config", overrides=overrides, return_hydra_config=hydra_config)
        with initialize_config_dir(config_dir=str(CONF_DIR)):
            return smoke_scaled(compose(config_name="config", overrides=overrides, return_hydra_config=hydra_config))
    except HydraException as exc:
        raise DAFError(hydra_error_line(exc)) from None


SMOKE_SCALE_VARIABLE = "DAF_SMOKE_SCALE"
# The step and episode counts DAF_SMOKE_SCALE shrinks, each with the least that still runs (statistics need two
# episodes); interpolated values (sweep.* defaults to the run's own) follow what they point at.
SMOKE_SCALED = {"training.total_steps": 1, "benchmark.training_steps": 1, "evaluation.episodes": 2,
                "compare.episodes_per_mission": 2, "benchmark.episodes_per_mission": 2,
                "pipeline.comparison_episodes": 2, "sweep.training_steps": 1, "sweep.episodes_per_trial": 2,
                "sweep.num_trials": 2, "hydra.sweeper.n_trials": 2}


def smoke_factor() -> float | None:
    """DAF_SMOKE_SCALE's factor, None when it is unset."""
    text = os.environ.get(SMOKE_SCALE_VARIABLE)
    if not text:
        return None
    try:
        factor = float(text)
    except ValueError:
        factor = 0.0
    if not 0 < factor <= 1:
        raise DAFError(f"{SMOKE_SCALE_VARIABLE}={text!r} is invalid: it must be a number in (0, 1], or unset")
    return factor


def smoke_scaled(cfg: DictConfig) -> DictConfig:
    """A test aid, not a setting: with DAF_SMOKE_SCALE=<factor in (0, 1]> in the environment, every step,
    episode and trial count of `cfg` is multiplied by it (tests/test_docs.py runs the docs' commands as written,
    in minutes). Applied where a config is made: the API's top-level compose, the CLI's job config (run.main)
    and, for a sweeper's trial count, the CLI's command line (run.cli)."""
    factor = smoke_factor()
    if factor is None:
        return cfg
    for key, least in SMOKE_SCALED.items():
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent)
        if not isinstance(node, DictConfig) or leaf not in node or OmegaConf.is_interpolation(node, leaf):
            continue
        value = node[leaf]
        if isinstance(value, int) and not isinstance(value, bool):
            node[leaf] = max(least, math.ceil(value * factor))
    return cfg


def api_output_dir(output_dir: str | Path | None) -> Path:
    """Where a Python API call records its run: `output_dir`, or a new outputs/<date>/<time>-<id> below the
    working directory, as a CLI run gets from Hydra. Refused in one line (records.check_writable) when it cannot
    be written, as the CLI refuses it: every API entry point asks here before any work."""
    from daf_hydra.records import check_writable

    if output_dir is None:
        import time
        import uuid

        output_dir = Path("outputs") / time.strftime("%Y-%m-%d") / f"{time.strftime('%H-%M-%S')}-{uuid.uuid4().hex[:6]}"
    check_writable(output_dir)
    return Path(output_dir)


def load_mission(name: str) -> DictConfig:
    """A mission config by catalog name or `cogames:<game>.<mission>`."""
    if not name.startswith(COGAMES_PREFIX) and name not in catalog_names():
        raise DAFError(f"unknown mission {name!r}: valid missions are {', '.join(catalog_names())} "
                       f"or {COGAMES_PREFIX}<game>.<mission> for an installed cogames game")
    return compose_config([f"mission={name}"]).mission


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def hydra_error_line(exc: BaseException) -> str:
    """One line for a Hydra composition error, naming the bad value and what is valid: a group option that does
    not exist (its options), a value of the wrong type (the type), an unknown key (the keys there are)."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    cause = exc.__cause__
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        return f"{group}={option!r} does not exist: valid {group} options are {', '.join(exc.options)}"
    message = str(exc)
    if isinstance(cause, ValidationError):
        override = message.removeprefix("Error merging override ").strip()
        return f"{override} is invalid: {_one_line(str(cause).split(chr(10))[0])}"
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and getattr(cause, "full_key", None):
        full_key = str(cause.full_key)
        parent, _, key = full_key.rpartition(".")
        valid = _keys_at(parent)
        where = f"{parent}." if parent else ""
        hint = f"valid keys are {where}{{{', '.join(valid)}}}" if valid else "there is no such key"
        return f"unknown key {full_key!r}: {hint}"
    if message.startswith("Ambiguous value for argument"):
        first = message.splitlines()[0]
        return f"{first}: a list is key=[a,b], a string with commas key='a,b', a sweep needs -m (--multirun)"
    return _one_line(message)


def _keys_at(parent: str) -> list[str]:
    """The keys of node `parent` ('' for the root) of the default config, for an unknown-key message."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    try:
        if GlobalHydra.instance().is_initialized():
            cfg = compose(config_name="config")
        else:
            with initialize_config_dir(config_dir=str(CONF_DIR)):
                cfg = compose(config_name="config")
        node = OmegaConf.select(cfg, parent) if parent else cfg
    except Exception:  # the message stays useful without the list
        return []
    return sorted(str(k) for k in node.keys()) if isinstance(node, DictConfig) else []


def _one_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(lines[:3])
