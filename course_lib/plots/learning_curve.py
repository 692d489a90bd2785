"""Learning curves MAE(N): measured points, fitted power laws, the chapter's data-size table.

Inputs are ``course_lib.learning_curve.LearningCurve`` (the runs) and
``PowerLawFit`` (their fit); nothing here trains or fits. Several curves go
on one figure, e.g. few-shot vs scratch, or energy-only (dashed, open
markers) vs energy + forces: with ``x="labels"`` the same runs are placed by
the number of scalar labels they trained on, which is where the chapter's
"forces multiply the labels" shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from course_lib.learning_curve import DATA_SIZE_GUIDE, LearningCurve
from course_lib.scaling_law import METRICS, PowerLawFit

_LAYOUT = dict(
    template="plotly_white",
    width=900,
    height=600,
    margin=dict(t=150),
    legend=dict(orientation="h", yanchor="top", y=-0.15, groupclick="toggleitem"),
)
_X_TITLES = {"structures": "training structures N", "labels": "training labels (E + 3n·F)"}
FIT_TRACE_NAME = "fit"
GUIDE_ANNOTATION = "data-size guide"  # name prefix of the guide's notes, then their centre N


def learning_curve_figure(
    curves: LearningCurve | Mapping[str, LearningCurve] | Sequence[LearningCurve],
    *,
    fits: PowerLawFit | Mapping[str, PowerLawFit] | None = None,
    metric: str = "force",
    x: str = "structures",
    log_log: bool = True,
    show_runs: bool = True,
    zero_shot: bool = True,
    data_size_guide: bool | dict = True,
    extend_to: float | None = None,
    references: Sequence[str] = (),
    **layout,
) -> go.Figure:
    """Mean ± seed standard deviation of the test MAE per N, and each fitted law.

    ``curves`` is one curve, a list (labelled by ``curve.label``) or a mapping
    ``label -> curve``; ``fits`` a fit for a single curve or a mapping with
    the same labels. ``metric`` is ``"force"`` (meV/Å) or ``"energy"``
    (meV/atom). ``x="labels"`` puts runs at the labels they trained on; the
    hover always gives both. The fitted line is solid over the measured
    sizes and dotted where it extrapolates (to ``extend_to`` structures;
    default 10^5 when the data-size guide is drawn on log axes). Zero-shot
    errors are horizontal dashed lines. ``data_size_guide`` shades the
    chapter's table of fine-tuning sizes (structures axis only); a dict is
    passed to ``add_data_size_guide``. Curves whose labels are in ``references``
    (e.g. shipped full-mode curves under a fast-mode run) are drawn wide and pale,
    as the background that the other curves' points are read against.
    """
    if x not in _X_TITLES:
        raise ValueError(f"x must be one of {list(_X_TITLES)}, got {x!r}")
    curves = _labelled(curves)
    fits = _labelled_fits(fits, curves)
    attribute, unit = METRICS[metric]
    largest = max(max(curve.sizes) for curve in curves.values())
    guide = bool(data_size_guide) and x == "structures"
    if extend_to is None:
        extend_to = 1e5 if guide and log_log else largest
    colours = _colours_by_regime(curves.values())
    fig = go.Figure()
    unknown = sorted(set(references) - set(curves))
    if unknown:
        raise ValueError(f"references {unknown} match no curve; curve labels: {list(curves)}")
    for label, curve in curves.items():
        style = _style(curve, colours[curve.regime], reference=label in references)
        per_structure = _labels_per_structure(curve) if x == "labels" else 1.0
        if show_runs:
            fig.add_trace(_runs_trace(curve, attribute, per_structure, label, style))
        fig.add_trace(_means_trace(curve, metric, unit, per_structure, label, style))
        if label in fits:
            for trace in _fit_traces(fits[label], curve, per_structure, extend_to, label, style):
                fig.add_trace(trace)
        if zero_shot and curve.zero_shot:
            span = (1.0, extend_to * per_structure) if log_log else (0.0, largest * per_structure)
            fig.add_trace(_zero_shot_trace(curve.zero_shot[metric], span, unit, label, style))
    if guide:
        options = data_size_guide if isinstance(data_size_guide, dict) else {}
        add_data_size_guide(fig, **{"log_x": log_log, **options})
    axis = "log" if log_log else "linear"
    fig.update_xaxes(title_text=_X_TITLES[x], type=axis)
    fig.update_yaxes(title_text=f"test {metric} MAE ({unit})", type=axis)
    if not log_log:
        fig.update_xaxes(range=[0, 1.05 * largest * (_max_ratio(curves) if x == "labels" else 1)])
    fig.update_layout(**{**_LAYOUT, "title": f"How much data is enough? ({metric} MAE)", **layout})
    return fig


def add_data_size_guide(
    fig: go.Figure, *, log_x: bool = True, colour: str = "#636efa", opacity: float = 0.06
) -> go.Figure:
    """Shade the chapter's fine-tuning sizes (~50, ~500, ~5000, ≥ 50000) and say what each is for.

    Bands meet at the geometric means of neighbouring sizes (158, 1581,
    15811 structures); N = 0 (zero-shot) has no place on a log axis and is
    named in the first band's note instead. Returns ``fig``.
    """
    edges = data_size_band_edges()
    for i, ((low, high), (size, use)) in enumerate(zip(edges, DATA_SIZE_GUIDE[1:])):
        centre = float(np.sqrt(low * high))
        fig.add_vrect(
            x0=low,
            x1=high,
            fillcolor=colour,
            opacity=opacity * (1 + i % 2),
            line_width=0,
            layer="below",
        )
        prefix = "≳" if i == len(edges) - 1 else "~"
        fig.add_annotation(
            x=np.log10(centre) if log_x else centre,
            name=f"{GUIDE_ANNOTATION} {centre}",
            y=1.0,
            yref="paper",
            yanchor="bottom",
            text=f"<b>{prefix}{size:,}</b><br>{_wrap(use)}",
            showarrow=False,
            font=dict(size=9, color="#555"),
        )
    return fig


def place_guide_notes(fig: go.Figure, *, log_x: bool) -> None:
    """Move the guide's notes for a log or linear x axis (plotly places notes by log10 N on log axes)."""
    for note in fig.layout.annotations:
        if (note.name or "").startswith(GUIDE_ANNOTATION):
            centre = float(note.name.rsplit(" ", 1)[1])
            note.x = np.log10(centre) if log_x else centre


