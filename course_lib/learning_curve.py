"""How much data is enough? Learning curves: one regime trained on growing N.

The chapter's cost-accuracy curve: train one regime (few-shot, full, scratch;
energy-only or energy+forces) on N structures of a fixed training pool, for
growing N and several seeds, always scoring on the same held-out test set,
and fit ``MAE(N) ≈ A · N^-α + B`` (``course_lib.scaling_law``). Zero-shot is
the N = 0 reference line.

``run_learning_curve`` is the runner. Each (N, seed) run is persisted as
JSON under ``work_dir("learning-curves")`` keyed by model, regime, N, seed,
energy-only flag, settings and a hash of the train/test frames, so a re-run
reuses finished runs and an interrupted curve resumes. Few-shot closed-form
curves share one design pass over all their structures
(``closed_form.SharedClosedForm``).

Labels: a structure of n atoms gives 1 energy label, plus 3n force labels
when forces are in the loss (the chapter's "forces multiply the labels").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from course_lib import data as ds
from course_lib.finetune import FineTuneSettings, run_regime, shared_closed_form
from course_lib.paths import work_dir
from course_lib.scaling_law import (
    METRICS,
    LearningCurveInputError,
    PowerLawFit,
    fit_power_law,
    metric_attribute,
)
from course_lib.training import LossWeights

logger = logging.getLogger(__name__)

DEFAULT_SIZES = (10, 20, 50, 100, 200, 500)
# Settings that are not part of a run's key: set per run, keyed apart, or display only.
_UNKEYED_SETTINGS = ("model", "regime", "seed", "forces_weight", "progress", "device")

# The chapter's table "How much data is enough?": (structures, typical use-case).
DATA_SIZE_GUIDE = (
    (0, "zero-shot: screening, exploratory MD, rough relaxations"),
    (50, "equilibrium geometry of a specific compound"),
    (500, "reaction barriers, defect formation energies"),
    (5000, "phase diagrams, finite-temperature thermodynamics"),
    (50000, "approaching DFT quality on the target system"),
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CurvePoint:
    """One training run of a learning curve: N structures, one seed, test errors.

    Errors are on the fixed held-out test set: energy MAE in meV/atom, force
    MAE in meV/Å. ``n_labels`` counts the scalar labels the run trained on.
    ``epochs_trained`` and ``stopped_early`` say whether a gradient run
    converged (early stopping fired) or ran out of epochs; None for closed form.
    ``model_file`` is the trained model's file name where the runner saved it
    (``models_dir``), else None.
    """

    n_train: int
    seed: int
    energy_mae_meV_per_atom: float
    force_mae_meV_per_A: float
    n_labels: int
    fit_time_s: float
    cached: bool = False
    epochs_trained: int | None = None
    stopped_early: bool | None = None
    model_file: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SizeSummary:
    """Seed statistics at one N: mean, sample standard deviation and count of the runs."""

    n_train: int
    mean: float
    std: float
    n_seeds: int
    n_labels: float


@dataclass(frozen=True)
class LearningCurve:
    """All runs of one regime, with the zero-shot (N = 0) errors when a model was given.

    ``model`` is what ``model_key`` says (registry name, file sha256, ...); ``zero_shot``
    maps ``"energy"``/``"force"`` to the starting model's test MAE (energies
    aligned per element, as in ``course_lib.zero_shot``); ``wall_time_s`` is
    the total training time of all runs, cached ones included.
    """

    model: str
    regime: str
    energy_only: bool
    points: tuple[CurvePoint, ...]
    n_test: int
    zero_shot: dict[str, float] | None = None

    @property
    def label(self) -> str:
        return f"{self.regime}, {'energy only' if self.energy_only else 'energy + forces'}"

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted({p.n_train for p in self.points}))

    @property
    def wall_time_s(self) -> float:
        return float(sum(p.fit_time_s for p in self.points))

    def values(self, metric: str = "force") -> tuple[np.ndarray, np.ndarray]:
        """Per-run N and MAE (meV/Å for ``"force"``, meV/atom for ``"energy"``)."""
        attribute = metric_attribute(metric)
        return (
            np.array([p.n_train for p in self.points], dtype=float),
            np.array([getattr(p, attribute) for p in self.points], dtype=float),
        )

    def summary(self, metric: str = "force") -> tuple[SizeSummary, ...]:
        """Mean, standard deviation (ddof=1; 0 for one seed) and seed count per N."""
        attribute = metric_attribute(metric)
        rows = []
        for n in self.sizes:
            runs = [p for p in self.points if p.n_train == n]
            values = np.array([getattr(p, attribute) for p in runs])
            rows.append(
                SizeSummary(
                    n_train=n,
                    mean=float(values.mean()),
                    std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    n_seeds=len(values),
                    n_labels=float(np.mean([p.n_labels for p in runs])),
                )
            )
        return tuple(rows)

    def fit(self, metric: str = "force", **options) -> PowerLawFit:
        """``fit_power_law`` on this curve's runs (options: ``n_bootstrap``, ``seed``)."""
        sizes, maes = self.values(metric)
        return fit_power_law(sizes, maes, metric=metric, **options)

    def first_n_below(self, metric: str, target: float) -> int | None:
        """The smallest measured N whose mean MAE over seeds is below ``target``; else None.

        Measured, not fitted: a size that was not run cannot be the answer. Strictly below,
        as the flowchart's "errors now < threshold?".
        """
        return next((row.n_train for row in self.summary(metric) if row.mean < target), None)

    def converged_fraction(self, max_epochs: int | None = None) -> float | None:
        """The share of gradient runs that ended before their budget (None for closed form).

        A run converged when early stopping ended it, or, given the budget
        ``max_epochs``, when it trained fewer epochs (with a stage two, early
        stopping in stage one hands over to stage two, which may then run its
        full length: the run still ended before the budget). A run that used
        up its epochs may still have been improving; a curve of such runs is an
        upper bound on the error the regime reaches at that N.
        """
        flags = [
            p.stopped_early or (max_epochs is not None and p.epochs_trained < max_epochs)
            for p in self.points
            if p.stopped_early is not None
        ]
        return float(np.mean(flags)) if flags else None

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "regime": self.regime,
            "energy_only": self.energy_only,
            "n_test": self.n_test,
            "zero_shot": self.zero_shot,
            "wall_time_s": round(self.wall_time_s, 2),
            "points": [p.as_dict() for p in self.points],
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> LearningCurve:
        """The curve ``as_dict`` (or ``course learning-curve --json``'s ``"curve"``) wrote."""
        return cls(
            model=record["model"],
            regime=record["regime"],
            energy_only=record["energy_only"],
            points=tuple(CurvePoint(**p) for p in record["points"]),
            n_test=record["n_test"],
            zero_shot=record.get("zero_shot"),
        )

    def table(self) -> str:
        lines = [
            f"{self.label} ({self.model}), test set of {self.n_test} structures",
            f"{'N':>6} {'seeds':>5} {'labels':>8} {'E MAE meV/at':>16} {'F MAE meV/Å':>16}",
        ]
        if self.zero_shot:
            lines.append(
                f"{0:>6} {'':>5} {0:>8} {self.zero_shot['energy']:>16.2f} "
                f"{self.zero_shot['force']:>16.1f}  (zero-shot)"
            )
        for e, f in zip(self.summary("energy"), self.summary("force")):
            lines.append(
                f"{e.n_train:>6} {e.n_seeds:>5} {e.n_labels:>8.0f} "
                f"{e.mean:>9.2f} ± {e.std:<5.2f} {f.mean:>9.1f} ± {f.std:<5.1f}"
            )
        lines.append(f"training time of all runs: {self.wall_time_s:.1f} s")
        return "\n".join(lines)

    __str__ = table


