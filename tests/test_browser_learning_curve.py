"""Notebook 05 in JupyterLab: the learning-curve explorer renders, and its α slider moves the law."""

from __future__ import annotations

from browser_support import ACTIVE, BROWSER_MARKS, cell_with, errors_shown, run_all, screenshot

pytestmark = BROWSER_MARKS

LINES = ".js-plotly-plot .scatterlayer path.js-line"


def line_paths(widget) -> list[str]:
    """The SVG path of every line plotly drew in ``widget`` (fits, zero-shot, the slider law)."""
    return [path.get_attribute("d") for path in widget.locator(LINES).all()]


def test_learning_curve_explorer_redraws_the_law_when_alpha_moves(browser, lab):
    page = run_all(browser, lab, "05_learning_curves.ipynb")
    assert errors_shown(page) == []
    assert page.locator(f"{ACTIVE} .js-plotly-plot .main-svg").count() >= 3  # static figures
    widget = cell_with(page, "learning_curve_explorer(").locator(".jp-OutputArea").first
    widget.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    assert widget.locator(".widget-slider").count() == 3  # A, α, B
    assert widget.locator("button:has-text('fit')").count() == 1
    screenshot(widget, "05-learning-curve-widget")

    before = line_paths(widget)
    alpha = widget.locator(".widget-slider", has_text="α").first
    readout = alpha.locator(".widget-readout")
    old_alpha = readout.inner_text()
    readout.fill("1.2")  # the slider's editable readout, as a student would type into it
    readout.press("Enter")
    page.wait_for_timeout(2000)
    assert readout.inner_text() != old_alpha
    after = line_paths(widget)
    assert len(after) == len(before) and after != before, "moving α did not redraw the law"
    screenshot(widget, "05-learning-curve-widget-alpha-moved")

    widget.locator("button:has-text('fit')").click()
    page.wait_for_timeout(2000)
    assert readout.inner_text() != "1.20"
    assert "least-squares fit" in widget.locator(".widget-html").first.inner_text()
    assert errors_shown(page) == []
    page.close()
