"""Policy entries: how a user names a policy to compare, benchmark, analyse or package, and its label.

An entry is a conf/policy name (`lstm`), a short name mettagrid or cogames registers, an importable class path, a
bundle directory with policy_spec.json, `name:checkpoint` (policy `name` with `data_path=checkpoint`), a mettagrid
`PolicySpec`, a `policy:` config, or a `PolicyEntry`. Its label is what the user wrote, or what the entry
instantiates (identity.policy_name), never a config group's default name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from daf_hydra.errors import DAFError
from daf_hydra.identity import policy_name


@dataclass(frozen=True)
class PolicyEntry:
    """One policy of a comparison: its label in tables and reports and how to load it."""

    label: str
    class_path: str
    data_path: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def as_policy_config(self) -> dict[str, Any]:
        """The `policy:` node of the member run's config (the shape of `PolicyConfig`)."""
        return {"name": self.label, "class_path": self.class_path, "data_path": self.data_path,
                "kwargs": dict(self.kwargs)}


def parse_policy(entry: Any) -> PolicyEntry:
    """Resolve one user policy entry (see the module docstring) into a `PolicyEntry`."""
    if isinstance(entry, PolicyEntry):
        return entry
    if isinstance(entry, str):
        return _parse_policy_string(entry)
    if hasattr(entry, "class_path") and hasattr(entry, "init_kwargs"):  # mettagrid PolicySpec
        return PolicyEntry(entry.name, entry.class_path, entry.data_path, dict(entry.init_kwargs or {}))
    if hasattr(entry, "class_path"):  # PolicyConfig or its DictConfig
        from omegaconf import OmegaConf

        kwargs = OmegaConf.to_container(entry.kwargs) if OmegaConf.is_config(entry.kwargs) else entry.kwargs
        named = {"name": entry.name, "class_path": entry.class_path, "data_path": entry.data_path}
        return PolicyEntry(policy_name(named), str(entry.class_path), entry.data_path, dict(kwargs or {}))
    if isinstance(entry, Mapping) and "class_path" in entry:
        return PolicyEntry(policy_name(entry), str(entry["class_path"]), entry.get("data_path"),
                           dict(entry.get("kwargs") or {}))
    raise DAFError(f"cannot use {entry!r} as a policy: give a policy name, class path, bundle directory, "
                   "name:checkpoint, a mettagrid PolicySpec or a PolicyEntry")


def _parse_policy_string(text: str) -> PolicyEntry:
    from daf_hydra.compose import compose_config
    from daf_hydra.config import group_options

    text = text.strip()
    if not text:
        raise DAFError("an empty policy entry: give a policy name, class path, bundle directory or name:checkpoint")
    name, sep, checkpoint = text.partition(":")
    if sep:
        if not checkpoint:
            raise DAFError(f"policy entry {text!r} names no checkpoint after ':' (name:path/to/weights)")
        base = _parse_policy_string(name)
        return PolicyEntry(text, base.class_path, checkpoint, base.kwargs)
    if text in group_options("policy"):
        return parse_policy(compose_config([f"policy={text}"]).policy)
    return PolicyEntry(text, text)


def mark_untrained(entry: PolicyEntry) -> PolicyEntry:
    """`entry` with `(untrained)` after its label when it is a network without weights, so every console line,
    table and report naming it says so."""
    from daf_hydra.policies.loading import UNTRAINED, untrained_network

    if entry.label.endswith(UNTRAINED) or not untrained_network(entry.class_path, entry.data_path):
        return entry
    return PolicyEntry(entry.label + UNTRAINED, entry.class_path, entry.data_path, entry.kwargs)


def entry_text(entry: PolicyEntry) -> str:
    """An entry as `compare.policies` takes it (the inverse of `parse_policy`): its label, with `:<weights>` when
    it loads weights its label does not name."""
    if entry.data_path is None or entry.label.endswith(f":{entry.data_path}"):
        return entry.label
    return f"{entry.label}:{entry.data_path}"


def reject_repeats(names: list[str], message: str) -> None:
    """One line naming every repeated name: two entries with one label would mix their episodes."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DAFError(message.format(repeated))


def parse_policies(entries: Iterable[Any]) -> list[PolicyEntry]:
    parsed = [parse_policy(e) for e in entries]
    reject_repeats([p.label for p in parsed], "policies {} appear more than once: every policy of a comparison "
                    "needs its own label")
    if not parsed:
        raise DAFError("no policies to compare: give at least one")
    return parsed



def slug(text: str) -> str:
    """A file-name-safe form of a label (labels may hold paths, colons, anything)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:60] or "x"