# --------------------------------------------------------------------------- regimes compared

#: The sizes of the chapter's data-size table that a regime comparison reports.
TABLE_SIZES = (1, 10, 50, 200, 500)


@dataclass(frozen=True)
class RegimeRow:
    """One regime in ``RegimeTable``: mean ± std per table size, and the first N meeting a target.

    ``force``/``energy`` map N to (mean, std, seeds) of the test MAE (meV/Å, meV/atom), only
    for sizes that were run; ``n_force``/``n_energy`` are the smallest measured N at or below
    the target (None: not reached, ``why_not_*`` says how close it came and whether the runs
    had converged).
    """

    label: str
    force: dict[int, tuple[float, float, int]]
    energy: dict[int, tuple[float, float, int]]
    n_force: int | None
    n_energy: int | None
    why_not_force: str
    why_not_energy: str
    alpha: float | None
    alpha_std: float | None
    converged_fraction: float | None


@dataclass(frozen=True)
class RegimeTable:
    """Regime x N test errors and the smallest N that meets each target (the note's table)."""

    sizes: tuple[int, ...]
    force_target_meV_per_A: float
    energy_target_meV_per_atom: float
    rows: tuple[RegimeRow, ...]

    def table(self) -> str:
        """Markdown: force and energy MAE (mean ± std over seeds) per size, α, N meeting targets."""
        head = " | ".join(f"N = {n}" for n in self.sizes)
        lines = [
            f"| regime | | {head} | α (force) | N for F < {self.force_target_meV_per_A:g} meV/Å "
            f"| N for E < {self.energy_target_meV_per_atom:g} meV/atom |",
            "|" + "---|" * (len(self.sizes) + 5),
        ]
        for row in self.rows:
            for name, values, unit in (("F", row.force, "meV/Å"), ("E", row.energy, "meV/atom")):
                cells = " | ".join(
                    f"{values[n][0]:.1f} ± {values[n][1]:.1f}" if n in values else "-"
                    for n in self.sizes
                )
                if name == "F":
                    alpha = (
                        f"{row.alpha:.2f} ± {row.alpha_std:.2f}" if row.alpha is not None else "-"
                    )
                    reach = (
                        f"{row.n_force} | {row.n_energy}"
                        if row.n_force is not None and row.n_energy is not None
                        else f"{row.n_force or 'not reached'} | {row.n_energy or 'not reached'}"
                    )
                    lines.append(f"| {row.label} | F ({unit}) | {cells} | {alpha} | {reach} |")
                else:
                    lines.append(f"| | E ({unit}) | {cells} | | | |")
        notes = [
            f"- {row.label}, {what}: {why}"
            for row in self.rows
            for what, why in (("force", row.why_not_force), ("energy", row.why_not_energy))
            if why
        ]
        return "\n".join(lines + notes)

    __str__ = table
    _repr_markdown_ = table  # a rendered table in a notebook

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def regime_table(
    curves: Mapping[str, LearningCurve],
    *,
    force_target_meV_per_A: float,
    energy_target_meV_per_atom: float,
    sizes: Sequence[int] = TABLE_SIZES,
    seed: int = 0,
    max_epochs: Mapping[str, int] | None = None,
) -> RegimeTable:
    """Each curve's errors at ``sizes``, its force α (where the fit can pin it) and the first N
    whose mean is below each target, measured over every size the curve ran. The targets are
    the flowchart's post-tuning thresholds (``flowchart.Thresholds``, locked in notebook 02).

    A target not reached is explained from the numbers: the best mean and its N, and the share
    of runs that had converged rather than used up their epochs (``max_epochs``: each curve's
    epoch budget by label, e.g. from its shipped provenance; see
    ``LearningCurve.converged_fraction``).
    """
    budgets = dict(max_epochs or {})
    rows = []
    for label, curve in curves.items():
        per_metric = {}
        for metric in ("force", "energy"):
            per_metric[metric] = {
                row.n_train: (row.mean, row.std, row.n_seeds)
                for row in curve.summary(metric)
                if row.n_train in set(sizes)
            }
        try:
            fit = curve.fit("force", seed=seed)
            alpha, alpha_std = fit.alpha, fit.alpha_std
        except LearningCurveInputError:
            alpha = alpha_std = None
        reached = {
            "force": curve.first_n_below("force", force_target_meV_per_A),
            "energy": curve.first_n_below("energy", energy_target_meV_per_atom),
        }
        why = {}
        for metric, target in (
            ("force", force_target_meV_per_A),
            ("energy", energy_target_meV_per_atom),
        ):
            if reached[metric] is not None:
                why[metric] = ""
                continue
            best = min(curve.summary(metric), key=lambda row: row.mean)
            unit = METRICS[metric][1]
            converged = curve.converged_fraction(budgets.get(label))
            why[metric] = (
                f"not reached up to N = {max(curve.sizes)}; best {best.mean:.1f} ± "
                f"{best.std:.1f} {unit} at N = {best.n_train} against {target:g}"
                + (
                    f"; {converged:.0%} of its runs ended before their epoch budget"
                    if converged is not None
                    else "; closed form (exact optimum of the readouts)"
                )
            )
        rows.append(
            RegimeRow(
                label=label,
                force=per_metric["force"],
                energy=per_metric["energy"],
                n_force=reached["force"],
                n_energy=reached["energy"],
                why_not_force=why["force"],
                why_not_energy=why["energy"],
                alpha=alpha,
                alpha_std=alpha_std,
                converged_fraction=curve.converged_fraction(budgets.get(label)),
            )
        )
    return RegimeTable(
        sizes=tuple(int(n) for n in sizes),
        force_target_meV_per_A=float(force_target_meV_per_A),
        energy_target_meV_per_atom=float(energy_target_meV_per_atom),
        rows=tuple(rows),
    )


