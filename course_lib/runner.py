"""Execute the course notebooks headless, as a student's "Run all" would.

Each notebook runs in a fresh kernel with ``COURSE_MODE`` set; the executed
copy and a summary (wall time, peak memory of the kernel, pass/fail) go to a
work directory, never into the repository's tracked files. Peak memory is
the largest resident set of the kernel's process tree, sampled every 0.2 s.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from course_lib.paths import NOTEBOOKS_DIR, work_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotebookRun:
    notebook: str
    mode: str
    ok: bool
    wall_s: float
    peak_memory_mb: float
    output: str
    error: str = ""


def course_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (jupytext ``.py`` sources), in course order."""
    return sorted(folder.glob("[0-9][0-9]_*.py"))


def find_notebook(name: str, folder: Path = NOTEBOOKS_DIR) -> Path:
    """A notebook by path, file name, stem or number prefix (``"02"``)."""
    path = Path(name)
    if path.exists():
        return path
    matches = [
        nb
        for nb in course_notebooks(folder)
        if nb.stem == path.stem or nb.stem.startswith(f"{name}_")
    ]
    if len(matches) != 1:
        known = ", ".join(nb.stem for nb in course_notebooks(folder))
        raise FileNotFoundError(f"no single notebook matches {name!r}; notebooks: {known}")
    return matches[0]


def read_notebook(path: Path):
    """A notebook object from a jupytext ``.py`` (percent format) or an ``.ipynb``."""
    import jupytext

    return jupytext.read(path)


class _PeakMemory:
    """Samples the resident memory of this process's children (the kernel) in a thread."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class _DebugInfo(logging.LoggerAdapter):
    """nbclient's one INFO line per notebook logged at DEBUG: ``course run`` shows its table."""

    def info(self, msg, *args, **kwargs):
        self.debug(msg, *args, **kwargs)


def local_kernel_config(socket_dir: Path):
    """Kernel-manager settings for a kernel that only this process talks to.

    By default a kernel listens on TCP ports, unencrypted, and ipykernel
    warns about it once per kernel ("Kernel is running over TCP without
    encryption"). Headless runs need no network: on POSIX the kernel gets Unix
    domain sockets in ``socket_dir`` instead (no port opened, nothing to warn
    about); elsewhere jupyter_client provisions CurveZMQ keys when the kernel
    declares support.
    """
    import zmq
    from traitlets.config import Config

    if os.name == "posix":
        return Config({"KernelManager": {"transport": "ipc", "ip": str(socket_dir / "kernel")}})
    if zmq.has("curve"):
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config()


#: Longest single wait on a kernel channel (s); see ``poll_in_steps``.
POLL_STEP_S = 1.0


def poll_in_steps(channel, step_s: float = POLL_STEP_S) -> None:
    """Make ``channel.get_msg(timeout)`` wait in steps of at most ``step_s`` seconds.

    An asyncio kernel channel can miss the wake-up for a message that has already
    arrived, after a cell that opens widget comms, and then waits out the whole cell
    timeout (jupyter/nbclient#312: minutes per widget cell on a busy machine). Polling
    again every step finds the message; the overall timeout and ``Empty`` at its end are
    unchanged.
    """
    from queue import Empty

    get_msg = channel.get_msg

    async def stepwise(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = step_s if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(timeout=min(step_s, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = stepwise


def _stepwise_client(notebook, **options):
    """An ``nbclient.NotebookClient`` whose shell and IOPub waits use ``poll_in_steps``."""
    from nbclient import NotebookClient

    class StepwiseClient(NotebookClient):
        async def async_start_new_kernel_client(self):
            client = await super().async_start_new_kernel_client()
            for channel in (client.shell_channel, client.iopub_channel):
                poll_in_steps(channel)
            return client

    return StepwiseClient(notebook, **options)


def run_notebook(
    path: Path, out_dir: Path, *, mode: str = "fast", timeout_s: int = 900
) -> NotebookRun:
    """Execute one notebook top to bottom in a fresh kernel; never raises on notebook errors."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    notebook = read_notebook(path)
    output = out_dir / f"{path.stem}.ipynb"
    error = ""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="course-kernel-") as sockets, _PeakMemory() as memory:
        client = _stepwise_client(
            notebook,
            timeout=timeout_s,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            config=local_kernel_config(Path(sockets)),
            log=_DebugInfo(logger),
        )
        try:
            # The mode reaches the kernel through its own environment, not this process's.
            client.execute(env={**os.environ, "COURSE_MODE": mode})
        except CellExecutionError as err:
            error = f"{err.ename}: {err.evalue}"
        except Exception as err:  # kernel died, timeout: report, keep going
            error = f"{type(err).__name__}: {err}"
    wall = time.perf_counter() - start
    nbformat.write(notebook, output)
    return NotebookRun(
        notebook=path.stem,
        mode=mode,
        ok=not error,
        wall_s=round(wall, 1),
        peak_memory_mb=round(memory.peak_bytes / 2**20, 1),
        output=str(output),
        error=error,
    )


def run_notebooks(
    paths: Sequence[Path], *, mode: str = "fast", out_dir: Path | None = None, timeout_s: int = 900
) -> list[NotebookRun]:
    """Run notebooks in order; write executed copies and ``summary.json`` to ``out_dir``."""
    out_dir = out_dir or work_dir("runs", time.strftime("%Y%m%d-%H%M%S"))
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in paths:
        runs.append(run_notebook(path, out_dir, mode=mode, timeout_s=timeout_s))
        (out_dir / "summary.json").write_text(
            json.dumps([asdict(r) for r in runs], indent=2) + "\n"
        )
    return runs


def summary_table(runs: Sequence[NotebookRun]) -> str:
    lines = [f"{'notebook':<36} {'mode':<5} {'result':<6} {'wall (s)':>9} {'peak MB':>8}"]
    for run in runs:
        lines.append(
            f"{run.notebook:<36} {run.mode:<5} {'ok' if run.ok else 'FAIL':<6} {run.wall_s:>9.1f} {run.peak_memory_mb:>8.0f}"
        )
        if run.error:
            lines.append(f"    {run.error}")
    return "\n".join(lines)
