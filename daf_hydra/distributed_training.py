"""Distributed (data-parallel) training: one training over `nodes x tasks_per_node` ranks.

    python -m daf_hydra.run pipeline=train policy=lstm training.distributed.tasks_per_node=2          # local ranks
    python -m daf_hydra.run -m pipeline=train policy=lstm training.distributed.nodes=2 \\
        training.distributed.tasks_per_node=1 hydra/launcher=slurm                                    # one SLURM job

    from daf_hydra.distributed_training import daf_launch_distributed_training
    job = daf_launch_distributed_training(policy_class_path="lstm", mission_name="training_facility_1",
                                          num_machines=2, steps_per_machine=200_000)
    job.status(); job.monitor_memory(threshold_gb=8, cancel=True); checkpoint = job.wait_for_completion()

Every rank steps its own environments (seeded per rank) and trains `training.total_steps` agent steps with the
same PuffeRL loop as a single process (daf_hydra.training.train); the network is wrapped in
DistributedDataParallel, which broadcasts rank 0's initial weights and averages gradients in every backward
pass, so all ranks hold the same weights throughout (checked at the end: the ranks' weight digests must agree).
Rank 0 runs the whole train pipeline (environment check, records, checkpoints, evaluation); ranks > 0 only train
and write nothing but a small memory file (`.distributed/rank_<r>.json`, read by `monitor_memory`). metrics.json's
`training` counts what all ranks trained (`agent_steps`, `sps`: sums over ranks, so "trained N agent steps" is the
training's size) and holds each rank's own numbers under `ranks`; curve.jsonl is rank 0's.

Where the ranks come from:
- inside a SLURM job of `nodes x tasks_per_node` tasks (`hydra/launcher=slurm` takes its nodes and tasks from
  `training.distributed`; `backend="slurm"` here): every task runs the pipeline function, submitit's
  `TorchDistributedEnvironment` gives its rank and the master address. Hydra's launcher returns rank 0's result;
  ranks > 0 write no `.hydra/` files and log to their own submitit output (daf_hydra.launchers);
- anywhere else (nodes must be 1): the run is rank 0 and starts ranks 1.. as local processes on a free port.

Process groups: gloo on CPUs, nccl on CUDA (`training.distributed.backend=auto`). The nccl branch (set the device
to the local rank, pass it to DDP) cannot run on these CPU-only machines and is untested here.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from daf_hydra import slurm_jobs
from daf_hydra.errors import DAFError
from daf_hydra.records import CURVE_FILE, METRICS_FILE, read_jsonl, record_outside_failure
from daf_hydra.runs import missions_of, validate_train_run
from daf_hydra.training import TrainingResult

log = logging.getLogger(__name__)

RANKS_DIR = ".distributed"  # per-rank memory files (hidden: not run records)
MEMORY_EVERY_S = 2.0
BACKENDS = ("slurm", "local")
# What DistributedTrainingJob.status() returns (the documented states; SLURM's many states map onto them).
STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
SLURM_QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
SLURM_SETTLE_S = 30.0
PROGRESS_EVERY_S = 15.0  # wait_for_completion's progress lines
# The train pipeline (orchestrators.train.train_pipeline), handed in by its caller: (cfg, run_dir, train_fn=...)
Pipeline = Callable[..., Any]


def world_size(cfg: DictConfig) -> int:
    d = cfg.training.distributed
    return int(d.nodes) * int(d.tasks_per_node)


@dataclass
class DistributedTrainingResult(TrainingResult):
    """The training over all ranks: `agent_steps` is the sum over ranks, `sps` the steps all ranks trained in this
    run over the slowest rank's wall time (`wall_time_s`); `updates`, `final_checkpoint` and `weights_digest` are
    shared (rank 0's). `ranks` holds each rank's own numbers."""

    world_size: int
    backend: str
    ranks: list[dict[str, Any]]  # per rank: rank, host, pid, agent_steps, updates, wall_time_s, sps, weights_digest


def run_distributed_train(cfg: DictConfig, run_dir: Path, pipeline: Pipeline) -> Any:
    """The train pipeline over `training.distributed`'s ranks, from whichever process this is: a SLURM task of
    a job with as many tasks (its rank), or a plain process (rank 0, which starts the others). `pipeline` is the
    train pipeline, which rank 0 runs with a training stage across the ranks (passed in by the pipeline itself:
    a feature does not import pipelines). Returns rank 0's PipelineResult, None on other ranks."""
    world = world_size(cfg)
    nodes = int(cfg.training.distributed.nodes)
    _refuse_single_run_on_slurm_launcher(world)
    validate_train_run(cfg)  # a mistake fails here, on every rank alike, before any rank waits for another
    tasks = os.environ.get("SLURM_NTASKS") if "SLURM_PROCID" in os.environ else None
    if tasks is not None and int(tasks) == world:
        import submitit

        env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return run_rank(cfg, run_dir, env.rank, world, env.local_rank, "env://", pipeline)
    if tasks is not None and int(tasks) != 1:
        raise DAFError(f"this SLURM job step has {tasks} tasks but training.distributed asks for {world} ranks "
                       f"(nodes={nodes} x tasks_per_node={cfg.training.distributed.tasks_per_node}): launch it with "
                       "hydra/launcher=slurm, which sizes the job from training.distributed")
    if nodes > 1:
        raise DAFError(f"training.distributed.nodes={nodes} needs a SLURM job of {nodes} nodes: run with "
                       "-m hydra/launcher=slurm (or daf_launch_distributed_training(backend='slurm')); "
                       "without SLURM only nodes=1 (several processes on this machine) is possible")
    return _run_local(cfg, run_dir, world, pipeline)


def _refuse_single_run_on_slurm_launcher(world: int) -> None:
    """`hydra/launcher=slurm` without `-m` would silently train on this machine: Hydra launchers run multiruns only."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    if hc.mode == RunMode.RUN and hc.runtime.choices.get("hydra/launcher") == "slurm":
        raise DAFError(f"hydra/launcher=slurm only launches multiruns: add -m to run the {world} ranks as one "
                       "SLURM job (without it they would run as local processes)")


def _run_local(cfg: DictConfig, run_dir: Path, world: int, pipeline: Pipeline) -> Any:
    """This process is rank 0; ranks 1.. are spawned processes on this machine (127.0.0.1, a free port). They are
    ended here if rank 0 fails, and rank 0 fails if one of them does."""
    container = OmegaConf.to_container(cfg, resolve=True)  # `${hydra:...}` resolves only in this process
    port = _free_port()
    ctx = multiprocessing.get_context("spawn")  # fork would copy rank 0's threads and torch state
    children = [ctx.Process(target=_local_rank_main, args=(container, str(run_dir), rank, world, port),
                            name=f"daf-rank-{rank}") for rank in range(1, world)]
    for child in children:
        child.start()
    try:
        result = run_rank(cfg, run_dir, 0, world, 0, f"tcp://127.0.0.1:{port}", pipeline)
        for child in children:
            child.join(timeout=float(cfg.training.distributed.timeout_s))
            if child.exitcode != 0:
                raise RuntimeError(f"rank {child.name.rsplit('-', 1)[1]} (pid {child.pid}) ended with exit code "
                                   f"{child.exitcode} after rank 0 finished")
        return result
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join(timeout=10)


def _local_rank_main(container: dict[str, Any], run_dir: str, rank: int, world: int, port: int) -> None:
    """A spawned local rank > 0 (module-level: spawn pickles it by name)."""
    from daf_hydra.training import TrainingInterrupted

    try:
        run_rank(OmegaConf.create(container), Path(run_dir), rank, world, 0, f"tcp://127.0.0.1:{port}")
    except TrainingInterrupted:  # Ctrl-C reached every rank: rank 0 reports it and its checkpoint
        print(f"rank {rank}: interrupted", file=sys.stderr)
    # This rank has nothing left to write (rank 0 holds the records). Skipping the interpreter's finalization
    # avoids a rare abort there ("terminate called without an active exception", exit code -6): torch/gloo C++
    # threads torn down after Python's modules are gone, which made a finished training look failed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def resolve_backend(cfg: DictConfig) -> str:
    backend = str(cfg.training.distributed.backend)
    if backend != "auto":
        return backend
    from daf_hydra.device import resolve_device

    return "nccl" if resolve_device(cfg.training.device).startswith("cuda") else "gloo"


def run_rank(cfg: DictConfig, run_dir: Path, rank: int, world: int, local_rank: int, init_method: str,
             pipeline: Optional[Pipeline] = None) -> Any:
    """Join the process group, then rank 0 runs the train `pipeline` and the others train along. Returns rank
    0's PipelineResult, None on other ranks."""
    import torch
    import torch.distributed as dist

    backend = resolve_backend(cfg)
    if backend == "nccl":  # untested here (no GPU): one device per local rank, before any CUDA allocation
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world,
                            timeout=timedelta(seconds=float(cfg.training.distributed.timeout_s)))
    memory = _MemoryReporter(run_dir, rank)
    try:
        wrap = _ddp_wrapper(backend, local_rank)
        if rank == 0:
            assert pipeline is not None, "rank 0 runs the train pipeline"
            return _lead(cfg, run_dir, world, backend, wrap, pipeline)
        _follow(cfg, run_dir, rank, world, backend, wrap)
        return None
    finally:
        memory.stop()
        gc.collect()  # DDP's reducer and its pending gloo work go now, while the process group is still alive
        dist.destroy_process_group()