# --------------------------------------------------------------------------- shipped curves

#: The regimes whose converged curves the course ships: (label, regime, solver, trainable).
SHIPPED_REGIMES = (
    ("few-shot (closed form)", "few-shot", "closed-form", None),
    ("few-shot (freeze-5)", "few-shot", "gradient", "freeze-5"),
    ("full", "full", "gradient", None),
    ("scratch", "scratch", "gradient", None),
)


@dataclass(frozen=True)
class ShippedCurves:
    """The shipped full-mode curves of one model and dataset, by regime label.

    ``provenance`` holds each record's provenance (command, settings, learning-rate sweep);
    ``missing`` says for each regime not shipped (or shipped for another model or data file)
    why, so a notebook can print it instead of silently showing less.
    """

    curves: dict[str, LearningCurve]
    provenance: dict[str, dict]
    missing: dict[str, str]

    @property
    def max_epochs(self) -> dict[str, int]:
        """Each gradient curve's epoch budget, from its provenance."""
        budgets = {
            label: prov.get("settings", {}).get("max_epochs")
            for label, prov in self.provenance.items()
        }
        return {label: n for label, n in budgets.items() if n and label in self.curves}

    def summary(self) -> str:
        lines = [f"SHIPPED {label}: {self.provenance[label]['command']}" for label in self.curves]
        lines += [f"not shipped, {label}: {why}" for label, why in self.missing.items()]
        return "\n".join(lines)


