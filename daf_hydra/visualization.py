"""Plotly figures and self-contained HTML reports (plotly.js inline: a report opens offline, years later).

Every string that comes from a user or a run (policy and mission names, errors, config values) is escaped: in
HTML tables by pandas (`to_html(escape=True)`) or `html.escape`, in figures by `_t()` (plotly renders its text
as a small HTML subset, and decodes entities, so an escaped `<script>` shows as the text `<script>`). plotly.io
itself escapes `<`, `>` and `/` inside the JSON it embeds, so no string can close the script element.

Reports: `daf_export_comparison_html` (a comparison), `tree_report_html` (any tree of runs, `python -m
daf_hydra.report`), `daf_export_mission_analysis_html` (a mission analysis), `daf_export_benchmark_html` (the
benchmark pipeline).
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from daf_hydra.aggregate import RunTables
    from daf_hydra.comparison_stats import ComparisonResults

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
MAX_TABLE_ROWS = 200  # longer tables are cut in the page; the CSV files hold every row
MAX_CURVE_RUNS = 30  # runs drawn one by one per policy in learning curves
STEP_KEYS = ("agent_steps", "global_step", "env_steps", "steps", "step", "update", "epoch")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#243447;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d3dd;font-size:13px}
nav{padding:8px 32px;background:#e9eef3;font-size:13px}nav a{margin-right:14px;color:#243447}
main{padding:8px 32px 40px}section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:16px 0;
padding:12px 20px;overflow-x:auto}h2{font-size:18px;margin:6px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table.tbl{border-collapse:collapse;font-size:12.5px;margin:6px 0}table.tbl th,table.tbl td{border:1px solid #dde;
padding:3px 8px;text-align:right;vertical-align:top;white-space:nowrap}table.tbl th{background:#f0f3f6}
table.tbl td:last-child{white-space:normal}
table.tbl td:first-child,table.tbl th:first-child{text-align:left}
pre{background:#f6f8fa;padding:10px;font-size:12px;overflow:auto;max-height:420px}
.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}.note{color:#555;font-size:13px}
.kv td:first-child{font-weight:600;text-align:left}
"""


# ------------------------------------------------------------------------------------------------------------
# Page building blocks
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Section:
    """A part of a report: `body` is HTML that has already been escaped."""

    anchor: str
    title: str
    body: str


def esc(value: Any) -> str:
    """Text for HTML."""
    return html.escape(str(value))


def _t(value: Any) -> str:
    """Text for a plotly figure (labels, category names, hover text)."""
    return html.escape(str(value), quote=False)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table; NaN and None are a dash (never 0)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


def fmt_ci(point: float, low: float, high: float) -> str:
    if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in (point, low, high)):
        return "–"
    return f"{point:.4g} [{low:.4g}, {high:.4g}]"


def table_html(table: "pd.DataFrame", max_rows: int = MAX_TABLE_ROWS) -> str:
    """An escaped HTML table; long tables are cut with a note (the CSV files hold everything)."""
    if table.empty:
        return '<p class="note">(none)</p>'
    shown = table.head(max_rows).astype(object).map(lambda v: v if isinstance(v, str) else fmt(v))
    out = shown.to_html(index=False, escape=True, border=0, classes="tbl", na_rep="–")
    if len(table) > max_rows:
        out += f'<p class="note">first {max_rows} of {len(table)} rows shown</p>'
    return out


def kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(fmt(v) if not isinstance(v, str) else v)}</td></tr>"
                   for k, v in pairs)
    return f'<table class="tbl kv">{rows}</table>'


def figure_html(fig: "go.Figure", div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """A complete HTML document with plotly.js inline."""
    from plotly.offline import get_plotlyjs

    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{CSS}</style><script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav><main>{body}</main>"
        "</body></html>\n"
    )


def write_page(text: str, output_path: str | Path) -> Path:
    """Write then rename: a browser or a sync never sees half a report."""
    import os

    path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _layout(fig: "go.Figure", title: str, height: int = 420, **kw: Any) -> "go.Figure":
    fig.update_layout(title=_t(title), height=height, template="plotly_white", margin=dict(l=60, r=30, t=60, b=50),
                      **kw)
    return fig


# ------------------------------------------------------------------------------------------------------------
# Comparison figures
# ------------------------------------------------------------------------------------------------------------


