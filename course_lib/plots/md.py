"""MD stability at a glance; the functions take ``course_lib.md.MDResult``s and return a Figure.

Nothing here runs MD: ``course_lib.md.run_md`` does.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from course_lib.plots import colours

_LAYOUT = dict(template="plotly_white", width=900, height=420)


def _labelled(results) -> dict:
    return dict(results) if isinstance(results, Mapping) else {results.model: results}


def shortest_distance_figure(results, *, pair: str | None = None, **layout) -> go.Figure:
    """Shortest distance of one species pair over time, one line per run, with its limit.

    ``results`` is one ``MDResult`` or a mapping ``label -> MDResult`` (e.g.
    one per model); ``pair`` defaults to the pair that came closest to its
    limit in the first run. A run that failed ends with a cross at its last step.
    """
    results = _labelled(results)
    first = next(iter(results.values()))
    if pair is None:
        closest = first.closest_approach()
        pair = min(closest, key=lambda p: closest[p] / first.limits_A[p])
    fig = go.Figure()
    for (label, result), colour in zip(results.items(), colours(len(results))):
        name = f"{label} ({result.verdict})"
        fig.add_scatter(
            x=result.times_fs, y=result.shortest_A[pair], name=name, line=dict(color=colour)
        )
        if not result.stable:
            fig.add_scatter(
                x=[result.times_fs[-1]],
                y=[result.shortest_A[pair][-1]],
                mode="markers",
                marker=dict(symbol="x", size=12, color=colour),
                showlegend=False,
            )
    fig.add_hline(
        y=first.limits_A[pair],
        line=dict(dash="dash", color="grey"),
        annotation_text=f"limit {first.limits_A[pair]:.2f} Å",
    )
    fig.update_layout(
        **_LAYOUT,
        title=f"shortest {pair} distance during MD at {first.temperature_K:g} K",
        xaxis_title="time (fs)",
        yaxis_title=f"shortest {pair} distance (Å)",
    )
    fig.update_layout(**layout)
    return fig


def rdf_figure(results, *, pair: str = "Li-Li", r_max: float = 5.0, **layout) -> go.Figure:
    """``g(r)`` of ``pair`` over each run's sampled frames, one line per run."""
    results = _labelled(results)
    fig = make_subplots(rows=1, cols=1)
    for (label, result), colour in zip(results.items(), colours(len(results))):
        r, g = result.rdf(pair, r_max=r_max)
        fig.add_scatter(x=r, y=g, name=label, line=dict(color=colour))
    fig.update_layout(
        **_LAYOUT,
        title=f"{pair} radial distribution function",
        xaxis_title="r (Å)",
        yaxis_title="g(r)",
    )
    fig.update_layout(**layout)
    return fig