def shipped_curves(
    model, dataset, *, energy_only: bool = False, folder: Path | None = None
) -> ShippedCurves:
    """Every shipped curve of ``SHIPPED_REGIMES`` for ``model`` on ``dataset`` (E+F or E only).

    ``folder``: where the records are (default the course's ``data/reference-results``).
    """
    from course_lib.shipped import NotShippedError, StaleShippedError, shipped

    curves, provenance, missing = {}, {}, {}
    for label, regime, solver, trainable in SHIPPED_REGIMES:
        key = shipped_key(
            model,
            dataset,
            regime=regime,
            energy_only=energy_only,
            solver=solver,
            trainable=trainable,
        )
        try:
            record = shipped("learning-curve", key, folder=folder)
        except StaleShippedError as err:
            missing[label] = str(err)
            continue
        except NotShippedError:
            missing[label] = "no record for this model and dataset"
            continue
        curves[label] = LearningCurve.from_dict(record.payload["curve"])
        provenance[label] = record.provenance
    return ShippedCurves(curves=curves, provenance=provenance, missing=missing)


# --------------------------------------------------------------------------- cache keys


def model_key(model) -> str:
    """What identifies a starting model: registry name, file sha256, or parameter hash.

    ``None`` (scratch with the default architecture) is ``"none"``.
    """
    if model is None:
        return "none"
    if isinstance(model, (str, os.PathLike)):
        from course_lib.models import REGISTRY, resolve_model_name

        name = resolve_model_name(model)
        if name in REGISTRY:
            return name
        return "sha256:" + ds.sha256_of(name)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "params-sha256:" + digest.hexdigest()


def frames_hash(frames: Sequence[Atoms]) -> str:
    """sha256 over the geometry and labels of ``frames``, in order."""
    digest = hashlib.sha256()
    for atoms in frames:
        for array in (
            atoms.numbers,
            atoms.positions,
            np.asarray(atoms.cell),
            atoms.pbc,
            np.atleast_1d(float(atoms.info[ds.ENERGY_KEY])),
            atoms.arrays[ds.FORCES_KEY],
        ):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def run_key(
    *,
    model: str,
    regime: str,
    n_train: int,
    seed: int,
    energy_only: bool,
    settings,
    train,
    test,
    valid=None,
) -> dict:
    """The JSON-able identity of one run: same key, same numbers."""
    key = {
        "model": model,
        "regime": regime,
        "n_train": int(n_train),
        "seed": int(seed),
        "energy_only": bool(energy_only),
        "settings": _jsonable(settings),
        "train_sha256": frames_hash(train),
        "test_sha256": frames_hash(test),
    }
    if valid is not None:  # absent otherwise: keys of runs stored before stay valid
        key["valid_sha256"] = frames_hash(valid)
    return key


def keyed_settings(regime: str, settings: Mapping) -> dict:
    """Every ``FineTuneSettings`` field of a run, defaults filled in, minus those keyed apart.

    An explicit default and an omitted one give the same key, and a changed
    default gives a new one. Unknown names fail here.
    """
    try:
        params = FineTuneSettings(regime=regime, **settings).as_dict()
    except TypeError as err:
        raise ValueError(f"not a fine-tuning setting: {err}") from None
    return {k: v for k, v in params.items() if k not in _UNKEYED_SETTINGS}


def shipped_key(
    model,
    dataset,
    *,
    regime: str,
    energy_only: bool,
    solver: str = "gradient",
    trainable: str | None = None,
) -> dict:
    """The key of a shipped curve: model, dataset, regime, variant, energy-only or E+F."""
    variant = solver if regime == "few-shot" else "all-weights"
    if regime == "few-shot" and solver == "gradient":
        variant = f"gradient-{trainable or 'readouts'}"
    return {
        "model": model_key(model) if model is not None else "none",
        "dataset": Path(str(dataset)).stem,
        "regime": regime,
        "variant": variant,
        "labels": "E" if energy_only else "EF",
    }


