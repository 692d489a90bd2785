"""Zero-shot evaluation: a pre-trained model on a new system, no training at all.

The chapter's first regime and the first step of its flowchart: predict a
handful of DFT-labelled snapshots and compare (parity). Energies need one
extra step done right: a foundation model trained on one DFT setup and a
target labelled with another (different code, pseudopotentials, cutoff)
differ by a per-element reference energy. We fit those offsets by least
squares on composition and report raw and aligned energy errors side by
side. Forces, derivatives of the energy, need no alignment.

Units: energies eV, forces eV/Å, stresses eV/Å³ in; errors meV/atom, meV/Å,
meV/Å³ out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from course_lib import claims
from course_lib import data as ds
from course_lib.composition import composition_matrix, fit_reference_offsets


class NonFinitePredictionError(ValueError):
    """A model predicted NaN or inf for a frame: an error, never averaged into a metric."""


@dataclass(frozen=True)
class Predictions:
    """Model outputs for a list of frames (eV, eV/Å, eV/Å³ Voigt)."""

    model: str
    energies: np.ndarray
    forces: list[np.ndarray] = field(repr=False)
    stresses: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ErrorMetrics:
    """Errors of predictions against DFT labels."""

    n_frames: int
    n_atoms: int
    energy_mae_meV_per_atom: float
    energy_rmse_meV_per_atom: float
    force_mae_meV_per_A: float
    force_rmse_meV_per_A: float
    stress_mae_meV_per_A3: float | None
    force_mae_by_element_meV_per_A: dict[str, float]
    #: s of F_model ≈ s · F_DFT over every force component (least squares through the
    #: origin): below 1 the model is *soft*, the systematic under-prediction of forces
    #: that Deng et al. (npj Comput. Mater. 2025) found in foundation models.
    force_slope: float | None = None
    #: Mean signed energy error, model minus DFT (meV/atom): a constant offset shows here,
    #: the scatter about it is sqrt(RMSE² - bias²).
    energy_bias_meV_per_atom: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def table(self) -> str:
        rows = [
            ("frames / atoms", f"{self.n_frames} / {self.n_atoms}"),
            ("energy MAE", f"{self.energy_mae_meV_per_atom:.1f} meV/atom"),
            ("energy RMSE", f"{self.energy_rmse_meV_per_atom:.1f} meV/atom"),
            ("force MAE", f"{self.force_mae_meV_per_A:.1f} meV/Å"),
            ("force RMSE", f"{self.force_rmse_meV_per_A:.1f} meV/Å"),
        ]
        if self.force_slope is not None:
            rows.append(("force slope s", f"{self.force_slope:.3f} (F_model ≈ s · F_DFT)"))
        if self.stress_mae_meV_per_A3 is not None:
            rows.append(("stress MAE", f"{self.stress_mae_meV_per_A3:.2f} meV/Å³"))
        rows += [
            (f"force MAE {el}", f"{mae:.1f} meV/Å")
            for el, mae in self.force_mae_by_element_meV_per_A.items()
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    __str__ = table


@dataclass(frozen=True)
class GroupedErrors:
    """Errors of one model per value of a per-frame ``info`` key (e.g. MD temperature).

    A force MAE means little without the size of the forces it is made on:
    hot MD frames have larger forces, so a larger MAE there may be the same
    *relative* error. ``force_scale_meV_per_A`` is each group's mean |F|
    component of the DFT labels (the MAE of predicting zero force), and
    ``relative_force_error`` the force MAE divided by it.

    Energies: when ``metrics`` hold energies aligned per element
    (``ZeroShotResult.errors_by``), ``raw_energy_mae_meV_per_atom`` keeps each
    group's raw energy MAE and ``same_dft_setup`` whether the model was
    pre-trained on the target's DFT setup (None: not known). ``ratios`` and
    ``comparison`` judge the energy error a chapter check judges
    (``claims.judged_energy``): raw for such a model, aligned otherwise.
    """

    key: str
    metrics: dict  # info value -> ErrorMetrics
    force_scale_meV_per_A: dict  # info value -> float
    raw_energy_mae_meV_per_atom: dict | None = None  # info value -> float; None: metrics are raw
    same_dft_setup: bool | None = None

    def relative_force_error(self, value) -> float:
        return self.metrics[value].force_mae_meV_per_A / self.force_scale_meV_per_A[value]

    @property
    def judged_energies(self) -> str:
        """Which energy MAE ``ratios`` and ``comparison`` judge: ``"raw"`` or ``"aligned"``."""
        if self.raw_energy_mae_meV_per_atom is None or self.same_dft_setup:
            return "raw"  # the predictions as made, or a model of the target's DFT setup
        return "aligned"

    def energy_mae_meV_per_atom(self, value) -> float:
        """Group ``value``'s judged energy MAE (meV/atom), see ``judged_energies``."""
        if self.judged_energies == "raw" and self.raw_energy_mae_meV_per_atom is not None:
            return self.raw_energy_mae_meV_per_atom[value]
        return self.metrics[value].energy_mae_meV_per_atom

    def _energy_basis(self) -> str:
        """Which energy error the comparison judges, and why, as text."""
        if self.raw_energy_mae_meV_per_atom is None:
            return "energies as predicted"
        if self.same_dft_setup:
            return "raw energies: the model was pre-trained on the target's DFT setup"
        why = "another DFT setup" if self.same_dft_setup is False else "a DFT setup not known"
        return f"energies aligned per element: the model was pre-trained on {why}"

    def ratios(self, low, high) -> dict[str, float]:
        """Group ``high`` over ``low``: judged energy MAE, force MAE, force scale, relative force error."""
        a, b = self.metrics[low], self.metrics[high]
        return {
            "energy_mae": self.energy_mae_meV_per_atom(high) / self.energy_mae_meV_per_atom(low),
            "force_mae": b.force_mae_meV_per_A / a.force_mae_meV_per_A,
            "force_scale": self.force_scale_meV_per_A[high] / self.force_scale_meV_per_A[low],
            "relative_force_error": self.relative_force_error(high)
            / self.relative_force_error(low),
        }

    def comparison(self, low=None, high=None, *, tolerance: float = 0.2) -> str:
        """One sentence, from the numbers: is group ``high`` (default last) harder than ``low`` (first)?

        Harder when its energy MAE or its relative force error exceeds
        ``low``'s by more than ``tolerance`` (a fraction); easier when both
        are below by more than that; otherwise about as hard. The energy MAE
        is the judged one (``judged_energies``), and the sentence says which.
        """
        values = list(self.metrics)
        low = values[0] if low is None else low
        high = values[-1] if high is None else high
        r = self.ratios(low, high)
        worse = [r["energy_mae"], r["relative_force_error"]]
        if max(worse) > 1 + tolerance:
            verdict = "harder than"
        elif max(worse) < 1 - tolerance:
            verdict = "easier than"
        else:
            verdict = f"about as hard as (within {tolerance:.0%})"
        energies = (
            f"{self.energy_mae_meV_per_atom(high):.1f} vs {self.energy_mae_meV_per_atom(low):.1f} "
            f"meV/atom, {self._energy_basis()}"
        )
        name = self.key.removesuffix("_K").replace("_", " ")
        shared = self.shared_offset(low, high)
        high, low = group_label(high), group_label(low)
        return (
            f"{name} {high} vs {low}: energy MAE x{r['energy_mae']:.2f} ({energies}), force MAE "
            f"x{r['force_mae']:.2f} on DFT forces x{r['force_scale']:.2f} larger, so the relative "
            f"force error is x{r['relative_force_error']:.2f}. For this model the {high} "
            f"frames are {verdict} the {low} frames." + shared
        )

    def against(
        self, other: GroupedErrors, *, label: str, other_label: str, tolerance: float = 0.2
    ) -> str:
        """Per shared group, this model's judged energy MAE and relative force error against
        ``other``'s (e.g. the same model on another trajectory), each judged on its own:
        smaller or larger when they differ by more than ``tolerance`` (a fraction)."""

        def judged(mine: float, theirs: float) -> str:
            if mine < theirs * (1 - tolerance):
                return "smaller"
            if mine > theirs * (1 + tolerance):
                return "larger"
            return f"about the same (within {tolerance:.0%})"

        lines = []
        for group in (g for g in self.metrics if g in other.metrics):
            force = (self.relative_force_error(group), other.relative_force_error(group))
            energy = (self.energy_mae_meV_per_atom(group), other.energy_mae_meV_per_atom(group))
            lines.append(
                f"{group_text(self.key, group)}: relative force error {force[0]:.0%} on {label} "
                f"vs {force[1]:.0%} on {other_label}, {judged(*force)}; energy MAE "
                f"{energy[0]:.1f} vs {energy[1]:.1f} meV/atom ({self.judged_energies}), "
                f"{judged(*energy)}"
            )
        return "\n".join(lines)

    def difference_miss_meV_per_atom(self, low, high) -> float | None:
        """How far the model's mean energy error moves from group ``low`` to ``high`` (meV/atom).

        The error of the model's mean ``high``-minus-``low`` energy difference (mean signed
        error at ``high`` minus that at ``low``): a constant offset of the model's energies,
        the same for every frame of one composition, cancels in it. None without the means.
        """
        a, b = (
            self.metrics[low].energy_bias_meV_per_atom,
            self.metrics[high].energy_bias_meV_per_atom,
        )
        return None if None in (a, b) else b - a

    def shared_offset(self, low, high) -> str:
        """A sentence when one alignment split a between-group energy error across both groups.

        Aligned energies share one per-element offset, fitted on every frame: if the
        model gets the energy *difference* between the groups wrong, the offset lands
        between them and each group's mean error is about half that miss, with opposite
        signs. The two MAEs then measure the miss, not which group is harder; the
        scatter about each group's mean does. "" when this does not apply (raw energies,
        same-sign means, or means smaller than the scatter).
        """
        a, b = self.metrics[low], self.metrics[high]
        if self.judged_energies != "aligned" or None in (
            a.energy_bias_meV_per_atom,
            b.energy_bias_meV_per_atom,
        ):
            return ""
        bias_low, bias_high = a.energy_bias_meV_per_atom, b.energy_bias_meV_per_atom
        scatter = {
            value: float(
                np.sqrt(max(m.energy_rmse_meV_per_atom**2 - m.energy_bias_meV_per_atom**2, 0.0))
            )
            for value, m in ((low, a), (high, b))
        }
        if bias_low * bias_high >= 0 or min(abs(bias_low), abs(bias_high)) < max(scatter.values()):
            return ""
        high_text, low_text = group_text(self.key, high), group_text(self.key, low)
        return (
            f" But the aligned energy MAEs share one offset: the mean error is "
            f"{bias_low:+.1f} meV/atom at {low_text} and {bias_high:+.1f} at {high_text}, so they "
            f"mostly measure the {high_text}-minus-{low_text} energy difference, which the model "
            f"misses by {abs(self.difference_miss_meV_per_atom(low, high)):.1f} meV/atom; about "
            "each group's mean the "
            f"scatter is {scatter[low]:.1f} vs {scatter[high]:.1f} meV/atom."
        )

    def table(self) -> str:
        lines = [
            f"{self.key:>14} {'frames':>6} {'E MAE':>8} {'F MAE':>8} {'DFT |F|':>8} {'F MAE/|F|':>9}",
            f"{'':>14} {'':>6} {'meV/at':>8} {'meV/Å':>8} {'meV/Å':>8} {'':>9}",
        ]
        for value, m in self.metrics.items():
            lines.append(
                f"{group_label(value):>14} {m.n_frames:>6} {m.energy_mae_meV_per_atom:>8.1f} "
                f"{m.force_mae_meV_per_A:>8.0f} {self.force_scale_meV_per_A[value]:>8.0f} "
                f"{self.relative_force_error(value):>9.0%}"
            )
        return "\n".join(lines)

    __str__ = table


