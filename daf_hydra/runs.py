"""The steps every run shares, whatever feature or pipeline starts it: start a run (run.json with its provenance
and identity), play a policy into a run (episodes.jsonl), fail-and-record, and the checks and missions of a
training run (the train pipeline and every rank of a distributed training use the same).

Features (comparison, mission analysis, distributed training) and pipelines both build on these, so a run
started by any of them is recorded the same way and named by `identity.run_identity`, from the config that was
actually instantiated.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig

from daf_hydra import provenance
from daf_hydra.compose import load_mission, to_container
from daf_hydra.config import validate_evaluation, validate_training
from daf_hydra.device import apply_gpu_memory_fraction, resolve_device
from daf_hydra.identity import RunIdentity, policy_name, run_identity
from daf_hydra.errors import DAFError
from daf_hydra.records import RunRecorder, open_run, summarize_episodes
from daf_hydra.replays import REPLAYS_DIR


def identity_of(cfg: DictConfig, trained: bool | None = None) -> RunIdentity:
    """The run's identity (daf_hydra.identity) from its composed config."""
    return run_identity(to_container(cfg), trained)


def start_run(cfg: DictConfig, run_dir: Path, kind: str, owned: tuple[str, ...] = ()) -> tuple[RunRecorder, str]:
    """Write run.json (provenance and identity) before any work, so even a run that fails at once leaves a
    record. Every run starts here, in whatever process plays it, so `resources.gpu_memory_fraction` is applied
    here too.

    The run directory holds one run (records.open_run): an interrupted run of the same identity signature goes
    on (its finished episodes are kept, `evaluate_policy` plays the missing seeds); a completed one is not run
    again (`recorder.completed` holds its metrics: return them); another signature is refused, unless a train run
    continues it (`training.resume=true`: from its last checkpoint); `restart=true` clears the records (and
    `owned`, further files of the run, and its replays) first."""
    device = resolve_device(cfg.device)
    resources = cfg.get("resources")
    apply_gpu_memory_fraction(resources.get("gpu_memory_fraction") if resources is not None else None, device)
    config = to_container(cfg)
    meta = provenance.collect(config, int(cfg.seed), device, uuid.uuid4().hex[:12], kind)
    training = cfg.get("training")
    continues = kind == "train" and training is not None and bool(training.get("resume"))
    recorder = open_run(run_dir, meta, restart=bool(cfg.get("restart") or False), owned=(*owned, REPLAYS_DIR),
                        continues=continues)
    if recorder.completed is not None:
        print(f"{run_dir}: this run ({meta['config_signature']}) completed earlier: nothing to do, its recorded "
              "metrics stand (restart=true runs it again)")
    return recorder, device


@contextmanager
def recording(recorder: RunRecorder, metrics: dict[str, Any] | None = None) -> Iterator[None]:
    """Fail-and-record: any exception leaving the block writes metrics.json as failed (with `metrics` so far),
    then propagates; a failed run never gets a score."""
    try:
        yield
    except BaseException as exc:
        recorder.fail(exc, metrics)
        raise


def evaluation_seeds(cfg: DictConfig, trained: bool) -> list[int]:
    """Episode k plays seed first+k. The first seed is `evaluation.seed`, else 0 for a policy this run trained
    (arms and replicates meet the same maps: the evaluation does not move with the training seed), else the
    run's seed (a fixed policy's replicates are its episodes)."""
    first = cfg.evaluation.get("seed")
    if first is None:
        first = 0 if trained else int(cfg.seed)
    return [int(first) + k for k in range(int(cfg.evaluation.episodes))]