def _overlap(frames: Sequence[Atoms], others: Sequence[Atoms]) -> bool:
    """Whether any frame of ``frames`` is also in ``others`` (same numbers, cell and positions)."""
    seen = {frames_hash([a]) for a in others}
    return any(frames_hash([a]) in seen for a in frames)


def run_path(key: dict, folder: Path) -> Path:
    """``folder/<regime>-n<N>-s<seed>-<E|EF>-<digest>.json`` for a run key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    kind = "E" if key["energy_only"] else "EF"
    return folder / f"{key['regime']}-n{key['n_train']}-s{key['seed']}-{kind}-{digest}.json"


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **_jsonable(dataclasses.asdict(value))}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(
        f"setting value {value!r} ({type(value).__name__}) cannot be part of a cache key; "
        "pass plain numbers, strings, dicts or a MaceArchitecture"
    )


def _read_record(path: Path, key: dict) -> dict | None:
    """The stored record at ``path`` if it exists, is readable and has exactly this key."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("key") == key else None


def _read_run(path: Path, key: dict) -> CurvePoint | None:
    record = _read_record(path, key)
    return CurvePoint(**record["point"], cached=True) if record else None


def _write_run(path: Path, key: dict, point: CurvePoint, test_metrics: dict) -> None:
    point_fields = {k: v for k, v in point.as_dict().items() if k != "cached"}
    record = {"key": key, "point": point_fields, "test": test_metrics, "written": time.time()}
    ds.atomic_write_text(path, json.dumps(record, indent=2, default=float) + "\n")


# --------------------------------------------------------------------------- the runner


#: Seed of the fixed validation frames drawn from the pool (``curve_frames``, ``--valid``).
VALID_SEED = 1000


def curve_frames(
    dataset: str | os.PathLike, *, n_valid: int = 0
) -> tuple[list[Atoms], list[Atoms] | None, list[Atoms]]:
    """(training pool, fixed validation frames or None, test split) of a dataset's curves.

    The test split is the dataset's own (``train_test_split``, seed 0); ``n_valid`` frames of
    the pool (seed ``VALID_SEED``) are set aside for early stopping and the lr sweep, and the
    pool keeps the rest. ``course learning-curve --valid N`` and every model rebuilt from a
    curve's run use this one split.
    """
    frames = ds.read_dataset(dataset, require_pbc=False)
    pool, test = ds.train_test_split(frames, seed=0)
    if not n_valid:
        return pool, None, test
    if not 0 < n_valid < len(pool):
        raise ValueError(f"--valid {n_valid}: the training pool has {len(pool)} frames")
    valid = ds.subset(pool, n_valid, seed=VALID_SEED)
    pool = [atoms for atoms in pool if not any(atoms is v for v in valid)]
    return pool, valid, test


def curve_sizes(sizes: Sequence[int], pool_size: int) -> tuple[int, ...]:
    """Sizes that fit the pool; those above it are replaced (once) by the whole pool."""
    sizes = sorted({int(n) for n in sizes})
    if not sizes or sizes[0] < 1:
        raise LearningCurveInputError(f"sizes must be positive integers, got {sizes}")
    kept = [n for n in sizes if n <= pool_size]
    if len(kept) < len(sizes):
        logger.info(
            "training pool has %d structures: sizes %s capped",
            pool_size,
            [n for n in sizes if n > pool_size],
        )
        kept.append(pool_size)
    return tuple(sorted(set(kept)))


