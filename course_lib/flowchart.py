"""The chapter's decision flowchart: zero-shot or fine-tune, decided by numbers fixed in advance.

The graph (node ids as in the chapter's mermaid source)::

    Start -> Check -> Q1 (force MAE < 100 meV/Å?)
    Q1 yes -> Q2 (energies on convex hull?)      Q1 no -> FT1 (few-shot, 100-500 structures)
    Q2 yes -> Use (zero-shot for production)     Q2 no -> FT2 (few-shot with energy weight)
    FT1, FT2 -> Recheck -> Q3 (< 20 meV/atom and < 50 meV/Å on the held-out test set?)
    Q3 yes -> Use                                Q3 no -> Full (full fine-tune or scratch)

The chapter's graph ends at "Full". The course runs that box too, so it
extends the graph after it (``COURSE_NODES``, ``COURSE_EDGES``; not in the
chapter)::

    Full -> Recheck2 (the fully fine-tuned model on the held-out test set)
         -> Q4 (the same thresholds as Q3)
    Q4 yes -> UseFull (use it)                   Q4 no -> NotReached (more data, or scratch)

* ``Thresholds``: the chapter's three numbers, editable (``replace``), and
  ``lock()``-ed before any data are evaluated. The lock records a sha256 of
  the values and the time; a copy edited after the lock keeps the old
  fingerprint, so ``decide`` flags "changed after lock": the chapter's
  statistical hygiene (fix the threshold before looking at the data).
* ``decide(measurements, thresholds)``: a pure function of the measured
  numbers returning the path through the graph, each decision annotated
  with its number and threshold, and the recommendation. Missing numbers
  stop the path where they are needed; ``complete`` means every decision on
  the path has its number and the path ends at an outcome node.
* ``run_protocol(model, frames, phases=...)``: the whole protocol on a
  dataset: zero-shot parity on ~20 snapshots, the hull check (with the
  reasons it fails), the few-shot fine-tune the graph asks for
  (``finetune.run_regime``, or an injected ``train``), the re-check on the
  held-out test set, and, where the path reaches "Full", a full fine-tune
  (with the "replay" strategy's pre-training frames when the model has a
  corpus, or an injected ``train_full``) and its re-check.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ase import Atoms

if TYPE_CHECKING:  # the protocol imports these lazily: they pull in torch and mace
    from course_lib.finetune import RegimeResult
    from course_lib.hull import HullComparison
    from course_lib.zero_shot import ZeroShotResult

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the graph

NODES: dict[str, tuple[str, str]] = {  # id: (kind, label as in the chapter)
    "Start": ("decision", "Run zero-shot MD on representative configuration"),
    "Check": ("step", "Compute MLIP-DFT parity on ~20 snapshots"),
    "Q1": ("decision", "Force MAE < {zero_shot_force_mae_meV_per_A:g} meV/Å?"),
    "Q2": ("decision", "Energies on convex hull?"),
    "FT1": ("step", "Few-shot fine-tune on 100-500 DFT configurations"),
    "FT2": ("step", "Few-shot fine-tune with energy weight"),
    "Recheck": ("step", "Re-evaluate parity on held-out test set"),
    "Q3": (
        "decision",
        "Errors now < {tuned_energy_mae_meV_per_atom:g} meV/atom "
        "and < {tuned_force_mae_meV_per_A:g} meV/Å?",
    ),
    "Use": ("outcome", "Use zero-shot for production"),
    # the chapter's last box; a step here, since the course runs it (a full fine-tune)
    "Full": ("step", "Full fine-tune or train from scratch (Chapter 9)"),
    # the course's extension of the chapter's graph (COURSE_NODES)
    "Recheck2": ("step", "Re-evaluate the fully fine-tuned model on the held-out test set"),
    "Q4": (
        "decision",
        "Errors now < {tuned_energy_mae_meV_per_atom:g} meV/atom "
        "and < {tuned_force_mae_meV_per_A:g} meV/Å?",
    ),
    "UseFull": ("outcome", "Use the fully fine-tuned model for production"),
    "NotReached": ("outcome", "Not reached: more DFT data, or train from scratch (Chapter 9)"),
}
#: Nodes the course adds after the chapter's "Full" box (not in the chapter).
COURSE_NODES = frozenset({"Recheck2", "Q4", "UseFull", "NotReached"})
CHAPTER_EDGES: tuple[tuple[str, str, str], ...] = (  # (from, to, label)
    ("Start", "Check", ""),
    ("Check", "Q1", ""),
    ("Q1", "Q2", "yes"),
    ("Q1", "FT1", "no"),
    ("Q2", "Use", "yes"),
    ("Q2", "FT2", "no"),
    ("FT1", "Recheck", ""),
    ("FT2", "Recheck", ""),
    ("Recheck", "Q3", ""),
    ("Q3", "Use", "yes"),
    ("Q3", "Full", "no"),
)
#: The course's edges after "Full" (not in the chapter).
COURSE_EDGES: tuple[tuple[str, str, str], ...] = (
    ("Full", "Recheck2", ""),
    ("Recheck2", "Q4", ""),
    ("Q4", "UseFull", "yes"),
    ("Q4", "NotReached", "no"),
)
EDGES = CHAPTER_EDGES + COURSE_EDGES
RECOMMENDATIONS = {
    "zero-shot": "Use zero-shot for production",
    "few-shot": "Few-shot fine-tune on 100-500 DFT configurations",
    "few-shot-energy-weight": "Few-shot fine-tune with energy weight",
    "full-or-scratch": "Full fine-tune or train from scratch (Chapter 9)",
    "full-fine-tune": "Use the fully fine-tuned model for production",
    "not-reached": (
        "Not reached with this budget: more DFT data, or train from scratch (Chapter 9)"
    ),
}
# What each fine-tuning node of the graph trains (``FineTuner`` keywords).
FINE_TUNE_SETTINGS = {
    "FT1": {"energy_weight": 1.0, "forces_weight": 100.0},
    "FT2": {"energy_weight": 100.0, "forces_weight": 100.0},
}
#: Epochs of the "Full" step: the budget of the shipped strategies comparison
#: (``course strategies --n 200 --epochs 40``), so that the two can be read side by side.
FULL_EPOCHS = 40


def node_label(node: str, thresholds: Thresholds | None = None) -> str:
    """The chapter's label of ``node``, with the thresholds in force filled in."""
    return NODES[node][1].format(**asdict(thresholds or Thresholds()))


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Thresholds:
    """The flowchart's thresholds (chapter defaults); ``replace`` to edit, ``lock`` before use.

    ``locked_fingerprint`` and ``locked_at`` are set by ``lock()`` and carried
    by ``dataclasses.replace``, so a copy edited after the lock no longer
    matches its fingerprint (``changed_after_lock``).
    """

    zero_shot_force_mae_meV_per_A: float = 100.0
    tuned_energy_mae_meV_per_atom: float = 20.0
    tuned_force_mae_meV_per_A: float = 50.0
    locked_fingerprint: str | None = field(default=None, compare=False)
    locked_at: str | None = field(default=None, compare=False)  # ISO 8601, UTC
    locked_by: str | None = field(default=None, compare=False)  # where: "notebook 02", ...

    def __post_init__(self):
        for name in self.value_names():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"threshold {name} must be a positive number, got {value!r}")

    @staticmethod
    def value_names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(Thresholds) if not f.name.startswith("locked_"))

    @classmethod
    def from_config(cls, config=None) -> Thresholds:
        """The ``[thresholds]`` table of course.toml (unknown keys are an error)."""
        from course_lib.config import load_config

        values = dict((config or load_config()).thresholds)
        unknown = sorted(set(values) - set(cls.value_names()))
        if unknown:
            raise ValueError(f"unknown thresholds in course.toml: {unknown}")
        return cls(**{k: float(v) for k, v in values.items()})

    def values(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.value_names()}

    def fingerprint(self) -> str:
        """sha256 of the threshold values (not of the lock record)."""
        text = json.dumps(self.values(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def lock(self, *, now: datetime.datetime | None = None, by: str | None = None) -> Thresholds:
        """A copy recording the current values' fingerprint, the time (UTC) and who locked."""
        now = now or datetime.datetime.now(datetime.UTC)
        return replace(
            self, locked_fingerprint=self.fingerprint(), locked_at=now.isoformat(), locked_by=by
        )

    @property
    def locked(self) -> bool:
        return self.locked_fingerprint is not None

    @property
    def changed_after_lock(self) -> bool:
        return self.locked and self.fingerprint() != self.locked_fingerprint

    @property
    def lock_state(self) -> str:
        """``"locked"``, ``"changed after lock"`` or ``"not locked"``."""
        if not self.locked:
            return "not locked"
        return "changed after lock" if self.changed_after_lock else "locked"

    def as_dict(self) -> dict:
        return {
            **self.values(),
            "fingerprint": self.fingerprint(),
            "locked_fingerprint": self.locked_fingerprint,
            "locked_at": self.locked_at,
            "locked_by": self.locked_by,
            "lock_state": self.lock_state,
        }

    def table(self) -> str:
        lines = [
            f"zero-shot force MAE  < {self.zero_shot_force_mae_meV_per_A:g} meV/Å",
            f"tuned energy MAE     < {self.tuned_energy_mae_meV_per_atom:g} meV/atom",
            f"tuned force MAE      < {self.tuned_force_mae_meV_per_A:g} meV/Å",
            f"{self.lock_state}"
            + (f" at {self.locked_at} ({self.locked_fingerprint[:12]})" if self.locked else "")
            + (f" by {self.locked_by}" if self.locked_by else ""),
        ]
        return "\n".join(lines)

    __str__ = table


#: The lock notebook 02 records in the work directory, before its first parity number.
LOCK_FILE = "thresholds-lock.json"


def lock_thresholds(config=None, *, by: str = "notebook 02", folder=None) -> Thresholds:
    """Lock course.toml's thresholds now and record the lock (``LOCK_FILE`` in the work dir).

    Notebook 02 calls this before it prints its first error, so every later
    notebook can check that the thresholds it uses are the ones fixed then.
    """
    from course_lib.data import atomic_write_text
    from course_lib.paths import work_dir

    thresholds = Thresholds.from_config(config).lock(by=by)
    record = {
        "values": thresholds.values(),
        "locked_fingerprint": thresholds.locked_fingerprint,
        "locked_at": thresholds.locked_at,
        "locked_by": by,
    }
    atomic_write_text((folder or work_dir()) / LOCK_FILE, json.dumps(record, indent=1) + "\n")
    return thresholds


def locked_thresholds(config=None, *, folder=None) -> Thresholds:
    """course.toml's thresholds, carrying the lock recorded by ``lock_thresholds``.

    A value edited in course.toml since the lock no longer matches the
    recorded fingerprint, so it reads "changed after lock" wherever it is
    used. Without a recorded lock (notebook 02 not run in this work dir) the
    thresholds are locked here and now, and ``locked_by`` says so.
    """
    from course_lib.paths import work_dir

    thresholds = Thresholds.from_config(config)
    path = (folder or work_dir()) / LOCK_FILE
    try:
        record = json.loads(path.read_text())
        return replace(
            thresholds,
            locked_fingerprint=record["locked_fingerprint"],
            locked_at=record["locked_at"],
            locked_by=record["locked_by"],
        )
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return thresholds.lock(by="this notebook (no lock from notebook 02 was found)")


# --------------------------------------------------------------------------- the decision


@dataclass(frozen=True)
class Measurements:
    """The numbers the flowchart asks for; None where not (yet) measured.

    ``hull_passed``: the hull check's verdict (``hull.HullComparison.passed``),
    ``hull_error_meV_per_atom`` its largest energy-above-hull error (shown
    only). ``tuned_*``: the few-shot model on the held-out test set (Q3);
    ``full_*``: the fully fine-tuned one (Q4, the course's extension).
    ``measured_at``: when the first number was computed (ISO 8601), to
    check that thresholds were locked before.
    """

    zero_shot_force_mae_meV_per_A: float | None = None
    hull_passed: bool | None = None
    hull_error_meV_per_atom: float | None = None
    tuned_energy_mae_meV_per_atom: float | None = None
    tuned_force_mae_meV_per_A: float | None = None
    measured_at: str | None = None
    full_energy_mae_meV_per_atom: float | None = None
    full_force_mae_meV_per_A: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Criterion:
    """One comparison of a measured number with its threshold (``passed``: measured < threshold)."""

    name: str
    measured: float | bool | None
    threshold: float | None
    unit: str

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        if self.threshold is None:
            return bool(self.measured)
        return bool(self.measured < self.threshold)

    def text(self) -> str:
        if self.measured is None:
            return f"{self.name}: not measured"
        if self.threshold is None:
            return f"{self.name}: {'pass' if self.measured else 'fail'}"
        sign = "<" if self.passed else "≥"
        return f"{self.name} {self.measured:.1f} {sign} {self.threshold:g} {self.unit}"


@dataclass(frozen=True)
class Decision:
    """A decision node passed on the path: its tests and the branch taken."""

    node: str
    criteria: tuple[Criterion, ...]

    @property
    def answer(self) -> str | None:
        """``"yes"``, ``"no"``, or None while a number is missing."""
        results = [t.passed for t in self.criteria]
        if any(r is None for r in results):
            return None
        return "yes" if all(results) else "no"

    def text(self) -> str:
        answer = self.answer or "undecided"
        return f"{self.node} {answer}: " + "; ".join(t.text() for t in self.criteria)


@dataclass(frozen=True)
class FlowchartResult:
    """The path taken through the graph, its decisions, and the recommendation.

    ``recommendation`` is a key of ``RECOMMENDATIONS``: when the path is
    complete (it ends at an outcome node, every decision on it has its
    number), what to use; when a number is missing (``complete=False``),
    the step to take next (``next_step`` says which number is needed).
    ``flags`` lists breaches of the protocol (thresholds not locked,
    changed after the lock, locked after the data were measured).
    """

    path: tuple[str, ...]
    decisions: tuple[Decision, ...]
    recommendation: str | None
    complete: bool
    next_step: str | None
    thresholds: Thresholds
    measurements: Measurements
    flags: tuple[str, ...] = ()

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self.path[:-1], self.path[1:]))

    @property
    def recommendation_text(self) -> str:
        text = RECOMMENDATIONS.get(self.recommendation, "undecided")
        if self.complete and self.recommendation in ("few-shot", "few-shot-energy-weight"):
            text += ": the fine-tuned model passed the re-check, use it for production"
        return text

    def decision(self, node: str) -> Decision | None:
        return next((d for d in self.decisions if d.node == node), None)

    def as_dict(self) -> dict:
        return {
            "path": list(self.path),
            "recommendation": self.recommendation,
            "recommendation_text": self.recommendation_text,
            "complete": self.complete,
            "next_step": self.next_step,
            "decisions": [
                {
                    "node": d.node,
                    "answer": d.answer,
                    "criteria": [{**asdict(t), "passed": t.passed} for t in d.criteria],
                }
                for d in self.decisions
            ],
            "thresholds": self.thresholds.as_dict(),
            "measurements": self.measurements.as_dict(),
            "flags": list(self.flags),
        }

    def table(self) -> str:
        lines = [
            "path: " + " -> ".join(self.path),
            *(f"  {d.text()}" for d in self.decisions),
            f"recommendation: {self.recommendation_text}"
            + ("" if self.complete else f" (then: {self.next_step})"),
            f"thresholds: {self.thresholds.lock_state}",
            *(f"FLAG: {flag}" for flag in self.flags),
        ]
        return "\n".join(lines)

    __str__ = table


