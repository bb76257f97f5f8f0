"""Typed configuration: one dataclass per Hydra config group, registered in Hydra's ConfigStore.

The YAML files in `conf/` select and fill these schemas; Hydra type-checks every override against them, so
`evaluation.episodes=abc` or an unknown key fails before any work starts. Values that types cannot check
(ranges, names) are checked by `validate_*` functions here, again before any work starts.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, TypeVar

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import II, MISSING, OmegaConf

from daf_hydra.errors import DAFError
from daf_hydra.identity import ALIASES

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
COGAMES_PREFIX = "cogames:"  # mission=cogames:<game>.<mission>: a mission of an installed cogames game


def group_options(group: str) -> list[str]:
    """The options of a config group: its YAML files in conf/ (cogames missions are added at run time)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@dataclass
class PolicyConfig:
    """Which policy plays: a short name (`baseline`, `lstm`, any name mettagrid/cogames register), an importable
    class path (`MultiAgentPolicy` or `AgentPolicy`), or a bundle directory holding `policy_spec.json`."""

    name: Optional[str] = None  # label in records and reports; None: what is instantiated (daf_hydra.identity)
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
    """How episodes are played: episode k uses seed+k for its map and its action sampling, from the first
    evaluation seed: `evaluation.seed`, else the run's `seed` for a fixed policy and 0 for a policy the run trained,
    so replicates (training seeds) and arms of a sweep meet the same maps (paired)."""

    seed: Optional[int] = None  # first evaluation seed; None: see above
    episodes: int = 10
    num_envs: int = 16  # episodes played at once; one batched forward pass steps all their agents (16: fastest here)
    deterministic: bool = False  # argmax instead of sampling for neural policies
    progress: Optional[bool] = None  # progress bar; None: a bar on a terminal, else a line every 30 s
    # replays kept, in mettagrid's format (daf_hydra.replays): none | examples (lowest, median, highest episode
    # per mission) | all; None: examples in pipeline=benchmark and analyze, none elsewhere
    replays: Optional[str] = None


@dataclass
class StatisticsConfig:
    """How comparisons state their uncertainty (Agarwal et al. 2021). Every field is used by `pipeline=compare`,
    `pipeline=analyze`, `python -m daf_hydra.report` and the multirun report, and recorded in their outputs."""

    bootstrap_reps: int = 50_000  # stratified-bootstrap resamples for IQM, median, mean, optimality gap
    profile_bootstrap_reps: int = 2_000  # resamples for performance profiles and probability of improvement
    bootstrap_seed: int = 0  # seeds every bootstrap, so a report's intervals are reproducible
    confidence: float = 0.95  # interval coverage
    significance_level: float = 0.05  # family-wise error rate of the Holm-corrected pairwise tests


@dataclass
class CompareConfig:
    """`pipeline=compare`: every policy plays its own episodes on the same seeds (seed .. seed+n-1) of every
    mission. A policy entry is a conf/policy name (`lstm`), a registered short name or class path, a bundle
    directory, or `name:checkpoint` (the policy `name` with `data_path=checkpoint`)."""

    policies: List[str] = field(default_factory=lambda: ["baseline", "random"])
    missions: List[str] = field(default_factory=lambda: ["training_facility_1"])
    episodes_per_mission: int = 20
    parallel: bool = False  # one process per policy x mission
    workers: Optional[int] = None  # processes when parallel (None: one per CPU core)


@dataclass
class CrossplayConfig:
    """`pipeline=crossplay`: policies playing *with each other* in mixed teams (daf_hydra.crossplay). Policy A
    controls `k` of a mission's agents, B the rest; every composition plays the same `episodes` seeds of every
    mission. Entries as `compare.policies` takes them."""

    policies: List[str] = field(default_factory=lambda: ["baseline", "random"])
    missions: List[str] = field(default_factory=lambda: ["training_facility_1"])
    episodes: int = 20  # per composition and mission: seeds evaluation.seed (else seed) .. +episodes-1
    k: Optional[int] = None  # agents policy A controls in a mixed team; None: half of the mission's agents
    pool: Optional[List[str]] = None  # reference pool of value over replacement (of `policies`); None: all
    rating_bootstrap_reps: int = 1000  # resamples of the seeds for the ratings' intervals (each re-rates)


@dataclass
class AnalyzeConfig:
    """`pipeline=analyze`: how failed episodes are sorted into failure modes (thresholds on recorded stats)."""

    stuck_fraction: float = 0.5  # an agent is stuck when it went this fraction of the episode without moving
    action_failure_fraction: float = 0.5  # an agent fails at acting when this fraction of its actions failed
    example_seeds: int = 5  # seeds listed per failure mode, to replay them


@dataclass
class DistributedConfig:
    """`training.distributed`: data-parallel PPO over `nodes x tasks_per_node` ranks (daf_hydra.distributed_training).

    Every rank steps its own environments and trains `training.total_steps` agent steps; gradients are averaged
    across ranks (DistributedDataParallel), so all ranks hold the same weights; rank 0 alone records and
    checkpoints. Inside a SLURM job of that many tasks (`-m hydra/launcher=slurm`) each task is one rank; without
    SLURM the run starts its ranks as local processes (nodes must then be 1)."""

    nodes: int = 1
    tasks_per_node: int = 1  # ranks per node (one per GPU on GPU nodes)
    backend: str = "auto"  # auto (nccl on cuda, gloo otherwise) | gloo | nccl
    timeout_s: float = 600.0  # how long a rank waits for the others (start-up, each collective) before failing


