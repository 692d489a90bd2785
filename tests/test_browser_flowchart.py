"""Notebook 08 in JupyterLab: the flowchart explorer renders and follows its threshold controls.

The explorer starts from the Li report of the notebook. Moving the first threshold across the
measured zero-shot force MAE must flip the first decision: the highlighted path, the decision's
annotation and the figure's title change, and the lock line and the title say "changed after
lock". Pressing "lock thresholds" then clears the flag.
"""

from __future__ import annotations

import re
import time

from browser_support import BROWSER_MARKS, cell_with, errors_shown, run_all, screenshot

pytestmark = BROWSER_MARKS

PLOT = ".js-plotly-plot"


def path_signature(widget) -> list[str]:
    """Outline width of every node shape, in graph order: the path's nodes are drawn thicker."""
    shapes = widget.locator(f"{PLOT} .shapelayer path")
    return [
        re.sub(r"\s", "", s or "")
        for s in shapes.evaluate_all("ps => ps.map(p => p.style.strokeWidth)")
    ]


def q1_annotation(widget) -> str:
    texts = widget.locator(f"{PLOT} .annotation-text").all_text_contents()
    return next(t for t in texts if "zero-shot force MAE" in t)


def wait_until(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def test_flowchart_explorer_redraws_the_path_and_flags_a_moved_threshold(browser, lab):
    page = run_all(browser, lab, "08_decision_flowchart.ipynb", timeout_s=900)
    assert errors_shown(page) == []
    widget = cell_with(page, "FlowchartExplorer(").locator(".jp-OutputArea").first
    widget.locator(PLOT).first.wait_for(timeout=30_000)
    lock_line = widget.locator(".widget-html-content", has_text="thresholds")
    title = widget.locator(f"{PLOT} .gtitle").first
    assert "thresholds locked" in lock_line.inner_text()
    before = {"path": path_signature(widget), "q1": q1_annotation(widget)}
    assert before["path"].count("3px") >= 3, "no highlighted path drawn"
    screenshot(widget, "08-flowchart-widget")

    # Cross the measured value: a failing Q1 now passes, a passing one now fails.
    threshold = widget.locator(".widget-text", has_text="Q1").locator("input")
    threshold.fill("100000" if "≥" in before["q1"] else "0.001")
    threshold.press("Enter")
    assert wait_until(lambda: "changed after lock" in title.text_content()), "title kept its lock"
    assert "changed after lock" in lock_line.inner_text()
    assert path_signature(widget) != before["path"], "the highlighted path did not change"
    assert q1_annotation(widget) != before["q1"]
    screenshot(widget, "08-flowchart-widget-threshold-moved")

    widget.locator("button", has_text="lock thresholds").click()
    assert wait_until(lambda: "changed" not in title.text_content()), "relocking kept the flag"
    assert "thresholds locked" in lock_line.inner_text()
    screenshot(widget, "08-flowchart-widget-relocked")
    page.close()
