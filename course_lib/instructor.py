"""Instructor tooling: student copies without solutions, and an environment check.

Solutions live in notebook cells tagged ``solution``. A student copy replaces
each with an empty cell that says where the answer goes, and carries no
outputs, so nothing of the answer leaks through a plot or a printed number.
Self-check cells (tagged ``self-check``, see ``course_lib.exercises``) stay:
they compare the student's answer with the notebook's own reference.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SOLUTION_TAG = "solution"
SELF_CHECK_TAG = "self-check"
PLACEHOLDER = "# Your solution here.\n"


def strip_solutions(notebook):
    """A copy of ``notebook`` with solution cells emptied and every output cleared.

    Self-check cells are kept (their outputs cleared like every other). A
    cell tagged both ``solution`` and ``self-check`` is an error: the check
    would vanish from the student copy with the solution.
    """
    import copy

    student = copy.deepcopy(notebook)
    for index, cell in enumerate(student.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if SOLUTION_TAG in tags and SELF_CHECK_TAG in tags:
            raise ValueError(
                f"cell {index} is tagged both {SOLUTION_TAG!r} and {SELF_CHECK_TAG!r}: put the "
                "self-check in a cell of its own after the solution, so students keep it"
            )
        if SOLUTION_TAG in tags:
            cell.source = PLACEHOLDER
            cell.metadata["tags"] = [t for t in tags if t != SOLUTION_TAG] + ["exercise"]
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return student


def write_student_notebooks(sources: Sequence[Path], out_dir: Path) -> list[Path]:
    """Student ``.ipynb`` copies of the course notebooks in ``out_dir``."""
    import nbformat

    from course_lib.runner import read_notebook

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        target = out_dir / f"{source.stem}.ipynb"
        nbformat.write(strip_solutions(read_notebook(source)), target)
        written.append(target)
    return written


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def environment_checks() -> list[Check]:
    """What ``course doctor`` reports: versions, models, datasets, GPAW, memory."""
    import psutil

    from course_lib.data import list_datasets
    from course_lib.models import list_models

    checks = [
        Check("python", platform.python_version().startswith("3.11"), platform.python_version())
    ]
    for package in (
        "torch",
        "mace-torch",
        "chgnet",
        "ase",
        "numpy",
        "plotly",
        "ipywidgets",
        "jupyterlab",
    ):
        try:
            checks.append(Check(package, True, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(package, False, "not installed: run scripts/setup.sh"))
    try:
        gpaw = importlib.metadata.version("gpaw")
        checks.append(Check("gpaw (optional)", True, gpaw))
    except importlib.metadata.PackageNotFoundError:
        checks.append(Check("gpaw (optional)", True, "not installed; only the DFT cells need it"))
    for status in list_models():
        checks.append(
            Check(
                f"model {status.name}", status.available or status.kind != "chgnet", status.location
            )
        )
    datasets = list_datasets()
    checks.append(
        Check(
            "datasets",
            bool(datasets),
            ", ".join(f"{d.name} ({d.n_frames})" for d in datasets) or "none",
        )
    )
    memory_gb = psutil.virtual_memory().available / 2**30
    checks.append(
        Check("memory available", memory_gb > 1.5, f"{memory_gb:.1f} GiB (fast mode needs ~2)")
    )
    return checks