def evaluate_policy(cfg: DictConfig, device: str, recorder: RunRecorder | None = None, *,
                    name: str | None = None, trained: bool = False,
                    keep_replays: Callable[[list[dict[str, Any]]], dict[int, list[str]]] | None = None
                    ) -> dict[str, Any]:
    """Play the configured episodes of `cfg.policy` on `cfg.mission` and return the summary (the evaluate
    pipeline's metrics). `name`: the policy's name in the records (default: what `cfg.policy` instantiates);
    `trained`: the policy was trained by this run (its evaluation seeds then start at 0); `keep_replays`: from
    the episodes, further replays to keep (seed -> roles) beside the examples (`evaluation.replays`)."""
    from daf_hydra import replays
    from daf_hydra.evaluation import LoadedPolicy, play, seed_everything
    from daf_hydra.missions import build_env
    from daf_hydra.policies import loading

    validate_evaluation(cfg.evaluation)
    seed_everything(int(cfg.seed))
    if name is None:
        name = policy_name(to_container(cfg.policy))
        if not trained and loading.untrained_network(cfg.policy.class_path, cfg.policy.data_path):
            name += loading.UNTRAINED
    env_cfg = build_env(cfg.mission)
    policy = LoadedPolicy(name, loading.resolve(cfg.policy.class_path, cfg.policy.data_path,
                                                dict(cfg.policy.kwargs)), device)
    mission = str(cfg.mission.name)
    seeds = evaluation_seeds(cfg, trained)
    index = {seed: k for k, seed in enumerate(seeds)}  # episode k plays seeds[k], whichever episodes are played
    done = recorder.finished_episodes(mission) if recorder else {}
    kept = [done[s] for s in seeds if s in done]
    missing = [s for s in seeds if s not in done]
    if kept:
        print(f"{recorder.run_dir}: {len(kept)} of {len(seeds)} episodes of {name} on {mission} recorded by an "
              f"earlier run of it are kept; playing the {len(missing)} missing", flush=True)

    mode = replays.mode_of(cfg.evaluation.get("replays"), str(cfg.pipeline.name))
    replay_dir = replays.mission_dir(recorder.run_dir, mission) if recorder and mode != "none" else None

    def record(e: dict[str, Any]) -> dict[str, Any]:
        return {"policy": name, "mission": mission, **e, "episode": index[e["seed"]]}

    played = play(
        env_cfg, policy, missing, int(cfg.evaluation.num_envs),
        deterministic=bool(cfg.evaluation.deterministic),
        on_episode=(lambda e: recorder.episode(record(e))) if recorder else None,
        progress=cfg.evaluation.progress,
        success_threshold=float(cfg.mission.success_threshold) if cfg.mission.source == "catalog" else None,
        build_seed=seeds[0] if seeds else None,
        replay_dir=replay_dir,
    ) if missing else []
    episodes = sorted([*kept, *(record(e) for e in played)], key=lambda e: e["episode"])
    if replay_dir is not None:
        replays.finish(recorder.run_dir, mission, episodes, mode, keep_replays(episodes) if keep_replays else None)
    return {"policy": name, "mission": mission, "seed": int(cfg.seed), **summarize_episodes(episodes)}


def missions_of(cfg: DictConfig) -> tuple[list[DictConfig], list[DictConfig]]:
    """(training missions, evaluation missions) as mission configs. The run's own `mission` keeps its command
    line overrides (mission.max_steps=...); other names load from the catalog or an installed cogames game."""

    def load(name: str) -> DictConfig:
        return cfg.mission if name == cfg.mission.name else load_mission(name)

    train_names = list(cfg.training.missions) if cfg.training.missions is not None else [cfg.mission.name]
    eval_names = list(cfg.training.eval_missions) if cfg.training.eval_missions is not None else train_names
    for key, names in (("missions", train_names), ("eval_missions", eval_names)):
        if not names:
            raise DAFError(f"training.{key}=[] is invalid: list at least one mission, or null for the default")
    return [load(n) for n in train_names], [load(n) for n in eval_names]


def validate_train_run(cfg: DictConfig) -> tuple[list[DictConfig], list[DictConfig]]:
    """Every check that needs no environment, so a mistake fails before any work (DAFError, one line).
    Returns the training and evaluation missions."""
    validate_evaluation(cfg.evaluation)
    missions, evals = missions_of(cfg)
    agents = {int(m.num_agents) for m in missions}
    if len(agents) > 1:
        raise DAFError(
            f"training.missions={[m.name for m in missions]} mix agent counts {sorted(agents)}: missions trained "
            "together share one set of environment buffers, so they need the same number of agents"
        )
    validate_training(cfg.training, agents.pop())
    return missions, evals