def interval_figure(summary: "pd.DataFrame", policies: Sequence[str], scope: str, ci: str) -> "go.Figure":
    """rliable-style interval estimates: one panel per aggregate, a point and its interval per policy."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = summary[summary["mission"] == scope].set_index("policy")
    metrics = [m for m in ("iqm", "median", "mean", "optimality_gap") if rows[m].notna().any()]
    titles = {"iqm": "IQM", "median": "Median", "mean": "Mean", "optimality_gap": "Optimality gap (lower is better)"}
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, subplot_titles=[titles[m] for m in metrics],
                        horizontal_spacing=0.04)
    for col, metric in enumerate(metrics, start=1):
        for i, policy in enumerate(policies):
            if policy not in rows.index:
                continue
            r = rows.loc[policy]
            fig.add_trace(go.Scatter(
                x=[r[metric]], y=[_t(policy)], mode="markers", marker=dict(color=_color(i), size=10),
                error_x=dict(type="data", symmetric=False, array=[r[f"{metric}_high"] - r[metric]],
                             arrayminus=[r[metric] - r[f"{metric}_low"]], thickness=6, width=0, color=_color(i)),
                name=_t(policy), showlegend=False,
                hovertemplate=f"{_t(policy)}<br>{titles[metric]} %{{x:.4g}} "
                              f"[{r[f'{metric}_low']:.4g}, {r[f'{metric}_high']:.4g}]<extra></extra>",
            ), row=1, col=col)
    fig.update_yaxes(autorange="reversed")  # first policy on top, as in the tables
    score = rows["score"].iloc[0] if len(rows) else ""
    return _layout(fig, f"{scope}: {score}, {ci} stratified-bootstrap intervals",
                   height=160 + 45 * len(policies))


def mission_figure(summary: "pd.DataFrame", policies: Sequence[str], missions: Sequence[str], ci: str) -> "go.Figure":
    """IQM and its interval per mission, policies side by side."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, policy in enumerate(policies):
        rows = summary[(summary["policy"] == policy) & summary["mission"].isin(missions)]
        rows = rows.set_index("mission").reindex(missions)
        fig.add_trace(go.Scatter(
            x=[_t(m) for m in missions], y=rows["iqm"], mode="markers", name=_t(policy),
            marker=dict(color=_color(i), size=10),
            error_y=dict(type="data", symmetric=False, array=rows["iqm_high"] - rows["iqm"],
                         arrayminus=rows["iqm"] - rows["iqm_low"], color=_color(i)),
            offsetgroup=str(i),
        ))
    fig.update_layout(scattermode="group")
    return _layout(fig, f"IQM of total episode reward per mission ({ci} intervals)", yaxis_title="total reward")


def distribution_figure(episodes: "pd.DataFrame", policies: Sequence[str], missions: Sequence[str]) -> "go.Figure":
    """Every episode's total reward: boxes with all points, per mission and policy."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, policy in enumerate(policies):
        rows = episodes[episodes["policy"] == policy]
        fig.add_trace(go.Box(
            x=[_t(m) for m in rows["mission"]], y=rows["total_reward"], name=_t(policy), boxpoints="all",
            jitter=0.4, pointpos=0, marker=dict(color=_color(i), size=4), line=dict(color=_color(i)),
            text=[f"seed {s}" for s in rows["seed"]],
        ))
    fig.update_layout(boxmode="group")
    fig.update_xaxes(categoryorder="array", categoryarray=[_t(m) for m in missions])
    return _layout(fig, "Score distributions: total reward of every episode", yaxis_title="total reward")


def profile_figure(profiles: "pd.DataFrame", policies: Sequence[str], score: str, ci: str) -> "go.Figure":
    """Performance profiles: fraction of episodes scoring above tau, with bands."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, policy in enumerate(policies):
        p = profiles[profiles["policy"] == policy]
        if p.empty:
            continue
        taus = p["tau"].tolist()
        fig.add_trace(go.Scatter(
            x=taus + taus[::-1], y=p["high"].tolist() + p["low"].tolist()[::-1], fill="toself",
            fillcolor=_color(i), opacity=0.18, line=dict(width=0, shape="hv"), hoverinfo="skip", showlegend=False,
        ))
        fig.add_trace(go.Scatter(x=taus, y=p["fraction"], mode="lines", name=_t(policy),
                                 line=dict(color=_color(i), width=2, shape="hv")))
    return _layout(fig, f"Performance profiles ({ci} bands)", xaxis_title=_t(f"tau ({score})"),
                   yaxis_title="fraction of episodes > tau", yaxis_range=[-0.02, 1.02])


def improvement_figure(poi: "pd.DataFrame", policies: Sequence[str], ci: str) -> "go.Figure":
    """P(row policy beats column policy) with intervals; 0.5 means no difference."""
    import plotly.graph_objects as go

    index = {p: i for i, p in enumerate(policies)}
    z = [[math.nan] * len(policies) for _ in policies]
    text = [[""] * len(policies) for _ in policies]
    for r in poi.itertuples():
        i, j = index[r.policy_x], index[r.policy_y]
        z[i][j] = r.probability
        text[i][j] = f"{r.probability:.2f}<br>[{r.low:.2f}, {r.high:.2f}]"
    labels = [_t(p) for p in policies]
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=labels, text=text, texttemplate="%{text}", zmin=0, zmax=1, colorscale="RdBu",
        colorbar=dict(title="P(X > Y)"), hovertemplate="P(%{y} > %{x}) = %{z:.3f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title="X (row)")
    fig.update_xaxes(title="Y (column)")
    return _layout(fig, f"Probability of improvement P(X > Y), {ci} intervals", height=220 + 60 * len(policies))


