"""Self-checks pass and fail on planted answers; student copies keep them and drop solutions."""

import numpy as np
import pytest
from ase.build import bulk

from course_lib import exercises, runner
from course_lib.data import ENERGY_KEY, FORCES_KEY


def check(namespace, reference, **options):
    return exercises.check("answer", namespace, reference, **options)


def test_a_number_passes_within_its_tolerance_and_fails_outside():
    assert check({"answer": 4.255}, 4.25, abs_tol=0.01).passed
    assert check({"answer": 101.0}, 100.0, rel_tol=0.02).passed
    failed = check({"answer": 4.30}, 4.2517, abs_tol=0.01, unit="Å", hint="use the cubic cell")
    assert failed.status == exercises.FAIL
    text = failed.table()
    assert "4.3 Å is outside the tolerance" in text and "hint: use the cubic cell" in text
    assert "4.252" not in text, "a failed check must not give the reference away"
    assert "±0.01 Å" in text


def test_exact_means_exact_and_wrong_types_fail():
    assert check({"answer": 888}, 888).passed
    assert not check({"answer": 887}, 888).passed
    assert not check({"answer": "888 labels"}, 888).passed
    assert not check({"answer": True}, 1).passed  # a bool is not a count
    assert not check({"answer": float("nan")}, 1.0, rel_tol=1.0).passed


def test_an_undefined_variable_says_what_to_define_and_computes_nothing():
    def reference():
        raise AssertionError("the reference is computed only when there is an answer")

    missing = exercises.check("a0_mgo", {}, reference, define="{model: Å}", hint="h")
    assert missing.status == exercises.MISSING and not missing.passed
    assert "Define `a0_mgo`: {model: Å}" in missing.table()
    assert "hint" not in missing.table(), "the hint waits for a first try"


def test_none_where_no_number_exists():
    assert check({"answer": None}, None).passed
    assert not check({"answer": 0.3}, None).passed
    assert not check({"answer": None}, 0.3, abs_tol=0.1).passed
    assert check({"answer": None}, float("nan")).passed  # a refused estimate is None
    # a mapping with one refused entry
    reference = {"without smallest": 0.41, "without largest": None}
    assert check(
        {"answer": {"without smallest": 0.412, "without largest": None}}, reference, abs_tol=0.01
    ).passed


def test_nested_mappings_compare_leaf_by_leaf_with_keys_as_text():
    reference = {"course-mini": {"Li": 100.0, "O": 80.0}, "chgnet-0.3.0": {"Li": 50.0, "O": 40.0}}
    good = {"course-mini": {"Li": 100.5, "O": 80.2}, "chgnet-0.3.0": {"Li": 50.1, "O": 40.0}}
    assert check({"answer": good}, reference, rel_tol=0.01).passed
    bad = {"course-mini": {"Li": 100.5, "O": 90.0}, "chgnet-0.3.0": {"Li": 50.1}}
    result = check({"answer": bad}, reference, rel_tol=0.01)
    assert not result.passed
    text = result.table()
    assert "answer['course-mini']['O']: yours 90 is outside" in text
    assert "answer['chgnet-0.3.0']['O']: missing" in text
    # temperatures as float, int or text keys all match
    assert check({"answer": {300: 1.0, "1200": 2.0}}, {300.0: 1.0, 1200.0: 2.0}).passed


def test_strip_solutions_keeps_self_checks_and_refuses_a_double_tag():
    import nbformat

    from course_lib.instructor import PLACEHOLDER, strip_solutions

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell(
            "exercises.check('x', globals(), 1)", metadata={"tags": ["self-check"]}
        ),
    ]
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="PASS")]
    student = strip_solutions(notebook)
    assert student.cells[0].source == PLACEHOLDER
    assert student.cells[1].source == "exercises.check('x', globals(), 1)"
    assert student.cells[1].metadata["tags"] == ["self-check"] and not student.cells[1].outputs
    notebook.cells[1].metadata["tags"] = ["solution", "self-check"]
    with pytest.raises(ValueError, match="tagged both"):
        strip_solutions(notebook)


DEMO = """# %%
from course_lib import exercises

reference = 2.0 * 21  # stands for a number the notebook computes

# %% tags=["solution"]
answer = 42.0
print(exercises.conclusion(f"The answer is {answer:.0f}.", section="Three regimes of use"))

# %% tags=["self-check"]
exercises.check("answer", globals(), reference, abs_tol=0.5, define="the answer, a number")
"""


