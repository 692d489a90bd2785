"""Parity and error-distribution figures for zero-shot (or fine-tuned) evaluations.

Each function takes a ``ZeroShotResult`` (or anything with the same fields)
and returns a plotly ``Figure``; nothing here predicts or trains.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from course_lib import data as ds
from course_lib.plots import colours

_LAYOUT = dict(template="plotly_white", width=520, height=480)


def _diagonal(fig: go.Figure, low: float, high: float, **subplot) -> None:
    """The y = x line; ``subplot`` (``row=``, ``col=``) places it in one panel of a grid."""
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            line=dict(color="grey", dash="dash"),
            showlegend=False,
            hoverinfo="skip",
        ),
        **subplot,
    )


def energy_parity(
    result, *, aligned: bool = True, color_by: str | None = None, **layout
) -> go.Figure:
    """Model vs DFT energy per atom (eV/atom); ``aligned`` uses the fitted per-element offsets.

    ``color_by`` names a per-frame ``info`` key (e.g. ``"temperature_K"``) to colour points by.
    """
    frames = result.frames
    natoms = ds.n_atoms(frames)
    predictions = result.aligned_predictions if aligned else result.predictions
    x = ds.energies(frames) / natoms
    y = predictions.energies / natoms
    metrics = result.aligned if aligned else result.raw
    fig = go.Figure()
    groups = (
        {None: np.arange(len(frames))}
        if color_by is None
        else {k: np.array(idx) for k, idx in ds.group_indices(frames, color_by).items()}
    )
    for key, idx in groups.items():
        fig.add_trace(
            go.Scatter(
                x=x[idx],
                y=y[idx],
                mode="markers",
                name=f"{color_by} = {key}" if color_by else "frames",
                text=[f"frame {i}" for i in idx],
                showlegend=color_by is not None,
            )
        )
    _diagonal(fig, float(min(x.min(), y.min())), float(max(x.max(), y.max())))
    label = "aligned" if aligned else "raw"
    fig.update_layout(
        title=f"{result.model}: energy ({label}), MAE {metrics.energy_mae_meV_per_atom:.1f} meV/atom",
        xaxis_title="DFT energy (eV/atom)",
        yaxis_title=f"{result.model} energy (eV/atom)",
        **{**_LAYOUT, **layout},
    )
    return fig


def force_parity(result, **layout) -> go.Figure:
    """Model vs DFT force components (eV/Å), coloured by element."""
    ref = np.concatenate(ds.forces(result.frames))
    pred = np.concatenate(result.predictions.forces)
    symbols = np.repeat(
        np.concatenate([atoms.get_chemical_symbols() for atoms in result.frames]), 3
    )
    ref, pred = ref.ravel(), pred.ravel()
    fig = go.Figure()
    for element in sorted(set(symbols)):
        mask = symbols == element
        fig.add_trace(
            go.Scattergl(
                x=ref[mask],
                y=pred[mask],
                mode="markers",
                name=element,
                marker=dict(size=4, opacity=0.6),
            )
        )
    _diagonal(fig, float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max())))
    fig.update_layout(
        title=(
            f"{result.model}: forces, MAE {result.raw.force_mae_meV_per_A:.0f} meV/Å"
            + _slope_text(result.raw)
        ),
        xaxis_title="DFT force component (eV/Å)",
        yaxis_title=f"{result.model} force component (eV/Å)",
        **{**_LAYOUT, **layout},
    )
    return fig


def error_histograms(result, *, nbins: int = 40, **layout) -> go.Figure:
    """Distributions of force-component errors (meV/Å) per element."""
    ref = np.concatenate(ds.forces(result.frames))
    pred = np.concatenate(result.predictions.forces)
    errors = ((pred - ref) * 1e3).ravel()
    symbols = np.repeat(
        np.concatenate([atoms.get_chemical_symbols() for atoms in result.frames]), 3
    )
    fig = go.Figure()
    for element in sorted(set(symbols)):
        fig.add_trace(
            go.Histogram(x=errors[symbols == element], name=element, nbinsx=nbins, opacity=0.6)
        )
    fig.update_layout(
        barmode="overlay",
        title=f"{result.model}: force errors",
        xaxis_title="force error (meV/Å)",
        yaxis_title="count",
        **{**_LAYOUT, "width": 620, "height": 380, **layout},
    )
    return fig


def regime_parity(
    results: Mapping,
    frames,
    *,
    quantity: str = "forces",
    zero_shot: bool = True,
    columns: int = 3,
    **layout,
) -> go.Figure:
    """DFT vs model on the same test frames, one panel per regime, side by side.

    ``results`` maps labels to ``course_lib.finetune.RegimeResult``s tested on
    ``frames``. With ``zero_shot`` the first panel is the starting model
    (its energies aligned per element on these frames, as in notebook 02).
    ``quantity`` is ``"forces"`` (components, eV/Å, coloured by element) or
    ``"energy"`` (eV/atom); each panel's title gives its MAE. Each panel has
    its own axes, so one regime far off does not squeeze the others; panels
    fill rows of ``columns``.
    """
    if quantity not in ("forces", "energy"):
        raise ValueError(f"quantity must be 'forces' or 'energy', got {quantity!r}")
    panels = _regime_panels(results, zero_shot=zero_shot, energy=quantity == "energy")
    for title, predictions, _ in panels:
        if len(predictions.energies) != len(frames):
            raise ValueError(
                f"{title}: {len(predictions.energies)} predictions for {len(frames)} frames; "
                "pass the test frames the results were scored on"
            )
    n_cols = min(columns, len(panels))
    n_rows = -(-len(panels) // n_cols)
    size = dict(width=120 + 280 * n_cols, height=60 + 380 * n_rows)  # px
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        vertical_spacing=150 / size["height"],  # room for axis and panel titles (px)
        subplot_titles=[_panel_title(title, metrics, quantity) for title, _, metrics in panels],
    )
    if quantity == "forces":
        reference = np.concatenate(ds.forces(frames)).ravel()
        symbols = np.repeat(np.concatenate([a.get_chemical_symbols() for a in frames]), 3)
        groups = {element: symbols == element for element in sorted(set(symbols))}
        unit = "force component (eV/Å)"
    else:
        reference = ds.energies(frames) / ds.n_atoms(frames)
        groups = {"frames": np.ones(len(frames), dtype=bool)}
        unit = "energy (eV/atom)"
    for index, (_, predictions, _) in enumerate(panels):
        row, col = divmod(index, n_cols)
        where = dict(row=row + 1, col=col + 1)
        predicted = (
            np.concatenate(predictions.forces).ravel()
            if quantity == "forces"
            else predictions.energies / ds.n_atoms(frames)
        )
        both = np.concatenate([reference, predicted])
        _diagonal(fig, float(both.min()), float(both.max()), **where)
        for (name, mask), colour in zip(groups.items(), colours(len(groups))):
            fig.add_trace(
                go.Scatter(
                    x=reference[mask],
                    y=predicted[mask],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=index == 0 and len(groups) > 1,
                    marker=dict(size=4, opacity=0.6, color=colour),
                ),
                **where,
            )
        fig.update_xaxes(title_text=f"DFT {unit}", **where)
        if col == 0:
            fig.update_yaxes(title_text=f"model {unit}", **where)
    fig.update_layout(**{**_LAYOUT, **size, **layout})
    return fig


def _regime_panels(results: Mapping, *, zero_shot: bool, energy: bool) -> list[tuple]:
    """(title, predictions, metrics) per panel; the zero-shot panel first when asked for."""
    panels = []
    start = next((r.zero_shot for r in results.values() if r.zero_shot is not None), None)
    if zero_shot and start is not None:
        if energy:
            panels.append(("zero-shot (aligned)", start.aligned_predictions, start.aligned))
        else:
            panels.append(("zero-shot", start.predictions, start.raw))
    panels += [(label, r.test_predictions, r.test) for label, r in results.items()]
    return panels


def _panel_title(title: str, metrics, quantity: str) -> str:
    if quantity == "forces":
        return f"{title}<br>MAE {metrics.force_mae_meV_per_A:.0f} meV/Å{_slope_text(metrics)}"
    return f"{title}<br>MAE {metrics.energy_mae_meV_per_atom:.1f} meV/atom"


def _slope_text(metrics) -> str:
    """ ", slope s = 0.87" for a title (s < 1: the model's forces are too soft)."""
    slope = getattr(metrics, "force_slope", None)
    return "" if slope is None else f", slope s = {slope:.2f}"


def errors_by_group(grouped: Mapping, **layout) -> go.Figure:
    """Energy MAE and relative force error per group (e.g. MD temperature), one bar per model.

    ``grouped`` maps a label (a model) to its ``zero_shot.GroupedErrors``. The right
    panel divides each force MAE by its group's DFT force scale (mean |F| component),
    so hot frames with larger forces are compared on the same footing as cold ones.
    """
    from course_lib.zero_shot import group_label

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("energy MAE (meV/atom)", "force MAE / DFT |F| (%)"),
    )
    for (name, errors), colour in zip(grouped.items(), colours(len(grouped))):
        groups = list(errors.metrics)
        x = [group_label(g) for g in groups]
        energy = [errors.metrics[g].energy_mae_meV_per_atom for g in groups]
        relative = [100 * errors.relative_force_error(g) for g in groups]
        fig.add_bar(x=x, y=energy, name=name, marker_color=colour, legendgroup=name, row=1, col=1)
        fig.add_bar(
            x=x,
            y=relative,
            name=name,
            marker_color=colour,
            legendgroup=name,
            showlegend=False,
            row=1,
            col=2,
        )
    key = next(iter(grouped.values())).key if grouped else ""
    fig.update_xaxes(title_text=key.replace("_", " "))
    fig.update_layout(**{**_LAYOUT, "width": 900, "height": 420}, barmode="group")
    fig.update_layout(**layout)
    return fig