def comparison_sections(results: "ComparisonResults", with_runs: bool = True) -> list[Section]:
    """The statistics part of a report (shared by the comparison report and the report of any tree)."""
    from daf_hydra.comparison_stats import ALL_MISSIONS

    r = results
    s = r.settings
    c = r.completeness
    ci = f"{s['confidence']:.0%}"
    badge = f'<p class="{"ok" if c.complete else "bad"}">{esc(c.summary())}</p>'
    sections = []
    unit = s.get("unit", "episode")
    notes = "".join(f'<p class="bad">{esc(n)}</p>' for n in s.get("notes") or [])
    completeness = badge + notes + (
        f"<p class=\"note\">Unit of analysis: {'the training run' if unit == 'run' else 'the episode'}. "
        f"{esc(s['pairing'])}.</p>"
        + "<h3>Missing episodes</h3>" + table_html(c.missing)
        + ("<h3>Recorded but unpaired (left out)</h3>" + table_html(c.left_out) if len(c.left_out) else "")
        + ("<h3>Duplicate episodes (not used)</h3>" + table_html(c.duplicates) if len(c.duplicates) else "")
        + ("<h3>Runs that did not complete</h3>" + table_html(c.failed_runs) if len(c.failed_runs) else "")
        + (f"<p class=\"bad\">Missions without a seed every policy played (left out): "
           f"{esc(', '.join(c.excluded_missions))}</p>" if c.excluded_missions else "")
        + (f"<p class=\"bad\">Analysed on their own, not in '{esc(ALL_MISSIONS)}' (not every policy played them): "
           f"{esc(', '.join(c.unpooled_missions))}</p>" if c.unpooled_missions else "")
    )
    sections.append(Section("completeness", "Completeness", completeness))
    if not r.missions:
        return sections
    summary = r.summary_statistics
    table = summary.assign(
        **{"mean ± s.e.": [f"{m:.4g} ± {se:.2g}" if math.isfinite(se) else f"{m:.4g}"
                           for m, se in zip(summary["mean"], summary["stderr"])],
           f"median [{ci} CI]": [fmt_ci(*v) for v in zip(summary["median"], summary["median_low"],
                                                        summary["median_high"])],
           f"IQM [{ci} CI]": [fmt_ci(*v) for v in zip(summary["iqm"], summary["iqm_low"], summary["iqm_high"])],
           f"optimality gap [{ci} CI]": [fmt_ci(*v) for v in zip(summary["optimality_gap"],
                                                                summary["optimality_gap_low"],
                                                                summary["optimality_gap_high"])],
           "success rate": summary["success_rate"]},
    ).rename(columns={"n_episodes": "n runs" if unit == "run" else "n episodes"})[
        ["policy", "mission", "score", "n runs" if unit == "run" else "n episodes", "mean ± s.e.", f"median [{ci} CI]", f"IQM [{ci} CI]",
       f"optimality gap [{ci} CI]", "success rate"]]
    body = (
        f"<p class=\"note\">Intervals: {s['confidence']:.0%} stratified bootstrap ({unit}s resampled within each "
        f"mission), {s['bootstrap_reps']} resamples, seed {s['bootstrap_seed']}. '{esc(ALL_MISSIONS)}' pools "
        f"{esc(', '.join(s['pooled_missions']) or 'no mission')} on: {esc(s['aggregate_score'])}.</p>"
        + table_html(table)
    )
    has_all = bool((summary["mission"] == ALL_MISSIONS).any())
    if has_all:
        body += figure_html(interval_figure(summary, r.policies, ALL_MISSIONS, ci), "fig-intervals")
    if len(r.missions) > 1 or not has_all:
        body += figure_html(mission_figure(summary, r.policies, r.missions, ci), "fig-missions")
    sections.append(Section("summary", "Summary statistics", body))
    sections.append(Section("distributions", "Score distributions",
                            figure_html(distribution_figure(r.episodes, r.policies, r.missions), "fig-distributions")))
    if len(r.performance_profiles):
        sections.append(Section("profiles", "Performance profiles", (
            f"<p class=\"note\">Fraction of episodes (pooled missions) whose score exceeds tau; bands from "
            f"{s['profile_bootstrap_reps']} stratified-bootstrap resamples.</p>"
            + figure_html(profile_figure(r.performance_profiles, r.policies, s["aggregate_score"], ci),
                          "fig-profiles"))))
    if len(r.policies) > 1:
        poi = r.probability_of_improvement
        sections.append(Section("improvement", "Probability of improvement", (
            "<p class=\"note\">P(X &gt; Y): the chance that an episode of X scores higher than one of Y on the same "
            f"mission (ties count half), averaged over the missions both played; {s['profile_bootstrap_reps']} "
            "resamples.</p>"
            + figure_html(improvement_figure(poi, r.policies, ci), "fig-improvement")
            + table_html(poi.assign(**{f"P(X > Y) [{ci} CI]": [fmt_ci(*v) for v in zip(poi["probability"], poi["low"],
                                                                                     poi["high"])]})
                         [["policy_x", "policy_y", f"P(X > Y) [{ci} CI]", "missions"]]))))
        tests = r.pairwise_significance_tests
        shown = tests[["scope", "policy_x", "policy_y", "test", "role", "statistic", "p_value", "p_adjusted",
                       "effect_size", "effect_size_name", "n_x", "n_y", "verdict", "note"]]
        sections.append(Section("tests", "Pairwise tests", (
            f"<p class=\"note\">Significance is decided by {esc(r.decided_by())}: the secondary tests are "
            "checks, not verdicts."
            + f" p-values Holm-corrected within each scope and test at "
            f"alpha = {s['significance_level']}. Effect sizes: rank-biserial (Wilcoxon), Hedges' g (Welch), "
            "Cliff's delta (Mann-Whitney); positive means X scores higher. Identical or zero-variance samples "
            "are named as such.</p>" + table_html(shown, max_rows=1000))))
    if with_runs and r.runs is not None and len(r.runs):
        cols = [c for c in ("run_dir", "status", "policy", "mission", "n_episodes", "metric.mean_reward", "error")
                if c in r.runs]
        sections.append(Section("runs", "Member runs", table_html(r.runs[cols])))
    return sections


