"""The decision flowchart, live: thresholds (with their lock), measured numbers, the graph.

Numbers are typed in or taken from a runner report
(``flowchart.run_protocol``); every change re-runs the pure ``decide`` and
redraws the graph. Editing a threshold after the lock is allowed, and shown
for what it is: "changed after lock", in red, in the controls and the
figure's title. The logic lives in small functions (``parse_number``,
``thresholds_from_values``, ``measurements_from_values``,
``values_from_measurements``, ``lock_state_html``) testable without a
browser.
"""

from __future__ import annotations

import html
from dataclasses import replace

import ipywidgets as widgets
from IPython.display import display

from course_lib.flowchart import FlowchartResult, Measurements, Thresholds, decide
from course_lib.plots.flowchart import flowchart_figure

MEASURED = {  # control name: (Measurements field, description, unit)
    "zero_shot_force_mae": ("zero_shot_force_mae_meV_per_A", "zero-shot F MAE", "meV/Å"),
    "tuned_energy_mae": ("tuned_energy_mae_meV_per_atom", "tuned E MAE", "meV/atom"),
    "tuned_force_mae": ("tuned_force_mae_meV_per_A", "tuned F MAE", "meV/Å"),
    "full_energy_mae": ("full_energy_mae_meV_per_atom", "full FT E MAE", "meV/atom"),
    "full_force_mae": ("full_force_mae_meV_per_A", "full FT F MAE", "meV/Å"),
}
HULL_OPTIONS = (("not measured", "unknown"), ("pass", "pass"), ("fail", "fail"))
THRESHOLD_LABELS = {
    "zero_shot_force_mae_meV_per_A": "Q1 F < (meV/Å)",
    "tuned_energy_mae_meV_per_atom": "Q3, Q4 E < (meV/atom)",
    "tuned_force_mae_meV_per_A": "Q3, Q4 F < (meV/Å)",
}


def parse_number(text: str) -> float | None:
    """A typed number, or None for blank or unreadable text (= not measured)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def thresholds_from_values(current: Thresholds, values: dict[str, float]) -> Thresholds:
    """``current`` with new values; its lock record is kept, so edits show as changed."""
    return replace(current, **{k: float(v) for k, v in values.items()})


def measurements_from_values(numbers: dict[str, str], hull: str) -> Measurements:
    """Measurements from the text of the number boxes and the hull choice."""
    fields = {MEASURED[name][0]: parse_number(text) for name, text in numbers.items()}
    hull_passed = {"pass": True, "fail": False}.get(hull)
    return Measurements(hull_passed=hull_passed, **fields)


def values_from_measurements(measurements: Measurements) -> tuple[dict[str, str], str]:
    """The inverse: box texts and hull choice showing ``measurements``."""
    numbers = {}
    for name, (field_name, _, _) in MEASURED.items():
        value = getattr(measurements, field_name)
        numbers[name] = "" if value is None else f"{value:.4g}"
    hull = {True: "pass", False: "fail", None: "unknown"}[measurements.hull_passed]
    return numbers, hull


def lock_state_html(thresholds: Thresholds) -> str:
    state = thresholds.lock_state
    color = {"locked": "#238b45", "changed after lock": "#cb181d"}.get(state, "#d94801")
    detail = (
        f" at {html.escape(thresholds.locked_at)}, sha256 {thresholds.locked_fingerprint[:12]}"
        if thresholds.locked
        else ": press 'lock' before looking at any data"
    )
    return f"<b style='color:{color}'>thresholds {state}</b>{detail}"


class FlowchartExplorer:
    """Threshold controls with a lock, measured-number inputs, and the live graph.

    ``thresholds`` default to course.toml's, locked now; ``report`` (a
    ``ProtocolReport``, or anything with ``.flowchart``) fills in its
    measurements and thresholds. ``widget`` is the ipywidgets box to
    display; ``result`` and ``figure`` are the latest decision and figure.
    """

    def __init__(self, *, thresholds: Thresholds | None = None, report=None):
        measurements = Measurements()
        if report is not None:
            thresholds = thresholds or report.flowchart.thresholds
            measurements = report.flowchart.measurements
        self.thresholds = thresholds or Thresholds.from_config().lock()
        numbers, hull = values_from_measurements(measurements)
        self.controls: dict[str, widgets.Widget] = {}
        for name, value in self.thresholds.values().items():
            self.controls[f"threshold_{name}"] = widgets.BoundedFloatText(
                value=value,
                min=1e-9,
                max=1e6,
                description=THRESHOLD_LABELS[name],
                style={"description_width": "initial"},
            )
        for name, (_, description, unit) in MEASURED.items():
            self.controls[name] = widgets.Text(
                value=numbers[name],
                description=f"{description} ({unit})",
                placeholder="not measured",
                style={"description_width": "initial"},
            )
        self.controls["hull"] = widgets.Dropdown(
            options=HULL_OPTIONS, value=hull, description="hull check"
        )
        self.lock_button = widgets.Button(description="lock thresholds", icon="lock")
        self.lock_html = widgets.HTML()
        self.output = widgets.Output()
        self.result: FlowchartResult | None = None
        self.figure = None
        for control in self.controls.values():
            control.observe(self.refresh, names="value")
        self.lock_button.on_click(self.lock)
        self.refresh()

    def lock(self, _=None) -> None:
        """Lock the thresholds now in the controls (a fresh fingerprint and time)."""
        self.thresholds = self.thresholds.lock()
        self.refresh()

    def refresh(self, _=None) -> None:
        values = {
            name.removeprefix("threshold_"): control.value
            for name, control in self.controls.items()
            if name.startswith("threshold_")
        }
        self.thresholds = thresholds_from_values(self.thresholds, values)
        measurements = measurements_from_values(
            {name: self.controls[name].value for name in MEASURED}, self.controls["hull"].value
        )
        self.result = decide(measurements, self.thresholds)
        self.lock_html.value = lock_state_html(self.thresholds)
        self.figure = flowchart_figure(self.result)
        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)

    @property
    def widget(self) -> widgets.VBox:
        thresholds = [c for n, c in self.controls.items() if n.startswith("threshold_")]
        rows = (
            ("zero_shot_force_mae", "hull"),  # Q1, Q2
            ("tuned_energy_mae", "tuned_force_mae"),  # Q3
            ("full_energy_mae", "full_force_mae"),  # Q4, the course's extension
        )
        return widgets.VBox(
            [
                widgets.HBox(thresholds),
                widgets.HBox([self.lock_button, self.lock_html]),
                *(widgets.HBox([self.controls[name] for name in row]) for row in rows),
                self.output,
            ]
        )

    def _ipython_display_(self):
        display(self.widget)


def flowchart_explorer(*, thresholds: Thresholds | None = None, report=None) -> widgets.VBox:
    """The explorer's widget box, ready to display (see ``FlowchartExplorer``)."""
    return FlowchartExplorer(thresholds=thresholds, report=report).widget
