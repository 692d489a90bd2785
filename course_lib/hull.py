"""The flowchart's second question: are the model's energies on the right convex hull?

Given relaxed competing phases (frames with ``info["phase"]`` and DFT
energies) and a model's energies of the same frames, build one pymatgen
``PhaseDiagram`` from each and compare them: the set of stable phases, and
each phase's energy above the hull and formation energy (meV/atom).

Alignment on the elemental references. A foundation model trained on one
DFT setup and a target labelled with another differ by a per-element
constant (see ``zero_shot``). We shift the model's energies by one offset
per element, chosen so that the model's energy per atom of each element's
DFT ground-state phase equals DFT's. Two reasons for doing exactly this:

* A hull is invariant to per-element shifts (formation energies subtract
  the elemental references), so the alignment cannot create or hide an
  ordering flip; it only makes absolute energies of the two sources
  comparable, for the table.
* Fitting the offsets by least squares on all phases (as the parity check
  does for MD snapshots) would be wrong here: with few phases, the fit
  would absorb part of the compounds' formation-energy errors into the
  offsets, hiding exactly the error the hull check is there to find.

Each phase's energy is that of its lowest-energy frame (per atom), for
each source separately. Units: eV in; meV/atom out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from course_lib import data as ds

PHASE_KEY = "phase"
STABLE_TOLERANCE_eV = 1e-6


@dataclass(frozen=True)
class HullComparison:
    """DFT's and a model's convex hulls over the same phases (meV/atom).

    ``passed``: same stable set, and, if ``tolerance_meV_per_atom`` is set,
    every phase's energy above hull within it.
    """

    model: str
    elements: tuple[str, ...]
    phases: tuple[str, ...]
    formulas: tuple[str, ...]
    dft_stable: tuple[str, ...]
    model_stable: tuple[str, ...]
    dft_e_above_hull_meV_per_atom: dict[str, float]
    model_e_above_hull_meV_per_atom: dict[str, float]
    dft_formation_meV_per_atom: dict[str, float]
    model_formation_meV_per_atom: dict[str, float]
    offsets_eV: dict[str, float]
    tolerance_meV_per_atom: float | None = None
    diagrams: tuple = field(default=(), repr=False, compare=False)  # (DFT, model) PhaseDiagram

    @property
    def same_stable_set(self) -> bool:
        return set(self.dft_stable) == set(self.model_stable)

    @property
    def missing(self) -> tuple[str, ...]:
        """Stable in DFT, not in the model."""
        return tuple(p for p in self.dft_stable if p not in self.model_stable)

    @property
    def spurious(self) -> tuple[str, ...]:
        """Stable in the model, not in DFT."""
        return tuple(p for p in self.model_stable if p not in self.dft_stable)

    @property
    def e_above_hull_errors_meV_per_atom(self) -> dict[str, float]:
        return {
            p: self.model_e_above_hull_meV_per_atom[p] - self.dft_e_above_hull_meV_per_atom[p]
            for p in self.phases
        }

    @property
    def max_abs_e_above_hull_error_meV_per_atom(self) -> float:
        return float(max(abs(v) for v in self.e_above_hull_errors_meV_per_atom.values()))

    @property
    def formation_mae_meV_per_atom(self) -> float:
        errors = [
            self.model_formation_meV_per_atom[p] - self.dft_formation_meV_per_atom[p]
            for p in self.phases
        ]
        return float(np.mean(np.abs(errors)))

    @property
    def passed(self) -> bool:
        within = (
            self.tolerance_meV_per_atom is None
            or self.max_abs_e_above_hull_error_meV_per_atom <= self.tolerance_meV_per_atom
        )
        return self.same_stable_set and within

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "passed": self.passed,
            "same_stable_set": self.same_stable_set,
            "dft_stable": list(self.dft_stable),
            "model_stable": list(self.model_stable),
            "missing": list(self.missing),
            "spurious": list(self.spurious),
            "max_abs_e_above_hull_error_meV_per_atom": self.max_abs_e_above_hull_error_meV_per_atom,
            "formation_mae_meV_per_atom": self.formation_mae_meV_per_atom,
            "tolerance_meV_per_atom": self.tolerance_meV_per_atom,
            "phases": self.rows(),
            "offsets_eV": self.offsets_eV,
        }

    def rows(self) -> list[dict]:
        return [
            {
                "phase": p,
                "formula": f,
                "dft_e_above_hull_meV_per_atom": self.dft_e_above_hull_meV_per_atom[p],
                "model_e_above_hull_meV_per_atom": self.model_e_above_hull_meV_per_atom[p],
                "dft_formation_meV_per_atom": self.dft_formation_meV_per_atom[p],
                "model_formation_meV_per_atom": self.model_formation_meV_per_atom[p],
                "dft_stable": p in self.dft_stable,
                "model_stable": p in self.model_stable,
            }
            for p, f in zip(self.phases, self.formulas)
        ]

    def table(self) -> str:
        head = (
            f"{'phase':<14} {'formula':<10} {'Ehull DFT':>10} {'Ehull model':>12} "
            f"{'Ef DFT':>9} {'Ef model':>9}  stable (DFT/model)"
        )
        lines = [f"{self.model}: convex hull vs DFT (meV/atom)", head]
        for row in self.rows():
            flags = (
                f"{'yes' if row['dft_stable'] else 'no'}/{'yes' if row['model_stable'] else 'no'}"
            )
            if row["dft_stable"] != row["model_stable"]:
                flags += "  <- flip"
            lines.append(
                f"{row['phase']:<14} {row['formula']:<10} "
                f"{row['dft_e_above_hull_meV_per_atom']:>10.1f} "
                f"{row['model_e_above_hull_meV_per_atom']:>12.1f} "
                f"{row['dft_formation_meV_per_atom']:>9.1f} "
                f"{row['model_formation_meV_per_atom']:>9.1f}  {flags}"
            )
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"{verdict}: stable sets {'agree' if self.same_stable_set else 'differ'}; "
            f"max |ΔE_hull| {self.max_abs_e_above_hull_error_meV_per_atom:.1f} meV/atom"
            + (
                f" (tolerance {self.tolerance_meV_per_atom:g})"
                if self.tolerance_meV_per_atom is not None
                else ""
            )
        )
        return "\n".join(lines)

    __str__ = table


def phase_names(frames: Sequence[Atoms], *, phase_key: str = PHASE_KEY) -> list[str]:
    """Each frame's ``info[phase_key]``; raises ``DatasetError`` naming a frame without it."""
    names = []
    for index, atoms in enumerate(frames):
        if phase_key not in atoms.info:
            raise ds.DatasetError(
                f"frame {index} has no info[{phase_key!r}]; the hull check needs each "
                "competing phase named"
            )
        names.append(str(atoms.info[phase_key]))
    return names