def comparison_provenance(results: "ComparisonResults") -> Section:
    import yaml

    p = results.provenance
    s = results.settings
    seeds = p.get("seeds") or []
    pairs = [
        ("run id", p.get("run_id")), ("run directory", p.get("run_dir")),
        ("policies", ", ".join(results.policies)), ("missions", ", ".join(p.get("missions") or results.missions)),
        ("episodes per mission", p.get("episodes_per_mission")),
        ("seeds", f"{seeds[0]} .. {seeds[-1]} (same for every policy and mission)" if seeds else "–"),
        ("member runs (completed)", f"{p.get('member_runs')} ({p.get('completed_member_runs')})"),
        ("device", p.get("device")),
        ("git commit", (p.get("code") or {}).get("git_commit")),
        ("uncommitted changes", (p.get("code") or {}).get("git_dirty")),
        *[(f"statistics.{k}", v) for k, v in s.items() if k not in ("pairing",)],
    ]
    packages = [(name, version or "not installed") for name, version in (p.get("packages") or {}).items()]
    body = kv_table(pairs) + "<h3>Package versions</h3>" + kv_table(packages)
    if p.get("policies"):
        body += "<h3>Policies</h3><pre>" + esc(json.dumps(p["policies"], indent=1)) + "</pre>"
    if p.get("config"):
        body += "<h3>Config</h3><pre>" + esc(yaml.safe_dump(p["config"], sort_keys=False)) + "</pre>"
    return Section("provenance", "Provenance", body)


def daf_export_comparison_html(results: "ComparisonResults", output_path: str | Path,
                               title: str | None = None) -> Path:
    """One self-contained HTML report of a comparison; returns its path."""
    r = results
    title = title or f"Comparison: {', '.join(r.policies)}"
    subtitle = (f"{len(r.missions)} mission(s), {r.completeness.analysed_episodes} episodes analysed; "
                f"{r.completeness.summary()}; written {time.strftime('%Y-%m-%d %H:%M:%S')}")
    overview = _overview(r)
    return write_page(page(title, subtitle, [overview, *comparison_sections(r), comparison_provenance(r)]),
                      output_path)


def _overview(r: "ComparisonResults") -> Section:
    from daf_hydra.comparison_stats import ALL_MISSIONS

    lines = []
    overall = r.summary_statistics[r.summary_statistics["mission"] == ALL_MISSIONS]
    if len(overall):
        ranked = overall.sort_values("iqm", ascending=False)
        lines.append("IQM over all missions: " + "; ".join(
            f"{esc(p)} {fmt_ci(i, lo, hi)}" for p, i, lo, hi in zip(ranked["policy"], ranked["iqm"],
                                                                   ranked["iqm_low"], ranked["iqm_high"])))
        pairs = r.significant()
        lines.append(f"Significantly better ({esc(r.decided_by())}): " + (
            "; ".join(f"{esc(a)} &gt; {esc(b)}" for a, b in pairs) if pairs else "no pair"))
    badge = f'<p class="{"ok" if r.completeness.complete else "bad"}">{esc(r.completeness.summary())}</p>'
    return Section("overview", "Overview", badge + "".join(f"<p>{line}</p>" for line in lines))


# ------------------------------------------------------------------------------------------------------------
# Benchmark report
# ------------------------------------------------------------------------------------------------------------


def daf_export_benchmark_html(stages: dict[str, dict[str, Any]], evaluation: "pd.DataFrame",
                              comparison: "ComparisonResults | None", curves: "pd.DataFrame | None",
                              output_path: str | Path, title: str,
                              replays: Sequence[dict[str, Any]] = (), total_stages: int | None = None) -> Path:
    """The benchmark pipeline's report: its stages, each policy's evaluation per mission, the comparison with
    the baselines (when it ran), the learning curves of the trainings (when there were any) and a player of
    the example episodes' replays (`replays.examples`). `total_stages`: how many stages the pipeline runs
    (the console's `k/n`), so the report counts as the console does."""
    rows = [{"stage": name, "status": r["status"], "reused from an earlier run": r["reused"],
             "duration_s": r["duration_s"], "error": r["error"] or ""} for name, r in stages.items()]
    failed = [r for r in rows if r["status"] != "completed"]
    badge = (f'<p class="bad">{len(failed)} stage(s) did not complete</p>' if failed
             else '<p class="ok">every stage completed</p>')
    sections = [Section("stages", "Stages", badge + table_html(_frame(rows)))]
    sections.append(Section("evaluation", "Evaluation", (
        "<p class=\"note\">Each policy on each mission, episodes on seeds seed..seed+n-1 (the same seeds for every "
        "policy); total reward per episode.</p>" + table_html(evaluation))))
    if comparison is not None:
        sections += [_overview(comparison), *comparison_sections(comparison, with_runs=False)]
    x, metrics = curve_columns(curves) if curves is not None and len(curves) else (None, [])
    if x and metrics:
        sections.append(Section("curves", "Learning curves", "".join(
            figure_html(curves_figure(curves, x, m), f"fig-curve-{k}") for k, m in enumerate(metrics))))
    player = replay_section(replays, note="Each policy's lowest, median and highest episode per mission.")
    if player is not None:
        sections.append(player)
    total = total_stages or len(stages) + 1
    subtitle = (f"stages 1-{len(stages)} of {total} (this report is stage {len(stages) + 1}; pipeline.json records "
                f"the later ones); "
                f"written {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return write_page(page(title, subtitle, sections), output_path)


# ------------------------------------------------------------------------------------------------------------
# Report of any tree of runs
# ------------------------------------------------------------------------------------------------------------


def curves_figure(curves: "pd.DataFrame", x: str, metric: str) -> "go.Figure":
    """One colour and one legend entry per arm (policy and the settings that tell its runs apart): one line per
    run (up to MAX_CURVE_RUNS per arm), and the arm's IQM across its runs where at least three runs logged the
    same step."""
    import plotly.graph_objects as go

    from daf_hydra import stats

    fig = go.Figure()
    data = curves.dropna(subset=[x, metric])
    group = "arm" if "arm" in data else "policy"
    for i, (policy, rows) in enumerate(data.groupby(group, sort=True, dropna=False)):
        for k, (run_dir, run) in enumerate(rows.groupby("run_dir", sort=True)):
            if k >= MAX_CURVE_RUNS:
                break
            fig.add_trace(go.Scatter(x=run[x], y=run[metric], mode="lines", line=dict(color=_color(i), width=1),
                                     opacity=0.35, name=_t(run_dir), legendgroup=_t(policy), showlegend=False))
        per_step = rows.groupby(x)[metric].agg(lambda v: stats.iqm(v.to_numpy(float)) if len(v) >= 3 else math.nan)
        per_step = per_step.dropna()
        if len(per_step):
            fig.add_trace(go.Scatter(x=per_step.index, y=per_step.values, mode="lines",
                                     line=dict(color=_color(i), width=3), name=f"{_t(policy)} (IQM over runs)",
                                     legendgroup=_t(policy)))
        else:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=_color(i)),
                                     name=_t(policy), legendgroup=_t(policy), showlegend=True))
    return _layout(fig, f"Learning curves: {metric}", xaxis_title=_t(x), yaxis_title=_t(metric))


