"""Committees: the learned version of the coverage diagnostic.

The chapter closes its coverage section with the remark that ensembles and
committees "act as a learned version of this same diagnostic". A committee is
a handful of models that agree where their training data pinned them down and
disagree elsewhere; the disagreement (spread) is a per-structure warning
light that needs no DFT label.

* **Members.** Few-shot readouts refitted on bootstrap resamples of the
  fine-tuning data (``fine_tune_committee``: with the closed-form solver each
  member is one least-squares solve), or several MACE files evaluated by
  mace-torch's ``MACECalculator(model_paths=[...])``
  (``mace_file_committee``), or any list of models ``zero_shot.predict``
  accepts (``predict_committee``).
* **Spread.** Per structure, the committee's standard deviation of the
  energy per atom (meV/atom); per atom, the root of the summed variances of
  the three force components, ``sqrt(sum_xyz var_m F)`` (meV/Å). A structure's
  force spread is the maximum over its atoms, the usual active-learning
  trigger (one migrating atom is enough to be worried).
* **Calibration.** A spread is useful if it ranks structures as the actual
  error does: the Spearman rank correlation of spread and error, a binned
  calibration curve (mean spread against RMS error), and the fraction of the
  worst-k errors caught by the top-k spreads.

Units: energies eV, forces eV/Å in; spreads and errors meV/atom, meV/Å out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from course_lib import data as ds
from course_lib.zero_shot import Predictions, predict

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Committee:
    """Every member's predictions on the same frames (eV, eV/Å)."""

    members: tuple[str, ...]
    energies: np.ndarray = field(repr=False)  # (n_members, n_frames), eV
    forces: tuple[np.ndarray, ...] = field(repr=False)  # per frame (n_members, n_atoms, 3), eV/Å

    @classmethod
    def from_predictions(cls, predictions: Sequence[Predictions]) -> Committee:
        """Stack members' ``Predictions`` (each on the same frames, in the same order)."""
        if len(predictions) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(predictions)}")
        n_frames = {len(p.energies) for p in predictions}
        if len(n_frames) != 1:
            raise ValueError(f"members predicted different numbers of frames: {sorted(n_frames)}")
        energies = np.stack([np.asarray(p.energies, dtype=float) for p in predictions])
        forces = tuple(
            np.stack([np.asarray(p.forces[i], dtype=float) for p in predictions])
            for i in range(energies.shape[1])
        )
        return cls(members=tuple(p.model for p in predictions), energies=energies, forces=forces)

    @property
    def n_members(self) -> int:
        return len(self.members)

    def mean(self, *, model: str = "committee mean") -> Predictions:
        """The committee's mean prediction, usable wherever a ``Predictions`` is."""
        return Predictions(
            model=model,
            energies=self.energies.mean(axis=0),
            forces=[f.mean(axis=0) for f in self.forces],
        )


@dataclass(frozen=True)
class CommitteeSpread:
    """Committee disagreement per structure and per atom.

    ``energy_meV_per_atom``: std over members of E / N, per frame.
    ``force_meV_per_A``: per frame, per atom ``sqrt(sum_xyz var_m F)``.
    ``max_force_meV_per_A``: per frame, the largest atom's force spread.
    """

    n_members: int
    energy_meV_per_atom: np.ndarray = field(repr=False)
    force_meV_per_A: tuple[np.ndarray, ...] = field(repr=False)

    @property
    def max_force_meV_per_A(self) -> np.ndarray:
        return np.array([f.max() for f in self.force_meV_per_A])

    @property
    def atom_force_meV_per_A(self) -> np.ndarray:
        """Every atom's force spread, frames concatenated."""
        return np.concatenate(self.force_meV_per_A)

    def as_dict(self) -> dict:
        return {
            "n_members": self.n_members,
            "n_frames": len(self.energy_meV_per_atom),
            "mean_energy_spread_meV_per_atom": float(self.energy_meV_per_atom.mean()),
            "max_energy_spread_meV_per_atom": float(self.energy_meV_per_atom.max()),
            "mean_force_spread_meV_per_A": float(self.atom_force_meV_per_A.mean()),
            "max_force_spread_meV_per_A": float(self.atom_force_meV_per_A.max()),
        }

    def table(self) -> str:
        d = self.as_dict()
        rows = [
            ("members / frames", f"{d['n_members']} / {d['n_frames']}"),
            ("energy spread, mean", f"{d['mean_energy_spread_meV_per_atom']:.2f} meV/atom"),
            ("energy spread, max", f"{d['max_energy_spread_meV_per_atom']:.2f} meV/atom"),
            ("force spread, mean atom", f"{d['mean_force_spread_meV_per_A']:.1f} meV/Å"),
            ("force spread, max atom", f"{d['max_force_spread_meV_per_A']:.1f} meV/Å"),
        ]
        return _two_columns(rows)

    __str__ = table