def data_size_band_edges() -> list[tuple[float, float]]:
    """(low, high) structures of each band after zero-shot: geometric midpoints between sizes."""
    sizes = [size for size, _ in DATA_SIZE_GUIDE[1:]]
    cuts = [np.sqrt(a * b) for a, b in zip(sizes[:-1], sizes[1:])]
    lows = [1.0, *cuts]
    highs = [*cuts, sizes[-1] * 10]
    return list(zip(lows, highs))


# --------------------------------------------------------------------------- traces


def _runs_trace(curve, attribute, per_structure, label, style) -> go.Scatter:
    n = np.array([p.n_train for p in curve.points], dtype=float)
    return go.Scatter(
        x=n * per_structure,
        y=[getattr(p, attribute) for p in curve.points],
        mode="markers",
        marker=dict(color=style["color"], size=5, opacity=0.35, symbol=style["symbol"]),
        name=f"{label}: single runs",
        legendgroup=label,
        showlegend=False,
        hovertemplate="N = %{customdata[0]}, seed %{customdata[1]}: %{y:.2f}<extra></extra>",
        customdata=[(p.n_train, p.seed) for p in curve.points],
    )


def _means_trace(curve, metric, unit, per_structure, label, style) -> go.Scatter:
    rows = curve.summary(metric)
    return go.Scatter(
        x=[row.n_train * per_structure for row in rows],
        y=[row.mean for row in rows],
        error_y=dict(type="data", array=[row.std for row in rows], visible=True),
        mode="markers",
        marker=dict(color=style["color"], size=9, symbol=style["symbol"]),
        name=label,
        legendgroup=label,
        customdata=[(row.n_train, row.n_labels, row.n_seeds, row.std) for row in rows],
        hovertemplate=(
            "N = %{customdata[0]} structures, %{customdata[1]:,.0f} labels<br>"
            f"MAE %{{y:.2f}} ± %{{customdata[3]:.2f}} {unit} "
            "(%{customdata[2]} seeds)<extra>" + label + "</extra>"
        ),
    )


