"""The train pipeline: environment check -> training -> checkpoint -> evaluation.

    python -m daf_hydra.run pipeline=train policy=lstm mission=training_facility_1 training.total_steps=1000000
    python -m daf_hydra.run policy=lstm -m lr=1e-4,1e-3
    python -m daf_hydra.run policy=lstm training.resume=true hydra.run.dir=<the killed run's directory>

A policy with nothing to train (baseline, random, noop: `policy.network()` is None) skips training and checkpoint
and is only evaluated. Evaluation is the evaluate pipeline's own code (`evaluate_policy`, episodes.jsonl) on each
of `training.eval_missions`, playing the final checkpoint bundle. metrics.json's summary keys (mean_reward, ...)
average over those missions, so `objective.metric` (default mean_reward) returns the mean evaluation reward
to Hydra's sweepers. The run directory gets run.json, curve.jsonl, checkpoints/, episodes.jsonl,
check.json, metrics.json (status, final checkpoint, evaluation) and pipeline.json (stages).
"""

from __future__ import annotations

import copy
import sys
import time
from datetime import datetime, timezone
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from omegaconf import DictConfig

from daf_hydra.errors import DAFError, Pruned
from daf_hydra.missions import build_env
from daf_hydra.results import FAILED, PARTIAL, SUCCESS, PipelineResult
from daf_hydra.identity import policy_name
from daf_hydra.records import EPISODES_FILE, VALIDATION_FILE, RunRecorder, read_jsonl, write_json_atomic
from daf_hydra.compose import to_container
from daf_hydra.config import TRAIN_AVERAGED
from daf_hydra.runs import evaluate_policy, start_run, validate_train_run, validation_seeds

PIPELINE = "train"
STAGES = ("environment_check", "training", "checkpoint", "evaluation")
# What a train run writes besides its records: cleared with them when it is started over (restart=true).
OWNED = ("checkpoints", "check.json", "pipeline.json")


def run_train(cfg: DictConfig, run_dir: Path) -> Optional[PipelineResult]:
    """`pipeline=train` from the CLI: run the pipeline, return its result (its outputs hold the metrics the
    objective is taken from). Ctrl-C exits with status 130 once the checkpoint is written (raising would print a
    traceback, and end a multirun just the same)."""
    from daf_hydra.distributed_training import run_distributed_train, world_size
    from daf_hydra.training import TrainingInterrupted

    try:
        # training.distributed asks for several ranks: this process is one of them (see distributed_training);
        # rank 0 runs this pipeline with a training stage that trains across the ranks
        result = run_distributed_train(cfg, run_dir, train_pipeline) if world_size(cfg) > 1 \
            else train_pipeline(cfg, run_dir)
    except TrainingInterrupted as exc:
        print(f"training {exc}\ncontinue with: training.resume=true hydra.run.dir={run_dir}", file=sys.stderr)
        raise SystemExit(130) from None
    return result  # None on a rank > 0 of a distributed training: rank 0 evaluates and returns the objective