@dataclass
class TrainingConfig:
    """`pipeline=train`: PPO with PufferLib's PuffeRL, every setting it reads, plus what daf_hydra's loop adds.

    Steps count agent steps. One update collects `num_envs x agents x bptt_horizon` steps (the batch), then runs
    `update_epochs` passes over it in minibatches of `minibatch_size`; `total_steps` is rounded up to whole
    updates. Missions trained together are rotated per episode and must share the agent count, the actions and
    the observation shape (they may name their objects differently: the network then sees different ids).
    """

    missions: Optional[List[str]] = None  # trained on, rotated per episode; None: the run's `mission`
    eval_missions: Optional[List[str]] = None  # evaluated after training; None: the training missions
    total_steps: int = 150_000  # agent steps: lstm then beats random on training_facility_1 (README)
    num_envs: int = 32  # environments stepped together (split over vec_workers worker processes, if any)
    bptt_horizon: int = 16  # steps per segment: the LSTM's unroll length and the advantage horizon
    minibatch_size: int = 512  # agent steps per gradient step: a multiple of bptt_horizon dividing the batch
    max_minibatch_size: int = 32768  # larger minibatches accumulate gradients in chunks of this size
    update_epochs: int = 4  # passes over each batch
    learning_rate: float = II("lr")
    anneal_lr: bool = True  # cosine decay to 0 over total_steps
    optimizer: str = "adam"  # adam | muon (muon needs the heavyball package)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    vf_coef: float = 0.5
    vf_clip_coef: float = 0.2
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    vtrace_rho_clip: float = 1.0
    vtrace_c_clip: float = 1.0
    prio_alpha: float = 0.0  # prioritised segment sampling (0: uniform)
    prio_beta0: float = 1.0
    precision: str = "float32"  # float32 | bfloat16
    torch_deterministic: bool = True
    cpu_offload: bool = False  # keep observations in host memory (cuda)
    compile: bool = False  # torch.compile the network
    compile_mode: str = "default"
    compile_fullgraph: bool = False
    vec_workers: Any = "auto"  # environment worker processes (0: none, in the training process); auto: from the cores
    torch_threads: Any = "auto"  # learner intra-op threads; auto: from the cores (daf_hydra.env_workers.resolve)
    checkpoint_interval: int = 50  # updates between checkpoints; one more is written at the end
    # Validation during training: every `validate_every` agent steps (and at the end) the current checkpoint plays
    # `validation_episodes` episodes on fixed validation seeds (not the evaluation's); the run's evaluation then
    # plays the best of them, and a sweep's pruner judges the trial on them. None: no validation (the last checkpoint).
    validate_every: Optional[int] = None  # agent steps between validations (and one at the end); None: none
    validation_episodes: int = 8  # episodes per validation, on seeds 1,000,000+ (runs.VALIDATION_FIRST_SEED)
    resume: bool = False  # continue from the run directory's last checkpoint (same hydra.run.dir)
    tensorboard: bool = False  # also write the curve as TensorBoard events (the `tensorboard` extra)
    seed: int = II("seed")
    device: str = II("device")
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


@dataclass
class PipelineConfig:
    """Which pipeline `run` executes; later pipelines add their own fields to their YAML."""

    name: str = "evaluate"


@dataclass
class StagedPipelineConfig(PipelineConfig):
    """`pipeline=compare|benchmark`: pipelines of stages recorded in pipeline.json (orchestrators.stages)."""

    stop_on_failure: bool = True  # false: after a failed stage, run the stages that do not need it (partial)


@dataclass
class SweepPipelineConfig(StagedPipelineConfig):
    """`pipeline=sweep`: the sweep itself is `sweep:` (DAFSweepConfig's fields); these are the pipeline's own."""

    compare_best: bool = True  # compare the best trial's policy against `baselines`
    comparison_episodes: int = 10  # episodes per mission of that comparison
    baselines: List[str] = field(default_factory=lambda: ["baseline", "random"])


@dataclass
class DAFConfig:
    """Resource limits every pipeline honours (`resources:` on the command line, `resources=` in Python).

    `max_parallel_jobs` caps the processes a pipeline starts at once: evaluation and comparison workers, and a
    sweep's trials launched together (`hydra.sweeper.n_jobs`, run side by side by the local launcher).
    `gpu_memory_fraction` is passed to `torch.cuda.set_per_process_memory_fraction` by every run on a CUDA device
    (and ignored, saying so in the log, on other devices)."""

    max_parallel_jobs: Optional[int] = None  # None: comparisons one worker per CPU core, sweeps one trial at a time
    gpu_memory_fraction: Optional[float] = None  # None: no limit

    def validate(self) -> None:
        if self.max_parallel_jobs is not None and self.max_parallel_jobs < 1:
            raise DAFError(f"max_parallel_jobs={self.max_parallel_jobs} is invalid: it must be >= 1 or None")
        if self.gpu_memory_fraction is not None and not 0.0 < self.gpu_memory_fraction <= 1.0:
            raise DAFError(f"gpu_memory_fraction={self.gpu_memory_fraction} is invalid: it must lie in (0, 1]")

    def workers(self, requested: Optional[int]) -> Optional[int]:
        """Worker processes for `requested` (None: one per CPU core) under the max_parallel_jobs cap."""
        if self.max_parallel_jobs is None:
            return requested
        return min(requested, self.max_parallel_jobs) if requested is not None else self.max_parallel_jobs


