"""Typed configuration: one dataclass per Hydra config group, registered in Hydra's ConfigStore.

The YAML files in `conf/` select and fill these schemas; Hydra type-checks every override against them, so
`evaluation.episodes=abc` or an unknown key fails before any work starts. Values that types cannot check
(ranges, names) are checked by `validate_*` functions here, again before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from daf_hydra.errors import DAFError


@dataclass
class PolicyConfig:
    """Which policy plays: a short name (`baseline`, `lstm`, any name mettagrid/cogames register), an importable
    class path (`MultiAgentPolicy` or `AgentPolicy`), or a bundle directory holding `policy_spec.json`."""

    name: str = MISSING  # label in records and reports
    class_path: str = MISSING
    data_path: Optional[str] = None  # weights: a state_dict file or a bundle directory
    kwargs: Dict[str, Any] = field(default_factory=dict)  # constructor keyword arguments (architecture, ...)


@dataclass
class MissionConfig:
    """A mission: either one of our catalog missions, built from these fields on mettagrid's config API, or a
    mission of an installed cogames game (`source: cogames`, `game`, `cogames_mission`).

    Catalog missions are resource chains: extractors give one unit of an ore per use, an assembler turns one unit
    of every ore into a heart, an optional chest stores hearts. Extractors either regenerate (`regen_period`: hold
    one unit, +1 every N steps) or run dry (`extractor_uses`), so no source can be farmed without limit and
    scores keep room above the scripted baseline.
    """

    name: str = MISSING
    source: str = "catalog"  # catalog | cogames
    description: str = ""
    num_agents: int = 4
    width: int = 15
    height: int = 15
    max_steps: int = 400
    resources: List[str] = field(default_factory=lambda: ["ore_red"])
    extractors_per_resource: int = 3
    extractor_uses: Optional[int] = None  # units an extractor holds in all (None: it regenerates)
    regen_period: Optional[int] = 10  # steps between +1 refills of a one-unit extractor
    assemblers: int = 2
    chests: int = 0
    walls: int = 8
    heart_reward: float = 1.0  # per heart assembled
    ore_reward: float = 0.0  # per ore unit gathered (shaping)
    deposit_reward: float = 0.0  # per heart stored in a chest
    success_threshold: float = 1.0  # an episode succeeds when its total reward (all agents) reaches this
    max_reward: Optional[float] = None  # best total reward reachable (optimality gap), when known
    game: Optional[str] = None  # cogames game name (source: cogames)
    cogames_mission: Optional[str] = None  # "mission" or "mission.submission" (source: cogames)


@dataclass
class EvaluationConfig:
    """How episodes are played: episode k uses seed+k for its map and its action sampling."""

    episodes: int = 10
    num_envs: int = 8  # episodes played at once; one batched forward pass steps all their agents
    deterministic: bool = False  # argmax instead of sampling for neural policies
    progress: Optional[bool] = None  # progress bar; None: only on a terminal


@dataclass
class PipelineConfig:
    """Which pipeline `run` executes; later pipelines add their own fields to their YAML."""

    name: str = "evaluate"


@dataclass
class DAFRunConfig:
    """The root of `conf/config.yaml`."""

    pipeline: PipelineConfig = MISSING
    policy: PolicyConfig = MISSING
    mission: MissionConfig = MISSING
    evaluation: EvaluationConfig = MISSING
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    output_dir: str = "${hydra:runtime.output_dir}"


DEVICES = ("auto", "cpu", "cuda", "mps")


def validate_evaluation(cfg: Any) -> None:
    """Reject values that would play nothing or mislead, before any episode runs."""
    if cfg.episodes < 1:
        raise DAFError(f"evaluation.episodes={cfg.episodes} is invalid: it must be a whole number >= 1")
    if cfg.num_envs < 1:
        raise DAFError(f"evaluation.num_envs={cfg.num_envs} is invalid: it must be a whole number >= 1")


def validate_device(device: str) -> None:
    if device not in DEVICES:
        raise DAFError(f"device={device!r} is invalid: valid devices are {', '.join(DEVICES)}")


_registered = False


def register_configs() -> None:
    """Register the schemas that the YAML files in conf/ extend (their defaults list names `<group>_schema`)."""
    global _registered
    if _registered:
        return
    _registered = True
    cs = ConfigStore.instance()
    cs.store(name="daf_run_schema", node=DAFRunConfig)
    cs.store(group="policy", name="policy_schema", node=PolicyConfig)
    cs.store(group="mission", name="mission_schema", node=MissionConfig)
    cs.store(group="evaluation", name="evaluation_schema", node=EvaluationConfig)
    cs.store(group="pipeline", name="pipeline_schema", node=PipelineConfig)
