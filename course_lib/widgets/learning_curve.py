"""Move A, α and B of MAE(N) = A·N^-α + B by hand, then snap them to the least-squares fit.

The measured points (mean ± seed spread per N) stay fixed; three sliders
redraw the law live, a "fit" button sets the sliders to the weighted
least-squares fit of ``course_lib.scaling_law.fit_power_law``, a toggle
switches log-log / linear axes, and a target box says how many structures
the law on the sliders (and the fit, with its bootstrap range) needs to
reach a target MAE. The figure is a plotly ``FigureWidget`` (needs the
``anywidget`` package, as plotly ≥ 6 does); without it the figure is
redrawn into an ``Output``.

What each control does is a small function of its own (``update_curve``,
``snap_sliders``, ``set_log_log``, ``target_report``), testable without a
browser; ``learning_curve_explorer`` only wires them to the widgets.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from course_lib.learning_curve import LearningCurve
from course_lib.plots.learning_curve import (
    GUIDE_ANNOTATION,
    learning_curve_figure,
    place_guide_notes,
)
from course_lib.scaling_law import METRICS, PowerLawFit, n_for_target, power_law

SLIDER_TRACE = "A·N^-α + B (sliders)"
N_GRID = np.geomspace(1.0, 1e5, 200)  # structures at which the slider law is drawn


@dataclass
class LearningCurveExplorer:
    """The explorer's parts; show it by leaving it last in a cell (or ``display(e.box)``).

    ``fit_`` is the last least-squares fit (set by the fit button, or given).
    """

    curve: LearningCurve
    metric: str
    figure: go.Figure = field(repr=False)
    sliders: dict[str, widgets.Widget] = field(repr=False)
    fit_button: widgets.Button = field(repr=False)
    log_log: widgets.Checkbox = field(repr=False)
    target: widgets.FloatText = field(repr=False)
    message: widgets.HTML = field(repr=False)
    box: widgets.VBox = field(repr=False)
    fit_: PowerLawFit | None = None

    def parameters(self) -> dict[str, float]:
        """The sliders' ``a`` (unit), ``alpha``, ``b`` (unit)."""
        return {name: float(slider.value) for name, slider in self.sliders.items()}

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


# --------------------------------------------------------------------------- the logic


def initial_parameters(curve: LearningCurve, metric: str = "force") -> dict[str, float]:
    """A start before any fit: the chapter's α = 0.4, B half the best mean, A through the first point."""
    rows = curve.summary(metric)
    b = 0.5 * min(row.mean for row in rows)
    a = (rows[0].mean - b) * rows[0].n_train ** 0.4
    return {"a": a, "alpha": 0.4, "b": b}


def slider_trace(figure: go.Figure):
    """The trace that draws the law on the sliders."""
    return next(trace for trace in figure.data if trace.name == SLIDER_TRACE)


def update_curve(figure: go.Figure, *, a: float, alpha: float, b: float) -> None:
    """Redraw the slider law ``A·N^-α + B`` on its N grid."""
    trace = slider_trace(figure)
    trace.y = power_law(np.asarray(trace.x), a, alpha, b)


def snap_sliders(sliders: Mapping[str, widgets.Widget], fit: PowerLawFit) -> None:
    """Set the sliders to the fit's A, α, B, widening a slider's range when the fit lies outside."""
    for name, value in (("a", fit.a), ("alpha", fit.alpha), ("b", fit.b)):
        slider = sliders[name]
        if isinstance(slider, widgets.FloatLogSlider):
            exponent = np.log10(value)
            slider.min = min(slider.min, np.floor(exponent - 1))
            slider.max = max(slider.max, np.ceil(exponent + 1))
        else:
            slider.max = max(slider.max, value)
        slider.value = value


def set_log_log(figure: go.Figure, on: bool, *, largest_n: float, largest_mae: float) -> None:
    """Log-log axes, or linear ones over the measured range (N ≤ 1.05 ``largest_n``, MAE ≤ 1.2 ``largest_mae``).

    Notes of the data-size guide centred beyond 0.9 ``largest_n`` are hidden on linear axes
    (they would be cut at the edge).
    """
    with figure.batch_update():
        if on:
            figure.update_xaxes(type="log", autorange=True)
            figure.update_yaxes(type="log", autorange=True)
        else:
            figure.update_xaxes(type="linear", range=[0, 1.05 * largest_n])
            figure.update_yaxes(type="linear", range=[0, 1.2 * largest_mae])
        place_guide_notes(figure, log_x=on)
        for note in figure.layout.annotations:
            if note.name and note.name.startswith(GUIDE_ANNOTATION):
                note.visible = on or float(note.name.rsplit(" ", 1)[1]) < 0.9 * largest_n


def target_report(
    target: float, *, a: float, alpha: float, b: float, unit: str, fit: PowerLawFit | None = None
) -> str:
    """HTML: the N the slider law needs for ``target``, and the fit's estimate with its range."""
    if not (np.isfinite(target) and target > 0):
        return "<i>enter a positive target MAE</i>"
    n = n_for_target(target, a, alpha, b)
    if np.isfinite(n):
        lines = [f"sliders: <b>N ≈ {n:,.0f}</b> structures for {target:g} {unit}"]
    else:
        lines = [f"sliders: {target:g} {unit} lies below the floor B = {b:.3g} {unit}: unreachable"]
    if fit is not None:
        lines.append("least-squares fit: " + html.escape(fit.n_for(target).message()))
    return "<br>".join(lines)