@dataclass(frozen=True)
class ZeroShotResult:
    """Raw and reference-aligned errors of one model on one dataset."""

    model: str
    dataset: str
    raw: ErrorMetrics
    aligned: ErrorMetrics
    offsets_eV: dict[str, float]
    predictions: Predictions = field(repr=False)
    aligned_predictions: Predictions = field(repr=False)
    frames: list[Atoms] = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "raw": self.raw.as_dict(),
            "aligned": self.aligned.as_dict(),
            "offsets_eV": self.offsets_eV,
        }

    @property
    def same_dft_setup(self) -> bool | None:
        """Whether the model was pre-trained on ``dataset``'s DFT setup (``claims.same_dft_setup``).

        None when ``dataset`` names no bundled dataset or file (frames passed directly).
        """
        try:
            return claims.same_dft_setup(self.model, self.dataset)
        except FileNotFoundError:
            return None

    def errors_by(self, key: str) -> GroupedErrors:
        """Aligned errors per value of a per-frame ``info`` key, with each group's force scale.

        Each group's raw energy MAE and ``same_dft_setup`` ride along, so that
        ``GroupedErrors.comparison`` judges the energy error a chapter check judges.
        """
        return errors_by(
            self.frames,
            self.aligned_predictions,
            key,
            raw_predictions=self.predictions,
            same_dft_setup=self.same_dft_setup,
        )

    def judged_errors_by(self, key: str) -> GroupedErrors:
        """Errors per value of ``info[key]`` with the energies a chapter check judges.

        Raw predictions for a model pre-trained on the target's DFT setup
        (its per-element offsets are its own bias), aligned ones otherwise
        (``claims.judged_energy``): the metrics of both kinds of model then
        mean the same thing side by side.
        """
        if self.same_dft_setup:
            return errors_by(self.frames, self.predictions, key, same_dft_setup=True)
        return self.errors_by(key)

    def metrics_by(self, key: str) -> dict:
        """Aligned errors per value of a per-frame ``info`` key, e.g. ``"temperature_K"``."""
        return self.errors_by(key).metrics

    def table(self) -> str:
        raw, aligned = self.raw.table().splitlines(), self.aligned.table().splitlines()
        width = max(len(line) for line in raw)
        header = f"{'raw':<{width}}  | aligned (per-element offsets fitted)"
        body = [f"{a:<{width}}  | {b.split('  ', 1)[-1].strip()}" for a, b in zip(raw, aligned)]
        return "\n".join([f"{self.model} on {self.dataset}", header, *body])

    __str__ = table