def test_instructor_copy_passes_its_self_check_and_student_copy_keeps_it(tmp_path):
    from course_lib.instructor import write_student_notebooks

    source = tmp_path / "09_demo.py"
    source.write_text(DEMO)
    for folder in ("instructor", "student-run"):
        (tmp_path / folder).mkdir()
    instructor = runner.run_notebook(source, tmp_path / "instructor", mode="fast", timeout_s=120)
    assert instructor.ok, instructor.error
    (passed,) = exercises.checks_in_notebook(instructor.output)
    assert passed.passed and passed.name == "answer"

    (student,) = write_student_notebooks([source], tmp_path / "student")
    text = student.read_text()
    assert "answer = 42.0" not in text and "The answer is" not in text
    assert 'exercises.check(\\"answer\\"' in text
    executed = runner.run_notebook(student, tmp_path / "student-run", mode="fast", timeout_s=120)
    assert executed.ok, executed.error  # an unanswered check does not stop the notebook
    (unanswered,) = exercises.checks_in_notebook(executed.output)
    assert unanswered.status == exercises.MISSING


def test_conclusion_names_the_section_and_drops_empty_sentences():
    text = exercises.conclusion("First.", "", "Second " * 30, section="On the role of forces")
    lines = text.splitlines()
    assert lines[0] == 'What you should see, and why (chapter: "On the role of forces"):'
    assert lines[1].startswith("  First. Second")
    assert all(len(line) <= exercises.WIDTH for line in lines)


def test_wording_helpers():
    assert exercises.percent(4.25, 4.21) == "+1.0 %"
    assert exercises.ratio_words(1.1) == "about the same as"
    assert exercises.ratio_words(0.47) == "0.5x"


def labelled(atoms, energy_eV):
    atoms = atoms.copy()
    atoms.info[ENERGY_KEY] = energy_eV
    atoms.arrays[FORCES_KEY] = np.zeros((len(atoms), 3))
    return atoms


def test_transferred_alignment_leaves_the_shift_between_groups():
    from course_lib.zero_shot import Predictions

    cell = bulk("Li2O", "fluorite", a=4.62)  # 3 atoms
    frames, predicted = [], []
    for i, (temperature, error) in enumerate([(300.0, 0.3), (300.0, 0.3), (1200.0, 0.6)]):
        atoms = labelled(cell, -14.0 - 0.1 * i)
        atoms.info["temperature_K"] = temperature
        frames.append(atoms)
        predicted.append(atoms.info[ENERGY_KEY] + error)  # model - DFT, eV per cell
    predictions = Predictions("planted", np.array(predicted), [np.zeros((3, 3))] * 3)
    mae = exercises.transferred_alignment_reference(
        frames, predictions, key="temperature_K", fit_on=300.0, apply_to=1200.0
    )
    assert mae == pytest.approx(1e3 * 0.3 / 3)  # the 0.3 eV the cold offsets cannot absorb


def test_element_count_correlation_and_share_among_largest():
    frames = [bulk("Li", "bcc", a=3.4)] * 100 + [bulk("Mg", "hcp", a=3.2)] * 10 + [bulk("Si")]
    errors = {"Li": 10.0, "Mg": 20.0, "Si": 30.0}  # linear in -log10(count): 100, 10, 1
    assert exercises.element_count_correlation(frames, errors) == pytest.approx(-1.0)
    held_out = [bulk("Li2O", "fluorite", a=4.62)] * 2  # Li, Li, O twice over
    values = np.array([5.0, 1.0, 9.0, 4.0, 0.0, 8.0])  # largest three: O, O, Li
    share = exercises.element_share_among_largest(held_out, values, element="Li", k=3)
    assert share == pytest.approx(1 / 3)


class PlantedCurve:
    """A learning curve stand-in: every run's N and force MAE, three seeds per size."""

    def __init__(self, sizes):
        self.sizes = np.repeat(sizes, 3)

    def values(self, metric):
        rng = np.random.default_rng(0)
        mae = 200.0 * self.sizes**-0.4 + 20.0
        return self.sizes, mae * (1 + 0.01 * rng.standard_normal(mae.size))


def test_alphas_without_ends_are_none_where_the_fit_refuses():
    short = exercises.alphas_without_ends_reference(PlantedCurve([2, 5, 10, 20]))
    assert short == {"without smallest": None, "without largest": None}
    long = exercises.alphas_without_ends_reference(PlantedCurve([2, 5, 10, 20, 50, 100, 200]))
    assert long["without smallest"] == pytest.approx(0.4, abs=0.1)
    assert long["without largest"] == pytest.approx(0.4, abs=0.1)