def protocol_flags(thresholds: Thresholds, measurements: Measurements) -> tuple[str, ...]:
    """Breaches of "fix the thresholds before looking at the data"."""
    if not thresholds.locked:
        return ("thresholds were not locked before evaluating",)
    flags = []
    if thresholds.changed_after_lock:
        flags.append(
            f"thresholds changed after the lock at {thresholds.locked_at} "
            f"(locked {thresholds.locked_fingerprint[:12]}, now {thresholds.fingerprint()[:12]})"
        )
    if measurements.measured_at and measurements.measured_at < thresholds.locked_at:
        flags.append(
            f"thresholds locked at {thresholds.locked_at}, after the data were measured "
            f"at {measurements.measured_at}"
        )
    return tuple(flags)


def decide(measurements: Measurements, thresholds: Thresholds | None = None) -> FlowchartResult:
    """Walk the chapter's graph with measured numbers; pure (no data, no models).

    Thresholds not given are the chapter's defaults, unlocked (flagged).
    """
    thresholds = thresholds if thresholds is not None else Thresholds()
    m, t = measurements, thresholds
    path, decisions = ["Start", "Check", "Q1"], []

    def finish(recommendation, next_step=None):
        complete = NODES[path[-1]][0] == "outcome" and all(d.answer for d in decisions)
        return FlowchartResult(
            path=tuple(path),
            decisions=tuple(decisions),
            recommendation=recommendation,
            complete=complete,
            next_step=next_step,
            thresholds=t,
            measurements=m,
            flags=protocol_flags(t, m),
        )

    q1 = Decision(
        "Q1",
        (
            Criterion(
                "zero-shot force MAE",
                m.zero_shot_force_mae_meV_per_A,
                t.zero_shot_force_mae_meV_per_A,
                "meV/Å",
            ),
        ),
    )
    decisions.append(q1)
    if q1.answer is None:
        return finish(None, "measure the zero-shot force MAE on ~20 DFT snapshots")
    if q1.answer == "yes":
        path.append("Q2")
        q2 = Decision("Q2", (Criterion("same stable phases as DFT", m.hull_passed, None, ""),))
        decisions.append(q2)
        if q2.answer is None:
            return finish(None, "run the convex-hull check on the competing phases")
        if q2.answer == "yes":
            path.append("Use")
            return finish("zero-shot")
        tuned, node = "few-shot-energy-weight", "FT2"
    else:
        tuned, node = "few-shot", "FT1"
    path += [node, "Recheck"]
    if m.tuned_energy_mae_meV_per_atom is None or m.tuned_force_mae_meV_per_A is None:
        return finish(tuned, "re-evaluate parity of the fine-tuned model on the held-out test set")
    path.append("Q3")
    q3 = _recheck("Q3", "tuned", m.tuned_energy_mae_meV_per_atom, m.tuned_force_mae_meV_per_A, t)
    decisions.append(q3)
    if q3.answer == "yes":
        path.append("Use")
        return finish(tuned)
    path.append("Full")
    # the course's extension: the full fine-tune is run, re-checked, decided
    if m.full_energy_mae_meV_per_atom is None or m.full_force_mae_meV_per_A is None:
        return finish(
            "full-or-scratch",
            "run the full fine-tune and re-evaluate it on the held-out test set",
        )
    path += ["Recheck2", "Q4"]
    q4 = _recheck("Q4", "full", m.full_energy_mae_meV_per_atom, m.full_force_mae_meV_per_A, t)
    decisions.append(q4)
    if q4.answer == "yes":
        path.append("UseFull")
        return finish("full-fine-tune")
    path.append("NotReached")
    return finish("not-reached")


