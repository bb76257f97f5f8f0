"""Run identity: what a run *is*, derived in one place from its resolved config.

Every writer (run.json, metrics.json, episodes, curves, packages), every reader (the aggregator, comparisons,
reports, sweep tables) and every cache (stage reuse) asks this module, so a record, a table and a report cannot
disagree about what ran:

- the **policy** name: the name a user gave (`policy.name`), else what is instantiated (the class path, or the
  bundle, plus the checkpoint when weights are loaded); never the name of a config group's default;
- the **arm**: everything that decides the numbers (policy class, weights, kwargs; the mission and its overrides;
  the evaluation settings; the training settings when the run trained) as flat dotted keys, and nothing that only
  says where or how it ran (paths, device, threads) or which replicate it is (the seed);
- the **replicate**: the seed. Runs of one arm that differ only in their seed are replicates;
- the **signature** (arm + replicate: same signature, same numbers; what reuse keys on) and the **arm id**
  (arm alone: what analysis groups on);
- a readable **label** per arm of a tree (`label_arms`): the policy name plus the keys that differ between the
  arms of that policy, e.g. `lstm lr=0.0001`.

One name per knob: `training.learning_rate` is shown as `lr`, the documented shorthand (`lr` itself only feeds
`training.learning_rate` and is not a key of its own).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

# A knob's one public name where its config key differs.
ALIASES = {"training.learning_rate": "lr"}
# Sections of the config that decide a run's numbers, per pipeline (others: every section but NOT_ARM).
SECTIONS = {
    "evaluate": ("policy", "mission", "evaluation"),
    "analyze": ("policy", "mission", "evaluation", "analyze"),
    "train": ("policy", "mission", "evaluation", "training"),
    # the run's own `policy.*` reaches the members that play it (comparison.own_policy)
    "compare": ("policy", "mission", "evaluation", "compare", "statistics"),
    "benchmark": ("policy", "mission", "evaluation", "training", "benchmark", "statistics"),
    "sweep": ("policy", "mission", "evaluation", "training", "sweep", "objective"),
    "check": ("policy", "mission"),
}
# Keys (or whole sections) that say where, how fast or which replicate, never what: left out of every arm.
NOT_ARM = (
    "seed", "seeds", "lr", "output_dir", "restart", "device", "hydra", "sweep_name", "resources", "policy.name",
    "mission.description",
    "evaluation.progress", "evaluation.num_envs", "evaluation.replays", "training.seed", "training.device", "training.resume", "training.tensorboard",
    "training.checkpoint_interval", "training.torch_threads", "training.cpu_offload", "training.compile",
    "training.compile_mode", "training.compile_fullgraph", "training.distributed.timeout_s",
    "training.distributed.backend", "sweep.seed", "sweep.output_root", "sweep.storage", "sweep.sweep_name",
    "sweep.max_parallel_jobs", "compare.parallel", "compare.workers", "benchmark.parallel_evaluation", "benchmark.name",
    "sweep.name",
)


@dataclass(frozen=True)
class RunIdentity:
    """What a run is (see the module docstring)."""

    pipeline: str
    policy: str  # the policy's real name; "" for pipelines of several policies (compare, benchmark)
    mission: str
    trained: bool  # the run trained its policy: training settings are part of its arm
    replicate: int | None  # the seed
    arm: dict[str, Any] = field(default_factory=dict)  # flat dotted key -> value
    arm_id: str = ""  # hash of the arm
    signature: str = ""  # hash of arm + replicate

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunIdentity":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "policy": self.policy, "mission": self.mission, "trained": self.trained,
                "replicate": self.replicate, "arm_id": self.arm_id, "signature": self.signature, "arm": self.arm}


def policy_name(policy: Mapping[str, Any] | None) -> str:
    """The name a user gave the policy, else what is instantiated: its class path (a bundle directory by its own
    name), with `:<checkpoint>` when weights are loaded."""
    if not policy:
        return ""
    given = policy.get("name")
    if given:
        return str(given)
    class_path = str(policy.get("class_path") or "")
    base = Path(class_path.rstrip("/")).name if "/" in class_path else class_path
    data_path = policy.get("data_path")
    return f"{base}:{short_path(data_path)}" if data_path else base


def short_path(path: Any) -> str:
    """The last two parts of a path: enough to tell checkpoints apart without a machine's directories."""
    parts = Path(str(path).rstrip("/")).parts
    return "/".join(parts[-2:]) if parts else str(path)


def flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys; lists stay values (JSON-comparable)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def _digest(data: Any) -> str:
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _excluded(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in NOT_ARM)