def elemental_offsets(
    frames: Sequence[Atoms], dft_energies: np.ndarray, model_energies: np.ndarray
) -> dict[str, float]:
    """Per-element shift δ (eV/atom) making the model match DFT on each element's ground state.

    The ground state is the single-element frame of lowest DFT energy per
    atom; raises ``DatasetError`` for an element with no such frame.
    """
    natoms = ds.n_atoms(frames)
    offsets = {}
    for element in sorted({s for a in frames for s in a.get_chemical_symbols()}):
        pure = [i for i, a in enumerate(frames) if set(a.get_chemical_symbols()) == {element}]
        if not pure:
            raise ds.DatasetError(
                f"no elemental phase of {element}: the hull needs every element's reference "
                "(add a relaxed pure-element structure)"
            )
        best = min(pure, key=lambda i: dft_energies[i] / natoms[i])
        offsets[element] = float((dft_energies[best] - model_energies[best]) / natoms[best])
    return offsets


def phase_diagram(frames: Sequence[Atoms], energies: np.ndarray, names: Sequence[str]):
    """pymatgen ``PhaseDiagram`` of the lowest-energy frame (per atom) of each phase."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    natoms = ds.n_atoms(frames)
    best: dict[str, int] = {}
    for i, name in enumerate(names):
        if name not in best or energies[i] / natoms[i] < energies[best[name]] / natoms[best[name]]:
            best[name] = i
    entries = [
        PDEntry(Composition(frames[i].get_chemical_formula()), float(energies[i]), name=name)
        for name, i in best.items()
    ]
    return PhaseDiagram(entries)


def _hull_numbers(diagram) -> tuple[tuple[str, ...], dict[str, float], dict[str, float]]:
    """Stable phase names, energy above hull and formation energy per phase (meV/atom)."""
    above = {e.name: 1e3 * float(diagram.get_e_above_hull(e)) for e in diagram.all_entries}
    formation = {
        e.name: 1e3 * float(diagram.get_form_energy_per_atom(e)) for e in diagram.all_entries
    }
    stable = tuple(sorted(name for name, e in above.items() if e <= STABLE_TOLERANCE_eV * 1e3))
    return stable, above, formation


def compare_hulls(
    frames: Sequence[Atoms],
    model_energies: np.ndarray,
    *,
    model: str = "model",
    tolerance_meV_per_atom: float | None = None,
    phase_key: str = PHASE_KEY,
) -> HullComparison:
    """DFT's convex hull (``info["REF_energy"]``, eV) against a model's energies (eV) of the same frames."""
    model_energies = np.asarray(model_energies, dtype=float)
    if model_energies.shape != (len(frames),):
        raise ValueError(
            f"model_energies has shape {model_energies.shape}, expected ({len(frames)},)"
        )
    names = phase_names(frames, phase_key=phase_key)
    dft = ds.energies(frames)
    offsets = elemental_offsets(frames, dft, model_energies)
    symbols = [a.get_chemical_symbols() for a in frames]
    aligned = model_energies + np.array([sum(offsets[s] for s in syms) for syms in symbols])
    dft_diagram = phase_diagram(frames, dft, names)
    model_diagram = phase_diagram(frames, aligned, names)
    dft_stable, dft_above, dft_formation = _hull_numbers(dft_diagram)
    model_stable, model_above, model_formation = _hull_numbers(model_diagram)
    phases = tuple(dict.fromkeys(names))
    formula = {n: frames[names.index(n)].get_chemical_formula(empirical=True) for n in phases}
    return HullComparison(
        model=model,
        elements=tuple(sorted(offsets)),
        phases=phases,
        formulas=tuple(formula[p] for p in phases),
        dft_stable=dft_stable,
        model_stable=model_stable,
        dft_e_above_hull_meV_per_atom=dft_above,
        model_e_above_hull_meV_per_atom=model_above,
        dft_formation_meV_per_atom=dft_formation,
        model_formation_meV_per_atom=model_formation,
        offsets_eV=offsets,
        tolerance_meV_per_atom=tolerance_meV_per_atom,
        diagrams=(dft_diagram, model_diagram),
    )


def hull_check(
    model, frames: Sequence[Atoms], *, tolerance_meV_per_atom: float | None = None, **predict_kwargs
) -> HullComparison:
    """Predict the phases with ``model`` (anything ``zero_shot.predict`` accepts) and compare hulls."""
    from course_lib.zero_shot import predict

    predict_kwargs.setdefault("compute_stress", False)
    predictions = predict(model, frames, **predict_kwargs)
    return compare_hulls(
        frames,
        predictions.energies,
        model=predictions.model,
        tolerance_meV_per_atom=tolerance_meV_per_atom,
    )