# --------------------------------------------------------------------------- the widget


def learning_curve_explorer(
    curve: LearningCurve,
    *,
    metric: str = "force",
    fit: PowerLawFit | None = None,
    target: float | None = None,
    n_bootstrap: int = 200,
) -> LearningCurveExplorer:
    """Sliders for A, α, B over the measured curve, a fit button, log-log toggle and target box.

    ``fit`` (for ``metric``) starts the sliders there; otherwise they start
    at ``initial_parameters`` and the fit button computes the fit
    (``curve.fit(metric, n_bootstrap=...)``). ``target`` is in the metric's
    unit (meV/Å or meV/atom); default: half the best measured mean.
    """
    unit = METRICS[metric][1]
    rows = curve.summary(metric)
    start = (
        {"a": fit.a, "alpha": fit.alpha, "b": fit.b} if fit else initial_parameters(curve, metric)
    )
    base = learning_curve_figure(curve, metric=metric, title=f"{curve.label}: move A, α, B")
    base.add_trace(
        go.Scatter(
            x=N_GRID,
            y=power_law(N_GRID, **start),
            mode="lines",
            name=SLIDER_TRACE,
            line=dict(color="black", width=2),
            hovertemplate=f"N = %{{x:,.0f}}: %{{y:.2f}} {unit}<extra>sliders</extra>",
        )
    )
    figure, output = _figure_widget(base)
    largest = max(row.mean for row in rows)
    top = max(row.mean + row.std for row in rows)  # MAE range of the linear view
    if curve.zero_shot:
        top = max(top, curve.zero_shot[metric])
    exponent = np.log10(start["a"])
    sliders = {
        "a": widgets.FloatLogSlider(
            value=start["a"],
            base=10,
            min=np.floor(exponent - 2),
            max=np.ceil(exponent + 2),
            step=0.01,
            description=f"A ({unit})",
            readout_format=".3g",
        ),
        "alpha": widgets.FloatSlider(
            value=start["alpha"], min=0.01, max=1.5, step=0.005, description="α"
        ),
        "b": widgets.FloatSlider(
            value=start["b"],
            min=0.0,
            max=largest,
            step=largest / 500,
            description=f"B ({unit})",
            readout_format=".3g",
        ),
    }
    for slider in sliders.values():
        slider.continuous_update = True
        slider.layout = widgets.Layout(width="420px")
        slider.style = {"description_width": "90px"}
    explorer = LearningCurveExplorer(
        curve=curve,
        metric=metric,
        figure=figure,
        sliders=sliders,
        fit_button=widgets.Button(description="fit", icon="check", tooltip="least squares"),
        log_log=widgets.Checkbox(value=True, description="log-log"),
        target=widgets.FloatText(
            value=target if target is not None else round(0.5 * min(r.mean for r in rows), 3),
            description=f"target MAE ({unit})",
            style={"description_width": "initial"},
        ),
        message=widgets.HTML(),
        box=widgets.VBox(),
        fit_=fit,
    )

    def refresh_message(_=None) -> None:
        explorer.message.value = target_report(
            explorer.target.value, **explorer.parameters(), unit=unit, fit=explorer.fit_
        )

    def on_slider_change(_=None) -> None:
        update_curve(explorer.figure, **explorer.parameters())
        refresh_message()
        _redraw(explorer.figure, output)

    def on_fit_click(_=None) -> None:
        if explorer.fit_ is None:
            explorer.fit_ = curve.fit(metric, n_bootstrap=n_bootstrap)
        snap_sliders(explorer.sliders, explorer.fit_)
        on_slider_change()

    def on_log_toggle(change) -> None:
        set_log_log(explorer.figure, change["new"], largest_n=max(curve.sizes), largest_mae=top)
        _redraw(explorer.figure, output)

    for slider in sliders.values():
        slider.observe(on_slider_change, names="value")
    explorer.fit_button.on_click(on_fit_click)
    explorer.log_log.observe(on_log_toggle, names="value")
    explorer.target.observe(refresh_message, names="value")
    refresh_message()
    _redraw(explorer.figure, output)
    controls = widgets.HBox(
        [
            widgets.VBox(list(sliders.values())),
            widgets.VBox([explorer.fit_button, explorer.log_log]),
        ]
    )
    explorer.box.children = (
        controls,
        widgets.HBox([explorer.target]),
        explorer.message,
        output if output is not None else figure,
    )
    return explorer


def _figure_widget(figure: go.Figure) -> tuple[go.Figure, widgets.Output | None]:
    """A ``FigureWidget`` of ``figure``; without anywidget, ``figure`` and an Output to draw it in."""
    try:
        return go.FigureWidget(figure), None
    except ImportError:
        warnings.warn(
            "plotly's FigureWidget needs the anywidget package (pip install anywidget); "
            "redrawing a static figure on each change instead",
            stacklevel=3,
        )
        return figure, widgets.Output()


def _redraw(figure: go.Figure, output: widgets.Output | None) -> None:
    if output is None:
        return  # a FigureWidget updates itself
    from IPython.display import display

    output.clear_output(wait=True)
    with output:
        display(figure)
