"""The cross-play report: a self-contained HTML page (daf_hydra.visualization's building blocks) with the matrix of
team reward by composition as a heatmap, the ratings and the value over replacement, each with its interval.
`results` is a `crossplay.CrossplayResults` (which imports this module: hence no type import here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daf_hydra.visualization import (Section, _layout, _t, esc, figure_html, fmt_ci, kv_table, page, table_html,
                                     write_page)

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go


def matrix_figure(results: Any, mission: str) -> "go.Figure":
    """Rows: the policy in the k slots; columns: the policy beside it; the cell's colour its mean team reward."""
    import plotly.graph_objects as go

    cells = results.matrix[results.matrix["mission"] == mission].set_index(["a", "b"])
    names = results.policies
    z = [[float(cells.loc[(a, b), "mean"]) for b in names] for a in names]
    text = [[_t(fmt_ci(*cells.loc[(a, b), ["mean", "low", "high"]])) for b in names] for a in names]
    fig = go.Figure(go.Heatmap(z=z, x=[_t(n) for n in names], y=[_t(n) for n in names], text=text,
                               texttemplate="%{text}", colorscale="Viridis", colorbar=dict(title="team reward"),
                               hovertemplate="%{y} beside %{x}: %{text}<extra></extra>"))
    k, n = results.k[mission], results.agents[mission]
    fig.update_yaxes(autorange="reversed", title=f"policy in {k} of {n} slots")
    fig.update_xaxes(title=f"policy in the other {n - k}")
    return _layout(fig, f"{mission}: mean team reward by composition", height=160 + 70 * len(names))


def interval_bars(table: "pd.DataFrame", key: str, title: str) -> "go.Figure":
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=table[key], y=[_t(p) for p in table["policy"]], mode="markers",
                               error_x=dict(type="data", symmetric=False, array=table["high"] - table[key],
                                            arrayminus=table[key] - table["low"])))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, height=140 + 40 * len(table))


def daf_export_crossplay_html(results: Any, output_path: str | Path) -> Path:
    """Write the report; returns its path."""
    r = results
    ci = f"{r.settings['confidence']:.0%}"
    overview = kv_table([
        ("policies", ", ".join(r.policies)), ("missions", ", ".join(r.missions)),
        ("agents of policy A / of the mission", ", ".join(f"{m}: {r.k[m]} / {r.agents[m]}" for m in r.missions)),
        ("seeds (every composition)", f"{r.seeds[0]} .. {r.seeds[-1]} ({len(r.seeds)})"),
        ("slot rotation", r.settings["rotation"]), ("reference pool", ", ".join(r.pool)),
        ("rating model", r.settings["rating_model"]),
    ]) + ('<p class="note">Cross-play mixes policies in one episode on purpose: these numbers say how policies '
          'play together, not how any of them plays alone (a solo comparison is pipeline=compare).</p>')
    matrix = r.matrix.assign(**{f"mean [{ci}]": [fmt_ci(*v) for v in r.matrix[["mean", "low", "high"]].values]})
    sections = [
        Section("overview", "Overview", overview),
        Section("matrix", "Team reward by composition", "".join(
            figure_html(matrix_figure(r, m), f"fig-matrix-{i}") for i, m in enumerate(r.missions))
            + table_html(matrix[["mission", "a", "b", "composition", "episodes", f"mean [{ci}]"]].drop_duplicates(
                ["mission", "composition"]))),
        Section("ratings", "Ratings", (
            f'<p class="note">OpenSkill mu; {ci} intervals from {r.settings["rating_bootstrap_reps"]} resamples '
            "of the seeds, each rated afresh.</p>" + table_html(r.ratings)
            + figure_html(interval_bars(r.ratings, "rating", "Rating"), "fig-ratings"))),
        Section("vor", "Value over replacement", (
            '<p class="note">Team reward with the policy in the k slots beside a pool member, minus the pool\'s '
            f"average in those slots, averaged over the pool; {ci} bootstrap intervals over the seeds.</p>"
            + table_html(r.value_over_replacement)
            + figure_html(interval_bars(r.value_over_replacement, "value", "Value over replacement"), "fig-vor"))),
        Section("settings", "Settings", f"<pre>{esc(json.dumps(r.settings, indent=1))}</pre>"),
    ]
    title = f"Cross-play: {', '.join(r.policies)}"
    return write_page(page(title, f"{len(r.seeds)} seeds per composition and mission", sections), output_path)