def _ddp_wrapper(backend: str, local_rank: int) -> Callable[[Any], Any]:
    def wrap(network: Any) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(network, device_ids=[local_rank] if backend == "nccl" else None)
        ddp.forward_eval = network.forward_eval  # PuffeRL's rollout calls it directly: no gradients, no sync
        if hasattr(network, "hidden_size"):
            ddp.hidden_size = network.hidden_size  # PuffeRL sizes its LSTM state from it
        return ddp

    return wrap


def _announce(message: Optional[str]) -> Optional[str]:
    """Rank 0 tells the others whether to train (None) or stop (why); every rank gets the message back."""
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _lead(cfg: DictConfig, run_dir: Path, world: int, backend: str, wrap: Callable[[Any], Any],
          pipeline: Pipeline) -> Any:
    """Rank 0: the train pipeline, whose training stage starts the other ranks and gathers what they did."""
    from daf_hydra.training import train

    started = False

    def train_all(cfg: DictConfig, missions: Sequence[Any], run_dir: Path, recorder: Any) -> TrainingResult:
        nonlocal started
        started = True
        _announce(None)
        mine = train(cfg, missions, run_dir, recorder, rank=0, world_size=world, wrap_network=wrap)
        return _gather(mine, world, backend)

    try:
        result = pipeline(cfg, run_dir, train_fn=train_all)
    except BaseException as exc:
        if not started:  # the others wait at the announcement: tell them rank 0 stopped before training
            _announce(f"rank 0 stopped before training ({type(exc).__name__}: {exc})")
        raise
    if not started:
        _announce("rank 0 had nothing to train")
    return result


