"""Train a policy with PPO: PufferLib's PuffeRL collects rollouts and updates the network, this module owns the rest.

The loop, one iteration per PPO update (CleanRL-style):

    trainer.evaluate()   # collect num_envs x agents x bptt_horizon agent steps (env_workers: where envs step)
    trainer.train()      # update_epochs passes over them in minibatches
    record one curve.jsonl line; every checkpoint_interval updates, and at the end, write a checkpoint bundle

PuffeRL is written as a program, not a library; what it would decide for the process we run in is taken back:
- importing `pufferlib.pufferl` replaces the SIGINT handler with `os._exit(0)`, turns every RuntimeWarning into an
  exception process-wide and installs rich tracebacks: `import_pufferl` undoes all three;
- it logs on a 0.25 s wall clock (records would depend on speed, and DDP ranks would issue mismatched
  all_reduces): every update is recorded here instead;
- its `Utilization` monitor is a non-daemon thread that keeps a failed process alive forever: stopped at once;
- its dashboard, logger and `model_*.pt` checkpoints: off; checkpoints are bundle directories written here.

Ctrl-C asks the loop to stop after the current update; it then writes a checkpoint and raises
`TrainingInterrupted` (a second Ctrl-C interrupts at once). `training.resume=true` continues from the run
directory's last checkpoint (weights, optimizer, learning-rate schedule, update count, torch RNG).

Reproducibility: torch (initial weights, action sampling, minibatch order) is seeded with `seed + 1000 * rank`;
each environment slot draws its maps and episode seeds from its own stream of (seed, rank, slot, first update),
and PufferLib's worker backend serves the environment halves in a fixed order, so the same config and seed give
the same curve and weights, with or without workers, for the same `vec_workers` and `torch_threads` (another
worker count changes how actions are batched and drawn: another, equally valid, run).

Recurrent networks that declare `carries_state` (daf_hydra's `lstm`) keep each agent's LSTM state through its
whole episode in training, as evaluation does (daf_hydra.recurrent_state); PuffeRL's own rule (zeroed every
`bptt_horizon` steps) remains for other recurrent networks (mettagrid_lstm).

Distributed training plugs in through `rank`/`world_size` (seeds differ per rank, only rank 0 records and
checkpoints) and `wrap_network` (e.g. DistributedDataParallel; the wrapper must expose the network's
`forward_eval` and `hidden_size`). Checkpoints always hold the unwrapped network's weights.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from daf_hydra import env_workers
from daf_hydra.device import resolve_device
from daf_hydra.errors import DAFError
from daf_hydra.evaluation import seeded_env
from daf_hydra.missions import build_env
from daf_hydra.policies import loading
from daf_hydra.records import CURVE_FILE, VALIDATION_FILE, RunRecorder

CHECKPOINTS_DIR = "checkpoints"
WEIGHTS_FILE = "weights.pt"
TRAINER_STATE_FILE = "trainer_state.pt"
RANK_SEED_STRIDE = 1000
PROGRESS_EVERY_S = 10.0


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training cleanly: a checkpoint of the last finished update was written first."""

    def __init__(self, checkpoint: Optional[Path], agent_steps: int):
        super().__init__(f"interrupted at agent step {agent_steps:,}; checkpoint {checkpoint or 'on rank 0'}")
        self.checkpoint = checkpoint
        self.agent_steps = agent_steps


@dataclass
class TrainingResult:
    final_checkpoint: Optional[Path]  # None on ranks > 0 (only rank 0 writes checkpoints)
    agent_steps: int
    updates: int
    wall_time_s: float  # this process's training loop (a resumed run counts only its own part)
    sps: float  # agent steps per second of this process's loop
    resumed_from: Optional[Path]
    weights_digest: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["final_checkpoint"] = str(self.final_checkpoint) if self.final_checkpoint else None
        d["resumed_from"] = str(self.resumed_from) if self.resumed_from else None
        return d


