"""TensorBoard events of a training curve (`training.tensorboard=true`): every curve.jsonl record (episode reward,
losses, entropy, learning rate, SPS) also as TensorBoard scalars, at its agent step, under the record's own keys
(one name per quantity: the event tags are curve.jsonl's keys).

The events go next to curve.jsonl, into `tensorboard/<label>/` of the run, so `tensorboard --logdir multirun/`
lists every run of a multirun under its label: the policy's name (identity.run_identity) plus `key=value` for
each setting of its arm the job's command line set, and the seed when it was set (`lstm lr=0.001 seed=1`),
which is what tells the jobs of a multirun apart. torch's SummaryWriter writes them (it needs the `tensorboard`
package: the optional extra, checked with the training settings before any work).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from daf_hydra.identity import ALIASES, format_value, run_identity

EVENTS_DIR = "tensorboard"
NOT_SCALARS = ("update", "agent_steps", "wall_time_s")  # the step axis and bookkeeping


def job_overrides() -> list[str]:
    """The overrides of the Hydra job running now (`lr=0.001`, `seed=1`); none outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def run_label(config: Mapping[str, Any], overrides: Sequence[str]) -> str:
    """The run's name in TensorBoard: its policy, plus the arm settings and the seed its overrides set."""
    ident = run_identity(config, trained=True)
    parts = [ident.policy or ident.pipeline]
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        key = ALIASES.get(key, key)
        if key in ident.arm:
            parts.append(f"{key}={format_value(ident.arm[key])}")
        elif key == "seed" and ident.replicate is not None:
            parts.append(f"seed={ident.replicate}")
    return " ".join(parts)


class CurveEvents:
    """Writes curve records as scalars; `close()` flushes (a killed run keeps what was flushed: every 10 s)."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], overrides: Sequence[str] = ()):
        from torch.utils.tensorboard import SummaryWriter

        self.directory = Path(run_dir) / EVENTS_DIR / re.sub(r"[/\\]+", "_", run_label(config, overrides))
        self._writer = SummaryWriter(str(self.directory), flush_secs=10)

    def add(self, record: Mapping[str, Any]) -> None:
        step = int(record["agent_steps"])
        for key, value in record.items():
            if key not in NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(key, float(value), step)

    def close(self) -> None:
        self._writer.close()