def curve_columns(curves: "pd.DataFrame") -> tuple[str | None, list[str]]:
    """The step column and up to four metrics worth plotting (reward-like first)."""
    import pandas as pd

    x = next((k for k in STEP_KEYS if k in curves), None)
    if x is None:
        return None, []
    numeric = [c for c in curves.columns if c not in (x, "run_dir", "arm", "policy", "mission")
               and pd.api.types.is_numeric_dtype(curves[c]) and not pd.api.types.is_bool_dtype(curves[c])
               and curves[c].notna().any()]
    rewardish = [c for c in numeric if any(w in c.lower() for w in ("reward", "return", "score", "objective"))]
    rest = [c for c in numeric if c not in rewardish and "loss" in c.lower()]
    return x, (rewardish + rest)[:4]


def sweep_parameters(runs: "pd.DataFrame") -> "pd.DataFrame":
    """What a sweep or multirun varied: one column per arm key whose value differs between the completed runs
    (identity.differing_keys: one name per knob, `lr` for the learning rate), one row per run, indexed like
    `runs`. Keys only some runs have are differences of kind (another pipeline), not swept values."""
    import pandas as pd

    from daf_hydra.identity import RunIdentity, differing_keys

    done = runs[(runs["status"] == "completed") & runs["identity"].notna()] if "identity" in runs else runs.iloc[0:0]
    identities = [RunIdentity.from_dict(json.loads(t)) for t in done["identity"]] if len(done) else []
    keys = differing_keys(identities)
    return pd.DataFrame([{k: i.arm.get(k) for k in keys} for i in identities], index=done.index, columns=keys)


