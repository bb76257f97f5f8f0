"""The crossplay pipeline: mixed teams -> composition matrix, ratings, value over replacement -> report
(daf_hydra.crossplay).

    python -m daf_hydra.run pipeline=crossplay crossplay.policies=[baseline,random] \
        crossplay.missions=[training_facility_1] crossplay.episodes=20

    daf_crossplay(["baseline", "random"], ["training_facility_1"], episodes=20)  # -> CrossplayResults
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from omegaconf import DictConfig

if TYPE_CHECKING:
    from daf_hydra.crossplay import CrossplayResults


def run_crossplay_pipeline(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """`pipeline=crossplay` from the CLI: play, analyse, print the findings; returns the run's metrics."""
    from daf_hydra.crossplay import run_crossplay

    results, metrics = run_crossplay(cfg, run_dir)
    print(f"Cross-play of {', '.join(results.policies)} on {', '.join(results.missions)} "
          f"({len(results.seeds)} seeds per composition):")
    for row in results.matrix.drop_duplicates(["mission", "composition"]).itertuples():
        print(f"  {row.mission:20s} {row.composition:40s} team reward {row.mean:9.3f} [{row.low:.3f}, {row.high:.3f}]")
    for row in results.ratings.itertuples():
        print(f"  rating {row.policy:24s} {row.rating:8.3f} [{row.low:.3f}, {row.high:.3f}]")
    for row in results.value_over_replacement.itertuples():
        print(f"  value over replacement {row.policy:24s} {row.value:9.3f} [{row.low:.3f}, {row.high:.3f}]")
    print(f"report: {run_dir / 'report.html'}")
    return metrics


def daf_crossplay(
    policies: Sequence[str] = ("baseline", "random"),
    missions: Sequence[str] = ("training_facility_1",),
    episodes: int = 20,
    k: Optional[int] = None,
    pool: Optional[Sequence[str]] = None,
    *,
    seed: int = 0,
    rating_bootstrap_reps: Optional[int] = None,
    output_dir: str | Path | None = None,
    device: str = "cpu",
    overrides: Sequence[str] = (),
) -> "CrossplayResults":
    """Cross-play from Python: the same config (composed as the CLI composes it), steps and records as
    `pipeline=crossplay`. Policies are entries as `crossplay.policies` takes them; `overrides`: further CLI
    overrides (`mission.max_steps=100`, `evaluation.num_envs=4`, `statistics.bootstrap_reps=2000`). The run lands in
    `output_dir` (default outputs/<date>/<time>-<id>)."""
    from daf_hydra.compose import api_output_dir, compose_config
    from daf_hydra.config import literal
    from daf_hydra.crossplay import run_crossplay
    from daf_hydra.orchestrators.checks import validate_run

    given = [f"crossplay.policies={literal(list(policies))}", f"crossplay.missions={literal(list(missions))}",
             f"crossplay.episodes={episodes}", f"crossplay.k={literal(k)}",
             f"crossplay.pool={literal(None if pool is None else list(pool))}", f"seed={seed}", f"device={device}"]
    if rating_bootstrap_reps is not None:
        given.append(f"crossplay.rating_bootstrap_reps={rating_bootstrap_reps}")
    cfg = compose_config(["pipeline=crossplay", *given, *overrides], api_output_dir(output_dir))
    validate_run(cfg)
    results, _ = run_crossplay(cfg, Path(cfg.output_dir))
    return results