@dataclass(frozen=True)
class Calibration:
    """How well a spread ranks the actual errors (both in the same units).

    ``spearman``: rank correlation of spread and error. ``top_k_capture``:
    the fraction of the ``k`` largest errors that are among the ``k`` largest
    spreads (1 = perfect; ``k / n`` is what a random ranking gives on
    average, ``chance``). ``bins``: (mean spread, RMS error, count) per
    spread quantile bin, the calibration curve.
    """

    quantity: str
    unit: str
    n: int
    spearman: float
    k: int
    top_k_capture: float
    chance: float
    bin_spread: np.ndarray = field(repr=False)
    bin_rms_error: np.ndarray = field(repr=False)
    bin_count: np.ndarray = field(repr=False)
    spread: np.ndarray = field(repr=False)
    error: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "quantity": self.quantity,
            "unit": self.unit,
            "n": self.n,
            "spearman": self.spearman,
            "k": self.k,
            "top_k_capture": self.top_k_capture,
            "chance": self.chance,
            "bins": [
                {"mean_spread": float(s), "rms_error": float(e), "count": int(c)}
                for s, e, c in zip(self.bin_spread, self.bin_rms_error, self.bin_count)
            ],
        }

    def table(self) -> str:
        rows = [
            (f"{self.quantity}: points", str(self.n)),
            ("Spearman (spread, error)", f"{self.spearman:.2f}"),
            (
                f"worst {self.k} caught by top {self.k}",
                f"{self.top_k_capture:.0%} (chance {self.chance:.0%})",
            ),
        ]
        rows += [
            (f"bin: spread {s:.3g} {self.unit}", f"RMS error {e:.3g} {self.unit} (n={c})")
            for s, e, c in zip(self.bin_spread, self.bin_rms_error, self.bin_count)
        ]
        return _two_columns(rows)

    __str__ = table


# --------------------------------------------------------------------------- members


def predict_committee(
    models: Sequence,
    frames: Sequence[Atoms],
    *,
    names: Sequence[str] | None = None,
    **predict_kwargs,
) -> Committee:
    """Each of ``models`` (anything ``zero_shot.predict`` accepts) on ``frames``.

    Members are called ``names`` (default: "member 0", "member 1", ...).
    """
    names = list(names) if names is not None else [f"member {i}" for i in range(len(models))]
    if len(names) != len(models):
        raise ValueError(f"{len(models)} models but {len(names)} names")
    predict_kwargs.setdefault("compute_stress", False)
    predictions = [
        predict(m, frames, label=name, **predict_kwargs) for m, name in zip(models, names)
    ]
    return Committee.from_predictions(predictions)


