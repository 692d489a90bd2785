"""The course's embarrassingly parallel jobs on a Dask cluster (``dask.distributed``).

Two jobs split into independent tasks: DFT labelling (one task per
structure, ``course_lib.dft.label_structures``) and learning-curve sweeps
(one task per (N, seed) training run, ``course_lib.learning_curve.run_learning_curve``).
Each task writes its own result file atomically, so a sweep on a cluster is
interrupted, resumed and split between machines like one in the local
process pool, provided the result folder is on a filesystem that the
workers share with the caller (``require_visible`` checks).

``scheduler`` means the same everywhere: ``None`` (no Dask, the default),
``"local"`` (a ``LocalCluster`` sized to this machine: one single-threaded
worker process per core), a scheduler address (``tcp://host:8786``, e.g. of a
``dask_jobqueue.SLURMCluster``, see ``slurm_cluster``) or a ``distributed.Client``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

LOCAL = "local"
CONNECT_TIMEOUT_S = 5.0  # a scheduler that answers at all answers in milliseconds
# One GPAW or torch process per core: its threads would only fight its neighbours.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --------------------------------------------------------------------------- clients


@contextmanager
def dask_client(scheduler, *, timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator:
    """A ``distributed.Client`` for ``scheduler``; what this opened is closed on exit.

    ``"local"`` starts a ``LocalCluster`` (``local_cluster()``); an address is
    connected to within ``timeout_s`` seconds, else ``RuntimeError`` in one
    line; a ``Client`` is used as it is and left open. The dashboard link (or
    why there is none) is logged.
    """
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    cluster = local_cluster() if scheduler == LOCAL else None
    try:
        if cluster is not None:
            client = Client(cluster, set_as_default=False)
        else:
            client = connect(scheduler, timeout_s=timeout_s)
        try:
            logger.info("Dask: %s", describe(client))
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def connect(address: str, *, timeout_s: float = CONNECT_TIMEOUT_S):
    """A ``Client`` of the scheduler at ``address``, or ``RuntimeError`` after ``timeout_s`` s."""
    from distributed import Client

    try:
        return Client(str(address), timeout=timeout_s, set_as_default=False)
    except Exception as err:  # refused, timed out, not an address, not a Dask scheduler
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        raise RuntimeError(
            f"cannot reach a Dask scheduler at {address!r} ({reason}); "
            "start one (`dask scheduler`, or a dask_jobqueue cluster) or use --scheduler local"
        ) from None


def local_cluster(n_workers: int | None = None, *, dashboard: bool | None = None):
    """A ``LocalCluster`` of ``n_workers`` processes (default: one per core), 1 thread each.

    The workers start with ``SINGLE_THREAD_ENV`` (OMP_NUM_THREADS=1, ...), so one
    GPAW calculation or training run uses one core. ``dashboard`` defaults to
    whether bokeh, which the dashboard needs, is installed.
    """
    from dask.system import CPU_COUNT
    from distributed import LocalCluster

    if dashboard is None:
        dashboard = has_dashboard()
    return LocalCluster(
        n_workers=n_workers or CPU_COUNT,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":8787" if dashboard else None,
        env=dict(SINGLE_THREAD_ENV),
    )


def has_dashboard() -> bool:
    """Whether the Dask dashboard can run here (it needs bokeh)."""
    return importlib.util.find_spec("bokeh") is not None


def describe(client) -> str:
    """One line: scheduler address, workers, threads, and the dashboard link or why none.

    Every scheduler serves the link; the dashboard behind it needs bokeh
    where the scheduler runs, which is asked of the scheduler itself.
    """
    threads = client.nthreads()
    address = client.scheduler_info(n_workers=0).get("address", "?")
    try:  # a lambda travels by value: the scheduler needs no course_lib for it
        bokeh = client.run_on_scheduler(lambda: importlib.util.find_spec("bokeh") is not None)
    except Exception:  # the scheduler refuses to run code: say what we know
        bokeh = None
    if bokeh is False:
        board = "no dashboard (bokeh is not installed where the scheduler runs: pip install bokeh)"
    elif bokeh:
        board = f"dashboard {client.dashboard_link}"
    else:
        board = f"dashboard {client.dashboard_link} (if the scheduler has bokeh)"
    return f"scheduler {address}, {len(threads)} workers, {sum(threads.values())} threads, {board}"


# --------------------------------------------------------------------------- tasks


def map_unordered(
    client,
    function: Callable,
    items: Sequence,
    *,
    name: str,
    progress: bool = True,
    shared: Mapping | None = None,
    **options,
) -> Iterator[tuple[int, object]]:
    """Run ``function(item, **shared, **options)`` for each item; yield ``(index, future)`` as each ends.

    ``shared`` values (a model, test frames) are sent to every worker once;
    ``options`` travel with each task. Tasks are named ``name-<hex>`` (the
    progress bar and dashboard group by ``name``). With ``progress``, Dask's
    bar is shown: a widget in a notebook, a text bar on stdout in a terminal
    (which waits until all tasks ended). Call ``future.result()`` to get a
    result or the task's exception. Tasks not yet run are cancelled when the
    caller stops iterating and the client closes.
    """
    sent = {
        key: value if value is None else client.scatter([value], broadcast=True, hash=False)[0]
        for key, value in (shared or {}).items()
    }
    keys = [f"{name}-{uuid.uuid4().hex}" for _ in items]
    futures = client.map(function, list(items), key=keys, pure=False, **sent, **options)
    index = {future.key: i for i, future in enumerate(futures)}
    if progress and futures:
        show_progress(client, futures)
    from distributed import as_completed

    for future in as_completed(futures, loop=client.loop):
        yield index[future.key], future


def show_progress(client, futures) -> None:
    """Dask's progress bar: a widget under the notebook cell, or a text bar that waits."""
    from distributed import progress
    from distributed.utils import is_kernel

    address = client.scheduler.address
    if is_kernel():
        from IPython.display import display

        display(progress(futures, notebook=True, multi=False, scheduler=address))
    else:
        progress(futures, notebook=False, multi=False, scheduler=address)  # erases its line