def import_pufferl() -> Any:
    """`pufferlib.pufferl`, without the process-wide side effects of importing it (see the module docstring)."""
    if "pufferlib.pufferl" in sys.modules:
        return sys.modules["pufferlib.pufferl"]
    main = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if main else None
    excepthook = sys.excepthook
    try:
        with warnings.catch_warnings():  # restores the filters, dropping its "RuntimeWarning -> error"
            import pufferlib.pufferl as pufferl
    finally:
        sys.excepthook = excepthook
        if main:  # None: a handler not installed from Python; the default is the closest we can restore
            signal.signal(signal.SIGINT, sigint if sigint is not None else signal.SIG_DFL)
    return pufferl


def weights_digest(weights: Any) -> str:
    """sha256 of a network's state_dict, or of a state_dict (names and bytes, `module.` prefixes ignored): equal
    digests, equal weights."""
    state = weights.state_dict() if hasattr(weights, "state_dict") else weights
    h = hashlib.sha256()
    for name, tensor in state.items():
        h.update(name.removeprefix("module.").encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The run's newest complete checkpoint bundle (bundles appear by an atomic rename, so any listed is whole)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    bundles = sorted(p for p in root.glob("update_*") if (p / loading.POLICY_SPEC_FILENAME).is_file())
    return bundles[-1] if bundles else None


def check_compatible(env_cfgs: Sequence[Any], names: Sequence[str]) -> Any:
    """Missions trained together share one set of buffers and one network: same agents, actions, observation shape.
    Returns the first mission's PolicyEnvInterface (what the policy is built for)."""
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface

    peis = [PolicyEnvInterface.from_mg_cfg(c) for c in env_cfgs]
    first = peis[0]
    for name, pei in zip(names[1:], peis[1:]):
        for what, a, b in (
            ("agents", first.num_agents, pei.num_agents),
            ("actions", list(first.action_names), list(pei.action_names)),
            ("observation shape", tuple(first.observation_shape), tuple(pei.observation_shape)),
        ):
            if a != b:
                raise DAFError(
                    f"training.missions cannot mix {names[0]!r} and {name!r}: their {what} differ ({a} vs {b}); "
                    "train together only missions with the same agents, actions and observation shape"
                )
    return first


class _StopOnSigint:
    """First Ctrl-C: ask the loop to stop after the current update. Second: interrupt at once.
    Signals can only be caught in the main thread; elsewhere Ctrl-C keeps its usual meaning."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous: Any = None

    def __enter__(self) -> "_StopOnSigint":
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            self._previous = previous if previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: stopping after this update and writing a checkpoint (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


class _EnvFactory:
    """Builds environment slot `slot` for PufferLib's vector backends (a plain picklable object).

    Every slot has its own seed stream from (seed, rank, slot, first update): a resumed run meets new maps rather
    than replaying the ones it already trained on."""

    def __init__(self, env_cfgs: Sequence[Any], names: Sequence[str], seed: int, rank: int, first_update: int):
        self.env_cfgs, self.names = list(env_cfgs), list(names)
        self.seed, self.rank, self.first_update = seed, rank, first_update

    def __call__(self, slot: int, buf: Any = None, seed: Any = None) -> Any:
        """`buf`: this slot's views of PufferLib's shared buffers; `seed`: PufferLib's, replaced by the stream."""
        import numpy as np

        stream = int(np.random.SeedSequence([self.seed, self.rank, slot, self.first_update]).generate_state(1)[0])
        return _env_class()(self.env_cfgs, self.names, stream % 2**31, slot, buf)


@functools.cache
def _env_class() -> type:
    """The environment class (built on first use: it subclasses mettagrid's PufferLib env, a heavy import)."""
    import numpy as np
    from mettagrid.envs.mettagrid_puffer_env import MettaGridPufferEnv
    from mettagrid.policy.policy_env_interface import PolicyEnvInterface
    from mettagrid.simulator import Simulator

    class MissionRotationEnv(MettaGridPufferEnv):
        """mettagrid's PufferLib environment, rotating through the training missions one episode at a time
        (slot i starts at mission i), each episode on its own map and seed, reporting each finished episode's
        total reward (all agents) and length, per mission too.

        Stepping skips `MettaGridPufferEnv.step`'s per-step decoding of vibe actions and range checks (half the
        environment's time, measured) when no mission has vibe actions: actions come from our own sampler."""

        def __init__(self, env_cfgs: Sequence[Any], names: Sequence[str], stream: int, slot: int, buf: Any):
            # seeded map generators: mettagrid then derives stream, stream+1, ... for successive episodes
            self._cfgs = [seeded_env(c, stream) for c in env_cfgs]
            self._names = list(names)
            self._stream, self._slot, self._episode = stream, slot, 0
            self._mission = self._names[slot % len(self._names)]
            self._lean = not any(PolicyEnvInterface.from_mg_cfg(c).vibe_action_names for c in self._cfgs)
            super().__init__(Simulator(), self._cfgs[slot % len(self._cfgs)], buf=buf, seed=stream)

        def _init_simulation(self) -> Any:
            k = (self._slot + self._episode) % len(self._cfgs)
            self._current_cfg, self._mission = self._cfgs[k], self._names[k]
            self._current_seed = (self._stream + self._episode) % 2**31
            self._episode += 1
            return super()._init_simulation()

        def reset(self, seed: Optional[int] = None) -> Any:
            return super().reset()  # seeds come from our own stream (PufferLib's would repeat maps across slots)

        def step(self, actions: Any) -> Any:
            if self._lean:
                if self._sim.is_done():
                    self._new_sim()
                self._buffers.actions[:] = actions
                self._sim.step()
            else:
                super().step(actions)
            sim, info = self._sim, {}
            if sim.is_done():
                total = float(np.sum(sim.episode_rewards))
                info = {"episode_reward": total, "episode_length": float(sim.current_step),
                        f"mission/{self._mission}": total}
            b = self._buffers
            return b.observations, b.rewards, b.terminals, b.truncations, info

    return MissionRotationEnv


@functools.cache
def _trainer_class() -> type:
    pufferl = import_pufferl()

    class Trainer(pufferl.PuffeRL):
        """PuffeRL's rollout (`evaluate`) and PPO update (`train`); logging, dashboard and checkpoints are ours.

        PuffeRL keeps an update's losses only when it logs, and logs when 0.25 s passed since it last did: a
        clock that always reads "due" makes every update leave its losses in `self.losses`."""

        last_log_time = property(lambda self: float("-inf"), lambda self, value: None)

        def print_dashboard(self, *args: Any, **kwargs: Any) -> None:
            pass

        def mean_and_log(self) -> None:
            return None  # PuffeRL's logger and its dist_sum collectives: our loop records instead

        def save_checkpoint(self) -> None:
            return None  # our loop writes bundle directories

        memory: Any = None  # a recurrent_state.CarriedState, set for networks that carry state (daf_hydra.recurrent_state)

        def evaluate(self) -> Any:
            return self.memory.evaluate(self) if self.memory is not None else super().evaluate()

    return Trainer


def puffer_args(t: Any, *, seed: int, device: str, use_rnn: bool, total_timesteps: int, data_dir: Path
                ) -> dict[str, Any]:
    """Every key PuffeRL reads: the typed `training` config plus what this run derives."""
    keys = (
        "minibatch_size", "max_minibatch_size", "bptt_horizon", "update_epochs", "learning_rate", "anneal_lr",
        "optimizer", "adam_beta1", "adam_beta2", "adam_eps", "gamma", "gae_lambda", "clip_coef", "vf_coef",
        "vf_clip_coef", "ent_coef", "max_grad_norm", "vtrace_rho_clip", "vtrace_c_clip", "prio_alpha",
        "prio_beta0", "precision", "torch_deterministic", "cpu_offload", "compile", "compile_mode",
        "compile_fullgraph", "checkpoint_interval",
    )
    args = {k: getattr(t, k) for k in keys}
    args["learning_rate"] = float(args["learning_rate"])
    return {**args, "seed": seed, "env": "daf_hydra", "device": device, "use_rnn": use_rnn, "batch_size": "auto",
            "total_timesteps": total_timesteps, "data_dir": str(data_dir)}


def train(
    cfg: Any,
    missions: Sequence[Any],
    run_dir: Path,
    recorder: Optional[RunRecorder],
    *,
    rank: int = 0,
    world_size: int = 1,
    wrap_network: Optional[Callable[[Any], Any]] = None,
    validate: Optional[Callable[[Path, dict[str, Any]], None]] = None,
) -> TrainingResult:
    """Train `cfg.policy` on `missions` (mission configs) with the settings of `cfg.training`.

    Writes curve.jsonl through `recorder` and checkpoint bundles under `run_dir/checkpoints` (rank 0 only; pass
    recorder=None on other ranks). With `training.validate_every`, every that many agent steps (rounded up to whole
    updates) and after the last update, rank 0 writes a checkpoint and calls `validate(bundle, curve record)`;
    whatever it raises (errors.Pruned) ends the training. Raises DAFError for a policy with nothing to train or a diverged run, and
    TrainingInterrupted after Ctrl-C (once the checkpoint is written)."""
    import torch

    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in range for world_size {world_size}")
    t = cfg.training
    device = resolve_device(t.device)
    env_cfgs = [build_env(m) for m in missions]
    names = [m.name for m in missions]
    pei = check_compatible(env_cfgs, names)
    lead = rank == 0
    local_ranks = min(world_size, int(t.distributed.tasks_per_node)) if "distributed" in t else 1
    resources = env_workers.resolve(t.vec_workers, t.torch_threads, int(t.num_envs), local_ranks)
    threads = torch.get_num_threads()
    torch.set_num_threads(resources.threads)
    try:
        seed = int(t.seed) + RANK_SEED_STRIDE * rank
        torch.manual_seed(seed)  # initial weights, then action sampling and minibatch order
        resolved = loading.resolve(cfg.policy.class_path, cfg.policy.data_path, dict(cfg.policy.kwargs))
        policy = loading.instantiate(resolved, pei, device)
        network = policy.network()
        if network is None or not hasattr(network, "forward_eval"):
            raise DAFError(f"policy {resolved.class_path!r} has no trainable network: "
                           "train a neural policy such as lstm, mlp, mettagrid_lstm or stateless")
        use_rnn = bool(getattr(policy, "is_recurrent", lambda: False)())

        start = latest_checkpoint(run_dir) if t.resume else None
        state: Optional[dict[str, Any]] = None
        if t.resume and start is None and lead:
            print(f"training.resume: no checkpoint in {run_dir / CHECKPOINTS_DIR}: training from the start")
        if start is not None:
            loading.load_weights(policy, str(start / WEIGHTS_FILE), device)
            state = torch.load(start / TRAINER_STATE_FILE, map_location=device, weights_only=True)
            torch.set_rng_state(state["torch_rng"])
        first_update = int(state["update"]) if state else 0
        if recorder is not None:  # drop updates the checkpoint does not hold (all of them on a fresh start)
            recorder.truncate(CURVE_FILE, lambda r: r.get("update", 0) <= first_update)
            recorder.truncate(VALIDATION_FILE, lambda r: r.get("update", 0) <= first_update)

        factory = _EnvFactory(env_cfgs, names, int(t.seed), rank, first_update)
        vecenv = env_workers.make_vecenv(factory, int(t.num_envs), resources.workers, seed, run_dir)
        try:
            batch = vecenv.num_agents * int(t.bptt_horizon)
            total_updates = max(1, math.ceil(int(t.total_steps) / batch))
            args = puffer_args(t, seed=seed, device=device, use_rnn=use_rnn, total_timesteps=total_updates * batch,
                               data_dir=run_dir / CHECKPOINTS_DIR)
            model = wrap_network(network) if wrap_network is not None else network
            with warnings.catch_warnings():  # PuffeRL opens a float32 autocast context on CPU: a no-op, it warns
                warnings.filterwarnings("ignore", message="In CPU autocast, but the target dtype is not supported")
                trainer = _trainer_class()(args, vecenv, model)
            trainer.utilization.stop()  # its non-daemon monitor thread would keep a failed process alive
            if use_rnn and getattr(network, "carries_state", False):
                from daf_hydra.recurrent_state import CarriedState

                trainer.memory = CarriedState(trainer, int(network.hidden_size))
                trainer.memory.install(trainer)
            if state is not None:
                trainer.optimizer.load_state_dict(state["optimizer"])
                trainer.scheduler.load_state_dict(state["scheduler"])
                trainer.scheduler.T_max = trainer.total_epochs  # total_steps may have been raised since
                trainer.epoch, trainer.global_step = int(state["update"]), int(state["agent_steps"])
            # what a bundle must carry to rebuild this network: the configured kwargs, plus what the policy adds
            # (daf_hydra's token networks: their observation vocabulary)
            init_kwargs = {**resolved.kwargs, **getattr(policy, "bundle_kwargs", dict)()}
            loop = _Loop(trainer, network, t, resolved.class_path, init_kwargs, pei, run_dir,
                         recorder if lead else None, names, lead)
            every = math.ceil(int(t.validate_every) / batch) \
                if t.validate_every and validate is not None and lead else None
            return loop.run(total_updates, start, (every, validate) if every else None)
        finally:
            vecenv.close()
    finally:
        torch.set_num_threads(threads)


class _Loop:
    """The training loop proper: updates, curve records, checkpoints, stop requests."""

    def __init__(self, trainer: Any, network: Any, t: Any, class_path: str, init_kwargs: dict[str, Any], pei: Any,
                 run_dir: Path, recorder: Optional[RunRecorder], names: Sequence[str], lead: bool):
        self.trainer, self.network, self.t = trainer, network, t
        self.class_path, self.init_kwargs, self.pei, self.run_dir = class_path, init_kwargs, pei, run_dir
        self.recorder, self.names, self.lead = recorder, list(names), lead
        self.saved_update = trainer.epoch if trainer.epoch else -1  # a resumed run's checkpoint exists already

    def run(self, total_updates: int, start: Optional[Path],
            validation: Optional[tuple[int, Callable[[Path, dict[str, Any]], None]]] = None) -> TrainingResult:
        tr = self.trainer
        first_steps, began = tr.global_step, time.perf_counter()
        progress = _Progress(total_updates, first_steps, began) if self.lead else None
        events = None
        if self.recorder is not None and self.t.get("tensorboard"):
            from daf_hydra.curve_events import CurveEvents, job_overrides

            events = CurveEvents(self.run_dir, self.recorder.provenance.get("config") or {}, job_overrides())
        with _StopOnSigint() as stop, contextlib.closing(events) if events else contextlib.nullcontext():
            while tr.epoch < total_updates and not stop.requested:
                record = self.update(began)
                if self.recorder is not None:
                    self.recorder.curve(record)
                if events is not None:
                    events.add(record)
                if self.lead and tr.epoch % int(self.t.checkpoint_interval) == 0:
                    self.save()
                if validation is not None and (tr.epoch % validation[0] == 0 or tr.epoch >= total_updates):
                    validation[1](self.save(), record)
                if progress is not None:
                    progress.update(record)
            wall = time.perf_counter() - began
            final = self.save() if self.lead else None
            if stop.requested:
                raise TrainingInterrupted(final, tr.global_step)
        steps = tr.global_step - first_steps
        return TrainingResult(
            final_checkpoint=final, agent_steps=tr.global_step, updates=tr.epoch, wall_time_s=wall,
            sps=steps / wall if wall > 0 else 0.0, resumed_from=start, weights_digest=weights_digest(self.network),
        )

    def update(self, began: float) -> dict[str, Any]:
        """One PPO update; returns its curve record."""
        tr = self.trainer
        t0, steps0 = time.perf_counter(), tr.global_step
        lr = tr.optimizer.param_groups[0]["lr"]  # the rate this update uses (the schedule steps after it)
        tr.evaluate()
        episodes = _episode_summary(tr.stats, self.names)
        tr.stats.clear()
        tr.train()
        self._check_finite(lr)
        now = time.perf_counter()
        return {
            "update": tr.epoch, "agent_steps": tr.global_step, "sps": (tr.global_step - steps0) / (now - t0),
            "wall_time_s": now - began, **episodes, "learning_rate": lr, **{k: float(v) for k, v in tr.losses.items()},
        }

    def _check_finite(self, lr: float) -> None:
        import torch

        if all(bool(torch.isfinite(p).all()) for p in self.network.parameters()):
            return
        raise DAFError(
            f"training diverged at update {self.trainer.epoch} (agent step {self.trainer.global_step:,}): the "
            f"network's weights are no longer finite; lower the learning rate (lr={lr:g}) or training.max_grad_norm"
        )

    def save(self) -> Path:
        """Write the current update as a bundle directory: weights, policy_spec.json (what mettagrid's loader and
        `policy.data_path=<bundle>` read) and trainer_state.pt (what `training.resume` needs)."""
        import torch

        tr = self.trainer
        root = self.run_dir / CHECKPOINTS_DIR
        final = root / f"update_{tr.epoch:06d}"
        if self.saved_update == tr.epoch:
            return final
        tmp = root / f".{final.name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        torch.save(self.network.state_dict(), tmp / WEIGHTS_FILE)
        torch.save(
            {"update": tr.epoch, "agent_steps": tr.global_step, "optimizer": tr.optimizer.state_dict(),
             "scheduler": tr.scheduler.state_dict(), "torch_rng": torch.get_rng_state()},
            tmp / TRAINER_STATE_FILE,
        )
        spec = {
            "class_path": self.class_path,
            "data_path": WEIGHTS_FILE,
            "init_kwargs": self.init_kwargs,
            "policy_env_interface": self.pei.model_dump(mode="json"),
        }
        (tmp / loading.POLICY_SPEC_FILENAME).write_text(json.dumps(spec, indent=2))
        if final.exists():  # a stale bundle of the same update, from a run that was resumed before it
            shutil.rmtree(final)
        os.replace(tmp, final)
        self.saved_update = tr.epoch
        return final


class _Progress:
    """A line on stdout every PROGRESS_EVERY_S seconds and after the last update (wall-clock based: it never
    changes what is recorded)."""

    def __init__(self, total_updates: int, first_steps: int, began: float):
        self.total, self.first_steps, self.began = total_updates, first_steps, began
        self.last = began
        self.rewards: list[float] = []

    def update(self, record: dict[str, Any]) -> None:
        if record["episode_reward"] is not None:
            self.rewards += [record["episode_reward"]] * record["episodes"]
        now = time.perf_counter()
        if now - self.last < PROGRESS_EVERY_S and record["update"] < self.total:
            return
        reward = f"{sum(self.rewards) / len(self.rewards):.2f} ({len(self.rewards)} episodes)" if self.rewards else "-"
        sps = (record["agent_steps"] - self.first_steps) / (now - self.began)
        print(f"update {record['update']}/{self.total}  agent steps {record['agent_steps']:,}  SPS {sps:,.0f}  "
              f"episode reward {reward}  entropy {record.get('entropy', float('nan')):.3f}", flush=True)
        self.last, self.rewards = now, []


def _episode_summary(stats: dict[str, list[Any]], names: Sequence[str]) -> dict[str, Any]:
    """Episodes that finished during this update's rollout: count, mean total reward and length (None if none)."""
    rewards = stats.get("episode_reward", [])
    out: dict[str, Any] = {
        "episodes": len(rewards),
        "episode_reward": float(sum(rewards) / len(rewards)) if rewards else None,
        "episode_length": float(sum(stats["episode_length"]) / len(rewards)) if rewards else None,
    }
    if len(names) > 1:
        out["episode_reward_by_mission"] = {
            n: float(sum(v) / len(v)) for n in names if (v := stats.get(f"mission/{n}"))
        }
    return out