def _zero_shot_trace(mae, span, unit, label, style) -> go.Scatter:
    return go.Scatter(
        x=list(span),
        y=[mae, mae],
        mode="lines",
        line=dict(color=style["color"], dash="dashdot", width=1.5),
        name=f"{label}: zero-shot (N = 0)",
        legendgroup=label,
        hovertemplate=f"zero-shot: {mae:.2f} {unit}<extra>{label}</extra>",
    )


def _fit_traces(fit, curve, per_structure, extend_to, label, style) -> list[go.Scatter]:
    low, high = min(curve.sizes), max(curve.sizes)
    inside = np.geomspace(low, high, 60)
    outside = np.geomspace(high, max(extend_to, high), 60)
    name = (
        f"{label}: α = {fit.alpha:.2f} ± {fit.alpha_std:.2f}, "
        f"B = {fit.b:.3g} ± {fit.b_std:.2g} {fit.unit}"
    )
    common = dict(
        mode="lines",
        legendgroup=label,
        hovertemplate=f"fit: N = %{{customdata:,.0f}}, %{{y:.2f}} {fit.unit}<extra></extra>",
    )
    traces = [
        go.Scatter(
            x=inside * per_structure,
            y=fit.predict(inside),
            customdata=inside,
            line=dict(color=style["color"], dash=style["dash"], width=style.get("width", 2.5)),
            name=name,
            meta=FIT_TRACE_NAME,
            **common,
        )
    ]
    if extend_to > high:
        traces.append(
            go.Scatter(
                x=outside * per_structure,
                y=fit.predict(outside),
                customdata=outside,
                line=dict(color=style["color"], dash="dot", width=1.5),
                name=f"{label}: extrapolated",
                showlegend=False,
                **common,
            )
        )
    return traces


# --------------------------------------------------------------------------- helpers


def _labelled(curves) -> dict[str, LearningCurve]:
    if isinstance(curves, LearningCurve):
        return {curves.label: curves}
    if isinstance(curves, Mapping):
        return dict(curves)
    labelled = {curve.label: curve for curve in curves}
    if len(labelled) != len(curves):
        raise ValueError("two curves share a label; pass a mapping label -> curve")
    return labelled


def _labelled_fits(fits, curves) -> dict[str, PowerLawFit]:
    if fits is None:
        return {}
    if isinstance(fits, PowerLawFit):
        if len(curves) != 1:
            raise ValueError("several curves: pass fits as a mapping label -> PowerLawFit")
        return {next(iter(curves)): fits}
    unknown = sorted(set(fits) - set(curves))
    if unknown:
        raise ValueError(f"fits for {unknown} match no curve; curve labels: {list(curves)}")
    return dict(fits)


def _labels_per_structure(curve: LearningCurve) -> float:
    return float(np.mean([p.n_labels / p.n_train for p in curve.points]))


def _max_ratio(curves) -> float:
    return max(_labels_per_structure(curve) for curve in curves.values())


def _style(curve: LearningCurve, colour: str, *, reference: bool = False) -> dict:
    if reference:  # a pale, wide backdrop: squares, and the fit as a broad translucent band
        colour = _translucent(colour, 0.35)
        return {"color": colour, "dash": "solid", "symbol": "square-open", "width": 6}
    if curve.energy_only:
        return {"color": colour, "dash": "dash", "symbol": "circle-open"}
    return {"color": colour, "dash": "solid", "symbol": "circle"}


def _translucent(colour: str, alpha: float) -> str:
    """``#rrggbb`` as an ``rgba(...)`` string with opacity ``alpha``."""
    import plotly.colors

    r, g, b = plotly.colors.hex_to_rgb(colour)
    return f"rgba({r},{g},{b},{alpha})"


def _colours_by_regime(curves) -> dict[str, str]:
    import plotly.colors

    palette = plotly.colors.qualitative.Plotly
    regimes = list(dict.fromkeys(curve.regime for curve in curves))
    return {regime: palette[i % len(palette)] for i, regime in enumerate(regimes)}


def _wrap(text: str, width: int = 16) -> str:
    """Break ``text`` into lines of about ``width`` characters, joined by ``<br>``."""
    import textwrap

    return "<br>".join(textwrap.wrap(text, width))
