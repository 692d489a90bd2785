"""Every course notebook runs top to bottom in fast mode, and its paired files agree."""

import jupytext
import pytest

from course_lib import exercises, runner

NOTEBOOKS = runner.course_notebooks()


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_paired_ipynb_matches_the_py_source(source):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"run `jupytext --sync {source}` to create {paired.name}"
    py_cells = [c.source for c in jupytext.read(source).cells]
    ipynb_cells = [c.source for c in jupytext.read(paired).cells]
    assert py_cells == ipynb_cells, f"{paired.name} is out of sync: run `jupytext --sync {source}`"


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(source, tmp_path):
    result = runner.run_notebook(source, tmp_path, mode="fast", timeout_s=600)
    assert result.ok, result.error
    failed = [c.table() for c in exercises.checks_in_notebook(result.output) if not c.passed]
    assert not failed, "the instructor copy fails its own self-checks:\n" + "\n".join(failed)