# --------------------------------------------------------------------------- result files


def require_visible(path: Path, *, wait_s: float = 10.0) -> None:
    """``RuntimeError`` unless the result file a worker reported as written is visible here.

    Workers write result files where the caller reads them: the folder must
    be shared (the same path on a shared filesystem). Network filesystems may
    show a new file a few seconds late, so this waits up to ``wait_s`` s.
    """
    deadline = time.monotonic() + wait_s
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"a Dask worker wrote {path} but this machine does not see it: the result "
                "folder must be on a filesystem shared by the workers and this machine"
            )
        time.sleep(0.2)


def remove_partial_writes(path: Path, *, older_than_s: float = 0.0) -> int:
    """Delete temporary files an interrupted atomic write of ``path`` left; return how many.

    ``course_lib.data.atomic_output`` writes ``.<name>.<random>.tmp`` next to
    ``path`` and renames it; a worker killed in between leaves it behind.
    Only files older than ``older_than_s`` seconds go, so that a write in
    progress elsewhere is left alone.
    """
    path = Path(path)
    now = time.time()
    removed = 0
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime >= older_than_s:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


# --------------------------------------------------------------------------- HPC


def slurm_cluster(
    *,
    cores: int,
    memory: str,
    walltime: str,
    account: str | None = None,
    queue: str | None = None,
    **options,
):
    """A ``dask_jobqueue.SLURMCluster`` set up for GPAW labelling and learning curves.

    Each SLURM job of ``cores`` cores and ``memory`` (e.g. ``"64GB"``) runs
    ``cores`` Dask worker processes of one thread each, with
    ``OMP_NUM_THREADS=1`` (one serial GPAW calculation per core: the cells here
    are 2-12 atoms, too small for MPI inside one calculation to pay). Workers
    retire a few minutes before ``walltime`` (``"HH:MM:SS"``), so Dask moves
    their remaining tasks to other jobs instead of losing them to the
    walltime kill. Nothing is submitted until ``cluster.scale(jobs=...)``.
    ``options`` go to ``SLURMCluster`` (``job_extra_directives``, ``interface``, ...).
    """
    from dask_jobqueue import SLURMCluster

    exports = [f"export {name}={value}" for name, value in SINGLE_THREAD_ENV.items()]
    lifetime_s = max(60, _seconds(walltime) - 300)
    settings = {
        "cores": cores,
        "processes": cores,
        "memory": memory,
        "walltime": walltime,
        "account": account,
        "queue": queue,
        "job_script_prologue": exports,
        "worker_extra_args": ["--lifetime", f"{lifetime_s}s", "--lifetime-stagger", "120s"],
        "scheduler_options": {"dashboard_address": ":8787" if has_dashboard() else None},
    }
    return SLURMCluster(**{**settings, **options})


def _seconds(walltime: str) -> int:
    """``"HH:MM:SS"``, ``"MM:SS"`` or ``"D-HH:MM:SS"`` in seconds."""
    days, _, clock = walltime.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds
