"""Notebooks 02 and 03 in JupyterLab: parity plots, the nglview viewer, the coverage widget."""

from __future__ import annotations

from browser_support import ACTIVE, BROWSER_MARKS, cell_with, errors_shown, run_all, screenshot

pytestmark = BROWSER_MARKS


def test_zero_shot_notebook_renders_parity_plots_and_the_structure_viewer(browser, lab):
    page = run_all(browser, lab, "02_zero_shot.ipynb")
    assert errors_shown(page) == []
    assert page.locator(f"{ACTIVE} .js-plotly-plot .main-svg").count() >= 3
    viewer = cell_with(page, "show_structure(").locator(".jp-OutputArea").first
    assert viewer.locator("canvas").count() >= 1, "nglview drew no WebGL canvas"
    screenshot(viewer, "02-nglview")
    screenshot(
        cell_with(page, "parity.force_parity(").locator(".jp-OutputArea-output"), "02-force-parity"
    )
    page.close()


def test_coverage_widget_redraws_when_the_channel_changes(browser, lab):
    page = run_all(browser, lab, "03_coverage.ipynb")
    assert errors_shown(page) == []
    widget = cell_with(page, "coverage_explorer(").locator(".jp-OutputArea").first
    assert widget.locator(".js-plotly-plot").count() >= 1
    screenshot(widget, "03-coverage-widget")
    title = widget.locator(".js-plotly-plot .gtitle").first.text_content()
    dropdown = widget.locator("select").first
    options = dropdown.locator("option").all_inner_texts()
    other = next(option for option in options if option.strip() and option.strip() not in title)
    dropdown.select_option(label=other)
    page.wait_for_timeout(2000)
    assert widget.locator(".js-plotly-plot .gtitle").first.text_content() != title
    screenshot(widget, "03-coverage-widget-changed")
    page.close()