def predict(
    model,
    frames: Sequence[Atoms],
    *,
    batch_size: int = 16,
    max_edges: int | str | None = "auto",
    compute_stress: bool = True,
    device: str = "auto",
    progress: bool = False,
    label: str | None = None,
) -> Predictions:
    """Energies, forces and stresses of ``model`` on ``frames``.

    ``model`` may be a registered name, ``"auto"``, a MACE file path, a
    loaded MACE ``torch.nn.Module`` (batched through mace-torch's data
    loader) or any ASE calculator (one structure at a time). ``label`` names
    the model in the result (default: its registered name, else its class).

    A MACE batch holds at most ``batch_size`` frames and at most ``max_edges``
    neighbour pairs. ``"auto"``: on a CPU, as many edges as keep one batch's
    per-edge features within ``graphs.CPU_BATCH_BYTES`` (about one 12-atom frame for
    MACE-MP-0 small, dozens of 2-atom frames for course-mini); on a GPU no limit.
    ``None``: no limit. ``graphs.CPU_BATCH_BYTES`` says why larger CPU batches are slower.
    """
    from ase.calculators.calculator import BaseCalculator
    from ase.data import atomic_numbers

    from course_lib.graphs import check_elements_known

    if isinstance(model, (str, os.PathLike)):
        from course_lib import models

        name = models.resolve_model_name(model)
        if name in models.REGISTRY and models.REGISTRY[name].kind != "mace":
            known = [atomic_numbers[symbol] for symbol in models.model_elements(name)]
            check_elements_known(frames, known, model_name=name)
            model = models.load_calculator(name, device=device)
        else:
            model = models.load_mace_model(name, device=device)
        label = label or name
    else:
        label = label or type(model).__name__
    if isinstance(model, BaseCalculator):
        predictions = _predict_with_calculator(model, frames, label, compute_stress, progress)
    else:
        check_elements_known(frames, model.atomic_numbers.tolist(), model_name=label)
        predictions = _predict_mace_batched(
            model, frames, label, batch_size, max_edges, compute_stress, progress
        )
    check_finite(frames, predictions)
    return predictions


