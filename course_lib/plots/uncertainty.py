"""Figures for committees: spread against actual error, and spreads by group.

Functions take results (``uncertainty.Calibration``, arrays) and return
plotly ``Figure`` objects; nothing here predicts or trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from course_lib.plots.parity import _diagonal

_LAYOUT = dict(template="plotly_white", width=560, height=480)


def calibration_plot(
    calibration, *, groups: Sequence | None = None, log: bool = True, **layout
) -> go.Figure:
    """Spread vs actual error (one point per frame or atom) with the binned calibration curve.

    The dashed line is error = spread: points near it mean the spread is
    not only a ranking but a size. Log axes drop zero spreads or errors. ``groups`` (one label per point, e.g.
    temperatures) colours the points.
    """
    c = calibration
    fig = go.Figure()
    labels = np.asarray(groups, dtype=object) if groups is not None else np.full(c.n, None)
    for label in sorted(set(labels.tolist()), key=str):
        mask = labels == label
        fig.add_trace(
            go.Scattergl(
                x=c.spread[mask],
                y=c.error[mask],
                mode="markers",
                name=str(label) if label is not None else c.quantity,
                marker=dict(size=5, opacity=0.6),
                showlegend=label is not None,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=c.bin_spread,
            y=c.bin_rms_error,
            mode="lines+markers",
            name="binned RMS error",
            line=dict(color="black"),
        )
    )
    positive = np.concatenate([c.spread, c.error])
    positive = positive[positive > 0]
    if len(positive):  # error = spread: near it, the spread is a size, not only a ranking
        _diagonal(fig, float(positive.min()), float(positive.max()))
    axis = "log" if log else "linear"
    fig.update_layout(
        title=(
            f"{c.quantity}: Spearman {c.spearman:.2f}, worst {c.k} caught by top {c.k}: "
            f"{c.top_k_capture:.0%} (chance {c.chance:.0%})"
        ),
        xaxis=dict(title=f"committee spread ({c.unit})", type=axis),
        yaxis=dict(title=f"actual error ({c.unit})", type=axis),
        **{**_LAYOUT, **layout},
    )
    return fig


def spread_by_group(
    spread: np.ndarray, groups: Sequence, *, unit: str = "meV/atom", name: str = "", **layout
) -> go.Figure:
    """Box plot of spreads per group (e.g. MD temperature): do spreads flag the hard frames?"""
    spread = np.asarray(spread, dtype=float)
    labels = np.asarray(groups, dtype=object)
    fig = go.Figure()
    for label in sorted(set(labels.tolist()), key=str):
        fig.add_trace(go.Box(y=spread[labels == label], name=str(label), boxpoints="all"))
    fig.update_layout(
        title=f"committee spread {name}".strip(),
        yaxis_title=f"spread ({unit})",
        showlegend=False,
        **{**_LAYOUT, **layout},
    )
    return fig