@dataclass
class DAFBenchmarkConfig:
    """`pipeline=benchmark` (`benchmark:`) and `daf_run_benchmark_pipeline(config=...)`: environment check, training
    of each trainable policy given without weights, evaluation on every mission, comparison with the baselines,
    report, deployment package of `deploy_policy`.

    Policies are entries as `compare.policies` takes them: a conf/policy name (`lstm`, `mettagrid_lstm`), a registered
    short name or class path, a bundle directory, or `name:checkpoint`."""

    policies: List[str] = field(default_factory=lambda: ["lstm"])
    missions: List[str] = field(default_factory=lambda: ["training_facility_1"])
    episodes_per_mission: int = 20  # evaluation and comparison, seeds seed..seed+n-1
    baselines: List[str] = field(default_factory=lambda: ["baseline", "random"])
    compare_with_baselines: bool = True
    train_missions: Optional[List[str]] = None  # trained on (rotated per episode); None: the first mission
    training_steps: Optional[int] = 500_000  # agent steps per training; None: training.total_steps
    parallel_evaluation: bool = False  # evaluate policies in parallel processes (at most max_parallel_jobs)
    create_deployment_package: bool = True
    deploy_policy: Optional[str] = None  # the policy packaged; None: the first of `policies`
    name: Optional[str] = None  # what this benchmark is called: its report's title

    def validate(self) -> None:
        for key in ("policies", "missions"):
            if not getattr(self, key):
                raise DAFError(f"benchmark.{key} is empty: list at least one, e.g. benchmark.{key}="
                               + ("[lstm]" if key == "policies" else "[training_facility_1]"))
        if self.train_missions is not None and not self.train_missions:
            raise DAFError("benchmark.train_missions is empty: list at least one mission, or null for the first one")
        if self.episodes_per_mission < 1:
            raise DAFError(f"benchmark.episodes_per_mission={self.episodes_per_mission} is invalid: it must be >= 1")
        if self.training_steps is not None and self.training_steps < 1:
            raise DAFError(f"benchmark.training_steps={self.training_steps} is invalid: it must be >= 1 or null")
        if self.deploy_policy is not None and self.deploy_policy not in self.policies:
            raise DAFError(f"benchmark.deploy_policy={self.deploy_policy!r} is not one of benchmark.policies "
                           f"{list(self.policies)}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DAFBenchmarkConfig":
        """A flat YAML of these fields, or an experiment file's `benchmark:` section (see `read_yaml_fields`)."""
        cfg = cls(**read_yaml_fields(cls, path, "benchmark"))
        cfg.validate()
        return cfg


PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband")
STRATEGY_SWEEPERS = {"bayesian": "tpe", "tpe": "tpe", "random": "random", "grid": "grid", "gp": "gp"}
RANGE_KEYS = {"low", "high", "log", "int"}


@dataclass
class DAFSweepConfig:
    """A sweep described in Python or YAML; `daf_launch_sweep` turns it into the CLI's Hydra multirun.

    search_space: parameter -> a list of values (categorical; the grid of `strategy: grid`), or a dict
    {low, high, log: bool, int: bool} (a range). A name without a dot means `training.<name>` when training has
    such a field (`ent_coef`), else a top-level key; dotted names are used as they are (`policy.kwargs.hidden_size`);
    the learning rate is swept as `lr`, its one public name, however it is spelled (`parameter_key`).
    """

    policy_class_path: str = "lstm"
    policy_data_path: str | None = None
    missions: list[str] = field(default_factory=lambda: ["training_facility_1"])
    episodes_per_trial: int = 5
    num_trials: int = 8
    # Any, not a dict: Hydra refuses `sweep.search_space={...}` from the command line into a typed (struct) dict
    # node, and takes it into an untyped null one (conf/config.yaml's `search_space: null`).
    search_space: Any = field(default_factory=lambda: {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}})
    strategy: str = "bayesian"  # grid | random | bayesian (TPE) | gp
    seed: int = 0
    objective_metric: str = "mean_reward"
    optimize_direction: str = "maximize"
    max_parallel_jobs: int = 1
    max_failure_rate: float = 0.0
    pruner: str = "none"  # none | median | percentile | successive_halving | hyperband (train trials validate)
    pipeline: str = "train"  # train (train, then evaluate) | evaluate
    training_steps: int | None = None
    sweep_name: str | None = None  # the Optuna study; None: the study of this sweep's definition, sweep-<hash>
    storage: str | None = None  # any database URL; None: multirun/sweeps/optuna.db
    output_root: str = "multirun/sweeps"
    extra_overrides: list[str] = field(default_factory=list)
    name: str | None = None  # what this sweep is called (the pipeline's outputs['name']); the study is sweep_name

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DAFSweepConfig":
        """A flat YAML of these fields, or an experiment file's `sweep:` section (`config.read_yaml_fields`)."""
        cfg = cls(**read_yaml_fields(cls, path, "sweep"))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.strategy not in STRATEGY_SWEEPERS:
            raise DAFError(f"strategy={self.strategy!r} is invalid: valid strategies are {', '.join(STRATEGY_SWEEPERS)}")
        if self.pipeline not in ("train", "evaluate"):
            raise DAFError(f"pipeline={self.pipeline!r} is invalid: a sweep trial can train or evaluate")
        validate_objective(self.objective_metric, self.optimize_direction, self.pipeline, prefix="",
                           names=("objective_metric", "optimize_direction"),
                           eval_missions=len(set(self.missions)) if self.pipeline == "train" else 1)
        validate_seed("seed", self.seed)
        if self.pruner not in PRUNERS:
            raise DAFError(f"pruner={self.pruner!r} is invalid: valid pruners are {', '.join(PRUNERS)}")
        if self.pruner != "none" and self.pipeline != "train":
            raise DAFError(f"pruner={self.pruner} needs pipeline='train' (trials that train and validate), not "
                           f"pipeline={self.pipeline!r}; or pruner='none'")
        if self.training_steps is not None and self.training_steps < 1:
            raise DAFError(f"training_steps={self.training_steps} is invalid: it must be >= 1 or None")
        if self.num_trials < 1:
            raise DAFError(f"num_trials={self.num_trials} is invalid: it must be >= 1")
        if self.episodes_per_trial < 1:
            raise DAFError(f"episodes_per_trial={self.episodes_per_trial} is invalid: it must be >= 1")
        if self.max_parallel_jobs < 1:
            raise DAFError(f"max_parallel_jobs={self.max_parallel_jobs} is invalid: it must be >= 1")
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise DAFError(f"max_failure_rate={self.max_failure_rate} is invalid: it must be between 0 and 1")
        if not self.missions:
            raise DAFError("missions is empty: list at least one mission, e.g. [training_facility_1]")
        if not isinstance(self.search_space, dict) or not self.search_space:
            raise DAFError(f"search_space={self.search_space!r} is invalid: give at least one parameter, e.g. "
                           "{learning_rate: [1e-4, 1e-3]} "
                           "(pipeline=sweep: 'sweep.search_space={learning_rate:[1e-4,1e-3]}')")
        if self.pipeline not in ("train", "evaluate"):
            raise DAFError(f"pipeline={self.pipeline!r} is invalid: a sweep trial can train or evaluate")
        for name, space in self.search_space.items():
            _sweep_expression(name, space)
            if not _is_setting(parameter_key(name)):
                raise DAFError(f"search_space.{name} is invalid: {parameter_key(name)} is not a setting of a run "
                               "(a training field such as learning_rate, or a dotted key such as mission.max_steps)")
            if self.strategy == "grid" and isinstance(space, dict) and not space.get("int"):
                raise DAFError(f"search_space.{name}={space} is a continuous range: strategy=grid needs a list of "
                               "values (or an int range)")

    def overrides(self) -> list[str]:
        """The Hydra overrides of the equivalent CLI multirun."""
        policy = (
            [f"policy={self.policy_class_path}"] if self.policy_class_path in group_options("policy")
            else [f"policy.class_path={self.policy_class_path}"]
        )
        if self.policy_data_path:
            policy.append(f"policy.data_path={self.policy_data_path}")
        missions = ",".join(self.missions)
        out = [
            f"hydra/sweeper={STRATEGY_SWEEPERS[self.strategy]}",
            f"pipeline={self.pipeline}",
            *policy,
            f"mission={self.missions[0]}",
            f"training.missions=[{missions}]",
            f"evaluation.episodes={self.episodes_per_trial}",
            f"seed={self.seed}",
            f"objective.metric={self.objective_metric}",
            f"objective.direction={self.optimize_direction}",
            f"hydra.sweeper.n_trials={self.num_trials}",
            f"hydra.sweeper.n_jobs={self.max_parallel_jobs}",
            f"hydra.sweeper.max_failure_rate={self.max_failure_rate}",
            f"hydra.sweeper.pruner={self.pruner}",
            # the study's name, given or derived (DAFOptunaSweeper sets it before the first trial)
            f"hydra.sweep.dir={Path(self.output_root).resolve()}/${{sweep_name}}/${{now:%Y-%m-%d_%H-%M-%S-%f}}",
        ]
        if self.sweep_name:
            out.append(f"sweep_name={self.sweep_name}")
        if self.storage:
            out.append(f"hydra.sweeper.storage={self.storage}")
        if self.max_parallel_jobs > 1:
            out.append("hydra/launcher=local")
        if self.training_steps is not None:
            out.append(f"training.total_steps={self.training_steps}")
        for name, space in self.search_space.items():
            out.append(f"hydra.sweeper.params.{parameter_key(name)}={_sweep_expression(name, space)}")
        return [*out, *self.extra_overrides]


