"""Where training's environments step, and how many torch threads the learner uses.

`training.vec_workers`: 0 steps every environment in the training process (PufferLib's Serial backend); n >= 1
starts n worker processes (PufferLib's Multiprocessing backend), each stepping num_envs / n environments in shared
memory. With an even n the environments form two halves that alternate: while the learner computes the actions of
one half, the workers of the other half step it (double buffering), so simulation and inference overlap on two
cores. `training.torch_threads` sets the learner's intra-op threads. `auto` for either picks from the cores this
process may use (its CPU affinity, so a SLURM allocation counts, divided among local ranks): see `resolve`.

PufferLib's workers have three habits a run must not inherit, handled here: a worker that dies leaves the learner
spinning forever in `recv` (we check the workers while waiting and raise a one-line DAFError); workers outlive a
learner killed with SIGKILL (each asks the kernel to kill it with its parent); Ctrl-C reaches the workers too (they
ignore it: the learner stops them after writing its checkpoint). A worker's own traceback goes to
`env_workers.log` in the run directory, not the terminal.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from daf_hydra.errors import DAFError

AUTO = "auto"
WORKER_LOG = "env_workers.log"
LIVENESS_CHECK_S = 0.2
POLL_S = 0.00005  # wait granularity of workers and learner: far below a step of their environments


@dataclass(frozen=True)
class Resources:
    """What a training process uses: environment worker processes (0: none) and learner torch threads."""

    workers: int
    threads: int


def available_cores() -> int:
    """Cores this process may run on (its affinity mask: a SLURM job's or taskset's allocation, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve(workers: Any, threads: Any, num_envs: int, ranks_here: int = 1) -> Resources:
    """`auto` -> numbers, from the cores per local rank. Up to two cores: everything in the training process (two
    workers on two cores: 1.07x faster than none when the cores are idle, 0.76x when other work shares them,
    bench/train_throughput.py; the safe side is none).
    Three or more: two workers per pair of halves (double buffering; the learner keeps a core, the workers share
    the rest). One torch thread (these networks are small: a second thread slowed every measured setting).
    Explicit values are kept; num_envs must split evenly over the workers."""
    cores = max(1, available_cores() // max(1, ranks_here))
    if workers == AUTO:
        workers = 2 if cores >= 3 and num_envs % 2 == 0 else 0
    if threads == AUTO:
        threads = 1
    workers, threads = int(workers), int(threads)
    if workers and num_envs % workers:
        raise DAFError(f"training.vec_workers={workers} does not divide training.num_envs={num_envs}: "
                       "use a worker count that divides num_envs, 0 (no workers) or auto")
    return Resources(workers, threads)


def make_vecenv(factory: Callable[..., Any], num_envs: int, workers: int, seed: int, log_dir: Path) -> Any:
    """PufferLib's vector env over `num_envs` environments built by `factory(slot=i)`: Serial for 0 workers,
    otherwise checked worker processes (double-buffered when `workers` is even)."""
    import pufferlib.vector

    common = dict(env_args=[[]] * num_envs, env_kwargs=[{"slot": i} for i in range(num_envs)], num_envs=num_envs,
                  seed=seed)
    if workers == 0:
        return pufferlib.vector.make([factory] * num_envs, backend=pufferlib.vector.Serial, num_workers=1,
                                     batch_size=num_envs, **common)
    batch = num_envs // 2 if workers % 2 == 0 else num_envs
    child = _InWorker(factory, os.getpid(), Path(log_dir) / WORKER_LOG)
    return pufferlib.vector.make([child] * num_envs, backend=_checked_workers(), num_workers=workers,
                                 batch_size=batch, overwork=True, **common)


class _InWorker:
    """The environment factory as a worker process runs it: the first call in a child process makes it a
    well-behaved worker (see the module docstring). The learner's own call (PufferLib's driver env) is untouched."""

    def __init__(self, factory: Callable[..., Any], learner_pid: int, log: Path):
        self.factory, self.learner_pid, self.log = factory, learner_pid, log
        self._ready = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if os.getpid() != self.learner_pid and not self._ready:
            self._ready = True
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _die_with_parent()
            self.log.parent.mkdir(parents=True, exist_ok=True)
            sys.stderr = open(self.log, "a", buffering=1)
        return self.factory(*args, **kwargs)


def _die_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _polite_worker(env_creators: Any, env_args: Any, env_kwargs: Any, obs_shape: Any, obs_dtype: Any, atn_shape: Any,
                   atn_dtype: Any, num_envs: int, num_agents: int, num_workers: int, worker_idx: int, send_pipe: Any,
                   recv_pipe: Any, shm: Any, is_native: bool, seed: Any) -> None:
    """PufferLib's worker loop (`pufferlib.vector._worker_process`, same protocol over the same shared memory), but
    waiting with short sleeps instead of spinning: PufferLib spins for 0.5 s after every step, which on a machine
    with no core to spare takes the learner's core (measured: 2 workers then trained at half the SPS of none)."""
    import numpy as np
    import pufferlib.vector as pv

    shape = (num_workers, num_envs * num_agents)

    def view(name: str, dtype: Any, extra: tuple = ()) -> Any:
        return np.ndarray((*shape, *extra), dtype=dtype, buffer=shm[name])[worker_idx]

    atn_arr = view("actions", atn_dtype, tuple(atn_shape))
    buf = dict(observations=view("observations", obs_dtype, tuple(obs_shape)), rewards=view("rewards", np.float32),
               terminals=view("terminals", bool), truncations=view("truncateds", bool),
               teacher_actions=view("teacher_actions", atn_dtype, tuple(atn_shape)), masks=view("masks", bool),
               actions=atn_arr)
    buf["masks"][:] = True
    if is_native and num_envs == 1:
        envs = env_creators[0](*env_args[0], **env_kwargs[0], buf=buf, seed=seed)
    else:
        envs = pv.Serial(env_creators, env_args, env_kwargs, num_envs, buf=buf, seed=seed * num_envs)
    semaphores = np.ndarray(num_workers, dtype=np.uint8, buffer=shm["semaphores"])
    notify = np.ndarray(num_workers, dtype=bool, buffer=shm["notify"])
    while True:
        if notify[worker_idx]:
            envs.notify()
            notify[worker_idx] = False
        sem = semaphores[worker_idx]
        if sem >= pv.MAIN:
            time.sleep(POLL_S)
            continue
        if sem == pv.RESET:
            _, infos = envs.reset(seed=recv_pipe.recv())
        elif sem == pv.STEP:
            _, _, _, _, infos = envs.step(atn_arr)
        elif sem == pv.CLOSE:
            envs.close()
            send_pipe.send(None)
            break
        if infos:
            semaphores[worker_idx] = pv.INFO
            send_pipe.send(infos)
        else:
            semaphores[worker_idx] = pv.MAIN


def _checked_workers() -> type:
    import pufferlib.vector

    class CheckedWorkers(pufferlib.vector.Multiprocessing):
        """PufferLib's Multiprocessing backend with our worker loop (`_polite_worker`), waiting for workers with
        short sleeps too, and raising a one-line DAFError when a worker it waits for is dead."""

        def __init__(self, *args: Any, **kwargs: Any):
            original = pufferlib.vector._worker_process  # what Multiprocessing starts its workers with
            pufferlib.vector._worker_process = _polite_worker
            try:
                super().__init__(*args, **kwargs)
            finally:
                pufferlib.vector._worker_process = original

        def recv(self) -> Any:
            needed = self.waiting_workers[: self.workers_per_batch]  # sync_traj: served in this order
            semaphores = self.buf["semaphores"]
            next_check = time.monotonic() + LIVENESS_CHECK_S
            while any(semaphores[w] < pufferlib.vector.MAIN for w in needed):
                time.sleep(POLL_S)
                if time.monotonic() > next_check:
                    self.check_alive()
                    next_check = time.monotonic() + LIVENESS_CHECK_S
            return super().recv()

        def check_alive(self) -> None:
            for i, p in enumerate(self.processes):
                if p.exitcode is not None:
                    how = (f"killed by {signal.Signals(-p.exitcode).name}" if p.exitcode < 0
                           else f"exit code {p.exitcode}")
                    raise DAFError(f"environment worker {i} of {len(self.processes)} (pid {p.pid}) died ({how}; "
                                   f"its output: {WORKER_LOG} in the run directory); the run stops here, "
                                   "training.resume=true continues from the last checkpoint")

        def close(self) -> None:
            super().close()
            for p in self.processes:
                p.join(timeout=5)

    return CheckedWorkers