def train_pipeline(cfg: DictConfig, run_dir: Path, result: Optional[PipelineResult] = None,
                   train_fn: Optional[Callable[..., Any]] = None) -> PipelineResult:
    """The pipeline the CLI and the Python API both run. `result` is filled in as stages finish, so a caller
    that passes one keeps it when this raises; the records are written either way (metrics.json,
    pipeline.json) before an exception leaves. `train_fn(cfg, missions, run_dir, recorder)` replaces
    daf_hydra.training.train (distributed training's rank 0 trains along with the other ranks)."""
    from daf_hydra.training import TrainingInterrupted, latest_checkpoint, train

    train_fn = train_fn or train

    begin = time.time()
    result = result or PipelineResult(PIPELINE, FAILED)
    result.timestamp = datetime.fromtimestamp(begin, timezone.utc)
    result.outputs["run_dir"] = str(run_dir)
    recorder, device = start_run(cfg, run_dir, PIPELINE, OWNED)
    if recorder.completed is not None:  # completed earlier in run_dir: its recorded metrics, nothing run
        result.status = SUCCESS
        result.stages_completed = list(STAGES) if recorder.completed.get("trained") \
            else ["environment_check", "evaluation"]
        result.outputs.update(recorder.completed, completed_earlier=True)
        return result
    name = policy_name(to_container(cfg.policy))
    metrics: dict[str, Any] = {"policy": name}
    try:
        with _stage(result, "environment_check"):
            missions, evals = validate_train_run(cfg)
            trainable = _has_network(cfg, missions[0])
            _check_environment(cfg, missions, evals, run_dir, trainable)
            if trainable and not cfg.training.resume and latest_checkpoint(run_dir) is not None:
                raise DAFError(f"{run_dir} already holds checkpoints: pass training.resume=true to continue that "
                               "training, or choose another hydra.run.dir")
        metrics["trained"] = trainable
        checkpoint = None
        if trainable:
            recorder.truncate(EPISODES_FILE, lambda r: False)  # a resumed run evaluates afresh
            validation = Validation(cfg, evals, device, recorder) if cfg.training.validate_every else None
            with _stage(result, "training"):
                if validation is None:
                    trained = train_fn(cfg, missions, run_dir, recorder)
                else:
                    if train_fn is not train:
                        raise DAFError(f"training.validate_every={cfg.training.validate_every} is not supported with "
                                       "distributed training: set training.validate_every=null")
                    trained = train(cfg, missions, run_dir, recorder, validate=validation)
            checkpoint = trained.final_checkpoint
            metrics.update(training=trained.to_dict(), final_checkpoint=str(checkpoint))
            result.outputs.update(final_checkpoint=str(checkpoint), training=trained.to_dict())
            with _stage(result, "checkpoint"):
                _verify_checkpoint(checkpoint, trained.weights_digest, missions[0])
            if validation is not None and validation.best is not None:  # evaluate the best, not the last
                checkpoint = Path(validation.best["checkpoint"])
                metrics.update(best_checkpoint=str(checkpoint), best_validation=validation.best)
                result.outputs.update(best_checkpoint=str(checkpoint), best_validation=validation.best)
        else:
            reason = f"policy {name!r} has nothing to train (policy.network() is None): evaluating only"
            print(reason)
            result.outputs["skipped"] = {"training": reason, "checkpoint": reason}
        with _stage(result, "evaluation"):
            evaluation = evaluate_missions(cfg, evals, checkpoint, device, recorder, name)
    except Pruned as exc:  # the sweep's pruner: recorded as pruned, with the validations that decided it
        result.status = PARTIAL
        result.errors.append(f"pruned: {exc}")
        result.total_time_seconds = time.time() - begin
        recorder.prune(str(exc), metrics)
        result.write(run_dir)
        raise
    except BaseException as exc:
        if isinstance(exc, TrainingInterrupted):
            metrics["final_checkpoint"] = str(exc.checkpoint)
            result.outputs["final_checkpoint"] = str(exc.checkpoint)
        result.status = PARTIAL if "checkpoint" in result.stages_completed else FAILED
        result.total_time_seconds = time.time() - begin
        recorder.fail(exc, metrics)
        result.write(run_dir)
        raise
    summary = _summary(cfg, name, evaluation)
    metrics.update(summary, evaluation=evaluation, objective=summary["mean_reward"])  # as the evaluate pipeline's
    result.outputs.update(summary, evaluation=evaluation, objective=summary["mean_reward"])  # the objective's source
    result.status = SUCCESS
    result.total_time_seconds = time.time() - begin
    recorder.complete(metrics)
    result.write(run_dir)
    _report(name, metrics, run_dir)
    return result


class Validation:
    """Plays each checkpoint training hands over on the validation seeds (runs.validation_seeds: the same for every
    run and trial, apart from the evaluation's) of every evaluation mission, records it (validation.jsonl), keeps
    the best, and reports it to the run's sweep trial, if any: raises Pruned when its pruner says stop.

    The value is `objective.metric` when it is an episode summary key (mean_reward, success_rate, ...), else
    mean_reward, averaged over the missions; `best` is the best record so far (the checkpoint the run's
    evaluation then plays)."""

    def __init__(self, cfg: DictConfig, missions: list[DictConfig], device: str, recorder: RunRecorder):
        self.cfg = copy.deepcopy(cfg)
        self.cfg.evaluation.progress = False
        self.missions, self.device, self.recorder = missions, device, recorder
        metric, direction = cfg.objective.metric, cfg.objective.direction
        single = isinstance(metric, str) and metric in TRAIN_AVERAGED
        self.metric = str(metric) if single else "mean_reward"
        self.maximize = str(direction) != "minimize" if single else True
        # a resumed run keeps the validations its checkpoint holds (training truncates the rest)
        self.records = read_jsonl(recorder.run_dir / VALIDATION_FILE)

    @property
    def best(self) -> Optional[dict[str, Any]]:
        scored = [r for r in self.records if r.get("value") is not None]
        if not scored:
            return None
        return (max if self.maximize else min)(scored, key=lambda r: r["value"])

    def __call__(self, bundle: Path, curve: dict[str, Any]) -> None:
        from daf_hydra.studies import active

        seeds = validation_seeds(self.cfg)
        per_mission = {}
        for mission in self.missions:
            sub = copy.deepcopy(self.cfg)
            sub.mission, sub.policy.data_path = mission, str(bundle)
            summary = evaluate_policy(sub, self.device, None, trained=True, seeds=seeds)
            per_mission[str(mission.name)] = summary.get(self.metric)
        values = [v for v in per_mission.values() if v is not None]
        value = float(sum(values) / len(values)) if len(values) == len(per_mission) else None
        step = len(self.records) + 1
        record = {"validation": step, "update": curve["update"], "agent_steps": curve["agent_steps"],
                  "checkpoint": str(bundle), "metric": self.metric, "value": value, "episodes": len(seeds),
                  "by_mission": per_mission}
        self.records.append(record)
        self.recorder.validation(record)
        shown = "-" if value is None else f"{value:.3f}"
        print(f"validation {step}: {self.metric} {shown} over {len(seeds)} episodes at agent step "
              f"{curve['agent_steps']:,} ({bundle.name})", flush=True)
        link = active()
        if link is not None and value is not None and link.report(value, step):
            raise Pruned(f"pruned by the sweep's {link.pruner_name} pruner at validation {step} (agent step "
                         f"{curve['agent_steps']:,}): {self.metric} {value:.4g}")


