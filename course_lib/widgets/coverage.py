"""An explorer for the coverage diagnostic: pick a channel, rebin, move the thresholds.

Everything it shows is derived exactly from the histograms it is given:
changing the distance range truncates them and changing a bin width merges
adjacent bins (``CoverageHistograms.truncated`` / ``.coarsened``), so no
structure is re-read. The bond cutoff for angles is fixed when the
histograms are built.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
from IPython.display import display

from course_lib.coverage import CoverageHistograms, compare_coverage
from course_lib.plots.coverage import coverage_overlay


def coverage_explorer(
    target: CoverageHistograms,
    reference: CoverageHistograms,
    *,
    channel: str | None = None,
    min_target_share: float = 1e-3,
    max_reference_fraction: float = 1e-4,
    markers: dict[str, float] | None = None,
) -> widgets.VBox:
    """Channel selector, distance range and bin widths, thresholds, overlay and warning table.

    ``target`` and ``reference`` must share their binning (build the target
    with ``settings=reference.settings``). ``markers`` is passed on to
    :func:`course_lib.plots.coverage.coverage_overlay`.
    """
    settings = reference.settings
    base = compare_coverage(
        target,
        reference,
        min_target_share=min_target_share,
        max_reference_fraction=max_reference_fraction,
    )
    flagged_channels = [flag.channel for flag in base.flagged]
    choice = widgets.Dropdown(
        options=list(target.channels),
        value=channel or (flagged_channels[0] if flagged_channels else target.channels[0]),
        description="channel",
    )
    cutoff = widgets.FloatSlider(
        value=settings.cutoff,
        min=max(1.0, settings.bin_width),
        max=settings.cutoff,
        step=settings.bin_width,
        description="r max (Å)",
        readout_format=".2f",
    )
    distance_width = widgets.Dropdown(
        options=_width_options(settings.n_distance_bins, settings.bin_width, "Å"),
        description="Δr",
    )
    angle_width = widgets.Dropdown(
        options=_width_options(settings.n_angle_bins, settings.angle_bin_width, "°"),
        description="Δθ",
    )
    min_target = widgets.FloatLogSlider(
        value=min_target_share, base=10, min=-5, max=-1, description="share ≥"
    )
    max_reference = widgets.FloatLogSlider(
        value=max(max_reference_fraction, 1e-7), base=10, min=-7, max=-2, description="ref ≤"
    )
    summary, table, plot = widgets.HTML(), widgets.HTML(), widgets.Output()

    def refresh(_=None) -> None:
        t, r = _rebinned(target, reference, cutoff.value, distance_width.value, angle_width.value)
        report = compare_coverage(
            t,
            r,
            min_target_share=min_target.value,
            max_reference_fraction=max_reference.value,
        )
        summary.value = _summary_html(report)
        table.value = _table_html(report)
        plot.clear_output(wait=True)
        with plot:
            display(coverage_overlay(t, r, choice.value, report=report, markers=markers))

    for control in (choice, cutoff, distance_width, angle_width, min_target, max_reference):
        control.observe(refresh, names="value")
    refresh()
    controls = widgets.VBox(
        [
            widgets.HBox([choice, cutoff]),
            widgets.HBox([distance_width, angle_width]),
            widgets.HBox([min_target, max_reference]),
        ]
    )
    return widgets.VBox([controls, summary, plot, table])


def _rebinned(target, reference, cutoff: float, distance_factor: int, angle_factor: int):
    """Both histograms truncated to ``cutoff`` Å (whole coarse bins) and coarsened alike."""
    coarse = target.settings.bin_width * distance_factor
    n_coarse = max(1, int(cutoff / coarse + 1e-9))
    out = []
    for hist in (target, reference):
        hist = hist.truncated(n_coarse * coarse)
        out.append(hist.coarsened(distance_factor=distance_factor, angle_factor=angle_factor))
    return out


def _width_options(n_bins: int, width: float, unit: str) -> list[tuple[str, int]]:
    """Bin widths that merge a whole number of bins: (label, factor)."""
    factors = [f for f in range(1, n_bins + 1) if n_bins % f == 0 and f <= 10]
    return [(f"{f * width:g} {unit}", f) for f in factors]


def _summary_html(report) -> str:
    parts = []
    if report.missing_elements:
        parts.append(
            "<b style='color:#d62728'>Elements absent from the reference: "
            f"{html.escape(', '.join(report.missing_elements))}</b>"
        )
    if report.missing_channels:
        parts.append(
            "Channels the reference never shows: "
            f"<b>{html.escape(', '.join(report.missing_channels))}</b>"
        )
    parts.append(
        f"coverage score <b>{report.score:.3f}</b> (distances {report.distance_score:.3f}, "
        f"angles {report.angle_score:.3f}); flagged: ranges holding ≥ "
        f"{report.min_target_share:.1e} of the target's distances (angles) where the "
        f"reference has ≤ {report.max_reference_fraction:.1e} of the channel"
    )
    return "<br>".join(parts)


def _table_html(report) -> str:
    if not report.flagged:
        return "<i>no extrapolation warnings at these thresholds</i>"
    columns = ("kind", "channel", "range", "target share", "of channel", "reference")
    header = "".join(f"<th>{h}</th>" for h in columns)
    rows = "".join(
        f"<tr><td>{row['kind']}</td><td>{html.escape(row['channel'])}</td>"
        f"<td>{html.escape(row['range'])}</td><td>{row['target_share']:.2%}</td>"
        f"<td>{row['target_fraction']:.2%}</td>"
        f"<td>{row['reference_fraction']:.4%}</td></tr>"
        for row in report.to_rows()
    )
    return f"<table><tr>{header}</tr>{rows}</table>"
