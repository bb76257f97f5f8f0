"""daf_hydra's own trainable policies: `lstm` (recurrent) and `mlp` (feed-forward).

Why not only mettagrid's `mettagrid_lstm`/`stateless`: they hard-code `hidden_size=128` (nothing to sweep) and feed the raw
observation bytes, `(tokens, 3)` divided by 255, to a linear layer, so a token's position, feature id and value
are mixed into one number and learning is slow. Here every observation token `(location, feature id, value)`
selects its own learned vector (a sum of embeddings, i.e. a linear layer over the one-hot grid of
`location x feature`, computed sparsely), scaled by the value normalised as mettagrid declares it; the `tag` feature
is categorical and gets one slot per tag. Only the ~40 tokens an agent actually sees cost anything, of the 500.

Both classes are ordinary mettagrid `MultiAgentPolicy`s: PufferLib trains `network()` (`forward_eval` for
rollouts, `forward` for updates, `hidden_size` for the recurrent state), the evaluator batches `forward_eval`, and
mettagrid/cogames tools step `agent_policy(i)` one agent at a time. A checkpoint is the network's `state_dict`; the
architecture (`hidden_size`) and the observation vocabulary travel in the bundle's `policy_spec.json` as
`init_kwargs` (`bundle_kwargs()`).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mettagrid.policy.policy import AgentPolicy, MultiAgentPolicy
from mettagrid.policy.policy_env_interface import PolicyEnvInterface
from mettagrid.simulator import Action, AgentObservation

from daf_hydra.errors import DAFError

EMPTY = 0xFF  # location byte of an unused token slot
GLOBAL = 0xFE  # location byte of a token that describes the agent's situation, not a cell


def _layer_init(layer: nn.Linear, std: float = float(np.sqrt(2))) -> nn.Linear:
    """CleanRL's orthogonal initialisation: small action-head weights keep the first policy near uniform."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


