"""Turn a `PolicyConfig` into a live mettagrid `MultiAgentPolicy`.

Accepted forms of `policy.class_path`: our short names (`baseline`), any short name mettagrid or cogames register
(`random`, `mettagrid_lstm`, `stateless`, ...), an importable class path of a `MultiAgentPolicy` or of an `AgentPolicy` (wrapped
per agent), or a bundle directory with `policy_spec.json` as cogames writes it. `policy.data_path` may be a weights
file or a bundle directory. Weights are read with `torch.load(weights_only=True)`: a checkpoint can carry tensors,
never code.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daf_hydra.errors import DAFError

POLICY_SPEC_FILENAME = "policy_spec.json"


@dataclass(frozen=True)
class PolicyInfo:
    """One named policy: what `pipeline=check`, README and docs/config-reference.md list (one line each)."""

    name: str
    class_path: str
    trainable: bool  # has a network PPO trains; fixed otherwise
    what: str

    @property
    def kind(self) -> str:
        return "trainable" if self.trainable else "fixed"

    def row(self) -> str:
        """Its row of the policy table in README.md and docs/config-reference.md."""
        return f"| `{self.name}` | {self.kind} | `{self.class_path}` | {self.what} |"


POLICY_TABLE_HEADER = "| policy | kind | class | what it is |\n|---|---|---|---|"


# Every conf/policy option, resolved without mettagrid's discovery (which imports every policy module of mettagrid
# and cogames, about 1.5 s). `lstm` is ours, not mettagrid's: mettagrid's LSTM does not learn here (below random
# after 600k steps), so the design card's `policy=lstm` names the one that does.
POLICIES = (
    PolicyInfo("lstm", "daf_hydra.policies.networks.TokenLSTMPolicy", True,
               "daf_hydra's LSTM over observation tokens (hidden_size 64)"),
    PolicyInfo("mlp", "daf_hydra.policies.networks.TokenMLPPolicy", True,
               "daf_hydra's feed-forward network over observation tokens, no memory"),
    PolicyInfo("mettagrid_lstm", "mettagrid.policy.lstm.LSTMPolicy", True,
               "mettagrid's LSTM network (below `random` here after 600k steps)"),
    PolicyInfo("stateless", "mettagrid.policy.stateless.StatelessPolicy", True, "mettagrid's feed-forward network"),
    PolicyInfo("baseline", "daf_hydra.policies.baseline.BaselinePolicy", False,
               "scripted: reads its observation and works the resource chain"),
    PolicyInfo("random", "mettagrid.policy.random_agent.RandomMultiAgentPolicy", False,
               "uniformly random actions, seeded per episode"),
    PolicyInfo("noop", "mettagrid.policy.noop.NoopPolicy", False, "does nothing: the floor of every mission"),
)
BUILTIN_POLICIES = {p.name: p.class_path for p in POLICIES}
# Names that meant something else before: refused in one line naming the new name (records keep the old ones).
RENAMED = {"daf_lstm": "lstm", "daf_mlp": "mlp"}


def check_not_renamed(name: str) -> None:
    """Refuse an old policy name in one line: `daf_lstm` silently meaning nothing (or something else) would
    train or compare the wrong network."""
    if name in RENAMED:
        raise DAFError(f"policy {name} is now called {RENAMED[name]}: use policy={RENAMED[name]} "
                       "(mettagrid's LSTM is mettagrid_lstm)")


UNTRAINED = " (untrained)"


def untrained_network(class_path: str, data_path: str | None) -> bool:
    """A trainable catalog policy given without weights: it plays (or ships) as initialised, which its label
    must say (a comparison of it is no evidence about what training reaches)."""
    if data_path or (class_path not in BUILTIN_POLICIES and Path(str(class_path)).is_dir()):
        return False
    full = BUILTIN_POLICIES.get(class_path, class_path)
    return any(p.trainable and p.class_path == full for p in POLICIES)


def short_name(class_path: str) -> str:
    """A class path by its conf/policy name when it has one."""
    return next((p.name for p in POLICIES if p.class_path == class_path), class_path)


@dataclass(frozen=True)
class ResolvedPolicy:
    """A policy reference with every indirection (short name, bundle) resolved."""

    class_path: str
    data_path: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


def read_bundle(bundle: Path) -> ResolvedPolicy:
    """Read a bundle directory's `policy_spec.json` (data_path relative to the bundle). Setup scripts never run."""
    spec_file = bundle / POLICY_SPEC_FILENAME
    if not spec_file.is_file():
        raise DAFError(f"policy bundle {str(bundle)!r} has no {POLICY_SPEC_FILENAME}")
    try:
        spec = json.loads(spec_file.read_text())
        class_path = spec["class_path"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DAFError(f"{spec_file} is not a valid policy spec ({exc}): it needs at least a 'class_path'") from None
    data = spec.get("data_path")
    data_path = str((bundle / data).resolve()) if data else None
    return ResolvedPolicy(class_path, data_path, dict(spec.get("init_kwargs") or {}))


def resolve(class_path: str, data_path: str | None = None, kwargs: dict[str, Any] | None = None) -> ResolvedPolicy:
    """Resolve short names and bundles to an importable class path and a weights file.

    A bundle's `init_kwargs` win over `kwargs`: they describe the network its weights fit (a policy group's
    default `hidden_size` must not break loading a checkpoint trained with another)."""
    kwargs = dict(kwargs or {})
    if class_path not in BUILTIN_POLICIES and Path(class_path).is_dir():  # a name wins over a directory of it
        bundle = read_bundle(Path(class_path))
        return ResolvedPolicy(bundle.class_path, data_path or bundle.data_path, {**kwargs, **bundle.kwargs})
    if data_path and Path(data_path).is_dir():
        bundle = read_bundle(Path(data_path))
        _check_bundle_class(class_path, bundle, data_path)
        return ResolvedPolicy(_full_class_path(class_path), bundle.data_path, {**kwargs, **bundle.kwargs})
    if data_path and (Path(data_path).parent / POLICY_SPEC_FILENAME).is_file():  # a bundle's own weights file
        bundle = read_bundle(Path(data_path).parent)
        if bundle.data_path == str(Path(data_path).resolve()):
            _check_bundle_class(class_path, bundle, data_path)
            return ResolvedPolicy(_full_class_path(class_path), data_path, {**kwargs, **bundle.kwargs})
    return ResolvedPolicy(_full_class_path(class_path), data_path, kwargs)


def _check_bundle_class(class_path: str, bundle: ResolvedPolicy, data_path: str) -> None:
    """A bundle's weights fit only the class that trained it: another class asked is one line naming both,
    rather than a state_dict or constructor error (and a record naming a class that never ran)."""
    asked, held = _full_class_path(class_path), _full_class_path(bundle.class_path)
    if asked != held:
        name = short_name(held)
        fix = f"policy={name}" if name != held else f"policy.class_path={held}"
        raise DAFError(f"policy.data_path={data_path} holds a {name} checkpoint ({held}), but the policy is "
                       f"{class_path} ({asked}): use {fix}, or policy.class_path=<the bundle> alone")


def _full_class_path(name: str) -> str:
    check_not_renamed(name)
    if name in BUILTIN_POLICIES:
        return BUILTIN_POLICIES[name]
    if "." in name:
        return name
    from mettagrid.policy.loader import resolve_policy_class_path

    resolved = resolve_policy_class_path(name)
    if "." not in resolved:
        raise DAFError(
            f"unknown policy {name!r}: use one of {', '.join(known_short_names())}, "
            "an importable class path (package.module.Class) or a bundle directory with policy_spec.json"
        )
    return resolved


def known_short_names() -> list[str]:
    from mettagrid.policy.loader import discover_and_register_policies
    from mettagrid.policy.policy_registry import get_policy_registry

    discover_and_register_policies()
    return sorted({*BUILTIN_POLICIES, *get_policy_registry()})


def import_policy_class(class_path: str) -> type:
    module_name, _, attr = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise DAFError(
            f"cannot import policy class {class_path!r} ({exc}); give a short name "
            f"({', '.join(known_short_names())}) or an importable package.module.Class"
        ) from None


def instantiate(resolved: ResolvedPolicy, pei: Any, device: str = "cpu") -> Any:
    """Build the policy for one environment interface and load its weights."""
    from mettagrid.policy.policy import AgentPolicy, MultiAgentPolicy

    cls = import_policy_class(resolved.class_path)
    if isinstance(cls, type) and issubclass(cls, MultiAgentPolicy):
        policy = cls(pei, device=device, **resolved.kwargs)
    elif isinstance(cls, type) and issubclass(cls, AgentPolicy):
        from daf_hydra.policies.per_agent import PerAgentPolicy

        policy = PerAgentPolicy(pei, agent_class=cls, device=device, **resolved.kwargs)
    else:
        raise DAFError(
            f"{resolved.class_path!r} is not a policy: the class must subclass mettagrid's MultiAgentPolicy or AgentPolicy"
        )
    if resolved.data_path:
        load_weights(policy, resolved.data_path, device)
    return policy


def load_weights(policy: Any, data_path: str, device: str) -> None:
    """Load a state_dict into the policy's network (safe unpickling; `module.` prefixes of DDP are stripped)."""
    import torch

    path = Path(data_path)
    if not path.is_file():
        raise DAFError(f"checkpoint {data_path!r} does not exist: give a weights file or a bundle directory")
    network = policy.network()
    if network is None:
        policy.load_policy_data(str(path))  # not a torch policy: its own format
        return
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or unsafe file
        raise DAFError(f"checkpoint {data_path!r} is corrupt or not a weights file: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DAFError(f"checkpoint {data_path!r} holds a {type(state).__name__}, not a state_dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DAFError(f"checkpoint {data_path!r} does not fit policy {type(policy).__name__}: {first}") from None
