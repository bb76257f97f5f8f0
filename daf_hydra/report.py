"""`python -m daf_hydra.report DIR`: any tree of runs -> tidy tables and one self-contained HTML report.

    python -m daf_hydra.report multirun/2026-11-21/10-00-00
    python -m daf_hydra.report outputs/ --out /tmp/all --bootstrap-reps 10000

DIR may hold a single run, a multirun, a sweep, a comparison or a SLURM output tree. Written to `<out>/aggregate/`
(default out: DIR): runs, episodes and curves as CSV and Parquet, the comparison of the policies found
(comparison/), and report.html. Runs that did not complete are listed and skipped; they never stop the report.
The aggregator's index (DIR/.daf_index) makes the next pass read only what changed.

`MultirunReportCallback` does the same for a multirun's sweep directory when the multirun ends (enabled in
conf/config.yaml under hydra.callbacks; disable with `~hydra.callbacks.report`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from daf_hydra.config import StatisticsConfig
from daf_hydra.errors import DAFError

log = logging.getLogger(__name__)
AGGREGATE_DIR = "aggregate"
REPORT_FILE = "report.html"


@dataclass
class ReportOutputs:
    tables: Any  # aggregate.RunTables
    comparison: Any  # comparison.ComparisonResults | None (no completed episodes)
    files: list[Path]
    report: Path | None


def write_report(
    root: str | Path,
    out: str | Path | None = None,
    statistics: Any = None,
    *,
    title: str | None = None,
    html: bool = True,
    use_index: bool = True,
    index_dir: str | Path | None = None,
    workers: int | None = None,
) -> ReportOutputs:
    """Aggregate `root`, compare the arms found (policies and the settings that tell their runs apart, with
    training runs as the unit where arms have replicates: comparison.analysis_units), write tables and (unless
    `html=False`) report.html."""
    from daf_hydra.aggregate import daf_aggregate_runs, write_tables
    from daf_hydra.comparison_stats import analysis_units, compare_episodes
    from daf_hydra.visualization import tree_report_html, write_page

    tables = daf_aggregate_runs(root, use_index=use_index, index_dir=index_dir, workers=workers)
    out_dir = Path(out if out is not None else tables.root) / AGGREGATE_DIR
    files = write_tables(tables, out_dir)
    comparison = None
    if len(tables.episodes):
        units, unit, notes = analysis_units(tables.runs, tables.episodes)
        comparison = compare_episodes(units, statistics, max_reward=_max_rewards(tables.runs),
                                      runs=tables.runs.assign(policy=tables.runs["arm"]), unit=unit)
        comparison.settings["notes"] = notes
        comparison.output_dir = out_dir
        files += comparison.save(out_dir / "comparison")
    report = write_page(tree_report_html(tables, comparison, title), out_dir / REPORT_FILE) if html else None
    return ReportOutputs(tables, comparison, files, report)


def _max_rewards(runs: Any) -> dict[str, float]:
    """Mission -> max_reward as the runs' configs state it (for optimality gaps)."""
    column = "config.mission.max_reward"
    if column not in runs or "config.mission.name" not in runs:
        return {}
    stated = runs.dropna(subset=[column])
    return {str(m): float(v) for m, v in zip(stated["config.mission.name"], stated[column])}


class MultirunReportCallback(Callback):
    """Hydra callback: when a multirun ends, write the aggregate and report.html into its sweep directory.

    Uses the run's `statistics:` settings. A failure here is raised, not hidden: Hydra reports it after the jobs
    (whose records are all written by then)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            log.info("no sweep directory %s: no multirun report", sweep_dir)
            return
        outputs = write_report(sweep_dir, statistics=config.get("statistics"))
        log.info("multirun report: %s (%d runs, %d did not complete)", outputs.report, len(outputs.tables.runs),
                 len(outputs.tables.problems))


def main(argv: Sequence[str] | None = None) -> int:
    defaults = StatisticsConfig()
    parser = argparse.ArgumentParser(prog="python -m daf_hydra.report", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a run, multirun, sweep, comparison or SLURM output directory")
    parser.add_argument("--out", type=Path, help="write <out>/aggregate/ instead of <root>/aggregate/")
    parser.add_argument("--title", help="report title")
    for f in fields(StatisticsConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                            default=getattr(defaults, f.name), help=f"statistics.{f.name} (default %(default)s)")
    parser.add_argument("--no-html", action="store_true", help="tables only")
    parser.add_argument("--no-index", action="store_true", help="read every run again; do not write the index")
    parser.add_argument("--index-dir", type=Path, help="keep the index here (default <root>/.daf_index)")
    parser.add_argument("--workers", type=int, help="reader processes for large trees (default: CPU cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    statistics = {f.name: getattr(args, f.name) for f in fields(StatisticsConfig)}
    try:
        outputs = write_report(args.root, args.out, statistics, title=args.title, html=not args.no_html,
                               use_index=not args.no_index, index_dir=args.index_dir, workers=args.workers)
    except DAFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t = outputs.tables
    print(f"{len(t.runs)} runs ({t.runs_read} read, {t.runs_reused} from the index), {len(t.episodes)} episodes, "
          f"{len(t.problems)} did not complete")
    for row in t.problems.head(20).itertuples():
        print(f"  {row.status:9s} {row.run_dir}: "
              f"{row.error if isinstance(row.error, str) else 'no metrics.json (still running, or died)'}")
    if outputs.comparison is not None:
        print(f"comparison: {outputs.comparison.completeness.summary()}")
    print(f"tables: {outputs.files[0].parent}")
    if outputs.report:
        print(f"report: {outputs.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