def run_learning_curve(
    model,
    train_pool: Sequence[Atoms],
    test_frames: Sequence[Atoms],
    *,
    regime: str,
    sizes: Sequence[int] = DEFAULT_SIZES,
    seeds: int | Sequence[int] = 3,
    energy_only: bool = False,
    valid_frames: Sequence[Atoms] | None = None,
    zero_shot: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    scheduler=None,
    models_dir: str | os.PathLike | None = None,
    **settings,
) -> LearningCurve:
    """Train ``regime`` on ``subset(train_pool, N, seed)`` for each N and seed; test on ``test_frames``.

    ``model`` is a registered name, a MACE file, a loaded module, or None
    (scratch only). ``settings`` are ``FineTuner`` keywords (``max_epochs``,
    ``solver``, ``architecture``, ...); ``energy_only=True`` sets
    ``forces_weight=0``. ``seeds`` is a count (0, 1, ...) or explicit seeds;
    one seed draws nested subsets as N grows. ``valid_frames``: one fixed
    early-stopping set for every gradient run (keep it out of ``train_pool``);
    N then counts training structures only. Without it, each run splits
    ``valid_fraction`` off its N structures (N counts both). Each run is stored under
    ``cache_dir`` (default ``work_dir("learning-curves")``) as soon as it
    finishes; with ``cache=True`` stored runs with the same key are read
    instead of retrained. ``zero_shot`` adds the starting model's test errors
    (few-shot and full only).

    ``scheduler`` (``"local"``, a Dask scheduler address or a
    ``distributed.Client``, see ``course_lib.distributed``) trains the runs
    not yet stored as Dask tasks, one per (N, seed), each writing its own
    file (``cache_dir`` must then be shared with the workers); the numbers are
    those of a serial run with the same seeds. Closed-form few-shot curves
    share one design pass and stay in this process.

    ``models_dir``: gradient runs save their trained model there, named after
    their result file (``CurvePoint.model_file``), so a run of the curve can
    become a shipped model without training it again.
    """
    reserved = sorted(set(settings) & {"seed", "forces_weight", "progress", "model", "out"})
    if reserved:
        raise ValueError(
            f"{reserved} are set by the runner: use seeds=..., energy_only=True (forces_weight=0), "
            "progress=..., and the model as the first argument"
        )
    train_pool, test_frames = list(train_pool), list(test_frames)
    ds.validate_frames(train_pool, source="train_pool", require_pbc=False)
    ds.validate_frames(test_frames, source="test_frames", require_pbc=False)
    if valid_frames is not None:
        valid_frames = list(valid_frames)
        ds.validate_frames(valid_frames, source="valid_frames", require_pbc=False)
        if _overlap(valid_frames, train_pool + test_frames):
            raise ValueError(
                "valid_frames overlap the training pool or the test frames; take them out"
            )
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("need at least one seed")
    plan = [(n, s) for n in curve_sizes(sizes, len(train_pool)) for s in seed_list]
    folder = Path(cache_dir) if cache_dir is not None else work_dir("learning-curves")
    folder = folder.absolute()  # Dask workers may start elsewhere
    key_of_model = model_key(model)
    settings_key = keyed_settings(regime, settings)
    forces_weight = 0.0 if energy_only else LossWeights.forces
    loaded = _LazyModel(model, dtype=settings.get("dtype", "float64"))

    runs = []
    for n, seed in plan:
        train = ds.subset(train_pool, n, seed=seed)
        key = run_key(
            model=key_of_model,
            regime=regime,
            n_train=n,
            seed=seed,
            energy_only=energy_only,
            settings=settings_key,
            train=train,
            test=test_frames,
            valid=valid_frames,
        )
        path = run_path(key, folder)
        out = Path(models_dir).absolute() / f"{path.stem}.model" if models_dir else None
        runs.append(_PlannedRun(n_train=n, seed=seed, train=train, key=key, path=path, out=out))
    points = {run.path: _read_run(run.path, run.key) if cache else None for run in runs}
    todo = [run for run in runs if points[run.path] is None]
    run_settings = FineTuneSettings(regime=regime, **settings, forces_weight=forces_weight)
    if todo and scheduler is not None and run_settings.shares_design:
        logger.info("closed-form runs share one design pass: trained here, not on Dask")
    if todo and scheduler is not None and not run_settings.shares_design:
        points.update(
            _train_on_cluster(
                todo, scheduler, loaded, test_frames, run_settings, progress, valid_frames
            )
        )
    else:
        points.update(_train_here(todo, loaded, test_frames, run_settings, progress, valid_frames))
    reference = None
    if zero_shot and model is not None and regime != "scratch":
        reference = _cached_zero_shot(loaded, key_of_model, test_frames, folder, cache=cache)
    return LearningCurve(
        model=key_of_model,
        regime=regime,
        energy_only=energy_only,
        points=tuple(points[run.path] for run in runs),
        n_test=len(test_frames),
        zero_shot=reference,
    )


# --------------------------------------------------------------------------- training the runs


@dataclass(frozen=True)
class _PlannedRun:
    """One (N, seed) run of a curve: its training frames, cache key and result file."""

    n_train: int
    seed: int
    train: list
    key: dict
    path: Path
    out: Path | None = None  # where the trained model is saved, if anywhere


def _train_here(
    runs, loaded, test_frames, settings: FineTuneSettings, progress: bool, valid_frames=None
) -> dict:
    """Train ``runs`` one after the other in this process; their points by result path."""
    from tqdm.auto import tqdm

    if runs and settings.shares_design:
        solve = _shared_closed_form(
            loaded.get(), [run.train for run in runs], test_frames, settings
        )

        def train_one(run):
            return _store_point(run, *solve(run.train, run.seed))

    else:

        def train_one(run):
            model = loaded.get()
            return _train_and_store(
                run,
                trainer=run_regime,
                model=model,
                test_frames=test_frames,
                settings=settings,
                valid_frames=valid_frames,
            )

    points = {}
    bar = tqdm(runs, desc=f"{settings.regime} learning curve", disable=not progress)
    for run in bar:
        point = points[run.path] = train_one(run)
        bar.set_postfix(N=run.n_train, seed=run.seed, F=f"{point.force_mae_meV_per_A:.0f} meV/Å")
    bar.close()
    return points


