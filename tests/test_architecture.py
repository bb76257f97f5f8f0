"""The house has one direction (docs/architecture.md): every module imports only from its own layer or below, and
no import cycle exists, counting imports inside functions and type-only imports too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "daf_hydra"

# Lowest first; a module may import modules of its own layer or of a lower one.
LAYERS = {
    "ground": ["errors", "records", "provenance", "stats", "ratings", "identity"],
    # the typed configs and the one road to a run config, beside what they name: missions, policies, devices
    "config and world": ["config", "compose", "missions", "policies", "device"],
    "play": ["evaluation", "teams", "training", "recurrent_state", "env_workers", "replays", "curve_events"],
    "runs": ["runs", "results"],
    "features": ["aggregate", "comparison", "comparison_stats", "crossplay", "crossplay_report", "policy_entries",
                 "mission_analysis", "sweeps", "study_runner", "studies", "distributed_training",
                 "environment_checks", "visualization", "deployment", "launchers", "slurm_jobs",
                 "report"],
    "pipelines": ["orchestrators"],
    "app": ["run", "__main__"],
}
RANK = {top: i for i, (_, tops) in enumerate(LAYERS.items()) for top in tops}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("daf_hydra", *parts))
        out[name.removesuffix(".__init__")] = path
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("daf_hydra"):
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    deps.add(candidate if candidate in mods else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("daf_hydra."))
        graph[name] = {d for d in deps if d in mods and d != name and d != "daf_hydra"}
    return graph


def layer_rank(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    assert top in RANK, f"{module} is in no layer of docs/architecture.md: add it to LAYERS and to the page"
    return RANK[top]


def test_every_import_points_down_or_sideways():
    upward = [f"{m} -> {d}" for m, deps in import_graph().items() if m != "daf_hydra" for d in sorted(deps)
              if layer_rank(d) > layer_rank(m)]
    assert upward == []


def test_no_import_cycles():
    graph = import_graph()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]) if dep in path else f"{node} -> {dep}")
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_architecture_page_names_every_module():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = [m for m in modules() if m != "daf_hydra" and m.rsplit(".", 1)[-1] not in text]
    assert missing == []
