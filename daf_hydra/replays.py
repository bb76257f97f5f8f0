"""Replays: episodes written in mettagrid's own replay format, and the small view of them a report's player embeds.

`evaluation.replays` says which episodes keep a replay: `none`; `examples`, per run and mission the lowest, median
and highest episode by total reward (plus, in `pipeline=analyze`, each failure mode's example episodes); `all`.
Every episode's replay is recorded by mettagrid's `InMemoryReplayWriter` while it plays and written with
mettagrid's `EpisodeReplay.write_replay` (zlib JSON, `.json.z`, what mettascope and cogames' viewers open) as soon
as it ends, into `replays/<mission>/seed_<seed>.json.z` of the run. Which episodes are examples is known only
when all are played, so `examples` writes every replay and deletes the others at the end: one replay per running
episode is in memory, never all, and a resumed run still has the replays of the episodes an earlier process
played. `replays/index.json` lists the kept replays with their roles (`lowest`, `median`, `highest`,
`failure:<mode>`), total reward and path relative to the run directory.

A report does not embed replay files (a 300-step episode of 4 agents is ~35 KB compressed, ~500 KB as JSON) but
`player_view`: the walls, the other objects' cells, every agent's cell and reward per step.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from daf_hydra.records import write_json_atomic

REPLAYS_DIR = "replays"
INDEX_FILE = "index.json"
EXAMPLE_ROLES = ("lowest", "median", "highest")
SUFFIX = ".json.z"


def mode_of(replays: str | None, pipeline: str | None) -> str:
    """The replay mode a run uses: `evaluation.replays` (checked by config.validate_evaluation), else `examples`
    for the benchmark and the analysis (their reports play them) and `none` elsewhere."""
    if replays is not None:
        return replays
    return "examples" if pipeline in ("benchmark", "analyze") else "none"


def mission_dir(run_dir: str | Path, mission: str) -> Path:
    """Where a run's replays of `mission` go (a cogames mission name made safe for a directory)."""
    return Path(run_dir) / REPLAYS_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "_", mission)


def replay_file(directory: Path, seed: int) -> Path:
    return directory / f"seed_{int(seed)}{SUFFIX}"


def recorder() -> Any:
    """mettagrid's replay recorder: an event handler of one Simulation (it keeps that episode in memory)."""
    from mettagrid.simulator.replay_log_writer import InMemoryReplayWriter

    return InMemoryReplayWriter()