def _recheck(node: str, what: str, energy, force, t: Thresholds) -> Decision:
    """Q3 or Q4: held-out energy and force MAEs against the tuned-model thresholds."""
    return Decision(
        node,
        (
            Criterion(f"{what} energy MAE", energy, t.tuned_energy_mae_meV_per_atom, "meV/atom"),
            Criterion(f"{what} force MAE", force, t.tuned_force_mae_meV_per_A, "meV/Å"),
        ),
    )


# --------------------------------------------------------------------------- the runner

#: The graph's step nodes the runner executes, and the ``ProtocolReport`` field holding each result.
STEP_RESULTS = {"FT1": "fine_tune", "FT2": "fine_tune", "Full": "full"}


@dataclass(frozen=True)
class FullFineTune:
    """The course's run of the "Full" box: every parameter trained, pre-training frames replayed.

    ``result``: ``finetune.RegimeResult`` of the full fine-tune on
    ``n_target`` target structures plus ``n_replay`` frames of ``corpus``
    (the "replay" strategy of ``course_lib.strategies``; none without a
    corpus: the "naive" strategy), ``max_epochs`` epochs.
    """

    result: RegimeResult = field(repr=False)
    strategy: str
    n_target: int
    n_replay: int
    corpus: str | None
    max_epochs: int

    @property
    def test(self):
        """``ErrorMetrics`` on the held-out test set (meV/atom, meV/Å)."""
        return self.result.test

    @property
    def model(self):
        return self.result.tuner.model_

    def as_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "n_target": self.n_target,
            "n_replay": self.n_replay,
            "corpus": self.corpus,
            "max_epochs": self.max_epochs,
            **self.result.as_dict(),
        }

    def table(self) -> str:
        replay = f" + {self.n_replay} replayed from {self.corpus}" if self.n_replay else ""
        return (
            f"full fine-tune ({self.strategy}): {self.n_target} structures{replay}, "
            f"{self.max_epochs} epochs\n{self.result.table()}"
        )


