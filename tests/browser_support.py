"""Fixtures and helpers for the browser tests (``tests/test_browser*.py``).

The notebooks in a real browser: JupyterLab 4 on localhost, driven by headless Chromium.

A student sees widgets only through the browser front end (plotly's and
nglview's JupyterLab extensions, ipywidgets' manager), which no kernel-side
test exercises. This test serves copies of the notebooks from a temporary
folder (JupyterLab autosaves, and the tracked files must stay untouched),
runs each with "Run All Cells", and checks what renders. Screenshots go to
``course-work/browser/`` (or ``$COURSE_BROWSER_SHOTS``).

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright``
Python package; nothing downloads a browser of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from course_lib.paths import NOTEBOOKS_DIR, REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "course-browser-test"
# Screenshots outlive the test's temporary work dir, for a person to look at.
SHOTS = Path(os.environ.get("COURSE_BROWSER_SHOTS", REPO_ROOT / "course-work" / "browser"))
ACTIVE = "#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)"

#: Every browser test module sets ``pytestmark = BROWSER_MARKS``.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the notebooks, with windowing off (every cell rendered)."""
    root = tmp_path_factory.mktemp("lab")
    for notebook in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"):
        shutil.copy(notebook, root)
    settings = root / ".settings"
    for plugin, values in {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={TOKEN}",
        f"--LabApp.workspaces_dir={root / '.workspaces'}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "COURSE_MODE": "fast"}
    server = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 90 s")
    yield base
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-quic",
                "--no-first-run",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
                "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader",  # WebGL for nglview
            ],
        )
        yield chromium
        chromium.close()


def run_all(browser, lab: str, notebook: str, timeout_s: float = 420):
    """Open ``notebook`` in JupyterLab, Run All Cells, wait until the kernel is idle again."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{lab}/lab/tree/{notebook}?reset&token={TOKEN}")
    select_kernel = page.locator(".jp-Dialog button:has-text('Select')")
    try:  # JupyterLab sometimes asks which kernel to start; the notebook names python3
        select_kernel.wait_for(timeout=10_000)
        select_kernel.click()
    except Exception:
        pass
    page.wait_for_selector(
        f"{ACTIVE} .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000
    )
    prompts = f"[...document.querySelectorAll('{ACTIVE} .jp-CodeCell .jp-InputArea-prompt')]"
    started = f"() => {prompts}.some(p => /\\[[\\d*]+\\]/.test(p.textContent))"
    for _attempt in range(3):  # a click that lands before the kernel is connected does nothing
        page.wait_for_timeout(3000)
        page.click("div.lm-MenuBar-itemLabel:text-is('Run')")
        page.click("li.lm-Menu-item:has-text('Run All Cells')")
        try:
            page.wait_for_function(started, timeout=30_000)
            break
        except Exception:
            continue
    # Done when every code cell has an execution count, or a cell failed and stopped the run.
    try:
        page.wait_for_function(
            f"""() => {prompts}.every(p => /\\[\\d+\\]/.test(p.textContent))
                || document.querySelector('{ACTIVE} .jp-OutputArea-output[data-mime-type*="error"]')""",
            timeout=timeout_s * 1000,
        )
    except Exception:
        page.screenshot(path=str(SHOTS / f"{notebook}-timeout.png"))
        raise
    page.wait_for_timeout(2000)  # let widget views and plots finish drawing
    return page


def cell_with(page, text: str):
    return page.locator(f"{ACTIVE} .jp-CodeCell", has_text=text).first


def screenshot(locator, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    return path


def errors_shown(page) -> list[str]:
    texts = page.locator(f"{ACTIVE} .jp-OutputArea-output").all_inner_texts()
    return [t[-300:] for t in texts if "Traceback" in t or "Error displaying widget" in t]