def parameter_key(name: str) -> str:
    """The key a search-space name sweeps, under its one public name: `learning_rate` (and
    `training.learning_rate`) -> `lr` (identity.ALIASES), so the API's trials have the CLI's columns; another
    training field `ent_coef` -> `training.ent_coef`; other names stay as they are."""
    key = f"training.{name}" if "." not in name and name in TrainingConfig.__dataclass_fields__ else name
    return ALIASES.get(key, key)


def _is_setting(key: str) -> bool:
    """Whether `key` names a setting of a run (a field of `config.DAFRunConfig`, followed down its dataclasses;
    below a dict field such as `policy.kwargs` any key is), so a misspelt parameter fails before any trial."""
    import types

    node: Any = DAFRunConfig
    for part in key.split("."):
        if not is_dataclass(node):
            return True
        hints = typing.get_type_hints(node)
        if part not in hints:
            return False
        node = hints[part]
        if typing.get_origin(node) in (typing.Union, types.UnionType):  # Optional[X] -> X
            node = next(a for a in typing.get_args(node) if a is not type(None))
    return True


def _sweep_expression(name: str, space: Any) -> str:
    if isinstance(space, (list, tuple)) and space:
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in space):
            raise DAFError(f"search_space.{name}={space!r} is invalid: Optuna's choices are numbers, strings, "
                           "booleans or null")
        return "choice(" + ",".join(str(v) for v in space) + ")"
    if isinstance(space, dict) and {"low", "high"} <= set(space) <= RANGE_KEYS:
        low, high = space["low"], space["high"]
        if not low < high:
            raise DAFError(f"search_space.{name}: low={low} must be below high={high}")
        if space.get("log") and not low > 0:
            raise DAFError(f"search_space.{name}: low={low} must be above 0 on a log scale")
        if space.get("int"):
            low, high = int(low), int(high)
        else:
            low, high = float(low), float(high)
        expr = f"interval({low}, {high})"
        expr = f"tag(log, {expr})" if space.get("log") else expr
        return f"int({expr})" if space.get("int") else expr
    raise DAFError(f"search_space.{name}={space!r} is invalid: give a list of values or "
                   "{low: .., high: .., log: bool, int: bool}")


@dataclass
class ObjectiveConfig:
    """What a run returns to Hydra's sweeper: one key of its metrics.json (or a list, for multi-objective
    studies such as [mean_reward, duration_s]) and the direction of each."""

    metric: Any = "mean_reward"  # str | list[str]
    direction: Any = "maximize"  # maximize | minimize, or one per metric


@dataclass
class TrialConfig:
    """Set by a sweep for each trial it launches (never by hand): the Optuna trial this run is, so the run can
    report its validation scores, be pruned, send heartbeats and tell its own result (daf_hydra.studies)."""

    storage: Optional[str] = None
    study: Optional[str] = None
    number: Optional[int] = None
    pruner: str = "none"  # one of PRUNERS: the study's pruner (Optuna keeps pruners out of its storage)
    heartbeat_interval: int = 10  # seconds