def _train_on_cluster(
    runs, scheduler, loaded, test_frames, settings, progress: bool, valid_frames=None
) -> dict:
    """Train ``runs`` as Dask tasks (``_train_and_store`` on the workers); points by result path.

    The model and test frames go to each worker once; a task's error is raised here.
    """
    from course_lib.distributed import dask_client, map_unordered, require_visible

    points = {}
    with dask_client(scheduler) as client:
        shared = {"model": loaded.get(), "test_frames": test_frames, "valid_frames": valid_frames}
        tasks = map_unordered(
            client,
            _train_and_store,
            runs,
            name=f"{settings.regime}-learning-curve",
            progress=progress,
            shared=shared,
            trainer=run_regime,
            settings=settings,
        )
        for index, future in tasks:
            point = future.result()
            require_visible(runs[index].path)
            points[runs[index].path] = point
    return points


def _train_and_store(
    run: _PlannedRun, *, trainer, model, test_frames, settings, valid_frames=None
) -> CurvePoint:
    """Train one run with ``trainer`` (``run_regime``), test it, store its file; its point.

    Runs here or on a Dask worker; the run's seed goes into ``settings``.
    """
    from course_lib.distributed import remove_partial_writes

    options = {"out": run.out} if run.out is not None else {}
    result = trainer(
        model,
        run.train,
        test_frames,
        valid_frames=valid_frames,
        settings=dataclasses.replace(settings, seed=run.seed, progress=False),
        **options,
    )
    remove_partial_writes(run.path, older_than_s=60.0)
    history = getattr(result, "history", None)  # closed-form runs and stub trainers have none
    saved = getattr(result, "model_path", None)
    return _store_point(
        run,
        result.test,
        result.n_labels,
        result.fit_time_s,
        history,
        Path(saved).name if saved else None,
    )


def _store_point(
    run: _PlannedRun, test_metrics, n_labels: int, fit_time_s: float, history=None, model_file=None
) -> CurvePoint:
    """The point of a finished run, written to its result file first."""
    point = CurvePoint(
        n_train=run.n_train,
        seed=run.seed,
        energy_mae_meV_per_atom=test_metrics.energy_mae_meV_per_atom,
        force_mae_meV_per_A=test_metrics.force_mae_meV_per_A,
        n_labels=n_labels,
        fit_time_s=fit_time_s,
        epochs_trained=None if history is None else int(history.epoch[-1]),
        stopped_early=None if history is None else bool(history.stopped_early),
        model_file=model_file,
    )
    _write_run(run.path, run.key, point, test_metrics.as_dict())
    return point


# --------------------------------------------------------------------------- closed form, shared


def _shared_closed_form(model, train_sets, test_frames, settings: FineTuneSettings):
    """``train_one`` for closed-form runs: one design pass, then one small solve per run.

    ``fit_time_s`` of a run charges it its structures' share of the design
    pass plus its solve.
    """
    from course_lib.zero_shot import error_metrics

    shared = shared_closed_form(model, train_sets, settings, test_frames)

    def train_one(train, seed):
        began = time.perf_counter()
        metrics = error_metrics(test_frames, shared.test_predictions(shared.solve(train)))
        seconds = time.perf_counter() - began + len(train) * shared.seconds_per_structure
        return metrics, ds.n_labels(train, with_forces=settings.forces_weight > 0), seconds

    return train_one


def zero_shot_errors(model, test_frames: Sequence[Atoms]) -> dict[str, float]:
    """The N = 0 line: the starting model's test MAE, energies aligned per element.

    Returns ``{"energy": meV/atom, "force": meV/Å}``.
    """
    from course_lib.zero_shot import evaluate

    aligned = evaluate(model, test_frames, dataset="test_frames").aligned
    return {"energy": aligned.energy_mae_meV_per_atom, "force": aligned.force_mae_meV_per_A}


