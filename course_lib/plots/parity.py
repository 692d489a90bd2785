"""Parity and error-distribution figures for zero-shot (or fine-tuned) evaluations.

Each function takes a ``ZeroShotResult`` (or anything with the same fields)
and returns a plotly ``Figure``; nothing here predicts or trains.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from course_lib import data as ds

_LAYOUT = dict(template="plotly_white", width=520, height=480)


def _diagonal(fig: go.Figure, low: float, high: float) -> None:
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            line=dict(color="grey", dash="dash"),
            showlegend=False,
            hoverinfo="skip",
        )
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
        else _group_indices([atoms.info.get(color_by) for atoms in frames])
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
        title=f"{result.model}: forces, MAE {result.raw.force_mae_meV_per_A:.0f} meV/Å",
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


def _group_indices(keys: list) -> dict:
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return {key: np.array(idx) for key, idx in sorted(groups.items(), key=lambda kv: str(kv[0]))}