def _log_axis(values: Sequence[Any]) -> bool:
    """A log axis for a numeric knob spanning a factor of 10 or more (learning rates, coefficients)."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(numbers) == len(values) and bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) >= 10


def sweep_figures(runs: "pd.DataFrame", params: "pd.DataFrame", minimize: bool, prefix: str) -> list[str]:
    """Objective per trial (in start order, with the best so far) and objective against each varied value."""
    import numpy as np
    import plotly.graph_objects as go

    done = runs[(runs["status"] == "completed") & runs["metric.objective"].notna()].sort_values("started_at")
    params = params.loc[done.index]
    objective = done["metric.objective"].astype(float).to_numpy()
    best = (np.minimum if minimize else np.maximum).accumulate(objective)
    trials = list(range(len(done)))
    fig = go.Figure([
        go.Scatter(x=trials, y=objective, mode="markers", name="trial", text=[_t(d) for d in done["run_dir"]]),
        go.Scatter(x=trials, y=best, mode="lines", name=f"best so far ({'min' if minimize else 'max'})"),
    ])
    out = [figure_html(_layout(fig, "Objective per trial", xaxis_title="trial (start order)",
                               yaxis_title="objective"), f"{prefix}-trials")]
    for k, param in enumerate(list(params.columns)[:8]):
        values = params[param].tolist()
        fig = go.Figure(go.Scatter(
            x=[_t(v) if isinstance(v, str) else (json.dumps(v) if isinstance(v, (list, dict)) else v)
               for v in values], y=objective, mode="markers", text=[_t(d) for d in done["run_dir"]],
            marker=dict(size=8)))
        fig = _layout(fig, f"Objective vs {param}", height=340, xaxis_title=_t(param), yaxis_title="objective")
        if _log_axis(values):
            fig.update_xaxes(type="log")
        out.append(figure_html(fig, f"{prefix}-{k}"))
    return out


def _sweep_section(tables: "RunTables") -> Section | None:
    """One part per multirun or Optuna sweep found (over the runs below it). A multirun that varied only the
    policy and the mission is a comparison, shown as such above, and gets no sweep part."""
    runs = tables.runs
    has_objective = "metric.objective" in runs and bool(runs["metric.objective"].notna().any())
    body = ""
    for k, sweep in enumerate(tables.sweeps):
        group = runs if sweep["path"] == "." else runs[runs["run_dir"].str.startswith(sweep["path"] + "/")]
        done = group[(group["status"] == "completed") & group["metric.objective"].notna()] if has_objective \
            else group.iloc[0:0]
        params = sweep_parameters(done)
        optuna = sweep["best_value"] is not None or sweep["best_params"] is not None
        if not optuna and not sweep["error"] and all(p.startswith(("policy.", "mission.")) for p in params.columns):
            continue
        body += f"<h3>{esc(sweep['path'])}</h3>"
        if sweep["error"]:
            body += f'<p class="bad">unreadable: {esc(sweep["error"])}</p>'
        pairs = [("sweep overrides", " ".join(sweep["overrides"]))] if sweep["overrides"] else []
        if optuna:
            pairs += [("best value", sweep["best_value"]),
                      *[(f"best {key}", v) for key, v in (sweep["best_params"] or {}).items()]]
        body += kv_table(pairs) if pairs else ""
        minimize = False
        if isinstance(sweep["best_value"], (int, float)) and len(done):
            values = done["metric.objective"].astype(float)
            minimize = abs(sweep["best_value"] - values.min()) < abs(sweep["best_value"] - values.max())
        if len(done) > 1:
            body += "".join(sweep_figures(done, params, minimize, f"fig-sweep-{k}"))
    return Section("sweep", "Sweep", body) if body else None


def tree_report_html(tables: "RunTables", comparison: "ComparisonResults | None", title: str | None = None) -> str:
    """The report of any tree of runs: provenance, run status, the comparison of the policies found, learning
    curves and sweep plots when present."""
    runs = tables.runs
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    title = title or f"Runs in {tables.root.name or tables.root}"
    subtitle = (f"{len(runs)} runs ({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'none'}), "
                f"{len(tables.episodes)} episodes; written {time.strftime('%Y-%m-%d %H:%M:%S')}")
    sections = [_tree_overview(tables, comparison), _tree_provenance(tables, comparison)]
    sections.append(_runs_section(tables))
    if comparison is not None:
        sections += comparison_sections(comparison, with_runs=False)
    x, metrics = curve_columns(tables.curves) if len(tables.curves) else (None, [])
    if x and metrics:
        sections.append(Section("curves", "Learning curves", "".join(
            figure_html(curves_figure(tables.curves, x, m), f"fig-curve-{k}") for k, m in enumerate(metrics))))
    sweep = _sweep_section(tables) if len(runs) else None
    if sweep is not None:
        sections.append(sweep)
    player = _tree_replays(tables)
    if player is not None:
        sections.append(player)
    return page(title, subtitle, sections)


def _tree_replays(tables: "RunTables") -> Section | None:
    """The replays the completed runs kept (evaluation.replays), each under its arm's label."""
    from daf_hydra import replays

    if not len(tables.runs) or "run_dir" not in tables.runs:
        return None
    done = tables.runs[tables.runs["status"] == "completed"]
    dirs = [str(tables.root / d) for d in done["run_dir"]]
    labels = dict(zip(dirs, done["arm"].astype(str))) if "arm" in done else {}
    return replay_section(replays.examples(dirs, labels),
                          note="The lowest, median and highest episode of each run and mission that kept replays.")


def _tree_overview(tables: "RunTables", comparison: "ComparisonResults | None") -> Section:
    problems = tables.problems
    body = f"<p>{len(tables.runs)} runs below <code>{esc(tables.root)}</code>; "
    body += ('<span class="ok">all completed</span>' if problems.empty else
             f'<span class="bad">{len(problems)} did not complete (listed under Runs, skipped)</span>') + "</p>"
    if comparison is not None:
        body += _overview(comparison).body
    else:
        body += '<p class="note">No completed episodes: nothing to compare.</p>'
    return Section("overview", "Overview", body)


def _tree_provenance(tables: "RunTables", comparison: "ComparisonResults | None") -> Section:
    runs = tables.runs
    pairs: list[tuple[str, Any]] = [("root", str(tables.root)), ("runs", len(runs)),
                                    ("episodes (completed runs)", len(tables.episodes))]
    for column, label in (("kind", "kinds"), ("git_commit", "git commits"), ("host", "hosts"),
                          ("python", "python")):
        if column in runs:
            values = runs[column].dropna().astype(str).value_counts()
            pairs.append((label, ", ".join(f"{v} ({n})" for v, n in values.items()) or "–"))
    if "git_dirty" in runs and runs["git_dirty"].fillna(False).astype(bool).any():
        pairs.append(("uncommitted changes", f"{int(runs['git_dirty'].fillna(False).astype(bool).sum())} runs"))
    if "seed" in runs and runs["seed"].notna().any():
        pairs.append(("run seeds", f"{int(runs['seed'].min())} .. {int(runs['seed'].max())}"))
    if comparison is not None:
        pairs += [(f"statistics.{k}", v) for k, v in comparison.settings.items() if k != "pairing"]
    packages = [(c.removeprefix("package."), ", ".join(runs[c].dropna().astype(str).unique()) or "–")
                for c in runs.columns if c.startswith("package.")]
    body = kv_table(pairs)
    if packages:
        body += "<h3>Package versions</h3>" + kv_table(packages)
    config_cols = [c for c in runs.columns if c.startswith("config.")]
    if config_cols:
        done = runs[runs["status"] == "completed"] if (runs["status"] == "completed").any() else runs
        varying = [c for c in config_cols if _text(done[c]).nunique() > 1]
        common = {c.removeprefix("config."): done[c].iloc[0] for c in config_cols if c not in varying}
        body += "<h3>Config shared by the runs</h3><pre>" + esc(
            "\n".join(f"{k}: {fmt(v) if not isinstance(v, str) else v}" for k, v in common.items())) + "</pre>"
        if varying:
            body += "<h3>Config that varies between runs</h3>" + table_html(
                _frame([{"key": c.removeprefix("config."), "values": _text(done[c]).nunique(),
                         "examples": ", ".join(_text(done[c]).unique()[:6])} for c in varying]))
    return Section("provenance", "Provenance", body)