@contextmanager
def _parameters_frozen(model):
    """Parameters without ``requires_grad`` while inside, restored after.

    Forces and stress are gradients with respect to positions and strain only;
    parameters that require grad make autograd record and keep their branches
    too (about 15 % of the batched time measured on MACE-MP-0 small's size).
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _predict_mace_batched(model, frames, label, batch_size, max_edges, compute_stress, progress):
    from tqdm.auto import tqdm

    from course_lib.graphs import cpu_edge_budget, graph_loader

    device = next(model.parameters()).device
    if max_edges == "auto":
        max_edges = cpu_edge_budget(model) if device.type == "cpu" else None
    energies, forces, stresses = [], [], []
    loader = graph_loader(frames, model, batch_size=batch_size, max_edges=max_edges)
    with _parameters_frozen(model):
        for batch in tqdm(loader, desc="predict", disable=not progress, leave=False):
            batch = batch.to(device)
            out = model(batch.to_dict(), compute_stress=compute_stress, training=False)
            energies.append(out["energy"].detach().cpu().numpy())
            ptr = batch.ptr.cpu().numpy()
            batch_forces = out["forces"].detach().cpu().numpy()
            forces += [batch_forces[a:b] for a, b in zip(ptr[:-1], ptr[1:])]
            if compute_stress:
                stresses += [
                    full_3x3_to_voigt_6_stress(s) for s in out["stress"].detach().cpu().numpy()
                ]
    return Predictions(
        model=label,
        energies=np.concatenate(energies),
        forces=forces,
        stresses=np.array(stresses) if compute_stress else None,
    )


def _predict_with_calculator(calc, frames, label, compute_stress, progress):
    from tqdm.auto import tqdm

    energies, forces, stresses = [], [], []
    for atoms in tqdm(frames, desc="predict", disable=not progress, leave=False):
        atoms = atoms.copy()
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces().copy())
        if compute_stress:
            stresses.append(atoms.get_stress(voigt=True).copy())
    return Predictions(
        model=label,
        energies=np.array(energies),
        forces=forces,
        stresses=np.array(stresses) if compute_stress else None,
    )


def check_finite(frames: Sequence[Atoms], predictions: Predictions) -> None:
    """Raise ``NonFinitePredictionError`` naming the frame whose prediction is NaN or inf.

    Such a frame usually has overlapping atoms (a zero distance makes the
    model's radial functions divide by zero); the message gives its closest
    pair. A non-finite energy marks the frame at fault: computed in one batch
    with stresses, its NaN gradients can spill into the forces of the other
    frames of the batch, so frames are named by their energy first.
    """
    n = len(predictions.energies)
    bad = {
        "energy": ~np.isfinite(predictions.energies),
        "forces": np.array([not np.all(np.isfinite(f)) for f in predictions.forces], dtype=bool),
        "stress": (
            np.zeros(n, dtype=bool)
            if predictions.stresses is None
            else ~np.all(np.isfinite(predictions.stresses), axis=1)
        ),
    }
    culprits = np.flatnonzero(bad["energy"])
    if culprits.size == 0:
        culprits = np.flatnonzero(bad["forces"] | bad["stress"])
    if culprits.size == 0:
        return
    index = int(culprits[0])
    what = " and ".join(name for name, flags in bad.items() if flags[index])
    more = f" (and {culprits.size - 1} more frames)" if culprits.size > 1 else ""
    atoms = frames[index]
    raise NonFinitePredictionError(
        f"{predictions.model} predicted non-finite {what} for frame {index}{more} "
        f"({atoms.get_chemical_formula()}){_closest_pair(atoms)}; fix or remove that frame "
        "(non-finite predictions are never turned into errors)"
    )


def _closest_pair(atoms: Atoms, *, cutoff_A: float = 1.0) -> str:
    """The closest pair of atoms nearer than ``cutoff_A`` (minimum image), as message text."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff_A)
    if len(d) == 0:
        return ""
    k = int(np.argmin(d))
    return f", whose atoms {i[k]} and {j[k]} are only {d[k]:.3f} Å apart"


def apply_offsets(
    frames: Sequence[Atoms], predictions: Predictions, offsets_eV: dict[str, float]
) -> Predictions:
    elements = sorted(offsets_eV)
    shift = composition_matrix(frames, elements) @ np.array([offsets_eV[e] for e in elements])
    return replace(predictions, energies=predictions.energies + shift)


def error_metrics(frames: Sequence[Atoms], predictions: Predictions) -> ErrorMetrics:
    """MAE/RMSE of energies (per atom), force components, stresses, and force MAE per element.

    Raises ``NonFinitePredictionError`` if any prediction is NaN or inf.
    """
    check_finite(frames, predictions)
    natoms = ds.n_atoms(frames)
    energy_err = (predictions.energies - ds.energies(frames)) / natoms * 1e3
    model_forces = np.concatenate(predictions.forces)
    dft_forces = np.concatenate(ds.forces(frames))
    force_err = model_forces - dft_forces
    force_err_meV = force_err * 1e3
    symbols = np.concatenate([atoms.get_chemical_symbols() for atoms in frames])
    by_element = {
        el: float(np.abs(force_err_meV[symbols == el]).mean()) for el in sorted(set(symbols))
    }
    stress_mae = None
    if predictions.stresses is not None and all(ds.STRESS_KEY in a.info for a in frames):
        reference = np.array([_voigt(a.info[ds.STRESS_KEY]) for a in frames])
        stress_mae = float(np.abs(predictions.stresses - reference).mean() * 1e3)
    return ErrorMetrics(
        n_frames=len(frames),
        n_atoms=int(natoms.sum()),
        energy_mae_meV_per_atom=float(np.abs(energy_err).mean()),
        energy_rmse_meV_per_atom=float(np.sqrt((energy_err**2).mean())),
        force_mae_meV_per_A=float(np.abs(force_err_meV).mean()),
        force_rmse_meV_per_A=float(np.sqrt((force_err_meV**2).mean())),
        stress_mae_meV_per_A3=stress_mae,
        force_mae_by_element_meV_per_A=by_element,
        force_slope=force_slope(dft_forces, model_forces),
        energy_bias_meV_per_atom=float(energy_err.mean()),
    )


def force_slope(reference_forces: np.ndarray, predicted_forces: np.ndarray) -> float | None:
    """s minimising |F_predicted - s F_reference|² (through the origin); None if F_ref = 0."""
    norm = float(np.sum(np.square(reference_forces)))
    if norm == 0.0:
        return None
    return float(np.sum(reference_forces * predicted_forces) / norm)


def evaluate(
    model,
    frames: Sequence[Atoms],
    *,
    dataset: str = "<frames>",
    batch_size: int = 16,
    device: str = "auto",
    progress: bool = False,
) -> ZeroShotResult:
    """Zero-shot parity of ``model`` on labelled ``frames``: raw and aligned errors."""
    ds.validate_frames(frames, source=dataset, require_pbc=False)
    predictions = predict(model, frames, batch_size=batch_size, device=device, progress=progress)
    offsets = fit_reference_offsets(frames, predictions.energies)
    aligned = apply_offsets(frames, predictions, offsets)
    return ZeroShotResult(
        model=predictions.model,
        dataset=dataset,
        raw=error_metrics(frames, predictions),
        aligned=error_metrics(frames, aligned),
        offsets_eV=offsets,
        predictions=predictions,
        aligned_predictions=aligned,
        frames=list(frames),
    )


def errors_by(
    frames: Sequence[Atoms],
    predictions: Predictions,
    key: str,
    *,
    raw_predictions: Predictions | None = None,
    same_dft_setup: bool | None = None,
) -> GroupedErrors:
    """``error_metrics`` per value of ``info[key]`` (e.g. ``"temperature_K"``), with force scales.

    For ``predictions`` aligned per element, pass the model's
    ``raw_predictions`` and whether it was pre-trained on the target's DFT
    setup (``claims.same_dft_setup``; None: not known): the comparison then
    judges raw energies for such a model and aligned ones otherwise.
    """
    groups = ds.group_indices(frames, key)
    subsets = {value: [frames[i] for i in idx] for value, idx in groups.items()}
    raw_energy = None
    if raw_predictions is not None:
        raw = {
            value: error_metrics(subsets[value], _take(raw_predictions, idx))
            for value, idx in groups.items()
        }
        raw_energy = {value: m.energy_mae_meV_per_atom for value, m in raw.items()}
    return GroupedErrors(
        key=key,
        metrics={
            value: error_metrics(subsets[value], _take(predictions, idx))
            for value, idx in groups.items()
        },
        force_scale_meV_per_A={
            value: ds.force_scale_meV_per_A(group) for value, group in subsets.items()
        },
        raw_energy_mae_meV_per_atom=raw_energy,
        same_dft_setup=same_dft_setup,
    )


def group_label(value) -> str:
    """A group's value as text: numbers without trailing zeros (300.0 -> "300")."""
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def group_text(key: str, value) -> str:
    """A group's value with the unit its key names (``temperature_K``, 300.0 -> "300 K")."""
    return group_label(value) + (" K" if key.endswith("_K") else "")


def _take(predictions: Predictions, indices: Sequence[int]) -> Predictions:
    return replace(
        predictions,
        energies=predictions.energies[list(indices)],
        forces=[predictions.forces[i] for i in indices],
        stresses=None if predictions.stresses is None else predictions.stresses[list(indices)],
    )


def _voigt(stress) -> np.ndarray:
    stress = np.asarray(stress, dtype=float)
    return full_3x3_to_voigt_6_stress(stress) if stress.shape == (3, 3) else stress


@dataclass(frozen=True)
class EquationOfState:
    """Energy-volume curve of a crystal and its Birch-Murnaghan fit."""

    model: str
    formula: str
    volumes_A3: np.ndarray
    energies_eV: np.ndarray
    v0_A3: float
    e0_eV: float
    bulk_modulus_GPa: float

    def lattice_constant_A(self, atoms_per_cell_ratio: float = 1.0) -> float:
        """Cubic lattice constant for ``v0`` scaled to the conventional cell, Å."""
        return float((self.v0_A3 * atoms_per_cell_ratio) ** (1 / 3))


def equation_of_state(
    model, atoms: Atoms, *, strains: Sequence[float] = np.linspace(-0.04, 0.04, 9)
) -> EquationOfState:
    """Zero-shot E(V): scale the cell by (1 + strain) per axis, fit Birch-Murnaghan."""
    from ase.eos import EquationOfState as AseEOS
    from ase.units import GPa

    scaled = []
    for strain in strains:
        copy = atoms.copy()
        copy.set_cell(atoms.cell * (1 + strain), scale_atoms=True)
        scaled.append(copy)
    predictions = predict(model, scaled, compute_stress=False)
    volumes = np.array([a.get_volume() for a in scaled])
    v0, e0, bulk_modulus = AseEOS(volumes, predictions.energies, eos="birchmurnaghan").fit()
    return EquationOfState(
        model=predictions.model,
        formula=atoms.get_chemical_formula(),
        volumes_A3=volumes,
        energies_eV=predictions.energies,
        v0_A3=float(v0),
        e0_eV=float(e0),
        bulk_modulus_GPa=float(bulk_modulus / GPa),
    )
