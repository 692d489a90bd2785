"""Exercises: self-checks a student can run, and the conclusions solutions end with.

A **self-check** cell follows each exercise with a numeric answer. It is not
tagged ``solution``, so ``course student`` keeps it. It reads the variable the
exercise asks for from the notebook's namespace, compares it with a reference
the notebook computes through the library (never a typed number: the
reference changes with the model in use), within a stated tolerance, and
shows PASS or FAIL with a hint; an undefined variable gets a line saying
what to define. It never raises, so "run all" goes on past a wrong answer,
and in the instructor notebook, where the solution defines the variable, it
shows PASS (``checks_in_notebook`` reads the results of an executed notebook
back; the slow notebook tests assert that every one passed).

Why not an established tool. otter-grader's student checks
(``otter.Notebook().check("q1")``) run test files that ``otter assign``
generates from a master notebook written in otter's own format (an
assignment config and BEGIN/END QUESTION, SOLUTION and TESTS markers): it
would mean rewriting the course's jupytext notebooks into that format and
shipping otter and the generated ``tests/`` folder to every Binder student,
for a dozen numeric checks. nbgrader's visible test cells are bare
``assert`` statements: the first wrong answer raises and stops the run with a
traceback instead of a hint, and releasing and grading go through
nbgrader's course directory layout and gradebook database. Both are
*graders*, built to score submissions; here the student only needs
feedback. What we keep from them: nbgrader's layout (a visible test cell
right after the answer cell, kept in the student copy) and otter's one
pass/fail line per question with a hint.

A **conclusion** (``conclusion``) is the last thing a solution prints: what
the student should see and why, tied to a section of the chapter. Its
sentences are f-strings of the solution's own numbers, with conditional
wording, so they cannot contradict them.

The ``*_reference`` helpers below compute references that take more than one
library call, from the notebook's own objects.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PASS = "pass"
FAIL = "fail"
MISSING = "not answered"

MIME_TYPE = "application/vnd.course.self-check+json"
WIDTH = 100  # characters per line of a conclusion


# --------------------------------------------------------------------------- self-checks


@dataclass(frozen=True)
class SelfCheck:
    """The outcome of one self-check: ``status`` is ``PASS``, ``FAIL`` or ``MISSING``.

    ``lines`` say, per compared value, what was found; a failed value shows
    the student's number and the tolerance, never the reference.
    """

    name: str
    status: str
    lines: tuple[str, ...]
    tolerance: str
    hint: str

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "lines": list(self.lines),
            "tolerance": self.tolerance,
            "hint": self.hint,
        }

    def table(self) -> str:
        head = f"self-check `{self.name}`: {self.status.upper()}"
        if self.status != MISSING:
            head += f" ({self.tolerance})"
        body = [f"  {line}" for line in self.lines]
        if self.status == FAIL and self.hint:  # not before a first try
            body.append(f"  hint: {self.hint}")
        return "\n".join([head, *body])

    __str__ = table

    def __repr__(self) -> str:
        return self.table()

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/plain": self.table(), MIME_TYPE: self.as_dict()}


Reference = float | int | None | Mapping


def check(
    name: str,
    namespace: Mapping,
    reference: Reference | Callable[[], Reference],
    *,
    rel_tol: float = 0.0,
    abs_tol: float = 0.0,
    unit: str = "",
    define: str = "",
    hint: str = "",
) -> SelfCheck:
    """Compare the variable ``name`` of ``namespace`` (a notebook's ``globals()``) with ``reference``.

    ``reference`` is a number, None (no number exists: the answer must be
    None too), or a mapping of those, nested as deep as needed (keys are
    compared as text, so ``300.0``, ``300`` and ``"300"`` match); a callable
    is called only when the variable is defined. A number passes when
    ``|answer - reference| <= max(abs_tol, rel_tol * |reference|)``; both
    zero means exactly equal. ``define`` says what the variable should hold,
    for the message when it is undefined; ``hint`` is shown when the check
    does not pass.
    """
    tolerance = _tolerance_text(rel_tol, abs_tol, unit)
    if name not in namespace:
        what = f": {define}" if define else ""
        line = f"`{name}` is not defined yet. Define `{name}`{what}, then run this cell again."
        return SelfCheck(name, MISSING, (line,), tolerance, hint)
    expected = _flatten(reference() if callable(reference) else reference)
    answer = _flatten(namespace[name])
    lines, ok = [], True
    for key, value in expected.items():
        where = f"{name}{key}" if key else name
        if key not in answer:
            ok = False
            lines.append(f"{where}: missing (expected keys: {_keys_text(expected, name)})")
            continue
        good, text = _compare(answer[key], value, rel_tol=rel_tol, abs_tol=abs_tol, unit=unit)
        ok &= good
        lines.append(f"{where}: {text}")
    return SelfCheck(name, PASS if ok else FAIL, tuple(lines), tolerance, hint)


def _compare(answer, reference, *, rel_tol: float, abs_tol: float, unit: str) -> tuple[bool, str]:
    """(passed, what to say) for one value."""
    if reference is None:
        if answer is None:
            return True, "None, as expected (no number exists here)"
        return False, f"yours is {answer!r}; here no number exists, so the answer is None"
    number = _as_number(answer)
    if number is None:
        return False, f"yours is {answer!r}, not a number"
    if abs(number - reference) <= max(abs_tol, rel_tol * abs(reference)):
        return True, f"yours {_fmt(number)}{unit and ' ' + unit}, reference {_fmt(reference)}"
    return False, f"yours {_fmt(number)}{unit and ' ' + unit} is outside the tolerance"


def _as_number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _flatten(value, prefix: str = "") -> dict:
    """{"[key1][key2]": leaf} of a nested mapping (keys as text); {"": value} for a leaf."""
    if isinstance(value, Mapping):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}[{_key_text(key)!r}]"))
        return flat
    if isinstance(value, float) and not math.isfinite(value):
        value = None  # an estimate that does not exist (NaN, inf) is None
    return {prefix: value}


def _key_text(key) -> str:
    """A key as text, numbers without trailing zeros (300.0 -> "300")."""
    if isinstance(key, (int, float, np.number)) and not isinstance(key, bool):
        return f"{float(key):g}"
    return str(key)


def _keys_text(expected: dict, name: str) -> str:
    return ", ".join(f"{name}{key}" for key in expected)


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _tolerance_text(rel_tol: float, abs_tol: float, unit: str) -> str:
    parts = []
    if abs_tol:
        parts.append(f"±{abs_tol:g}{unit and ' ' + unit}")
    if rel_tol:
        parts.append(f"±{100 * rel_tol:g} %")
    return "tolerance " + " or ".join(parts) if parts else "exact"


def checks_in_notebook(path: str | Path) -> list[SelfCheck]:
    """The self-checks displayed in an executed notebook, in cell order."""
    import nbformat

    notebook = nbformat.read(Path(path), as_version=4)
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            record = output.get("data", {}).get(MIME_TYPE)
            if record:
                record = json.loads(record) if isinstance(record, str) else record
                found.append(
                    SelfCheck(
                        name=record["name"],
                        status=record["status"],
                        lines=tuple(record["lines"]),
                        tolerance=record["tolerance"],
                        hint=record["hint"],
                    )
                )
    return found


# --------------------------------------------------------------------------- conclusions


def conclusion(*sentences: str, section: str) -> str:
    """What the student should see and why, under the chapter ``section`` it belongs to.

    ``sentences`` are joined and wrapped; empty ones are dropped, so a
    conditional sentence can be ``""``.
    """
    text = " ".join(s.strip() for s in sentences if s and s.strip())
    body = textwrap.fill(
        text, width=WIDTH, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
    return f'What you should see, and why (chapter: "{section}"):\n{body}'


def percent(value: float, reference: float) -> str:
    """``value`` relative to ``reference`` as a signed percentage, e.g. "+1.2 %"."""
    return f"{100 * (value / reference - 1):+.1f} %"


def ratio_words(ratio: float, *, tolerance: float = 0.2) -> str:
    """A ratio in words: "about the same as" within ``tolerance``, else "N.Nx"."""
    if abs(ratio - 1) <= tolerance:
        return "about the same as"
    return f"{ratio:.1f}x"


# --------------------------------------------------------------------------- references


def lattice_constants_reference(
    models: Sequence, atoms, *, atoms_per_cell_ratio: float = 1.0
) -> dict[str, float]:
    """{model: cubic lattice constant (Å)} from each model's zero-shot equation of state."""
    from course_lib.zero_shot import equation_of_state

    return {
        str(model): equation_of_state(model, atoms).lattice_constant_A(atoms_per_cell_ratio)
        for model in dict.fromkeys(models)
    }


def transferred_alignment_reference(
    frames: Sequence, predictions, *, key: str, fit_on, apply_to
) -> float:
    """Energy MAE (meV/atom) of the frames with ``info[key] == apply_to``, aligned per element
    with offsets fitted on those with ``info[key] == fit_on`` only."""
    from course_lib import zero_shot
    from course_lib.composition import fit_reference_offsets

    def part(value):
        index = [i for i, atoms in enumerate(frames) if atoms.info.get(key) == value]
        taken = zero_shot.Predictions(
            model=predictions.model,
            energies=np.asarray(predictions.energies)[index],
            forces=[predictions.forces[i] for i in index],
        )
        return [frames[i] for i in index], taken

    fit_frames, fit_predictions = part(fit_on)
    offsets = fit_reference_offsets(fit_frames, fit_predictions.energies)
    test_frames, test_predictions = part(apply_to)
    aligned = zero_shot.apply_offsets(test_frames, test_predictions, offsets)
    return zero_shot.error_metrics(test_frames, aligned).energy_mae_meV_per_atom


def substituted_coverage_reference(
    atoms, *, index: int, symbol: str, reference, settings=None
) -> float:
    """Coverage score of ``atoms`` with atom ``index`` replaced by ``symbol``, against ``reference``."""
    import warnings

    from course_lib import coverage

    substituted = atoms.copy()
    substituted.symbols[index] = symbol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing-element warning is the point
        histograms = coverage.compute_histograms([substituted], settings=settings)
        return coverage.compare_coverage(histograms, reference).score


def element_count_correlation(frames: Sequence, errors: Mapping[str, float]) -> float:
    """Pearson r between an error per element and log10 of the frames holding that element.

    Elements of ``errors`` that no frame holds are left out.
    """
    counts = {el: sum(el in atoms.symbols for atoms in frames) for el in errors}
    shared = [el for el in errors if counts[el] > 0]
    logs = np.log10([counts[el] for el in shared])
    return float(np.corrcoef(logs, [errors[el] for el in shared])[0, 1])


def alphas_without_ends_reference(curve, *, seed: int = 0) -> dict[str, float | None]:
    """α of the force curve refitted without its smallest and without its largest size.

    None where the fit refuses (fewer than four distinct sizes left).
    """
    from course_lib import scaling_law as sl

    n, mae = curve.values("force")
    alphas = {}
    for name, keep in (("without smallest", n > n.min()), ("without largest", n < n.max())):
        try:
            alphas[name] = sl.fit_power_law(n[keep], mae[keep], seed=seed).alpha
        except sl.LearningCurveInputError:
            alphas[name] = None
    return alphas


def structures_for_target_reference(
    curves: Sequence, *, metric: str, target: float, seed: int = 0
) -> dict[str, float | None]:
    """{curve label: N its fitted law needs for ``target``}; None where there is no estimate."""
    needed = {}
    for curve in curves:
        estimate = curve.fit(metric, seed=seed).n_for(target)
        needed[curve.label] = estimate.n if estimate.reachable and not estimate.refused else None
    return needed


def element_share_among_largest(
    frames: Sequence, values: np.ndarray, *, element: str, k: int
) -> float:
    """Share of ``element`` among the ``k`` atoms with the largest ``values`` (one per atom)."""
    symbols = np.array([s for atoms in frames for s in atoms.get_chemical_symbols()])
    largest = np.argsort(-np.asarray(values))[:k]
    return float(np.mean(symbols[largest] == element))


def force_scale_by_element(frames: Sequence) -> dict[str, float]:
    """Mean |F| component of the DFT labels per element, meV/Å (a per-element force MAE's yardstick)."""
    from course_lib import data as ds

    symbols = np.concatenate([atoms.get_chemical_symbols() for atoms in frames])
    forces = np.concatenate(ds.forces(frames))
    return {el: float(np.abs(forces[symbols == el]).mean() * 1e3) for el in sorted(set(symbols))}


def few_shot_errors_by_reference(
    model, train_frames: Sequence, test_frames: Sequence, *, key: str, train_on, n: int, seed: int
) -> dict:
    """{group: test force MAE (meV/Å)} of a closed-form few-shot fit on frames of one group.

    The fit uses up to ``n`` of the ``train_frames`` with ``info[key] ==
    train_on`` (a seeded draw); the errors are grouped by ``info[key]`` of
    ``test_frames``.
    """
    from course_lib import data as ds
    from course_lib import zero_shot
    from course_lib.finetune import run_regime

    group = [atoms for atoms in train_frames if atoms.info.get(key) == train_on]
    tuned = run_regime(
        model,
        ds.subset(group, min(n, len(group)), seed=seed),
        test_frames,
        regime="few-shot",
        solver="closed-form",
        seed=seed,
        progress=False,
    )
    grouped = zero_shot.errors_by(test_frames, tuned.test_predictions, key)
    return {value: m.force_mae_meV_per_A for value, m in grouped.metrics.items()}