def _follow(cfg: DictConfig, run_dir: Path, rank: int, world: int, backend: str, wrap: Callable[[Any], Any]) -> None:
    """Ranks > 0: wait for rank 0's environment check, train along (no records, no checkpoints), report."""
    from daf_hydra.training import train

    stop = _announce(None)
    if stop is not None:  # rank 0 records its own failure; this rank ends quietly so rank 0's error is the job's
        print(f"rank {rank}: {stop}", file=sys.stderr)
        return
    log.info("rank %d of %d: training along rank 0", rank, world)
    missions, _ = missions_of(cfg)
    mine = train(cfg, missions, run_dir, None, rank=rank, world_size=world, wrap_network=wrap)
    _gather(mine, world, backend)


def _gather(mine: TrainingResult, world: int, backend: str) -> DistributedTrainingResult:
    """Every rank's steps and throughput, collected on every rank; fails if the ranks' weights differ (gradient
    averaging did not happen)."""
    import torch.distributed as dist

    own = {"rank": dist.get_rank(), "host": socket.gethostname(), "pid": os.getpid(),
           **{k: v for k, v in mine.to_dict().items() if k not in ("final_checkpoint", "resumed_from")}}
    ranks: list[Any] = [None] * world
    dist.all_gather_object(ranks, own)
    digests = {r["weights_digest"] for r in ranks}
    if len(digests) != 1:
        raise RuntimeError(f"the ranks ended with different weights ({sorted(digests)}): gradients were not "
                           "averaged across ranks")
    slowest = max(float(r["wall_time_s"]) for r in ranks)
    trained = sum(float(r["sps"]) * float(r["wall_time_s"]) for r in ranks)  # by these processes (not resumed-from)
    return DistributedTrainingResult(
        final_checkpoint=mine.final_checkpoint, agent_steps=sum(int(r["agent_steps"]) for r in ranks),
        updates=mine.updates, wall_time_s=slowest, sps=trained / slowest if slowest > 0 else 0.0,
        resumed_from=mine.resumed_from, weights_digest=mine.weights_digest,
        world_size=world, backend=backend, ranks=ranks,
    )