@dataclass(frozen=True)
class ProtocolReport:
    """What ``run_protocol`` measured, ran and decided.

    ``zero_shot``: ``ZeroShotResult`` on the parity snapshots; ``hull``:
    ``HullComparison`` (None without phases); ``fine_tune``: the few-shot
    step's result (``RegimeResult`` or anything with ``.test`` errors), None
    when the graph asked for none; ``full``: the "Full" step's result
    (``FullFineTune`` or anything with ``.test``); ``hull_after`` and
    ``hull_full``: the fine-tuned models' hull checks (shown only: Q3 and Q4
    ask for MAEs). ``complete``: the decision path is complete and every
    step on it was run here (``steps_run``).
    """

    model: str
    dataset: str
    n_parity: int
    n_train: int
    n_test: int
    flowchart: FlowchartResult
    zero_shot: ZeroShotResult = field(repr=False)
    hull: HullComparison | None = field(default=None, repr=False)
    fine_tune: RegimeResult | None = field(default=None, repr=False)
    fine_tune_node: str | None = None
    hull_after: HullComparison | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()
    full: FullFineTune | None = field(default=None, repr=False)
    hull_full: HullComparison | None = field(default=None, repr=False)

    @property
    def steps_run(self) -> tuple[str, ...]:
        """The step nodes on the path whose training this report holds."""
        return tuple(
            node
            for node in self.flowchart.path
            if node in STEP_RESULTS and getattr(self, STEP_RESULTS[node]) is not None
        )

    @property
    def complete(self) -> bool:
        """Every decision has its number, the path ends at an outcome, every step on it was run."""
        steps = [node for node in self.flowchart.path if node in STEP_RESULTS]
        return self.flowchart.complete and list(self.steps_run) == steps

    def as_dict(self) -> dict:
        def as_dict_or_none(value):
            return value.as_dict() if value is not None else None

        return {
            "model": self.model,
            "dataset": self.dataset,
            "n_parity": self.n_parity,
            "n_train": self.n_train,
            "n_test": self.n_test,
            **self.flowchart.as_dict(),
            "complete": self.complete,
            "decisions_complete": self.flowchart.complete,
            "steps_run": list(self.steps_run),
            "zero_shot": as_dict_or_none(self.zero_shot),
            "hull": as_dict_or_none(self.hull),
            "fine_tune_node": self.fine_tune_node,
            "fine_tune": as_dict_or_none(self.fine_tune),
            "hull_after": as_dict_or_none(self.hull_after),
            "full": as_dict_or_none(self.full),
            "hull_full": as_dict_or_none(self.hull_full),
            "notes": list(self.notes),
        }

    def table(self) -> str:
        head = (
            f"{self.model} on {self.dataset}: parity on {self.n_parity} snapshots, "
            f"fine-tune on {self.n_train}, re-check on {self.n_test}"
        )
        lines = [head, self.flowchart.table()]
        if self.hull is not None and not self.hull.passed:
            where = "Q2" if "Q2" in self.flowchart.path else "not on the path, shown"
            lines.append(f"hull check failed ({where}), because:")
            lines += [f"  - {reason}" for reason in self.hull.explanation]
        if self.hull is not None and self.hull.passed and self.hull.caveats:
            lines.append("hull check passed (same stable phases), but:")
            lines += [f"  - {caveat}" for caveat in self.hull.caveats]
        for node in self.steps_run:
            result = getattr(self, STEP_RESULTS[node])
            lines.append(
                f"{node} ran: held-out test E {result.test.energy_mae_meV_per_atom:.1f} meV/atom, "
                f"F {result.test.force_mae_meV_per_A:.1f} meV/Å"
            )
        lines.append(
            "protocol complete: every step on the path was run and every decision has its number"
            if self.complete
            else "protocol NOT complete: "
            + (self.flowchart.next_step or "a step on the path was not run (see notes)")
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = table


def protocol_key(model: str, dataset: str, phases: str | None, n_train: int, epochs: int) -> dict:
    """The key a shipped protocol report is stored under (``course flowchart --ship``)."""
    return {
        "model": str(model),
        "dataset": Path(str(dataset)).stem,
        "phases": Path(str(phases)).stem if phases else "no-phases",
        "n_train": n_train,
        "full_epochs": epochs,
    }


#: The full-mode budget of the shipped protocol reports (``course flowchart --ship`` defaults).
SHIPPED_N_TRAIN = 200


def shipped_report(
    model, dataset, phases=None, *, n_train: int = SHIPPED_N_TRAIN, full_epochs: int = FULL_EPOCHS
):
    """The shipped full-mode protocol report of ``model`` on ``dataset`` (``shipped.Shipped``:
    ``payload["table"]`` and the report's ``as_dict`` fields, with provenance).

    Raises ``shipped.NotShippedError`` (its message says why) when none was shipped, or
    ``StaleShippedError`` when it was made with other model or data files.
    """
    from course_lib.models import resolve_model_name
    from course_lib.shipped import shipped

    key = protocol_key(resolve_model_name(model), dataset, phases, n_train, full_epochs)
    return shipped("flowchart", key)


def fine_tunable(model) -> bool:
    """Whether ``finetune`` can train ``model``: a MACE module, MACE file or registered MACE."""
    if not isinstance(model, (str, os.PathLike)):
        return hasattr(model, "readouts")
    from course_lib.models import REGISTRY, resolve_model_name

    name = resolve_model_name(model)
    return name not in REGISTRY or REGISTRY[name].kind == "mace"


def model_corpus(model) -> str | None:
    """The registered pre-training corpus of ``model`` (a name), else None."""
    from course_lib.models import pretraining_corpus, resolve_model_name

    if not isinstance(model, (str, os.PathLike)):
        return None
    return pretraining_corpus(resolve_model_name(model))


def default_train(model, train_frames, test_frames, *, node: str, seed: int, **settings):
    """The fine-tune of graph node ``node`` (FT1 or FT2): ``finetune.run_regime``, few-shot.

    ``FINE_TUNE_SETTINGS[node]`` sets the loss weights (FT2: energy weight
    raised to the force weight's); ``settings`` override them.
    """
    from course_lib.finetune import run_regime

    options = {"solver": "closed-form", "progress": False, **FINE_TUNE_SETTINGS[node], **settings}
    return run_regime(model, train_frames, test_frames, regime="few-shot", seed=seed, **options)


def default_train_full(
    model,
    train_frames,
    test_frames,
    *,
    seed: int,
    corpus: str | None = None,
    max_epochs: int = FULL_EPOCHS,
    replay_weight: float = 1.0,
    **settings,
) -> FullFineTune:
    """The "Full" step: a full fine-tune from the pre-trained ``model``, as ``strategies`` runs it.

    With a ``corpus`` (the model's pre-training data), the "replay"
    strategy: as many corpus training frames as target frames
    (``strategies.replay_frames``, each weighted ``replay_weight``) mixed into
    the training set, the chapter's remedy for forgetting (notebook 06 measures
    it against the other strategies). Without one, the "naive" strategy.
    Patience is the whole budget, as there; the last quarter of the epochs is
    mace's stage two (energy weight 1000: mace-torch starts it at 3/4 of the
    epochs), since Q4 asks for the energy error too. ``settings``:
    ``FineTuneSettings`` fields (``progress``, ``dtype``, ...).
    """
    from course_lib.finetune import run_regime
    from course_lib.strategies import STRATEGIES, replay_frames

    strategy = STRATEGIES["replay" if corpus else "naive"]
    replayed = (
        replay_frames(corpus, len(train_frames), weight=replay_weight, seed=seed) if corpus else []
    )
    from course_lib.training import MACE_STAGE_TWO_ENERGY_WEIGHT

    stage_two = (
        {
            "stage_two_epochs": max_epochs // 4,
            "stage_two_energy_weight": MACE_STAGE_TWO_ENERGY_WEIGHT,
        }
        if max_epochs >= 4
        else {}
    )
    options = {
        "max_epochs": max_epochs,
        "patience": max_epochs,
        **stage_two,
        **settings,
        **strategy.settings,
    }
    result = run_regime(model, [*train_frames, *replayed], test_frames, seed=seed, **options)
    return FullFineTune(
        result=result,
        strategy=strategy.name,
        n_target=len(train_frames),
        n_replay=len(replayed),
        corpus=corpus,
        max_epochs=max_epochs,
    )


def run_protocol(
    model,
    frames: Sequence[Atoms],
    *,
    thresholds: Thresholds | None = None,
    phases: Sequence[Atoms] | None = None,
    dataset: str = "<frames>",
    n_parity: int = 20,
    n_train: int = 200,
    seed: int = 0,
    train: Callable | None = None,
    train_settings: Mapping | None = None,
    train_full: Callable | None = None,
    full_settings: Mapping | None = None,
    corpus: str | None = None,
) -> ProtocolReport:
    """Execute the chapter's protocol, and the course's extension after "Full", on labelled ``frames``.

    1. Lock ``thresholds`` (course.toml's when None) unless already locked.
    2. Split ``frames`` (``data.train_test_split``, seeded; fixed splits kept).
    3. Zero-shot parity on ``n_parity`` snapshots of the whole dataset
       (the pre-trained model saw none of them); hull check on
       ``phases`` when given, checked against ``corpus`` (default: the
       model's registered pre-training corpus) to explain a failure.
    4. If the graph asks for a fine-tune (FT1 or FT2), call
       ``train(model, train_frames, test_frames, node=..., seed=...)``
       (default ``default_train``: few-shot closed-form readouts; FT2 with
       the energy weight raised) on up to ``n_train`` training frames; its
       result's ``.test`` (``ErrorMetrics`` on the held-out test set) feeds Q3.
    5. If Q3 fails ("Full"), call ``train_full(model, train_frames,
       test_frames, seed=..., corpus=...)`` (default ``default_train_full``:
       full fine-tune with replay, ``FULL_EPOCHS``; ``full_settings`` such as
       ``max_epochs`` or ``progress`` passed on) on the same training frames,
       from the pre-trained model; its ``.test`` feeds Q4.
    """
    from course_lib import data as ds
    from course_lib.hull import corpus_check, hull_check
    from course_lib.zero_shot import evaluate

    thresholds = thresholds if thresholds is not None else Thresholds.from_config()
    if not thresholds.locked:
        thresholds = thresholds.lock()
        logger.info("thresholds locked before evaluating: %s", thresholds.fingerprint()[:12])
    measured_at = datetime.datetime.now(datetime.UTC).isoformat()
    pool, test = ds.train_test_split(frames, seed=seed)
    # the zero-shot model has seen none of the frames: parity may use any of them
    parity = ds.subset(frames, min(n_parity, len(frames)), seed=seed)
    zero_shot = evaluate(model, parity, dataset=dataset)
    corpus = corpus or model_corpus(model)
    hull_result = hull_after = hull_full = checked = None
    if phases is not None:
        checked = corpus_check(phases, corpus) if corpus else None
        hull_result = hull_check(model, phases, corpus=checked)
    measurements = Measurements(
        zero_shot_force_mae_meV_per_A=zero_shot.aligned.force_mae_meV_per_A,
        hull_passed=hull_result.passed if hull_result is not None else None,
        hull_error_meV_per_atom=(
            hull_result.max_abs_e_above_hull_error_meV_per_atom if hull_result else None
        ),
        measured_at=measured_at,
    )
    result = decide(measurements, thresholds)
    node = next((n for n in ("FT1", "FT2") if n in result.path), None)
    tuned = full = None
    train_frames, notes = [], []
    if node is not None and train is None and not fine_tunable(model):
        notes.append(
            f"{node} needs a MACE model to fine-tune (course_lib.finetune); {model} is not one. "
            "Fine-tune a MACE foundation model, or pass train=... for this one."
        )
        logger.warning(notes[-1])
        node = None
    if node is not None:
        if len(pool) < 100:
            logger.warning(
                "only %d training frames; the chapter's few-shot step uses 100-500", len(pool)
            )
        train_frames = ds.subset(pool, min(n_train, len(pool)), seed=seed)
        train = train or default_train
        tuned = train(model, train_frames, test, node=node, seed=seed, **(train_settings or {}))
        measurements = replace(
            measurements,
            tuned_energy_mae_meV_per_atom=tuned.test.energy_mae_meV_per_atom,
            tuned_force_mae_meV_per_A=tuned.test.force_mae_meV_per_A,
        )
        result = decide(measurements, thresholds)
        hull_after = _hull_of(tuned, phases, checked)
    if "Full" in result.path and train_full is None and not fine_tunable(model):
        notes.append(f"Full needs a MACE model to fine-tune; {model} is not one.")
        logger.warning(notes[-1])
    elif "Full" in result.path:
        train_full = train_full or default_train_full
        full = train_full(
            model, train_frames, test, seed=seed, corpus=corpus, **(full_settings or {})
        )
        measurements = replace(
            measurements,
            full_energy_mae_meV_per_atom=full.test.energy_mae_meV_per_atom,
            full_force_mae_meV_per_A=full.test.force_mae_meV_per_A,
        )
        result = decide(measurements, thresholds)
        hull_full = _hull_of(full, phases, checked)
    return ProtocolReport(
        model=zero_shot.model,
        dataset=dataset,
        n_parity=len(parity),
        n_train=len(train_frames),
        n_test=len(test),
        flowchart=result,
        zero_shot=zero_shot,
        hull=hull_result,
        fine_tune=tuned,
        fine_tune_node=node,
        hull_after=hull_after,
        notes=tuple(notes),
        full=full,
        hull_full=hull_full,
    )


def _hull_of(step, phases, corpus) -> HullComparison | None:
    """The hull check of a step's fitted model (shown only), when it has one and phases are given."""
    from course_lib.hull import hull_check

    fitted = getattr(getattr(step, "tuner", None), "model_", None)
    if fitted is None and hasattr(step, "result"):
        fitted = getattr(getattr(step.result, "tuner", None), "model_", None)
    if phases is None or fitted is None:
        return None
    return hull_check(fitted, phases, corpus=corpus)