def save(writer: Any, directory: Path, seed: int) -> Path:
    """Write the episode `writer` recorded, with mettagrid's writer, as `directory/seed_<seed>.json.z`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = replay_file(directory, seed)
    tmp = path.with_name(f".{path.name}.tmp{SUFFIX}")
    writer.get_completed_replays()[-1].write_replay(str(tmp))
    tmp.replace(path)  # a killed run never leaves half a replay under the real name
    return path


def example_roles(episodes: Sequence[Mapping[str, Any]]) -> dict[int, list[str]]:
    """seed -> roles among the lowest, median and highest episode by total reward (ties broken by seed; the
    median of an even count is the lower middle one)."""
    ranked = sorted(episodes, key=lambda e: (float(e["total_reward"]), int(e["seed"])))
    roles: dict[int, list[str]] = {}
    if not ranked:
        return roles
    for role, episode in zip(EXAMPLE_ROLES, (ranked[0], ranked[(len(ranked) - 1) // 2], ranked[-1])):
        roles.setdefault(int(episode["seed"]), []).append(role)
    return roles


def finish(run_dir: str | Path, mission: str, episodes: Sequence[Mapping[str, Any]], mode: str,
           extra: Mapping[int, Iterable[str]] | None = None) -> list[dict[str, Any]]:
    """After a run's episodes of `mission` are all played: keep the replays `mode` asks for (`extra`: more
    seeds to keep, with their roles), delete the rest, and record the kept ones in replays/index.json.
    Returns the index entries of this mission."""
    directory = mission_dir(run_dir, mission)
    if mode == "none" or not directory.is_dir():
        return []
    roles = example_roles(episodes)
    for seed, more in (extra or {}).items():
        roles.setdefault(int(seed), []).extend(more)
    entries = []
    for e in sorted(episodes, key=lambda e: int(e["seed"])):
        seed = int(e["seed"])
        path = replay_file(directory, seed)
        if mode == "examples" and seed not in roles:
            path.unlink(missing_ok=True)
        elif path.is_file():
            entries.append({"seed": seed, "episode": e.get("episode"), "total_reward": float(e["total_reward"]),
                            "roles": roles.get(seed, []), "path": path.relative_to(run_dir).as_posix()})
    for stale in directory.glob(f".*{SUFFIX}"):
        stale.unlink()  # half-written by a killed process
    index = read_index(run_dir)
    index[mission] = {"mode": mode, "episodes": entries}
    write_json_atomic(Path(run_dir) / REPLAYS_DIR / INDEX_FILE, index)
    return entries


def read_index(run_dir: str | Path) -> dict[str, Any]:
    """mission -> {"mode", "episodes": [{seed, episode, total_reward, roles, path}]}; {} when none kept."""
    path = Path(run_dir) / REPLAYS_DIR / INDEX_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def load(path: str | Path) -> dict[str, Any]:
    """A replay file as mettagrid wrote it (zlib-compressed JSON)."""
    return json.loads(zlib.decompress(Path(path).read_bytes()))


def value_at(value: Any, step: int) -> Any:
    """A replay field at `step`: mettagrid stores a field that changes as [[step, value], ...] (from step 0),
    and one that never changes as the bare value."""
    if not (isinstance(value, list) and value and isinstance(value[0], list) and len(value[0]) == 2
            and isinstance(value[0][0], int) and not isinstance(value[0][0], bool)):
        return value
    current = value[0][1]
    for at, v in value:
        if at > step:
            break
        current = v
    return current


def agent_cells(replay: Mapping[str, Any], step: int) -> dict[int, tuple[int, int]]:
    """agent id -> (x, y) at `step` of a replay (mettagrid's `location` is (column, row))."""
    return {int(o["agent_id"]): tuple(value_at(o["location"], step))  # type: ignore[misc]
            for o in replay["objects"] if "agent_id" in o}


def player_view(replay: Mapping[str, Any]) -> dict[str, Any]:
    """What the report's player draws: the map size, walls, other objects (type and cell where they first stood),
    and per agent its cell and reward at every step. Steps are the replay's own (0 .. max_steps-1)."""
    steps = int(replay["max_steps"])
    walls, objects, agents = [], [], []
    for o in replay["objects"]:
        kind = str(value_at(o["type_name"], 0))
        if "agent_id" in o:
            cells = [value_at(o["location"], s) for s in range(steps)]
            agents.append({"id": int(o["agent_id"]), "x": [int(c[0]) for c in cells], "y": [int(c[1]) for c in cells],
                           "reward": [round(float(value_at(o["current_reward"], s)), 4) for s in range(steps)]})
        elif kind == "wall":
            walls.append([int(c) for c in value_at(o["location"], 0)])
        else:
            objects.append({"type": kind, "cell": [int(c) for c in value_at(o["location"], 0)]})
    agents.sort(key=lambda a: a["id"])
    width, height = (int(v) for v in replay["map_size"])
    return {"width": width, "height": height, "steps": steps, "walls": walls, "objects": objects, "agents": agents}


def examples(run_dirs: Iterable[str | Path], labels: Mapping[str, str] | None = None,
             unique: bool = False) -> list[dict[str, Any]]:
    """The kept replays of `run_dirs` for a report's player, each as `player_view` plus what it is: `policy`
    (the run's recorded policy, or `labels[run_dir]`), `mission`, `seed`, `total_reward`, `roles`, `path`. Only
    replays with a role (examples, failure modes); directories without replays give nothing. `unique`: one per
    policy, mission and seed (the first run's), when runs played the same episodes (a benchmark's evaluation and
    its comparison)."""
    from daf_hydra.records import is_run_dir, read_run

    out, seen = [], set()
    for run_dir in map(Path, run_dirs):
        index = read_index(run_dir)
        if not index or not is_run_dir(run_dir):
            continue
        record = read_run(run_dir, with_episodes=False)
        policy = (labels or {}).get(str(run_dir)) or (record.metrics or {}).get("policy") \
            or record.provenance.get("identity", {}).get("policy", "")
        for mission, kept in sorted(index.items()):
            for entry in kept["episodes"]:
                roles, path, key = entry["roles"], run_dir / entry["path"], (policy, mission, entry["seed"])
                if roles and path.is_file() and not (unique and key in seen):
                    seen.add(key)
                    out.append({"policy": policy, "mission": mission, "seed": entry["seed"],
                                "total_reward": entry["total_reward"], "roles": roles, "path": str(path),
                                **player_view(load(path))})
    rank = {role: i for i, role in enumerate(EXAMPLE_ROLES)}
    return sorted(out, key=lambda e: (e["policy"], e["mission"], min(rank.get(r, len(rank)) for r in e["roles"]),
                                      e["roles"], e["seed"]))