class _MemoryReporter:
    """Writes this rank's resident memory to `<run_dir>/.distributed/rank_<r>.json` every MEMORY_EVERY_S seconds
    (a daemon thread): a file works for ranks on other nodes of a shared filesystem as well as locally."""

    def __init__(self, run_dir: Path, rank: int):
        import psutil

        self.path = Path(run_dir) / RANKS_DIR / f"rank_{rank}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rank, self.process = rank, psutil.Process()
        self._stop = threading.Event()
        self.write()
        self._thread = threading.Thread(target=self._run, name=f"daf-memory-rank-{rank}", daemon=True)
        self._thread.start()

    def write(self) -> None:
        record = {"rank": self.rank, "host": socket.gethostname(), "pid": os.getpid(),
                  "rss_gb": self.process.memory_info().rss / 2**30, "time": time.time()}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.path)

    def _run(self) -> None:
        while not self._stop.wait(MEMORY_EVERY_S):
            self.write()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def read_memory(run_dir: Path) -> dict[int, dict[str, Any]]:
    """The latest memory report of every rank that has written one."""
    out = {}
    for path in sorted((Path(run_dir) / RANKS_DIR).glob("rank_*.json")):
        record = json.loads(path.read_text())
        out[int(record["rank"])] = record
    return out


# --- the Python API ---------------------------------------------------------------------------------------------