@dataclass
class DAFRunConfig:
    """The root of `conf/config.yaml`."""

    pipeline: PipelineConfig = MISSING
    policy: PolicyConfig = MISSING
    mission: MissionConfig = MISSING
    evaluation: EvaluationConfig = MISSING
    training: TrainingConfig = MISSING
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    crossplay: CrossplayConfig = field(default_factory=CrossplayConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    benchmark: DAFBenchmarkConfig = field(default_factory=DAFBenchmarkConfig)
    # pipeline=sweep: no default search space (a command line dict merges into, not replaces, a default one)
    sweep: DAFSweepConfig = field(default_factory=lambda: DAFSweepConfig(search_space={}))
    resources: DAFConfig = field(default_factory=DAFConfig)
    sweep_name: Optional[str] = None  # the Optuna study of a sweep (hydra/sweeper=tpe|random|grid|gp); None: derived
    seeds: Optional[List[int]] = None  # run the pipeline once per seed, objective averaged (sweep trials)
    trial: TrialConfig = field(default_factory=TrialConfig)  # set by a sweep for its trials
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    lr: float = MISSING  # shorthand for training.learning_rate (set in conf/config.yaml)
    output_dir: str = "${hydra:runtime.output_dir}"
    # Instead of keeping an interrupted run's finished episodes, or returning a completed run's metrics
    # (docs/records.md), clear the run directory's records (and its members') first:
    restart: bool = False  # start the run over: clear its records first (docs/records.md)


DEVICES = ("auto", "cpu", "cuda", "mps")
REPLAY_MODES = ("none", "examples", "all")  # evaluation.replays (daf_hydra.replays)


def validate_evaluation(cfg: Any) -> None:
    """Reject values that would play nothing or mislead, before any episode runs."""
    if cfg.episodes < 1:
        raise DAFError(f"evaluation.episodes={cfg.episodes} is invalid: it must be a whole number >= 1")
    if cfg.num_envs < 1:
        raise DAFError(f"evaluation.num_envs={cfg.num_envs} is invalid: it must be a whole number >= 1")
    replays = getattr(cfg, "replays", None)
    if replays is not None and replays not in REPLAY_MODES:
        raise DAFError(f"evaluation.replays={replays} is invalid: choose one of {', '.join(REPLAY_MODES)} "
                       "(or null: examples in pipeline=benchmark and analyze, none elsewhere)")


def validate_statistics(cfg: Any) -> None:
    """Reject settings that would make intervals or tests meaningless, before any episode runs."""
    for key in ("bootstrap_reps", "profile_bootstrap_reps"):
        if getattr(cfg, key) < 1:
            raise DAFError(f"statistics.{key}={getattr(cfg, key)} is invalid: it must be a whole number >= 1")
    for key in ("confidence", "significance_level"):
        if not 0.0 < getattr(cfg, key) < 1.0:
            raise DAFError(f"statistics.{key}={getattr(cfg, key)} is invalid: it must lie strictly between 0 and 1")


def validate_compare(cfg: Any) -> None:
    if not cfg.policies:
        raise DAFError("compare.policies is empty: list at least one policy, e.g. compare.policies=[baseline,random]")
    if not cfg.missions:
        raise DAFError(
            "compare.missions is empty: list at least one mission, e.g. compare.missions=[training_facility_1]")
    if cfg.episodes_per_mission < 1:
        raise DAFError(f"compare.episodes_per_mission={cfg.episodes_per_mission} is invalid: it must be >= 1")
    if cfg.workers is not None and cfg.workers < 1:
        raise DAFError(f"compare.workers={cfg.workers} is invalid: it must be >= 1 or null (one per CPU core)")


def validate_crossplay(cfg: Any) -> None:
    """The settings of `crossplay:` that need no mission or policy (daf_hydra.crossplay checks those)."""
    if len(cfg.policies) < 2:
        raise DAFError(f"crossplay.policies={list(cfg.policies)} is invalid: cross-play mixes policies, list at "
                       "least two, e.g. crossplay.policies=[baseline,random]")
    if not cfg.missions:
        raise DAFError("crossplay.missions is empty: list at least one mission, e.g. "
                       "crossplay.missions=[training_facility_1]")
    if cfg.episodes < 1:
        raise DAFError(f"crossplay.episodes={cfg.episodes} is invalid: it must be >= 1")
    if cfg.k is not None and cfg.k < 1:
        raise DAFError(f"crossplay.k={cfg.k} is invalid: policy A controls at least 1 agent (null: half)")
    if cfg.rating_bootstrap_reps < 1:
        raise DAFError(f"crossplay.rating_bootstrap_reps={cfg.rating_bootstrap_reps} is invalid: it must be >= 1")
    if cfg.pool is not None:
        unknown = [p for p in cfg.pool if p not in list(cfg.policies)]
        if unknown or not cfg.pool:
            raise DAFError(f"crossplay.pool={list(cfg.pool)} is invalid: the pool is a non-empty subset of "
                           f"crossplay.policies={list(cfg.policies)} (null: all of them)")


def validate_analyze(cfg: Any) -> None:
    for key in ("stuck_fraction", "action_failure_fraction"):
        if not 0.0 < getattr(cfg, key) <= 1.0:
            raise DAFError(f"analyze.{key}={getattr(cfg, key)} is invalid: it must lie in (0, 1]")
    if cfg.example_seeds < 0:
        raise DAFError(f"analyze.example_seeds={cfg.example_seeds} is invalid: it must be >= 0")


def validate_device(device: str) -> None:
    if device not in DEVICES:
        raise DAFError(f"device={device!r} is invalid: valid devices are {', '.join(DEVICES)}")


DIRECTIONS = ("maximize", "minimize")
RECORD_METRICS = frozenset({"schema_version", "started_at", "ended_at", "duration_s"})  # every metrics.json


def episode_metrics() -> frozenset[str]:
    """The summary keys of `records.summarize_episodes` (what an evaluation measures)."""
    from daf_hydra.records import summarize_episodes

    return frozenset(summarize_episodes([{"total_reward": 0.0, "rewards": [0.0], "steps": 1, "success": True}]))


# What the train pipeline's summary averages over its evaluation missions when it has several (the others, such as
# std_reward, are not means and are left out), and what a benchmark keeps of each evaluation run and averages over
# its missions: the pipelines build their metrics from these, `pipeline_metrics` reads them.
TRAIN_AVERAGED = ("mean_reward", "median_reward", "min_reward", "max_reward", "mean_reward_per_agent",
                  "success_rate", "mean_steps")
BENCHMARK_SUMMARY = ("episodes", "mean_reward", "stderr_reward", "median_reward", "min_reward", "max_reward",
                     "success_rate", "mean_steps")


def pipeline_metrics(pipeline: str, eval_missions: int = 1) -> Optional[frozenset[str]]:
    """The numeric metrics pipeline `pipeline` returns, which `objective.metric` may name; None: the pipeline
    returns one number (its objective) whatever the name. `eval_missions`: how many missions a train run
    evaluates on; with several, its summary holds the means over them (TRAIN_AVERAGED) and the episodes summed."""
    episodes = episode_metrics()
    train = episodes if eval_missions <= 1 else frozenset({"episodes", *TRAIN_AVERAGED})
    return {
        "evaluate": episodes | RECORD_METRICS | {"seed", "objective"},
        "train": train | {"seed", "objective"},
        "compare": RECORD_METRICS | {"mean_reward", "objective", "episodes_per_mission"},
        "crossplay": RECORD_METRICS | {"mean_reward", "objective", "episodes"},
        "benchmark": frozenset(BENCHMARK_SUMMARY),
    }.get(pipeline)


def validate_objective(metric: Any, direction: Any, pipeline: str, prefix: str = "objective.",
                       names: tuple[str, str] = ("metric", "direction"), eval_missions: int = 1) -> None:
    """Reject an objective a run of `pipeline` could not return (`eval_missions`: see `pipeline_metrics`), or a
    direction that is neither maximize nor minimize, before any work (a sweep would otherwise find out after
    every trial's training)."""
    m_key, d_key = f"{prefix}{names[0]}", f"{prefix}{names[1]}"
    metrics = list(metric) if isinstance(metric, (list, tuple)) else [metric]
    directions = list(direction) if isinstance(direction, (list, tuple)) else [direction]
    valid = pipeline_metrics(pipeline, eval_missions)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise DAFError(f"{m_key}={metric!r} is invalid: give a metric name or a list of them, e.g. mean_reward")
    for m in metrics:
        if valid is not None and m not in valid:
            several = f" evaluated on {eval_missions} missions" if pipeline == "train" and eval_missions > 1 else ""
            raise DAFError(f"{m_key}={m!r} is not a number pipeline {pipeline}{several} returns: valid metrics are "
                           f"{', '.join(sorted(valid))}")
    if valid is None and len(metrics) > 1:
        raise DAFError(f"{m_key}={metrics} names several metrics, but pipeline {pipeline} returns one number")
    for d in directions:
        if d not in DIRECTIONS:
            raise DAFError(f"{d_key}={d!r} is invalid: valid directions are {', '.join(DIRECTIONS)}")
    if len(directions) != 1 and len(directions) != len(metrics):
        raise DAFError(f"{d_key}={directions} gives {len(directions)} directions for {len(metrics)} metric(s) "
                       f"{metrics}: give one direction per metric")


def validate_seed(key: str, seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DAFError(f"{key}={seed!r} is invalid: a seed is a whole number >= 0")


OPTIMIZERS = ("adam", "muon")
PRECISIONS = ("float32", "bfloat16")
BACKENDS = ("auto", "gloo", "nccl")


def _check(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise DAFError(f"training.{key}={value!r} is invalid: {valid}")


def validate_training(t: Any, num_agents: int) -> None:
    """Reject PPO settings PuffeRL would crash on or silently misuse, before any environment is built.

    `num_agents`: agents per environment of the training missions (the batch is num_envs x agents x bptt)."""
    import math
    from importlib.util import find_spec

    for key in ("total_steps", "num_envs", "bptt_horizon", "update_epochs", "checkpoint_interval",
                "max_minibatch_size"):
        _check(getattr(t, key) >= 1, key, getattr(t, key), "it must be a whole number >= 1")
    for key, least in (("vec_workers", 0), ("torch_threads", 1)):
        value = getattr(t, key)
        _check(value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= least), key,
               value, f"it must be auto or a whole number >= {least}")
    workers = getattr(t, "vec_workers")
    _check(workers == "auto" or workers == 0 or t.num_envs % workers == 0, "vec_workers", workers,
           f"it must divide training.num_envs={t.num_envs} (or be 0 or auto)")
    batch = t.num_envs * num_agents * t.bptt_horizon
    _check(
        t.minibatch_size >= 1 and t.minibatch_size % t.bptt_horizon == 0 and batch % t.minibatch_size == 0,
        "minibatch_size", t.minibatch_size,
        f"it must be a multiple of training.bptt_horizon={t.bptt_horizon} that divides the batch of {batch} agent "
        f"steps (num_envs={t.num_envs} x {num_agents} agents x bptt_horizon={t.bptt_horizon}), e.g. "
        + ", ".join(str(m) for m in _minibatch_examples(batch, t.bptt_horizon)),
    )
    if t.minibatch_size > t.max_minibatch_size:
        _check(t.minibatch_size % t.max_minibatch_size == 0 and t.max_minibatch_size % t.bptt_horizon == 0,
               "max_minibatch_size", t.max_minibatch_size,
               f"it must divide training.minibatch_size={t.minibatch_size} and be a multiple of bptt_horizon")
    if getattr(t, "tensorboard", False) and find_spec("tensorboard") is None:
        raise DAFError("training.tensorboard=true needs the tensorboard package, which is not installed: "
                       "pip install 'daf_hydra[tensorboard]', or training.tensorboard=false")
    _check(math.isfinite(t.learning_rate) and t.learning_rate > 0, "learning_rate", t.learning_rate,
           "it must be > 0 (set it with the top-level shorthand, e.g. lr=0.0003)")
    _check(0 < t.gamma <= 1, "gamma", t.gamma, "it must lie in (0, 1]")
    _check(0 <= t.gae_lambda <= 1, "gae_lambda", t.gae_lambda, "it must lie in [0, 1]")
    for key in ("clip_coef", "vf_clip_coef", "max_grad_norm", "adam_eps", "vtrace_rho_clip", "vtrace_c_clip"):
        _check(getattr(t, key) > 0, key, getattr(t, key), "it must be > 0")
    for key in ("vf_coef", "ent_coef", "prio_alpha"):
        _check(getattr(t, key) >= 0, key, getattr(t, key), "it must be >= 0")
    for key in ("adam_beta1", "adam_beta2"):
        _check(0 <= getattr(t, key) < 1, key, getattr(t, key), "it must lie in [0, 1)")
    _check(0 <= t.prio_beta0 <= 1, "prio_beta0", t.prio_beta0, "it must lie in [0, 1]")
    _check(t.validate_every is None or t.validate_every >= 1, "validate_every", t.validate_every,
           "it must be a whole number of agent steps >= 1, or null for no validation during training")
    _check(t.validation_episodes >= 1, "validation_episodes", t.validation_episodes,
           "it must be a whole number >= 1")
    _check(t.optimizer in OPTIMIZERS, "optimizer", t.optimizer, f"valid optimizers are {', '.join(OPTIMIZERS)}")
    _check(t.optimizer != "muon" or find_spec("heavyball") is not None, "optimizer", t.optimizer,
           "muon needs the heavyball package (pip install heavyball), or use optimizer=adam")
    _check(t.precision in PRECISIONS, "precision", t.precision, f"valid precisions are {', '.join(PRECISIONS)}")
    validate_device(t.device)
    d = t.distributed
    for key in ("nodes", "tasks_per_node"):
        _check(getattr(d, key) >= 1, f"distributed.{key}", getattr(d, key), "it must be a whole number >= 1")
    _check(d.backend in BACKENDS, "distributed.backend", d.backend, f"valid backends are {', '.join(BACKENDS)}")
    _check(d.timeout_s > 0, "distributed.timeout_s", d.timeout_s, "it must be > 0 (seconds)")


def _minibatch_examples(batch: int, bptt: int) -> list[int]:
    sizes = [m for m in range(bptt, batch + 1, bptt) if batch % m == 0]
    return sizes[-3:] if sizes else [bptt]


@dataclass
class DAFTrainingConfig(TrainingConfig):
    """The Python API's training config (`daf_run_training_pipeline(config=...)`): plain fields, no Hydra.

    It holds the design documents' fields and every field of the CLI's `training:` (TrainingConfig: PPO's
    settings, e.g. `update_epochs=2`). The API turns it into the overrides a CLI user would type, only for the PPO
    settings that differ from TrainingConfig's defaults (the others keep conf/training/default.yaml's), so a run
    from Python and a run from the command line with the same values are the same run. `overrides` reaches every
    other setting (e.g. `["policy.kwargs.hidden_size=128"]`).
    """

    missions: List[str] = field(default_factory=lambda: ["training_facility_1"])  # rotated per episode
    eval_missions: Optional[List[str]] = None  # None: the training missions
    learning_rate: Optional[float] = None  # None: conf/config.yaml's lr
    seed: int = 0
    device: str = "auto"
    resume: bool = False  # continue from output_dir's last checkpoint
    policy_class_path: str = "lstm"  # a conf/policy name, a registered short name, a class path or a bundle
    num_training_steps: Optional[int] = None  # agent steps (the documents' name for total_steps)
    eval_episodes: Optional[int] = None  # per evaluation mission; None: conf/evaluation/default.yaml's episodes
    policy_data_path: Optional[str] = None  # initial weights (fine-tuning)
    output_dir: Optional[str] = None  # None: outputs/<date>/<time>-<id>
    name: Optional[str] = None  # what this training is called (recorded in the result's outputs)
    overrides: List[str] = field(default_factory=list)

    def validate(self) -> None:
        """Reject values no run could use, with the field and what is valid (DAFError), before any work. PPO's
        settings are checked where the CLI checks them, once composed (`validate_train_run`)."""
        if not self.policy_class_path:
            raise DAFError("policy_class_path is empty: give a policy name (lstm, mlp, ...), a class path "
                           "or a bundle directory")
        if not self.missions:
            raise DAFError("missions is empty: list at least one mission, e.g. ['training_facility_1']")
        if self.eval_missions is not None and not self.eval_missions:
            raise DAFError("eval_missions is empty: list at least one mission, or None for the training missions")
        if self.num_training_steps is not None and self.num_training_steps < 1:
            raise DAFError(f"num_training_steps={self.num_training_steps} is invalid: it must be >= 1")
        if self.num_training_steps is not None and self.total_steps != TrainingConfig.total_steps:
            raise DAFError(f"num_training_steps={self.num_training_steps} and total_steps={self.total_steps} name the "
                           "same budget: give one of them")
        if self.eval_episodes is not None and self.eval_episodes < 1:
            raise DAFError(f"eval_episodes={self.eval_episodes} is invalid: it must be >= 1")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise DAFError(f"learning_rate={self.learning_rate} is invalid: it must be > 0")
        validate_seed("seed", self.seed)
        if self.resume and self.output_dir is None:
            raise DAFError("resume=True needs output_dir: the run directory whose last checkpoint to continue from")
        validate_device(self.device)

    def ppo_settings(self) -> dict[str, Any]:
        """The CLI's `training.*` settings this config changes: those differing from TrainingConfig's defaults,
        other than the ones the documents' fields set (missions, eval_missions, learning_rate, seed, device,
        resume)."""
        own = {"missions", "eval_missions", "learning_rate", "seed", "device", "resume"}
        default = TrainingConfig()
        return {f.name: getattr(self, f.name) for f in fields(TrainingConfig)
                if f.name not in own and getattr(self, f.name) != getattr(default, f.name)}

    def cli_overrides(self) -> list[str]:
        """The command line equivalent of this config (pipeline=train plus its fields): the API and the CLI
        take one road to a run config (daf_hydra.compose)."""
        overrides = ["pipeline=train"]
        if (CONF_DIR / "policy" / f"{self.policy_class_path}.yaml").is_file():
            overrides.append(f"policy={self.policy_class_path}")
        else:  # a registered short name, a class path or a bundle directory: named by what is instantiated
            overrides += [f"policy.class_path={literal(self.policy_class_path)}", "policy.kwargs={}"]
        if self.policy_data_path is not None:
            overrides.append(f"policy.data_path={literal(self.policy_data_path)}")
        overrides += [
            f"mission={self.missions[0]}",
            f"training.missions={literal(self.missions)}",
            f"seed={self.seed}",
            f"device={self.device}",
        ]
        if self.num_training_steps is not None:
            overrides.append(f"training.total_steps={self.num_training_steps}")
        if self.eval_episodes is not None:
            overrides.append(f"evaluation.episodes={self.eval_episodes}")
        if self.eval_missions is not None:
            overrides.append(f"training.eval_missions={literal(self.eval_missions)}")
        if self.learning_rate is not None:
            overrides.append(f"lr={self.learning_rate!r}")
        if self.resume:
            overrides.append("training.resume=true")
        overrides += [f"training.{k}={literal(v)}" for k, v in self.ppo_settings().items()]
        return [*overrides, *self.overrides]

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DAFTrainingConfig":
        """A flat YAML of these fields."""
        cfg = cls(**read_yaml_fields(cls, path, None))
        cfg.validate()
        return cfg


@dataclass
class DAFComparisonConfig(CompareConfig):
    """The Python API's comparison config (`daf_run_comparison_pipeline(config=...)`): the fields of `compare:`
    and the design documents' other comparison settings, which the API passes as the CLI's `seed`,
    `statistics.significance_level` and `statistics.bootstrap_reps`."""

    seed: int = 0  # episode k of every mission plays seed+k
    significance_level: Optional[float] = None  # None: statistics.significance_level (conf/config.yaml)
    bootstrap_samples: Optional[int] = None  # None: statistics.bootstrap_reps (conf/config.yaml)
    generate_html_report: bool = True  # false: no report stage
    name: Optional[str] = None  # what this comparison is called: its report's title

    def validate(self) -> None:
        validate_compare(self)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "DAFComparisonConfig":
        """A flat YAML of these fields, or an experiment file's `compare:` section (see `read_yaml_fields`)."""
        cfg = cls(**read_yaml_fields(cls, path, "compare"))
        cfg.validate()
        return cfg


def read_yaml_fields(cls: type, path: str | Path, section: Optional[str]) -> dict[str, Any]:
    """The fields of API config `cls` in a YAML file: either a flat mapping of them, or an experiment file
    (conf/experiment/*.yaml, `# @package _global_`) whose `<section>:` holds them, so one file serves
    `+experiment=<name>` on the command line and `from_yaml` in Python. Other top-level keys of an experiment file
    (besides its `defaults` list) would be applied by the CLI and not by the API: refused, as are unknown fields."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():  # paths are relative to the current directory, like every path argument
        shipped = CONF_DIR / "experiment" / file.name
        hint = f": the file daf_hydra ships is {shipped}" if shipped.is_file() else ""
        raise DAFError(f"{path} is not a file (relative paths start at the current directory, {Path.cwd()}){hint}")
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict):
        raise DAFError(f"{path}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    if section is not None and isinstance(data.get(section), dict):
        extra = sorted(set(data) - {section, "defaults"})
        if extra:
            raise DAFError(f"{path}: top-level key(s) {extra} beside `{section}:` would be applied on the command "
                           f"line but not by {cls.__name__}.from_yaml: move them into `{section}:`")
        data = data[section]
    _refuse_unknown(cls, data, f"{path}: ")
    return data


Config = TypeVar("Config")


def api_config(cls: type[Config], config: Optional[Config], given: dict[str, Any]) -> Config:
    """The config of a Python API call: `config`, or `cls(**given)` from its keyword arguments (those left None
    keep the field's default), so a call and a config file reach the same fields. Both at once, or a field `cls`
    does not have, is a one-line DAFError."""
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in given.items() if v is not None}
    if config is not None:
        if given:
            raise DAFError(f"give either config= or keyword arguments, not both (got config and {', '.join(given)})")
        return config
    _refuse_unknown(cls, given, "")
    return cls(**given)


def _refuse_unknown(cls: type, data: dict[str, Any], where: str) -> None:
    valid = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - valid)
    if unknown:
        raise DAFError(f"{where}unknown {cls.__name__} field(s) {unknown}; valid: {sorted(valid)}")


def sqlite_storage(path: str) -> str:
    """OmegaConf resolver `${daf_sqlite:path}`: an absolute SQLite URL whose directory exists.

    Optuna opens the storage before any job has created the outputs tree, and SQLite cannot create directories.
    """
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{target}"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("daf_sqlite"):
        OmegaConf.register_resolver("daf_sqlite", sqlite_storage)


def literal(value: Any) -> str:
    """`value` in Hydra's override grammar: strings quoted (paths and cogames names hold characters the grammar
    reserves), lists, dicts and dataclasses (training.distributed) element by element."""
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


@dataclass
class DAFOptunaSweeperConf(OptunaSweeperConf):
    """conf/hydra/sweeper/*.yaml: the plugin's options, plus what our sweeper adds (sweeps.DAFOptunaSweeper)."""

    _target_: str = "daf_hydra.sweeps.DAFOptunaSweeper"
    pruner: str = "none"  # one of PRUNERS
    heartbeat_interval: int = 10  # seconds; a trial silent for 3 intervals is failed and retried
    max_retry: int = 2  # retries of a trial whose process died


_registered = False


def register_configs() -> None:
    """Register the schemas that the YAML files in conf/ extend (their defaults list names `<group>_schema`)."""
    global _registered
    if _registered:
        return
    _registered = True
    register_resolvers()
    cs = ConfigStore.instance()
    cs.store(name="daf_run_schema", node=DAFRunConfig)
    cs.store(group="hydra/sweeper", name="daf_optuna", node=DAFOptunaSweeperConf, provider="daf_hydra")
    cs.store(group="policy", name="policy_schema", node=PolicyConfig)
    cs.store(group="mission", name="mission_schema", node=MissionConfig)
    cs.store(group="evaluation", name="evaluation_schema", node=EvaluationConfig)
    cs.store(group="pipeline", name="pipeline_schema", node=PipelineConfig)
    cs.store(group="pipeline", name="staged_pipeline_schema", node=StagedPipelineConfig)
    cs.store(group="pipeline", name="sweep_pipeline_schema", node=SweepPipelineConfig)
    cs.store(group="training", name="training_schema", node=TrainingConfig)