def _cached_zero_shot(loaded, key_of_model, test_frames, folder: Path, *, cache: bool) -> dict:
    """``zero_shot_errors``, stored and reused like a run (keyed by model and test frames)."""
    key = {"model": key_of_model, "regime": "zero-shot", "test_sha256": frames_hash(test_frames)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = folder / f"zero-shot-{digest}.json"
    record = _read_record(path, key) if cache else None
    if record is None:
        record = {"key": key, "errors": zero_shot_errors(loaded.get(), test_frames)}
        ds.atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record["errors"]


class _LazyModel:
    """Loads the starting model on first use only, so a fully cached curve loads nothing."""

    def __init__(self, model, *, dtype: str):
        self.model = model
        self.dtype = dtype

    def get(self):
        if self.model is None or not isinstance(self.model, (str, os.PathLike)):
            return self.model
        if not hasattr(self, "module_"):
            from course_lib.finetune import load_model

            self.module_ = load_model(self.model, dtype=self.dtype)
        return self.module_


# --------------------------------------------------------------------------- learning rate


@dataclass(frozen=True)
class LearningRateSweep:
    """Validation errors of one regime trained at several learning rates; the rate chosen.

    Chosen on the validation loss (what early stopping watches), never on the
    test set. ``epochs`` is the best validation epoch of each run.
    """

    regime: str
    n_train: int
    seed: int
    lrs: tuple[float, ...]
    valid_loss: tuple[float, ...]
    valid_energy_mae_meV_per_atom: tuple[float, ...]
    valid_force_mae_meV_per_A: tuple[float, ...]
    best_epochs: tuple[int, ...]

    @property
    def best_lr(self) -> float:
        return self.lrs[int(np.nanargmin(self.valid_loss))]

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "best_lr": self.best_lr}

    @classmethod
    def from_dict(cls, record: Mapping) -> LearningRateSweep:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in names}
        )

    def table(self) -> str:
        rows = [f"learning-rate sweep, {self.regime}, N = {self.n_train}, seed {self.seed}:"]
        for lr, loss, e, f, epoch in zip(
            self.lrs,
            self.valid_loss,
            self.valid_energy_mae_meV_per_atom,
            self.valid_force_mae_meV_per_A,
            self.best_epochs,
        ):
            mark = "  <- chosen" if lr == self.best_lr else ""
            rows.append(
                f"  lr {lr:g}: validation loss {loss:.4g}, E {e:.1f} meV/atom, "
                f"F {f:.1f} meV/Å (best epoch {epoch}){mark}"
            )
        return "\n".join(rows)


def sweep_learning_rate(
    model,
    train_pool: Sequence[Atoms],
    valid_frames: Sequence[Atoms],
    *,
    regime: str,
    lrs: Sequence[float],
    n_train: int,
    seed: int = 0,
    energy_only: bool = False,
    progress: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    **settings,
) -> LearningRateSweep:
    """Train ``regime`` on ``subset(train_pool, n_train, seed)`` at each rate in ``lrs``; score on ``valid_frames``.

    The chapter's hygiene applied to a hyper-parameter: the rate is chosen on
    validation frames before any learning-curve point is measured on the test set.
    Each rate's run is stored under ``cache_dir`` (default
    ``work_dir("lr-sweeps")``) as soon as it ends, so an interrupted sweep resumes.
    """
    from tqdm.auto import tqdm

    from course_lib.finetune import FineTuner

    if not lrs or any(not (lr > 0 and np.isfinite(lr)) for lr in lrs):
        raise ValueError(f"learning rates must be positive and finite, got {list(lrs)}")
    train = ds.subset(list(train_pool), min(n_train, len(train_pool)), seed=seed)
    loaded = _LazyModel(model, dtype=settings.get("dtype", "float64"))
    folder = Path(cache_dir) if cache_dir is not None else work_dir("lr-sweeps")
    rows = []
    for lr in tqdm(list(lrs), desc=f"{regime} lr sweep", disable=not progress):
        key = run_key(
            model=model_key(model),
            regime=regime,
            n_train=len(train),
            seed=seed,
            energy_only=energy_only,
            settings=keyed_settings(regime, {**settings, "lr": float(lr)}),
            train=train,
            test=valid_frames,
        )
        path = run_path(key, folder)
        record = _read_record(path, key) if cache else None
        if record is None:
            tuner = FineTuner(
                model=loaded.get(),
                regime=regime,
                lr=float(lr),
                seed=seed,
                progress=False,
                forces_weight=0.0 if energy_only else LossWeights.forces,
                **settings,
            ).fit(train, list(valid_frames))
            h = tuner.history_
            best = h.epoch.index(h.best_epoch)
            row = (
                h.valid_loss[best],
                h.valid_energy_mae[best],
                h.valid_force_mae[best],
                h.best_epoch,
            )
            record = {"key": key, "row": [float(v) for v in row[:3]] + [int(row[3])]}
            ds.atomic_write_text(path, json.dumps(record, indent=2) + "\n")
        rows.append(tuple(record["row"]))
    loss, energy, force, epochs = zip(*rows)
    return LearningRateSweep(
        regime=regime,
        n_train=len(train),
        seed=seed,
        lrs=tuple(float(lr) for lr in lrs),
        valid_loss=tuple(float(v) for v in loss),
        valid_energy_mae_meV_per_atom=tuple(float(v) for v in energy),
        valid_force_mae_meV_per_A=tuple(float(v) for v in force),
        best_epochs=tuple(int(v) for v in epochs),
    )