def daf_launch_distributed_training(
    policy_class_path: str = "lstm",
    mission_name: str = "training_facility_1",
    num_machines: int = 1,
    steps_per_machine: int = 50_000,
    *,
    tasks_per_machine: int = 1,
    backend: str = "slurm",
    output_dir: Optional[str | Path] = None,
    seed: int = 0,
    device: str = "auto",
    eval_episodes: Optional[int] = None,
    overrides: Sequence[str] = (),
    partition: str = "debug",
    timeout_min: int = 60,
    cpus_per_task: int = 1,
    mem_gb: float = 4,
    slurm_parameters: Optional[dict[str, Any]] = None,
) -> "DistributedTrainingJob":
    """Start one training over `num_machines x tasks_per_machine` ranks and return its handle at once.

    Each machine trains `steps_per_machine` agent steps, split evenly over its tasks. backend="slurm": one SLURM
    job (submitit, nodes=num_machines, tasks_per_node=tasks_per_machine; `slurm_parameters` adds submitit's
    `slurm_*` settings); backend="local": processes on this machine (num_machines must be 1). The config is
    composed from the same overrides the CLI takes and validated before anything starts (DAFError)."""
    from daf_hydra.compose import api_output_dir, compose_config
    from daf_hydra.config import DAFTrainingConfig

    if backend not in BACKENDS:
        raise DAFError(f"backend={backend!r} is invalid: valid backends are {', '.join(BACKENDS)}")
    for key, value in (("num_machines", num_machines), ("tasks_per_machine", tasks_per_machine),
                       ("steps_per_machine", steps_per_machine)):
        if value < 1:
            raise DAFError(f"{key}={value} is invalid: it must be a whole number >= 1")
    if backend == "local" and num_machines != 1:
        raise DAFError(f"num_machines={num_machines} needs backend='slurm': backend='local' runs on this machine only")
    run_dir = api_output_dir(output_dir).resolve()
    spec = DAFTrainingConfig(
        policy_class_path=policy_class_path, missions=[mission_name], seed=seed, device=device,
        num_training_steps=-(-steps_per_machine // tasks_per_machine), eval_episodes=eval_episodes,
        output_dir=str(run_dir),
        overrides=[f"training.distributed.nodes={num_machines}",
                   f"training.distributed.tasks_per_node={tasks_per_machine}", *overrides],
    )
    spec.validate()
    args = spec.cli_overrides()
    cfg = compose_config(args, output_dir=run_dir)
    validate_train_run(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    world = num_machines * tasks_per_machine
    if backend == "local":
        return DistributedTrainingJob.start_local(args, run_dir, world)
    return DistributedTrainingJob.submit_slurm(args, run_dir, world, dict(
        slurm_partition=partition, timeout_min=timeout_min, cpus_per_task=cpus_per_task, mem_gb=mem_gb,
        nodes=num_machines, tasks_per_node=tasks_per_machine, name="daf_distributed_training",
        **(slurm_parameters or {}),
    ))


class DistributedTrainingJob:
    """A running distributed training: its status, progress, cancellation, memory and final checkpoint.

    `status()` is one of STATES:
      PENDING    queued (SLURM), not started yet
      RUNNING    started, including while SLURM ends it
      COMPLETED  ended with rank 0's records and final checkpoint
      FAILED     ended without them: an error, a time or memory limit, a lost node, or a SLURM job that could
                 never start on this cluster (cancelled at once by daf_hydra; the error says which limit)
      CANCELLED  by `cancel()` (or `monitor_memory(cancel=True)`), or by someone's `scancel`
    """

    def __init__(self, run_dir: Path, backend: str, world: int, *, job: Any = None,
                 process: Optional[subprocess.Popen] = None):
        self.run_dir, self.backend, self.world = Path(run_dir), backend, world
        self._job, self._process = job, process
        self._cancelled = False
        self._refused: Optional[str] = None  # why SLURM could never start it
        self._began = time.monotonic()
        self._shown: tuple[str, float] = ("", 0.0)  # the last progress line's state and time

    @classmethod
    def submit_slurm(cls, args: Sequence[str], run_dir: Path, world: int,
                     parameters: dict[str, Any]) -> "DistributedTrainingJob":
        """The CLI itself in every task of one SLURM job (each task is one rank: run_distributed_train), so the
        API and the command line take the same road. A request sbatch refuses raises DAFError in one line."""
        import contextlib
        import io

        import submitit

        executor = submitit.AutoExecutor(folder=run_dir / ".submitit" / "%j", cluster="slurm")
        executor.update_parameters(**parameters)
        command = submitit.helpers.CommandFunction(
            [sys.executable, "-m", "daf_hydra.run", *args, f"hydra.run.dir={run_dir}"], cwd=os.getcwd())
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's multi-line error itself
                job = executor.submit(command)
        except submitit.core.utils.FailedJobError as exc:
            asked = " ".join(f"{k}={v}" for k, v in parameters.items() if k != "name")
            line = f"sbatch refused {asked}: {slurm_jobs.sbatch_refusal(str(exc))}"
            record_outside_failure(run_dir, line)
            raise DAFError(line) from None
        print(f"distributed training: SLURM job {job.job_id} of {world} ranks, run directory {run_dir}", flush=True)
        return cls(run_dir, "slurm", world, job=job)

    @classmethod
    def start_local(cls, args: Sequence[str], run_dir: Path, world: int) -> "DistributedTrainingJob":
        """The CLI itself in a new session (so `cancel` can end all its ranks by their process group)."""
        out = run_dir / RANKS_DIR / "launcher.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w") as f:
            process = subprocess.Popen([sys.executable, "-m", "daf_hydra.run", *args, f"hydra.run.dir={run_dir}"],
                                       stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        print(f"distributed training: process {process.pid} of {world} ranks, run directory {run_dir} "
              f"(log {out})", flush=True)
        return cls(run_dir, "local", world, process=process)

    @property
    def job_id(self) -> str:
        """The SLURM job id, or the local launcher's process id."""
        return str(self._job.job_id) if self._job is not None else str(self._process.pid)

    def status(self) -> str:
        """One of STATES (see the class doc). A SLURM job pending for a reason that can never clear on this cluster
        is cancelled here, its run recorded failed, and it reads FAILED."""
        if self._job is None:
            code = self._process.poll()
            if code is None:
                return "RUNNING"
            return "COMPLETED" if code == 0 else "CANCELLED" if self._cancelled else "FAILED"
        return self._documented(self._slurm_state()[0])

    def _documented(self, slurm_state: str) -> str:
        """SLURM's state as one of STATES."""
        if self._refused is not None:
            return "FAILED"
        if slurm_state in SLURM_QUEUED:
            return "PENDING"
        if slurm_state in slurm_jobs.ACTIVE:
            return "RUNNING"
        return slurm_state if slurm_state in ("COMPLETED", "CANCELLED") else "FAILED"  # TIMEOUT, OUT_OF_MEMORY...

    def _slurm_state(self) -> tuple[str, str]:
        """SLURM's own state and pending reason (squeue while it lists the job, then accounting); refuses a job
        that can never start (see status)."""
        queued = slurm_jobs.queue([self.job_id]).get(self.job_id)
        if queued is None:  # ended; "COMPLETING" while accounting has not caught up
            return slurm_jobs.accounted_state(self.job_id) or "COMPLETING", ""
        if queued.state == "PENDING" and self._refused is None and slurm_jobs.may_never_start(queued.reason):
            reason = slurm_jobs.unschedulable_reason(self.job_id)
            if reason is not None:
                self._refused = f"{reason}: cancelled"
                slurm_jobs.cancel(self.job_id)
                record_outside_failure(self.run_dir, self._refused)
                print(f"error: distributed training: {self._refused}", file=sys.stderr, flush=True)
        return queued.state, "" if queued.reason == "None" else queued.reason

    def done(self) -> bool:
        if self._job is not None:
            return self._refused is not None or self._job.done()
        return self._process.poll() is not None

    def cancel(self) -> None:
        """End every rank now (scancel, or SIGTERM to the local process group). Only periodic checkpoints survive;
        metrics.json records the run as failed (here for local runs, which are gone at once; by
        `wait_for_completion` for SLURM jobs, once SLURM has ended them)."""
        self._cancelled = True
        if self._job is not None:
            self._job.cancel(check=True)
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)  # the session started for this run: all its ranks
        self._process.wait(timeout=30)
        record_outside_failure(self.run_dir, f"distributed training {self.job_id} CANCELLED")

    def wait_for_completion(self, timeout_s: Optional[float] = None, poll_s: float = 1.0) -> Path:
        """Block until the run ends, printing a progress line on every change of state and every
        PROGRESS_EVERY_S seconds; return rank 0's final checkpoint, or raise DAFError saying in one line why there
        is none (a SLURM job that can never start raises within seconds)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.done():
            self.progress()
            if self._refused is not None:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise DAFError(f"distributed training {self.job_id} still {self.status()} after {timeout_s:g} s "
                               f"(run directory {self.run_dir})")
            time.sleep(poll_s)
        if self._refused is not None:
            raise DAFError(f"distributed training: {self._refused} (run directory {self.run_dir})")
        if self._job is not None:
            # the results are written before the tasks exit: wait (briefly) until SLURM, too, says the job ended
            settle = time.monotonic() + SLURM_SETTLE_S
            while self.status() in ("PENDING", "RUNNING") and time.monotonic() < settle:
                time.sleep(poll_s)
            self.progress(force=True)
            return self._slurm_checkpoint()
        self.progress(force=True)
        return self._local_checkpoint()

    def progress(self, force: bool = False) -> None:
        """Print where the training is (state, SLURM's pending reason, elapsed time, ranks up, rank 0's update and
        the agent steps of all ranks) when the state changed, PROGRESS_EVERY_S seconds passed, or `force`."""
        if self._job is not None:
            slurm_state, reason = self._slurm_state()
            state = self._documented(slurm_state)
        else:
            state, reason = self.status(), ""
        now = time.monotonic()
        if not force and state == self._shown[0] and now - self._shown[1] < PROGRESS_EVERY_S:
            return
        self._shown = (state, now)
        minutes, seconds = divmod(int(now - self._began), 60)
        parts = [f"{state}{f' ({reason})' if reason else ''}, {minutes}:{seconds:02d}"]
        ranks = len(read_memory(self.run_dir)) if state == "RUNNING" else 0
        if ranks:
            parts.append(f"{ranks}/{self.world} ranks up")
        curve = self.run_dir / CURVE_FILE
        last = read_jsonl(curve)[-1:] if curve.is_file() else []
        if last:  # rank 0's record; every rank trains as many steps per update
            parts.append(f"update {last[0]['update']}, {last[0]['agent_steps'] * self.world:,} agent steps "
                         f"over {self.world} ranks")
        print(f"distributed training {self.job_id}: {'; '.join(parts)}", flush=True)

    def _slurm_checkpoint(self) -> Path:
        import submitit

        try:
            self._job.task(0).result()
        except submitit.core.utils.UncompletedJobError as exc:
            state = self._slurm_state()[0]  # SLURM's own (TIMEOUT, OUT_OF_MEMORY...): says more than FAILED
            reason = self._recorded_error() or str(exc).strip().splitlines()[-1]
            # cancelled, timed out, out of memory: no record of its own (a record rank 0 wrote is kept)
            record_outside_failure(self.run_dir, f"SLURM job {self.job_id} {state}")
            raise DAFError(f"distributed training (SLURM job {self.job_id}) {state}: {reason} "
                           f"(run directory {self.run_dir})") from None
        return self._recorded_checkpoint()

    def _local_checkpoint(self) -> Path:
        code = self._process.returncode
        if code != 0:
            if self._cancelled:
                raise DAFError(f"distributed training {self.job_id} was cancelled (run directory {self.run_dir})")
            log_file = self.run_dir / RANKS_DIR / "launcher.log"
            tail = log_file.read_text().strip().splitlines()[-1:] if log_file.is_file() else []
            record_outside_failure(self.run_dir, f"distributed training {self.job_id} exited with code {code}")
            reason = self._recorded_error() or (tail[0] if tail else f"exit code {code}")
            raise DAFError(f"distributed training {self.job_id} failed: {reason} (log {log_file})")
        return self._recorded_checkpoint()

    def _recorded_checkpoint(self) -> Path:
        """Rank 0's final checkpoint, as its metrics.json records it."""
        return Path(json.loads((self.run_dir / METRICS_FILE).read_text())["final_checkpoint"])

    def _recorded_error(self) -> Optional[str]:
        path = self.run_dir / METRICS_FILE
        return json.loads(path.read_text()).get("error") if path.is_file() else None

    def monitor_memory(self, threshold_gb: float, cancel: bool = False) -> dict[int, float]:
        """Every rank's latest resident memory (GB, from the files the ranks write every few seconds); warns when
        one exceeds `threshold_gb` and, with cancel=True, cancels the job. Call it periodically while the job runs."""
        readings = {rank: float(r["rss_gb"]) for rank, r in read_memory(self.run_dir).items()}
        over = {rank: gb for rank, gb in readings.items() if gb > threshold_gb}
        if over:
            listed = ", ".join(f"rank {rank}: {gb:.2f} GB" for rank, gb in sorted(over.items()))
            action = "cancelling it" if cancel else "pass cancel=True to cancel it"
            warnings.warn(f"distributed training {self.job_id} is over {threshold_gb:g} GB ({listed}): {action}",
                          ResourceWarning, stacklevel=2)
            if cancel and not self.done():
                self.cancel()
        return readings