def _runs_section(tables: "RunTables") -> Section:
    runs = tables.runs
    problems = tables.problems
    body = "<h3>Runs that did not complete (skipped)</h3>"
    body += table_html(problems[["run_dir", "status", "kind", "policy", "mission", "error"]], max_rows=1000)
    done = runs[runs["status"] == "completed"]
    cols = [c for c in ("run_dir", "kind", "policy", "mission", "seed", "n_episodes", "metric.mean_reward",
                        "metric.success_rate", "metric.objective", "duration_s") if c in done]
    body += "<h3>Completed runs</h3>" + table_html(done[cols])
    return Section("runs", "Runs", body)


def _text(values: "pd.Series") -> "pd.Series":
    """Values as display text, a missing value as a dash (pandas keeps NaN through astype(str))."""
    return values.map(lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))


def _frame(rows: list[dict[str, Any]]) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------------------
# Mission analysis
# ------------------------------------------------------------------------------------------------------------


def daf_export_mission_analysis_html(analysis: Any, output_path: str | Path) -> Path:
    """One self-contained HTML report of a mission analysis (`mission_analysis.MissionAnalysis`, which imports this
    module: hence no type import here); returns its path."""
    import plotly.graph_objects as go

    from daf_hydra import replays

    a = analysis
    title = f"Mission analysis: {a.policy} on {a.mission}"
    sr = a.success_rate
    headline = kv_table([
        ("episodes", a.episodes),
        ("success criterion", a.success_criterion),
        (f"success rate [{a.confidence:.0%} Wilson interval]",
         fmt_ci(sr, *a.success_rate_ci) if sr is not None and a.success_rate_ci else "– (no criterion)"),
        (f"mean total reward [{a.confidence:.0%} bootstrap interval]", fmt_ci(a.mean_reward, *a.mean_reward_ci)),
        ("failed episodes", a.failed_episodes),
    ])
    modes = a.failure_modes_table()
    fig_modes = go.Figure(go.Bar(x=[_t(m) for m in modes["mode"]], y=modes["count"],
                                 text=[_t(d) for d in modes["description"]]))
    episodes = a.episode_table()
    fig_rewards = go.Figure()
    for i, (ok, rows) in enumerate(episodes.groupby("success", dropna=False)):
        label = {True: "succeeded", False: "failed"}.get(ok, "no criterion")
        fig_rewards.add_trace(go.Histogram(x=rows["total_reward"], name=label, marker_color=_color(i + 1),
                                           opacity=0.75))
    fig_rewards.update_layout(barmode="overlay")
    agents = a.per_agent
    fig_agents = go.Figure(go.Bar(x=[str(v) for v in agents["agent"]], y=agents["mean_reward"],
                                  error_y=dict(type="data", array=agents["stderr_reward"].fillna(0))))
    sections = [
        Section("overview", "Overview", headline),
        Section("failures", "Failure modes", (
            f"<p class=\"note\">Each failed episode is put in its first matching mode, in this order; thresholds: "
            f"{esc(json.dumps(a.thresholds))}.</p>" + table_html(modes)
            + (figure_html(_layout(fig_modes, "Failed episodes by mode", height=360), "fig-modes")
               if len(modes) else ""))),
        Section("agents", "Per agent", table_html(agents) + figure_html(
            _layout(fig_agents, "Mean reward per agent (± s.e.)", height=340, xaxis_title="agent"), "fig-agents")),
        Section("episodes", "Episodes", figure_html(
            _layout(fig_rewards, "Total reward per episode", height=340, xaxis_title="total reward"), "fig-rewards")
            + table_html(episodes)),
        Section("provenance", "Provenance", kv_table([(k, v if isinstance(v, str) else json.dumps(v, default=str))
                                                      for k, v in a.provenance.items()])),
    ]
    player = replay_section(replays.examples([a.output_dir]) if a.output_dir else [], note=(
        "The lowest, median and highest episode, and each failure mode's example episodes (failure:<mode>)."))
    if player is not None:
        sections.insert(2, player)
    return write_page(page(title, f"{a.episodes} episodes, seeds {a.seeds[0]} .. {a.seeds[-1]}", sections),
                      output_path)


# ------------------------------------------------------------------------------------------------------------
# Replay player
# ------------------------------------------------------------------------------------------------------------