def mace_file_committee(
    model_paths: Sequence[str | os.PathLike],
    frames: Sequence[Atoms],
    *,
    device: str = "cpu",
    dtype: str = "float64",
) -> Committee:
    """Several MACE files as one mace-torch ``MACECalculator`` committee.

    The calculator evaluates every file on each structure and keeps the
    members' outputs in ``energy_comm`` (eV) and ``forces_comm`` (eV/Å).
    Files are checked against their recorded sha256 before loading.
    """
    from mace.calculators import MACECalculator

    from course_lib.models import model_file

    paths = [str(model_file(p)) for p in model_paths]
    if len(paths) < 2:
        raise ValueError(f"a committee needs at least 2 model files, got {len(paths)}")
    calc = MACECalculator(model_paths=paths, device=device, default_dtype=dtype)
    energies, forces = [], []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        energies.append(np.asarray(calc.results["energy_comm"], dtype=float))
        forces.append(np.asarray(calc.results["forces_comm"], dtype=float))
    names = tuple(os.path.basename(p) for p in paths)
    return Committee(members=names, energies=np.stack(energies, axis=1), forces=tuple(forces))


def bootstrap_resample(frames: Sequence[Atoms], *, seed: int) -> list[Atoms]:
    """``len(frames)`` frames drawn with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    return [frames[i] for i in rng.integers(0, len(frames), size=len(frames))]


def fine_tune_committee(
    model,
    frames: Sequence[Atoms],
    *,
    n_members: int = 5,
    bootstrap: bool = True,
    seed: int = 0,
    fit: Callable | None = None,
    **tuner_settings,
) -> list:
    """``n_members`` fine-tuned copies of ``model``, differing by seed and resample.

    Member ``i`` is fitted with ``seed + i`` on a bootstrap resample of
    ``frames`` (seeded likewise) when ``bootstrap``, else on ``frames``
    themselves (then only a seed-dependent solver, ``solver="gradient"``,
    makes members differ). Defaults to few-shot closed-form readouts: the
    design of ``frames`` is computed once (``closed_form.SharedClosedForm``)
    and each member is one small least-squares solve. ``fit(model, frames,
    seed=...)`` may replace the training step; it returns the fitted module.
    Returns the fitted modules, ready for ``predict_committee``.
    """
    from course_lib.finetune import FineTuner, FineTuneSettings

    if n_members < 2:
        raise ValueError(f"n_members must be >= 2 for a committee, got {n_members}")
    defaults = {"regime": "few-shot", "solver": "closed-form", "progress": False}
    settings = FineTuneSettings(**(defaults | tuner_settings))
    if not bootstrap and settings.solver == "closed-form":
        logger.warning(
            "closed-form readouts do not depend on the seed: without bootstrap every "
            "member is identical and the spread is zero"
        )
    resamples = [
        bootstrap_resample(frames, seed=seed + i) if bootstrap else list(frames)
        for i in range(n_members)
    ]
    if fit is None and settings.shares_design:
        return _closed_form_members(model, resamples, settings)
    if fit is None:

        def fit(start, train_frames, *, seed):
            return FineTuner(model=start, settings=settings, seed=seed).fit(train_frames).model_

    return [fit(model, train, seed=seed + i) for i, train in enumerate(resamples)]


def _closed_form_members(model, resamples, settings) -> list:
    """Committee members from one design pass over the resampled frames: one solve each."""
    from course_lib.finetune import load_model, shared_closed_form

    start = load_model(model, dtype=settings.dtype)
    shared = shared_closed_form(start, resamples, settings)
    return [shared.fitted_model(train) for train in resamples]


# --------------------------------------------------------------------------- spread and errors


def committee_spread(committee: Committee, frames: Sequence[Atoms]) -> CommitteeSpread:
    """Energy spread (meV/atom) per frame and force spread (meV/Å) per atom."""
    natoms = ds.n_atoms(frames)
    if len(natoms) != committee.energies.shape[1]:
        raise ValueError(
            f"the committee predicted {committee.energies.shape[1]} frames, got {len(natoms)}"
        )
    energy = (committee.energies / natoms).std(axis=0) * 1e3
    force = tuple(np.sqrt(f.var(axis=0).sum(axis=-1)) * 1e3 for f in committee.forces)
    return CommitteeSpread(
        n_members=committee.n_members, energy_meV_per_atom=energy, force_meV_per_A=force
    )


def energy_errors_meV_per_atom(frames: Sequence[Atoms], predictions: Predictions) -> np.ndarray:
    """|E_model - E_DFT| / N per frame, meV/atom."""
    return np.abs(predictions.energies - ds.energies(frames)) / ds.n_atoms(frames) * 1e3


def force_errors_meV_per_A(frames: Sequence[Atoms], predictions: Predictions) -> np.ndarray:
    """|F_model - F_DFT| per atom (vector norm), frames concatenated, meV/Å."""
    delta = np.concatenate(predictions.forces) - np.concatenate(ds.forces(frames))
    return np.linalg.norm(delta, axis=1) * 1e3


# --------------------------------------------------------------------------- calibration


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either is constant)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def top_k_capture(spread: np.ndarray, error: np.ndarray, k: int) -> float:
    """Fraction of the ``k`` largest errors that are among the ``k`` largest spreads."""
    if not 1 <= k <= len(error):
        raise ValueError(f"k must lie in [1, {len(error)}], got {k}")
    worst = set(np.argsort(-np.asarray(error), kind="stable")[:k].tolist())
    flagged = set(np.argsort(-np.asarray(spread), kind="stable")[:k].tolist())
    return len(worst & flagged) / k


def binned_calibration(
    spread: np.ndarray, error: np.ndarray, *, n_bins: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean spread, RMS error and count in ``n_bins`` spread-quantile bins (empty bins dropped)."""
    spread, error = np.asarray(spread, dtype=float), np.asarray(error, dtype=float)
    order = np.argsort(spread, kind="stable")
    chunks = [c for c in np.array_split(order, min(n_bins, len(order))) if len(c)]
    return (
        np.array([spread[c].mean() for c in chunks]),
        np.array([np.sqrt((error[c] ** 2).mean()) for c in chunks]),
        np.array([len(c) for c in chunks]),
    )