class TokenEncoder(nn.Module):
    """Raw observation tokens `(..., tokens, 3)` uint8 -> `(N, hidden_size)` features.

    Token `(loc, fid, value)` at cell (row, col) = (loc >> 4, loc & 15) selects row `(row * cols + col) * C + ch`
    of an embedding table, where `ch` is the feature's index in `feature_names` (weighted by value /
    normalisation) or, for the categorical `tag` feature, `F` + the tag's index in `tag_names` (weight 1); global
    tokens use one row per feature after the grid. The weighted sum over tokens is a linear layer over the one-hot
    `cell x channel` grid, computed sparsely (measured 2-3x cheaper to train than a factorised cell * channel
    product). Features and tags are matched by name, so a network trained on one mission reads another mission's
    observations correctly where they share names (missions number their tags differently); names it was not
    trained on are ignored.
    """

    def __init__(self, pei: PolicyEnvInterface, hidden_size: int, feature_names: list[str], tag_names: list[str]):
        super().__init__()
        self.rows, self.cols = (int(x) for x in pei.egocentric_shape)
        self.num_features, self.num_tags = len(feature_names), len(tag_names)
        self.channels = self.num_features + self.num_tags
        self.grid_rows = self.rows * self.cols * self.channels
        self.pad = self.grid_rows + self.num_features  # the zero row of tokens this network does not read
        here = {f.name: f for f in pei.obs_features}
        self.tag_fid = here["tag"].id if "tag" in here else -1
        feature_index = torch.full((256,), -1, dtype=torch.long)  # this mission's feature id -> vocabulary index
        scale = torch.ones(256)
        for i, name in enumerate(feature_names):
            if name in here:
                feature_index[here[name].id] = i
                scale[here[name].id] = 1.0 / float(here[name].normalization or 1.0)
        tag_index = torch.full((256,), -1, dtype=torch.long)  # this mission's tag id -> vocabulary index
        tags_here = list(pei.tags)
        for i, name in enumerate(tag_names):
            if name in tags_here:
                tag_index[tags_here.index(name)] = i
        self.embed = nn.EmbeddingBag(self.pad + 1, hidden_size, mode="sum", padding_idx=self.pad)
        nn.init.normal_(self.embed.weight, std=0.1)
        with torch.no_grad():
            self.embed.weight[self.pad].zero_()
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.mlp = _layer_init(nn.Linear(hidden_size, hidden_size))
        # Every token's embedding row and weight, looked up instead of computed: a forward pass is a handful of
        # tensor operations, whose fixed cost is what a small batch pays (measured: the encoder was half of an
        # evaluation step). Not parameters: rebuilt from the vocabulary, never saved.
        code, weight, index = self._tables(feature_index, tag_index, scale)
        self.register_buffer("code_table", code, persistent=False)
        self.register_buffer("weight_table", weight, persistent=False)
        self.register_buffer("index_table", index, persistent=False)

    def _tables(self, feature_index: torch.Tensor, tag_index: torch.Tensor,
                scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Indexed by `fid * 256 + value`: `code`, what the token says (its feature id, or 256 + the tag for a
        tag token), and `weight` (value / normalisation, 1 for a tag). Indexed by `loc * 512 + code`: `index`,
        the token's embedding row (`pad`, a zero row, for a token this network does not read)."""
        fid, value = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
        code = torch.where(fid == self.tag_fid, 256 + value, fid)
        weight = value.float() * scale.unsqueeze(1)
        if self.tag_fid >= 0:
            weight[self.tag_fid] = 1.0
        loc, code_ = torch.meshgrid(torch.arange(256), torch.arange(512), indexing="ij")
        row, col = loc >> 4, loc & 0xF
        on_grid = (loc < GLOBAL) & (row < self.rows) & (col < self.cols)
        cell = (row * self.cols + col) * self.channels
        feature, tag = feature_index[code_.clamp(max=255)], tag_index[(code_ - 256).clamp(min=0)]
        features = torch.where(on_grid & (feature >= 0), cell + feature,
                               torch.where((loc == GLOBAL) & (feature >= 0), self.grid_rows + feature, self.pad))
        tags = torch.where(on_grid & (tag >= 0), cell + self.num_features + tag, self.pad)
        index = torch.where(code_ < 256, features, tags)
        return code.flatten(), weight.flatten(), index.flatten()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.reshape(-1, *tokens.shape[-2:])
        index, weight, offsets = (self._lookup_numpy if tokens.device.type == "cpu" else self._lookup)(tokens)
        # unread tokens weigh 0 (the pad row then gets no gradient and stays zero) instead of being skipped through
        # padding_idx, which forces EmbeddingBag's slow generic kernel: 3x slower (measured); equal within rounding
        embedded = F.embedding_bag(index, self.embed.weight, offsets, mode="sum", per_sample_weights=weight)
        return torch.relu(self.mlp(torch.relu(embedded + self.bias)))

    def _lookup(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(N, tokens, 3)` -> each token's embedding row and weight, without the all-empty tail of token slots,
        flat, and where each of the N bags starts."""
        used = (tokens[..., 0] != EMPTY).any(dim=0).nonzero()
        tokens = tokens[:, : int(used.max()) + 1] if len(used) else tokens[:, :1]
        loc, fid, val = tokens.long().unbind(-1)
        fid_value = (fid << 8) + val
        index = self.index_table[(loc << 9) + self.code_table[fid_value]]
        weight = self.weight_table[fid_value] * (index != self.pad)
        offsets = torch.arange(0, index.numel(), index.shape[1], device=index.device)
        return index.flatten(), weight.flatten(), offsets

    def _lookup_numpy(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`_lookup` in numpy, for tokens on the CPU: its dozen tiny torch operations cost more than the lookups
        themselves (measured: a third of an evaluation step with 8 episodes). Equal to `_lookup` bit for bit."""
        raw = tokens.numpy()
        used = np.flatnonzero((raw[..., 0] != EMPTY).any(axis=0))
        raw = raw[:, : used[-1] + 1 if len(used) else 1].astype(np.int64)
        fid_value = (raw[..., 1] << 8) + raw[..., 2]
        index = self.index_table.numpy()[(raw[..., 0] << 9) + self.code_table.numpy()[fid_value]]
        weight = self.weight_table.numpy()[fid_value] * (index != self.pad)
        offsets = np.arange(0, index.size, index.shape[1])
        return torch.from_numpy(index.ravel()), torch.from_numpy(weight.ravel()), torch.from_numpy(offsets)


class TokenNet(nn.Module):
    """Encoder, optional LSTM core, action and value heads, with the interface PufferLib's PuffeRL expects.

    `forward_eval(obs, state)`: one step for a batch of agents; with an LSTM, `state["lstm_h"]`/`["lstm_c"]` hold
    `(agents, hidden)` or `(agents, 1, hidden)` and are replaced by the new state in the same shape.
    `forward(obs, state)`: a training minibatch, `(segments, horizon, tokens, 3)`, from each segment's initial
    state and with the episode resets the rollout had (`carries_state`: daf_hydra's trainer provides both).
    """

    carries_state = True  # forward() takes segment initial states and resets: training may carry state

    def __init__(self, pei: PolicyEnvInterface, hidden_size: int, recurrent: bool, feature_names: list[str],
                 tag_names: list[str]):
        super().__init__()
        self.hidden_size = hidden_size
        self.recurrent = recurrent
        self.encoder = TokenEncoder(pei, hidden_size, feature_names, tag_names)
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True) if recurrent else None
        self.action_head = _layer_init(nn.Linear(hidden_size, len(pei.action_names)), std=0.01)
        self.value_head = _layer_init(nn.Linear(hidden_size, 1), std=1.0)

    def forward_eval(
        self, observations: torch.Tensor, state: Optional[dict[str, Any]] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(observations)
        if self.lstm is not None:
            h, c = (state or {}).get("lstm_h"), (state or {}).get("lstm_c")
            shape = h.shape if h is not None else None
            if h is None:
                h = c = hidden.new_zeros(hidden.shape[0], self.hidden_size)
            # one step: the LSTM cell on nn.LSTM's own weights, 2-3x cheaper than nn.LSTM's oneDNN layer for one
            # step of a few dozen agents (measured); equal to it within float rounding (~1e-7)
            lstm = self.lstm
            h, c = torch.lstm_cell(hidden, (h.reshape(-1, self.hidden_size), c.reshape(-1, self.hidden_size)),
                                   lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
            hidden = h
            if state is not None and shape is not None:
                state["lstm_h"], state["lstm_c"] = h.reshape(shape), c.reshape(shape)
        return self.action_head(hidden), self.value_head(hidden)

    def forward(
        self, observations: torch.Tensor, state: Optional[dict[str, Any]] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A training minibatch `(segments, horizon, tokens, 3)`. Recurrent: each segment starts from the state the
        rollout had at its first step (`state["lstm_h"]`/`["lstm_c"]`, `(segments, hidden)`; zeros when absent) and
        zeroes it before step t where `state["resets"][:, t]` (a new episode began): exactly what `forward_eval`
        computed while acting, so the update sees the policy that acted."""
        if self.lstm is None or observations.dim() < 4:
            return self.forward_eval(observations, None)
        segments, horizon = observations.shape[:2]
        hidden = self.encoder(observations).reshape(segments, horizon, self.hidden_size)
        state = state or {}
        h0, c0 = state.get("lstm_h"), state.get("lstm_c")
        if h0 is None:
            h0 = hidden.new_zeros(segments, self.hidden_size)
            c0 = hidden.new_zeros(segments, self.hidden_size)
        h, c = h0.reshape(1, segments, self.hidden_size), c0.reshape(1, segments, self.hidden_size)
        resets = state.get("resets")
        # unroll in chunks that no reset interrupts: one nn.LSTM call per chunk (usually one or two per minibatch)
        cuts = [0, *(resets.any(dim=0).nonzero().flatten().tolist() if resets is not None else []), horizon]
        outs = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            if a == b:
                continue
            if resets is not None and a > 0:
                keep = (~resets[:, a]).to(h.dtype).reshape(1, segments, 1)
                h, c = h * keep, c * keep
            out, (h, c) = self.lstm(hidden[:, a:b], (h, c))
            outs.append(out)
        out = torch.cat(outs, dim=1).reshape(segments * horizon, self.hidden_size)
        return self.action_head(out), self.value_head(out)


class _AgentStepper(AgentPolicy):
    """One agent, stepped by mettagrid's per-agent tools: keeps its own recurrent state."""

    def __init__(self, parent: "TokenPolicy"):
        super().__init__(parent.policy_env_info)
        self._parent = parent
        self._state: dict[str, torch.Tensor] = {}
        self.reset()

    def reset(self, simulation: Any = None) -> None:
        net = self._parent.network()
        if net.recurrent:
            zeros = torch.zeros(1, net.hidden_size, device=self._parent.device)
            self._state = {"lstm_h": zeros, "lstm_c": zeros.clone()}

    def step(self, obs: AgentObservation) -> Action:
        shape = self.policy_env_info.observation_shape
        raw = np.full((1, *shape), EMPTY, np.uint8)
        tokens = [t.raw_token for t in obs.tokens][: shape[0]]
        if tokens:
            raw[0, : len(tokens)] = tokens
        with torch.no_grad():
            logits, _ = self._parent.network().forward_eval(torch.from_numpy(raw).to(self._parent.device), self._state)
            action = int(torch.distributions.Categorical(logits=logits[0]).sample())
        return Action(name=self.policy_env_info.action_names[action])


class TokenPolicy(MultiAgentPolicy):
    """Shared implementation of `lstm` and `mlp` (the subclasses only fix `recurrent`). No `short_names`:
    mettagrid's registry already gives `lstm` to its own network; our names live in `loading.OWN_POLICIES`."""

    recurrent = False

    def __init__(
        self,
        policy_env_info: PolicyEnvInterface,
        device: str = "cpu",
        hidden_size: int = 64,
        feature_names: Optional[list[str]] = None,
        tag_names: Optional[list[str]] = None,
    ):
        """`feature_names`/`tag_names`: the observation vocabulary the network reads (default: this mission's);
        a checkpoint carries the one it was trained with (`bundle_kwargs`)."""
        super().__init__(policy_env_info, device=device)
        if int(hidden_size) < 1:
            raise DAFError(f"policy.kwargs.hidden_size={hidden_size} is invalid: it must be a whole number >= 1")
        self.device = torch.device(device)
        features = sorted(policy_env_info.obs_features, key=lambda f: f.id)
        self._kwargs = {
            "hidden_size": int(hidden_size),
            "feature_names": list(feature_names or [f.name for f in features]),
            "tag_names": list(tag_names or policy_env_info.tags),
        }
        self._net = TokenNet(policy_env_info, int(hidden_size), self.recurrent, self._kwargs["feature_names"],
                             self._kwargs["tag_names"]).to(self.device)

    def bundle_kwargs(self) -> dict[str, Any]:
        """Constructor arguments a checkpoint bundle must carry (`init_kwargs`) to rebuild exactly this network
        for any mission: the architecture and the observation vocabulary."""
        return dict(self._kwargs)

    def network(self) -> TokenNet:
        return self._net

    def is_recurrent(self) -> bool:
        return self.recurrent

    def agent_policy(self, agent_id: int) -> AgentPolicy:
        return _AgentStepper(self)

    def load_policy_data(self, policy_data_path: str) -> None:
        state = torch.load(policy_data_path, map_location=self.device, weights_only=True)
        self._net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})

    def save_policy_data(self, policy_data_path: str) -> None:
        torch.save(self._net.state_dict(), policy_data_path)


class TokenLSTMPolicy(TokenPolicy):
    """Token encoder + LSTM (`hidden_size`): the trainable policy daf_hydra's training defaults are tuned on."""

    recurrent = True


class TokenMLPPolicy(TokenPolicy):
    """Token encoder without memory: faster to train, cannot remember what it saw."""

    recurrent = False