# A small offline player (no library): the map as SVG, agents as circles carrying their cell (data-x, data-y),
# play/pause, step back and forward, a slider, and each agent's reward at the step and so far.
PLAYER_JS = """
(function(){
const eps = JSON.parse(document.getElementById('replay-data').textContent);
const root = document.getElementById('replay-player'), svg = document.getElementById('replay-grid');
const sel = document.getElementById('replay-episode'), slider = document.getElementById('replay-slider');
const playBtn = document.getElementById('replay-play'), label = document.getElementById('replay-step');
const table = document.getElementById('replay-rewards'), NS = 'http://www.w3.org/2000/svg', C = 24;
const COLORS = ['#1f77b4','#d62728','#2ca02c','#ff7f0e','#9467bd','#8c564b','#e377c2','#17becf'];
let ep = null, step = 0, timer = null;
function el(name, attrs){const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]); return e;}
function hue(s){let h = 0; for (const ch of s) h = (h * 31 + ch.charCodeAt(0)) % 360; return 'hsl(' + h + ',55%,60%)';}
eps.forEach((e, i) => {const o = document.createElement('option'); o.value = i;
  o.textContent = e.policy + ' on ' + e.mission + ': ' + e.roles.join(', ') + ' (seed ' + e.seed + ', reward ' +
    e.total_reward.toFixed(2) + ')'; sel.appendChild(o);});
function load(i){
  ep = eps[i]; stop(); svg.replaceChildren();
  svg.setAttribute('viewBox', '0 0 ' + ep.width * C + ' ' + ep.height * C);
  svg.setAttribute('width', Math.min(ep.width * C, 640));
  svg.appendChild(el('rect', {x: 0, y: 0, width: ep.width * C, height: ep.height * C, fill: '#f4f1ea'}));
  for (const w of ep.walls) svg.appendChild(el('rect', {x: w[0] * C, y: w[1] * C, width: C, height: C, fill: '#555'}));
  for (const o of ep.objects) {const r = el('rect', {x: o.cell[0] * C + 2, y: o.cell[1] * C + 2, width: C - 4,
    height: C - 4, fill: hue(o.type), class: 'object', 'data-type': o.type});
    const t = el('title', {}); t.textContent = o.type; r.appendChild(t); svg.appendChild(r);}
  ep.circles = ep.agents.map((a, k) => {const c = el('circle', {r: C * 0.38, class: 'agent', 'data-agent': a.id,
    fill: COLORS[k % COLORS.length], stroke: '#000'}); svg.appendChild(c); return c;});
  ep.totals = ep.agents.map(a => {let s = 0; return a.reward.map(r => (s += r));});
  slider.max = ep.steps - 1; show(0);
}
function show(s){
  step = Math.max(0, Math.min(ep.steps - 1, s)); slider.value = step;
  root.dataset.step = step; label.textContent = 'step ' + step + ' / ' + (ep.steps - 1);
  let rows = '<tr><th>agent</th><th>cell (x, y)</th><th>reward this step</th><th>reward so far</th></tr>';
  let sum = 0;
  ep.agents.forEach((a, k) => {const x = a.x[step], y = a.y[step], c = ep.circles[k];
    c.setAttribute('cx', x * C + C / 2); c.setAttribute('cy', y * C + C / 2);
    c.setAttribute('data-x', x); c.setAttribute('data-y', y); sum += a.reward[step];
    rows += '<tr><td>' + a.id + '</td><td>' + x + ', ' + y + '</td><td>' + a.reward[step].toFixed(3) +
      '</td><td>' + ep.totals[k][step].toFixed(3) + '</td></tr>';});
  table.innerHTML = rows + '<tr><th>all</th><td></td><td id="replay-step-reward">' + sum.toFixed(3) +
    '</td><td></td></tr>';
}
function stop(){if (timer) clearInterval(timer); timer = null; playBtn.textContent = 'play';}
playBtn.onclick = () => {if (timer) return stop(); if (step >= ep.steps - 1) show(0); playBtn.textContent = 'pause';
  timer = setInterval(() => {if (step >= ep.steps - 1) return stop(); show(step + 1);}, 80);};
document.getElementById('replay-prev').onclick = () => {stop(); show(step - 1);};
document.getElementById('replay-next').onclick = () => {stop(); show(step + 1);};
slider.oninput = () => {stop(); show(+slider.value);};
sel.onchange = () => load(+sel.value);
load(0); root.dataset.ready = '1';
})();
"""


def replay_section(examples: Sequence[dict[str, Any]], title: str = "Replays", note: str = "") -> Section | None:
    """An offline replay player over `examples` (`replays.examples`): None when there are none. The data is
    JSON in the page (`<` escaped, so no string closes the script element); names reach the page as text."""
    if not examples:
        return None
    data = json.dumps([{k: v for k, v in e.items() if k != "path"} for e in examples], separators=(",", ":"))
    files = "".join(f"<li>{esc(e['policy'])} on {esc(e['mission'])}, seed {esc(e['seed'])} "
                    f"({esc(', '.join(e['roles']))}): <code>{esc(e['path'])}</code></li>" for e in examples)
    body = (
        f'<p class="note">{esc(note)} The replay files are in mettagrid\'s format (mettascope and cogames\' '
        'viewers open them); the player shows each agent\'s cell and reward per step.</p>'
        '<div id="replay-player"><p><select id="replay-episode"></select> '
        '<button id="replay-prev">&#9664; step</button> <button id="replay-play">play</button> '
        '<button id="replay-next">step &#9654;</button> <input type="range" id="replay-slider" min="0" value="0" '
        'style="width:320px"> <span id="replay-step"></span></p>'
        '<div style="display:flex;gap:20px;align-items:flex-start"><svg id="replay-grid"></svg>'
        '<table class="tbl" id="replay-rewards"></table></div></div>'
        f'<script type="application/json" id="replay-data">{data.replace("<", chr(92) + "u003c")}</script>'
        f"<script>{PLAYER_JS}</script><details><summary>replay files</summary><ul>{files}</ul></details>"
    )
    return Section("replays", title, body)