def calibrate(
    spread: np.ndarray,
    error: np.ndarray,
    *,
    quantity: str = "energy",
    unit: str = "meV/atom",
    k: int | None = None,
    top_fraction: float = 0.1,
    n_bins: int = 5,
) -> Calibration:
    """Calibration numbers of a spread against actual errors (same length, same unit).

    ``k`` defaults to ``top_fraction`` of the points (at least 1).
    """
    spread, error = np.asarray(spread, dtype=float), np.asarray(error, dtype=float)
    if spread.shape != error.shape or spread.ndim != 1:
        raise ValueError(
            f"spread and error must be 1-D of equal length: {spread.shape}, {error.shape}"
        )
    if len(spread) < 2:
        raise ValueError("calibration needs at least 2 points")
    k = k if k is not None else max(1, round(top_fraction * len(error)))
    bin_spread, bin_error, bin_count = binned_calibration(spread, error, n_bins=n_bins)
    return Calibration(
        quantity=quantity,
        unit=unit,
        n=len(error),
        spearman=spearman(spread, error),
        k=k,
        top_k_capture=top_k_capture(spread, error, k),
        chance=k / len(error),
        bin_spread=bin_spread,
        bin_rms_error=bin_error,
        bin_count=bin_count,
        spread=spread,
        error=error,
    )


def calibrate_committee(
    committee: Committee,
    frames: Sequence[Atoms],
    *,
    predictions: Predictions | None = None,
    **options,
) -> tuple[Calibration, Calibration]:
    """Energy (per frame, meV/atom) and force (per atom, meV/Å) calibration of a committee.

    Errors are those of ``predictions`` (the model used in production)
    when given, else of the committee mean.
    """
    spread = committee_spread(committee, frames)
    predictions = predictions or committee.mean()
    energy = calibrate(
        spread.energy_meV_per_atom,
        energy_errors_meV_per_atom(frames, predictions),
        quantity="energy",
        unit="meV/atom",
        **options,
    )
    force = calibrate(
        spread.atom_force_meV_per_A,
        force_errors_meV_per_A(frames, predictions),
        quantity="force",
        unit="meV/Å",
        **options,
    )
    return energy, force


def _two_columns(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