def run_identity(config: Mapping[str, Any], trained: bool | None = None) -> RunIdentity:
    """The identity of a run from its resolved config (a plain dict, as run.json records it).

    `trained`: whether the run trained its policy (metrics.json records it); None while that is not known yet
    (run.json is written before training starts): a train pipeline is then taken to train."""
    pipeline = str((config.get("pipeline") or {}).get("name") or "evaluate")
    if trained is None:
        trained = pipeline == "train"
    sections = SECTIONS.get(pipeline)
    if sections is not None and pipeline == "train" and not trained:
        sections = SECTIONS["evaluate"] + ("training.eval_missions",)
    items = flat({k: v for k, v in config.items()})
    arm = {}
    for key, value in items.items():
        if _excluded(key):
            continue
        if sections is not None and not any(key == s or key.startswith(f"{s}.") for s in sections):
            continue
        arm[ALIASES.get(key, key)] = value
    arm = json.loads(json.dumps(arm, sort_keys=True, default=str))
    seed = config.get("seed")
    replicate = int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None
    several = pipeline in ("compare", "benchmark")
    return RunIdentity(
        pipeline=pipeline,
        policy="" if several else policy_name(config.get("policy")),
        mission=str((config.get("mission") or {}).get("name") or ""),
        trained=bool(trained),
        replicate=replicate,
        arm=arm,
        arm_id=_digest(arm),
        signature=_digest({"arm": arm, "replicate": replicate}),
    )


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def label_arms(identities: Sequence[RunIdentity]) -> list[str]:
    """One readable label per identity, the same for all runs of one arm on any mission: the policy name, plus
    `key=value` for each key that differs between the arms of that policy in this set (e.g. `lstm lr=0.0001`).

    The mission is its own column in every table, so `mission.*` keys count only where they differ between runs
    of the same mission (an override such as `mission.max_steps=50`). Keys only some arms have (another
    pipeline's settings) are not listed; arms that still look alike get their arm id."""
    by_policy: dict[str, list[RunIdentity]] = {}
    for ident in identities:
        by_policy.setdefault(ident.policy, []).append(ident)
    label_of: dict[str, str] = {}
    for name, group in by_policy.items():
        keys = differing_keys(group)
        labels: dict[str, str] = {}
        for ident in group:
            key = _analysis_key(ident, keys)
            parts = [name or ident.pipeline] + [f"{k}={format_value(ident.arm[k])}" for k in keys
                                                  if k in ident.arm]
            labels.setdefault(key, " ".join(parts))
        counts: dict[str, int] = {}
        for label in labels.values():
            counts[label] = counts.get(label, 0) + 1
        for ident in group:
            key = _analysis_key(ident, keys)
            label = labels[key]
            label_of[ident.signature + ident.mission] = label if counts[label] == 1 else f"{label} [{ident.arm_id}]"
    return [label_of[i.signature + i.mission] for i in identities]


def _analysis_key(ident: RunIdentity, keys: Sequence[str]) -> str:
    """What tells arms apart in analysis: the arm without its mission (a column of its own) but with the keys
    that differ (mission overrides among them)."""
    return _digest({k: v for k, v in ident.arm.items() if not k.startswith("mission.") or k in keys})


def differing_keys(group: Sequence[RunIdentity]) -> list[str]:
    """Keys every arm of `group` has whose values differ between its arms (what a multirun or sweep varied);
    `mission.*` keys only where they differ between runs of the same mission."""
    if len(group) < 2:
        return []
    shared = set(group[0].arm).intersection(*(set(i.arm) for i in group[1:]))
    out = []
    for key in sorted(shared):
        if key.startswith("mission."):
            per_mission: dict[str, set[str]] = {}
            for i in group:
                per_mission.setdefault(i.mission, set()).add(json.dumps(i.arm[key], sort_keys=True))
            if any(len(v) > 1 for v in per_mission.values()):
                out.append(key)
        elif len({json.dumps(i.arm[key], sort_keys=True) for i in group}) > 1:
            out.append(key)
    return _ordered(out)


def _ordered(keys: list[str]) -> list[str]:
    """Aliased knobs first (lr), then policy, training, evaluation, mission keys."""
    rank = {"policy": 1, "training": 2, "evaluation": 3, "mission": 4}
    return sorted(keys, key=lambda k: (0 if "." not in k else rank.get(k.split(".")[0], 5), k))


def display_key(key: str) -> str:
    """A config key as tables and plots show it: its alias (lr) when it has one."""
    key = key.removeprefix("config.")
    return ALIASES.get(key, key)
