"""Training curves and regime comparisons; they take results and return a plotly Figure.

Inputs are ``course_lib.finetune.TrainingHistory`` (per-epoch errors) and
``course_lib.finetune.RegimeResult`` (one regime's test errors); nothing
here trains or predicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from course_lib.plots import colours

_LAYOUT = dict(template="plotly_white", width=900, height=420)
_PANELS = (
    ("energy_mae", "energy MAE (meV/atom)"),
    ("force_mae", "force MAE (meV/Å)"),
)


def training_curves(
    histories, *, show_train: bool = True, log_y: bool = True, **layout
) -> go.Figure:
    """Validation (solid) and training (dashed) MAEs per epoch, energy and force side by side.

    ``histories`` is one ``TrainingHistory`` or a mapping ``label -> history``
    (e.g. one per regime), drawn in the same colour per label. Epoch 0 is the
    starting model; the best epoch (the weights kept) is marked with a star.
    """
    if not isinstance(histories, Mapping):
        histories = {"": histories}
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in _PANELS])
    for (label, history), colour in zip(histories.items(), colours(len(histories))):
        for col, (key, title) in enumerate(_PANELS, start=1):
            valid = getattr(history, f"valid_{key}")
            name = f"{label} validation".strip()
            fig.add_trace(
                go.Scatter(
                    x=history.epoch,
                    y=valid,
                    mode="lines+markers",
                    name=name,
                    legendgroup=label,
                    showlegend=col == 1,
                    line=dict(color=colour),
                    marker=dict(size=4),
                ),
                row=1,
                col=col,
            )
            if show_train:
                fig.add_trace(
                    go.Scatter(
                        x=history.epoch,
                        y=getattr(history, f"train_{key}"),
                        mode="lines",
                        name=f"{label} training".strip(),
                        legendgroup=label,
                        showlegend=col == 1,
                        line=dict(color=colour, dash="dash"),
                    ),
                    row=1,
                    col=col,
                )
            fig.add_trace(
                go.Scatter(
                    x=[history.best_epoch],
                    y=[valid[history.best_epoch]],
                    mode="markers",
                    marker=dict(symbol="star", size=12, color=colour),
                    name=f"{label} best epoch".strip(),
                    legendgroup=label,
                    showlegend=False,
                    hovertemplate="best epoch %{x}: %{y:.2f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            fig.update_yaxes(title_text=title, type="log" if log_y else "linear", row=1, col=col)
            fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_layout(**{**_LAYOUT, **layout})
    return fig


def regime_errors(
    results: Sequence | Mapping, *, zero_shot: bool = True, log_y: bool = False, **layout
) -> go.Figure:
    """Test energy and force MAE of each regime as bars, with the zero-shot start for reference.

    ``results`` are ``RegimeResult``s (e.g. few-shot, full, scratch at the
    same N), labelled by their regime, or a mapping ``label -> RegimeResult``
    (e.g. two few-shot variants); the hover text gives training structures,
    labels and fit time. ``log_y`` for errors that span decades.
    """
    if isinstance(results, Mapping):
        names, results = list(results), list(results.values())
    else:
        names = [r.regime for r in results]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in _PANELS])
    start = next((r.zero_shot for r in results if r.zero_shot is not None), None)
    for col, (key, _) in enumerate(_PANELS, start=1):
        attribute = "energy_mae_meV_per_atom" if key == "energy_mae" else "force_mae_meV_per_A"
        fig.add_trace(
            go.Bar(
                x=names,
                y=[getattr(r.test, attribute) for r in results],
                text=[f"{getattr(r.test, attribute):.1f}" for r in results],
                hovertext=[
                    f"{r.n_train} structures, {r.n_labels} labels, {r.fit_time_s:.0f} s"
                    for r in results
                ],
                marker_color=colours(len(results)),
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        if zero_shot and start is not None:
            level = getattr(start.aligned, attribute)
            fig.add_hline(
                y=level,
                line=dict(color="grey", dash="dash"),
                annotation_text="zero-shot",
                annotation=dict(y=math.log10(level)) if log_y else None,  # log axis: log10
                row=1,
                col=col,
            )
    if log_y:
        fig.update_yaxes(type="log")
    fig.update_layout(**{**_LAYOUT, **layout})
    return fig