@contextmanager
def _stage(result: PipelineResult, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        result.stages_failed.append(name)
        result.errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        raise
    result.stages_completed.append(name)


def _has_network(cfg: DictConfig, mission: DictConfig) -> bool:
    """Whether the policy has something to train: built once for the first training mission, on the CPU."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.policies import loading

    pei = PolicyEnvInterface.from_mg_cfg(build_env(mission))
    resolved = loading.resolve(cfg.policy.class_path, cfg.policy.data_path, dict(cfg.policy.kwargs))
    return loading.instantiate(resolved, pei, "cpu").network() is not None


def _check_environment(cfg: DictConfig, missions: list[DictConfig], evals: list[DictConfig], run_dir: Path,
                       trainable: bool) -> None:
    """The shared environment check (check.json); training also needs pufferlib's compiled extension."""
    from daf_hydra.environment_checks import daf_check_environment

    unique = list({m.name: m for m in [*missions, *evals]}.values())
    check = daf_check_environment(missions=unique, policies=[cfg.policy.class_path], output_dir=run_dir,
                                  device=str(cfg.training.device))
    write_json_atomic(run_dir / "check.json", check.to_dict())
    problems = list(check.errors)
    if trainable:
        problems += [f"{c.name}: {c.detail}" for c in check.checks if c.name.startswith("pufferlib") and not c.ok]
    if problems:
        raise DAFError(f"environment check failed: {'; '.join(problems)}")


def _verify_checkpoint(bundle: Path, digest: str, mission: DictConfig) -> None:
    """The final bundle must load through the same loader evaluation uses and hold exactly the trained weights."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    from daf_hydra.policies import loading
    from daf_hydra.training import weights_digest

    pei = PolicyEnvInterface.from_mg_cfg(build_env(mission))
    policy = loading.instantiate(loading.resolve(str(bundle)), pei, "cpu")
    loaded = weights_digest(policy.network())
    if loaded != digest:
        raise RuntimeError(f"checkpoint {bundle} holds weights {loaded}, not the trained weights {digest}")


def evaluate_missions(cfg: DictConfig, missions: list[DictConfig], checkpoint: Optional[Path], device: str,
                      recorder: RunRecorder, name: str) -> dict[str, dict[str, Any]]:
    """The evaluate pipeline's `evaluate_policy` on each mission, playing `checkpoint` (None: the policy as
    configured) under the run's policy `name`; one summary per mission name. A trained checkpoint plays the
    evaluation seeds every arm and replicate plays (runs.evaluation_seeds)."""
    out = {}
    for mission in missions:
        sub = copy.deepcopy(cfg)
        sub.mission = mission
        if checkpoint is not None:
            sub.policy.data_path = str(checkpoint)
        out[str(mission.name)] = evaluate_policy(sub, device, recorder, name=name, trained=checkpoint is not None)
    return out


def _summary(cfg: DictConfig, name: str, evaluation: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Top-level metrics shaped like the evaluate pipeline's, so every reader of runs reads train runs too: with
    one evaluation mission, its summary; with several, `mission` names them all (a+b), each summary key is
    averaged over them and episodes are summed."""
    if len(evaluation) == 1:
        return dict(next(iter(evaluation.values())))
    out: dict[str, Any] = {"policy": name, "mission": "+".join(evaluation), "seed": int(cfg.seed),
                           "episodes": sum(s["episodes"] for s in evaluation.values())}
    for key in TRAIN_AVERAGED:
        values = [s.get(key) for s in evaluation.values()]
        out[key] = None if any(v is None for v in values) else float(sum(values) / len(values))
    return out


def _report(name: str, metrics: dict[str, Any], run_dir: Path) -> None:
    training = metrics.get("training")
    if training:
        print(f"{name}: trained {training['agent_steps']:,} agent steps, {training['updates']} updates "
              f"({training['sps']:,.0f} SPS) -> {metrics['final_checkpoint']}")
    for mission, s in metrics["evaluation"].items():
        print(f"{name} on {mission}: mean reward {s['mean_reward']:.2f} +- {s['stderr_reward']:.2f} "
              f"(s.e.) over {s['episodes']} episodes")
    if len(metrics["evaluation"]) > 1:
        print(f"{name} on {metrics['mission']}: mean reward {metrics['mean_reward']:.2f} (mission average)")
    print(f"-> {run_dir}")
