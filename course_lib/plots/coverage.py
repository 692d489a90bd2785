"""Coverage figures: target vs reference densities with the flagged bins shaded.

Inputs are ``course_lib.coverage.CoverageHistograms`` and ``CoverageReport``;
nothing here computes histograms or compares them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from course_lib.coverage import channel_key

_LAYOUT = dict(template="plotly_white", width=760, height=400)
_TARGET, _REFERENCE, _FLAG = "#d62728", "#1f77b4", "rgba(214, 39, 40, 0.15)"


def coverage_overlay(
    target,
    reference,
    channel: str,
    *,
    report=None,
    log_y: bool = False,
    markers: Mapping[str, float] | None = None,
    **layout,
) -> go.Figure:
    """Densities of one channel (``"Li-Li"`` in 1/Å, ``"O-Li-O"`` in 1/degree), overlaid.

    ``report`` (a ``CoverageReport`` of the same histograms) shades its
    flagged ranges of this channel; ``markers`` draws labelled vertical lines,
    e.g. ``{"typical MPtrj Li-Li": 2.6}``. ``log_y`` shows the thin reference
    tails that decide what is covered.
    """
    kind, _ = channel_key(channel)
    edges = target.edges(channel)
    unit = "Å" if kind == "pair" else "°"
    fig = go.Figure()
    for hist, colour, fallback in (
        (reference, _REFERENCE, "reference"),
        (target, _TARGET, "target"),
    ):
        density = hist.density(channel)
        fig.add_trace(
            go.Scatter(
                x=edges,
                y=np.append(density, density[-1]),
                mode="lines",
                line=dict(color=colour, shape="hv", width=2),
                fill="tozeroy" if hist is reference else None,
                name=f"{hist.source or fallback} ({hist.n_frames} frames)",
            )
        )
    for low, high in report.ranges(channel) if report is not None else ():
        fig.add_vrect(x0=low, x1=high, fillcolor=_FLAG, line_width=0, layer="below")
    for label, position in (markers or {}).items():
        fig.add_vline(x=position, line=dict(color="grey", dash="dash"), annotation_text=label)
    title = f"{channel} {'distances' if kind == 'pair' else 'angles (centre in the middle)'}"
    if report is not None and report.ranges(channel):
        title += " - shaded: target density where the reference has (almost) none"
    fig.update_layout(
        title=title,
        xaxis_title=f"{'distance' if kind == 'pair' else 'angle'} ({unit})",
        yaxis_title=f"density (1/{unit})",
        yaxis_type="log" if log_y else "linear",
        legend=dict(yanchor="top", y=0.99, xanchor="right", x=0.99),
        **{**_LAYOUT, **layout},
    )
    return fig


def coverage_scores(reports: Mapping[str, object], **layout) -> go.Figure:
    """Distance and angle coverage scores (0-1) of several targets against their references."""
    labels = list(reports)
    fig = go.Figure()
    for field, name, colour in (
        ("distance_score", "distances", _REFERENCE),
        ("angle_score", "angles", _TARGET),
    ):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[getattr(reports[label], field) for label in labels],
                name=name,
                marker_color=colour,
                text=[f"{getattr(reports[label], field):.3f}" for label in labels],
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis=dict(title="fraction of target covered by the reference", range=[0, 1.05]),
        **{**_LAYOUT, "width": 560, **layout},
    )
    return fig
