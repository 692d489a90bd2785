"""Fine-tuning strategies at a glance; the functions take results and return a Figure.

Inputs are ``course_lib.strategies.StrategyComparison`` (and its
``WallCheck``s); nothing here trains.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from course_lib.plots import colours
from course_lib.strategies import StrategyComparison, pareto_front

_LAYOUT = dict(template="plotly_white", width=900, height=520)


def pareto_figure(comparison: StrategyComparison, **layout) -> go.Figure:
    """Target force MAE against corpus force MAE after fine-tuning, one point per strategy.

    Lower-left is better on both. The Pareto front (no other strategy beats
    it on both axes) is joined by a line; the zero-shot model is the star.
    """
    results = comparison.results
    front = set(pareto_front(results))
    fig = go.Figure()
    start = comparison.start
    fig.add_scatter(
        x=[start.forgetting.force_mae_meV_per_A],
        y=[start.target.force_mae_meV_per_A],
        mode="markers+text",
        marker=dict(symbol="star", size=16, color="black"),
        text=["zero-shot"],
        textposition="top center",
        name="zero-shot (before)",
    )
    for result, colour in zip(results, colours(len(results))):
        fig.add_scatter(
            x=[result.forgetting.force_mae_meV_per_A],
            y=[result.target.force_mae_meV_per_A],
            mode="markers+text",
            marker=dict(size=13, color=colour, line=dict(width=2 if result.name in front else 0)),
            text=[result.name],
            textposition="top center",
            name=f"{result.name} ({result.cpu_s:.0f} s CPU)",
        )
    on_front = sorted(
        (r for r in results if r.name in front), key=lambda r: r.forgetting.force_mae_meV_per_A
    )
    fig.add_scatter(
        x=[r.forgetting.force_mae_meV_per_A for r in on_front],
        y=[r.target.force_mae_meV_per_A for r in on_front],
        mode="lines",
        line=dict(dash="dot", color="grey"),
        name="Pareto front",
    )
    fig.update_layout(
        **_LAYOUT,
        title=f"fine-tuning strategies on {comparison.dataset}: target error vs forgetting",
        xaxis_title=f"force MAE on {comparison.corpus} held-out frames, after (meV/Å)",
        yaxis_title=f"force MAE on the {comparison.dataset} test set (meV/Å)",
    )
    fig.update_layout(**layout)
    return fig


def wall_figure(comparison: StrategyComparison, **layout) -> go.Figure:
    """Compressed-pair energy curves, one panel per pair: each strategy, the start, and DFT."""
    results = [comparison.start, *comparison.results]
    checked = [r for r in results if r.wall is not None]
    if not checked:
        raise ValueError("this comparison ran without a wall check (no compressed-pair frames)")
    pairs = [curve.pair for curve in checked[0].wall.curves]
    fig = make_subplots(rows=1, cols=len(pairs), subplot_titles=pairs)
    for result, colour in zip(checked, colours(len(checked))):
        for col, curve in enumerate(result.wall.curves, start=1):
            fig.add_scatter(
                x=curve.distances_A,
                y=curve.energies_eV,
                mode="lines+markers",
                line=dict(color=colour, dash="dash" if result is comparison.start else "solid"),
                name=result.name,
                legendgroup=result.name,
                showlegend=col == 1,
                row=1,
                col=col,
            )
    for col, curve in enumerate(checked[0].wall.curves, start=1):
        if curve.dft_eV is not None:
            fig.add_scatter(
                x=curve.distances_A,
                y=curve.dft_eV,
                mode="markers",
                marker=dict(symbol="x", size=11, color="black"),
                name="DFT",
                legendgroup="DFT",
                showlegend=col == 1,
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="pair distance (Å)", row=1, col=col)
    fig.update_yaxes(title_text="energy relative to the widest point (eV)", row=1, col=1)
    fig.update_layout(**_LAYOUT, title="repulsive walls: compressed pairs in the target crystal")
    fig.update_layout(**layout)
    return fig
