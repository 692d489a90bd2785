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

Why a check fails (``HullComparison.explanation``). Computed, not typed:
the phases that flip; the phase whose formation energy is furthest from
DFT's; when the model's training corpus is given (``corpus_check``), each
phase's local environments against the corpus (``coverage``: pair distances
and bond angles the corpus never shows) and whether it is a molecule in a
box (``periodic_dimension`` 0) while the corpus holds only crystals; and,
when the corpus and the phases share one DFT setup (``info["dft_fingerprint"]``),
so that a model's raw energies are comparable with DFT's, how much of a
formation-energy error comes through the elemental references (a wrong O₂
shifts every oxide by x_O times its error) and how much is the phase's own.

What a pass does not vouch for (``HullComparison.caveats``). A stable set
can survive large formation-energy errors: in Mg-O, a wrong O₂ reference
moves MgO's formation energy by half its error, and MgO can stay on the hull.
A passing check whose formation energies differ from DFT's by more than
``FORMATION_TOLERANCE_meV_PER_ATOM`` says so, with the same split into the
elemental references and the phase's own error.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms
from ase.formula import Formula

from course_lib import data as ds

PHASE_KEY = "phase"
STABLE_TOLERANCE_eV = 1e-6
#: Atoms closer than this times the sum of their covalent radii are bonded (``periodic_dimension``).
#: At 1.35 every frame of mini-mptrj, metals included, is a 3-periodic network and O₂ in a box is 0.
BOND_FACTOR = 1.35
#: A passing check warns when a phase's formation energy is further than this from DFT's
#: (meV/atom). 100 meV/atom is about the error of high-throughput PBE formation energies against
#: experiment (mean absolute 96 meV/atom over 1,670 compounds, Kirklin et al., npj Comput.
#: Mater. 1, 15010, 2015): a model further than this from the DFT it imitates adds an error
#: larger than the functional's own.
FORMATION_TOLERANCE_meV_PER_ATOM = 100.0


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class PhaseEnvironment:
    """One phase's local environments against the model's training corpus.

    ``periodic_dimension``: directions in which its bonded network repeats
    (0: a molecule in a box, 3: a bulk crystal). ``coverage_score``: share of
    its pair distances and bond angles in bins the corpus covers
    (``coverage.compare_coverage``); ``uncovered``: the flagged ranges
    ("O-O 1.20-1.25 Å"); ``missing_elements``: elements the corpus lacks.
    """

    phase: str
    periodic_dimension: int
    coverage_score: float | None  # None: not periodic in 3D, so not histogrammed
    uncovered: tuple[str, ...]
    missing_elements: tuple[str, ...] = ()

    @property
    def molecule(self) -> bool:
        return self.periodic_dimension == 0

    @property
    def outside_corpus(self) -> bool:
        return bool(self.uncovered or self.missing_elements)

    def as_dict(self) -> dict:
        return {**asdict(self), "molecule": self.molecule, "outside_corpus": self.outside_corpus}


@dataclass(frozen=True)
class CorpusCheck:
    """Competing phases against a model's training corpus (what ``corpus_check`` found).

    ``periodic_dimensions``: how many corpus frames are 0-, 1-, 2- and
    3-periodic. ``same_dft_setup``: whether every phase and corpus frame
    carries one DFT fingerprint (None: a frame has none), so that a model's
    raw energies are comparable with the phases' DFT energies.
    """

    corpus: str
    n_frames: int
    periodic_dimensions: tuple[int, int, int, int]
    same_dft_setup: bool | None
    environments: tuple[PhaseEnvironment, ...]

    @property
    def crystals_only(self) -> bool:
        return self.periodic_dimensions[3] == self.n_frames

    def environment(self, phase: str) -> PhaseEnvironment | None:
        return next((e for e in self.environments if e.phase == phase), None)

    def as_dict(self) -> dict:
        return {
            "corpus": self.corpus,
            "n_frames": self.n_frames,
            "periodic_dimensions": list(self.periodic_dimensions),
            "crystals_only": self.crystals_only,
            "same_dft_setup": self.same_dft_setup,
            "environments": [e.as_dict() for e in self.environments],
        }


def periodic_dimension(atoms: Atoms, *, bond_factor: float = BOND_FACTOR) -> int:
    """In how many directions the bonded network of ``atoms`` repeats (0-3; the most of any part).

    Bonds: distances below ``bond_factor`` times the sum of covalent radii,
    across periodic images; the rank of each bonded component's periodic
    translations (ase's rank determination algorithm) is its dimension. A
    molecule in a box is 0, a layered solid 2, a bulk crystal 3.
    """
    from ase.geometry.dimensionality.rank_determination import RDA
    from ase.neighborlist import natural_cutoffs
    from matscipy.neighbours import neighbour_list

    if not atoms.pbc.any():
        return 0  # nothing repeats
    radii = np.asarray(natural_cutoffs(atoms, mult=bond_factor), dtype=float)
    first, second, shifts = neighbour_list("ijS", atoms, radii)  # bonded: d < r_i + r_j
    rda = RDA(len(atoms))
    for i, j, shift in zip(first, second, shifts):
        rda.insert_bond(int(i), int(j), tuple(int(n) for n in shift))
    histogram = rda.check()
    return max(dim for dim, count in enumerate(histogram) if count)


def corpus_check(
    frames: Sequence[Atoms],
    corpus: str | os.PathLike | Sequence[Atoms],
    *,
    corpus_name: str | None = None,
    phase_key: str = PHASE_KEY,
) -> CorpusCheck:
    """Each phase of ``frames`` against the training ``corpus`` (dataset name, path or frames).

    Coverage (``coverage.compute_histograms`` of all of a phase's frames
    against the whole corpus, ``compare_coverage``'s default thresholds),
    the periodic dimension of its lowest-energy DFT frame, of every corpus
    frame, and whether phases and corpus share one DFT fingerprint.
    """
    from course_lib.coverage import (
        CoverageError,
        MissingElementsWarning,
        compare_coverage,
        compute_histograms,
    )
    from course_lib.dft import FINGERPRINT_KEY

    if isinstance(corpus, (str, os.PathLike)):
        corpus_name = corpus_name or str(corpus)
        corpus = ds.read_dataset(corpus, require_pbc=False)
    corpus_name = corpus_name or "corpus"
    reference = compute_histograms(corpus, source=corpus_name)
    names = phase_names(frames, phase_key=phase_key)
    lowest = lowest_frames(frames, ds.energies(frames), names)
    environments = []
    for phase, index in lowest.items():
        members = [atoms for atoms, name in zip(frames, names) if name == phase]
        dimension = periodic_dimension(frames[index])
        try:
            target = compute_histograms(members, settings=reference.settings, source=phase)
        except CoverageError:  # not periodic in 3D: no histograms, the dimension still says
            environments.append(PhaseEnvironment(phase, dimension, None, ()))
            continue
        with warnings.catch_warnings():  # missing elements are recorded below
            warnings.simplefilter("ignore", MissingElementsWarning)
            report = compare_coverage(target, reference)
        environments.append(
            PhaseEnvironment(
                phase=phase,
                periodic_dimension=dimension,
                coverage_score=float(report.score),
                uncovered=tuple(
                    f"{f.channel} {f.low:.2f}-{f.high:.2f} {f.unit}" for f in report.flagged
                ),
                missing_elements=tuple(report.missing_elements),
            )
        )
    dimensions = np.bincount([periodic_dimension(a) for a in corpus], minlength=4)
    fingerprints = [a.info.get(FINGERPRINT_KEY) for a in (*frames, *corpus)]
    same = None if None in fingerprints else len(set(fingerprints)) == 1
    return CorpusCheck(
        corpus=corpus_name,
        n_frames=len(corpus),
        periodic_dimensions=tuple(int(n) for n in dimensions[:4]),
        same_dft_setup=same,
        environments=tuple(environments),
    )


# --------------------------------------------------------------------------- the comparison


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
    model_minus_dft_meV_per_atom: dict[str, float] = field(default_factory=dict)  # raw, unaligned
    corpus: CorpusCheck | None = None

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
        return float(np.mean(np.abs(list(self.formation_errors_meV_per_atom.values()))))

    @property
    def within_tolerance(self) -> bool:
        return (
            self.tolerance_meV_per_atom is None
            or self.max_abs_e_above_hull_error_meV_per_atom <= self.tolerance_meV_per_atom
        )

    @property
    def passed(self) -> bool:
        return self.same_stable_set and self.within_tolerance

    @property
    def formation_errors_meV_per_atom(self) -> dict[str, float]:
        """Model minus DFT formation energy of each phase (meV/atom)."""
        return {
            p: self.model_formation_meV_per_atom[p] - self.dft_formation_meV_per_atom[p]
            for p in self.phases
        }

    @property
    def dominant_phase(self) -> str:
        """The phase whose formation energy is furthest from DFT's."""
        errors = self.formation_errors_meV_per_atom
        return max(self.phases, key=lambda p: abs(errors[p]))

    def reference_phases(self, source: str) -> dict[str, str]:
        """Each element's reference phase: its lowest single-element phase in ``"dft"`` or ``"model"``."""
        formation = {
            "dft": self.dft_formation_meV_per_atom,
            "model": self.model_formation_meV_per_atom,
        }[source]
        references = {}
        for element in self.elements:
            pure = [p for p, f in zip(self.phases, self.formulas) if f == element]
            references[element] = min(pure, key=lambda p: formation[p])
        return references

    @property
    def reference_errors_meV_per_atom(self) -> dict[str, float]:
        """Per element, the model's reference energy minus DFT's, raw (meV/atom); {} without raw energies.

        The model's reference is its own lowest phase of the element, DFT's
        its own; a formation energy subtracts x_e times this from its phase's
        raw error. Meaningful only where model and data share a DFT setup.
        """
        raw = self.model_minus_dft_meV_per_atom
        if not raw:
            return {}
        dft_refs = self.reference_phases("dft")
        return {
            e: raw[dft_refs[e]] - self.model_formation_meV_per_atom[dft_refs[e]]
            for e in self.elements
        }

    def formation_error_parts(self, phase: str) -> dict[str, float]:
        """``phase``'s formation-energy error (meV/atom) split exactly into its parts.

        ``own``: the model's raw energy of the phase minus DFT's; one entry
        per element: -x_e times that element's reference error (what the
        references pass on). They add up to the formation-energy error.
        """
        fractions = composition_fractions(self.formulas[self.phases.index(phase)])
        references = self.reference_errors_meV_per_atom
        parts = {e: -fractions[e] * references[e] for e in fractions}
        return {"own": self.model_minus_dft_meV_per_atom[phase], **parts}

    @property
    def explanation(self) -> tuple[str, ...]:
        """Why the check failed, computed from its numbers (empty when it passed)."""
        return () if self.passed else explain_failure(self)

    @property
    def caveats(self) -> tuple[str, ...]:
        """What a pass does not vouch for, computed from its numbers (empty when it failed)."""
        return formation_caveats(self) if self.passed else ()

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
            "dominant_phase": self.dominant_phase,
            "reference_phases": {
                "dft": self.reference_phases("dft"),
                "model": self.reference_phases("model"),
            },
            "reference_errors_meV_per_atom": self.reference_errors_meV_per_atom,
            "corpus": self.corpus.as_dict() if self.corpus is not None else None,
            "explanation": list(self.explanation),
            "formation_tolerance_meV_per_atom": FORMATION_TOLERANCE_meV_PER_ATOM,
            "caveats": list(self.caveats),
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
                "model_minus_dft_meV_per_atom": self.model_minus_dft_meV_per_atom.get(p),
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
        lines += [f"  why: {reason}" for reason in self.explanation]
        lines += [f"  caveat: {caveat}" for caveat in self.caveats]
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


def lowest_frames(
    frames: Sequence[Atoms], energies: np.ndarray, names: Sequence[str]
) -> dict[str, int]:
    """Index of each phase's lowest-energy frame (per atom), phases in order of appearance."""
    natoms = ds.n_atoms(frames)
    best: dict[str, int] = {}
    for i, name in enumerate(names):
        if name not in best or energies[i] / natoms[i] < energies[best[name]] / natoms[best[name]]:
            best[name] = i
    return best


def phase_diagram(frames: Sequence[Atoms], energies: np.ndarray, names: Sequence[str]):
    """pymatgen ``PhaseDiagram`` of the lowest-energy frame (per atom) of each phase."""
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    entries = [
        PDEntry(Composition(frames[i].get_chemical_formula()), float(energies[i]), name=name)
        for name, i in lowest_frames(frames, energies, names).items()
    ]
    return PhaseDiagram(entries)


def composition_fractions(formula: str) -> dict[str, float]:
    """Atom fraction of each element of ``formula`` ("Li2O" -> Li 2/3, O 1/3)."""
    counts = Formula(formula).count()
    total = sum(counts.values())
    return {element: n / total for element, n in counts.items()}


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
    corpus: CorpusCheck | None = None,
) -> HullComparison:
    """DFT's convex hull (``info["REF_energy"]``, eV) against a model's energies (eV) of the same frames.

    ``corpus``: the phases checked against the model's training corpus
    (``corpus_check``), for the explanation of a failure.
    """
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
    natoms = ds.n_atoms(frames)
    dft_best = lowest_frames(frames, dft, names)
    model_best = lowest_frames(frames, model_energies, names)
    raw = {
        p: 1e3
        * (
            model_energies[model_best[p]] / natoms[model_best[p]]
            - dft[dft_best[p]] / natoms[dft_best[p]]
        )
        for p in phases
    }
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
        model_minus_dft_meV_per_atom={p: float(v) for p, v in raw.items()},
        corpus=corpus,
    )


def hull_check(
    model,
    frames: Sequence[Atoms],
    *,
    tolerance_meV_per_atom: float | None = None,
    corpus: str | os.PathLike | CorpusCheck | None = None,
    **predict_kwargs,
) -> HullComparison:
    """Predict the phases with ``model`` (anything ``zero_shot.predict`` accepts) and compare hulls.

    ``corpus``: the model's training corpus (a dataset name or path, checked
    here with ``corpus_check``, or a ``CorpusCheck`` made once for several
    models), to explain a failure; None leaves that part unchecked.
    """
    from course_lib.zero_shot import predict

    if corpus is not None and not isinstance(corpus, CorpusCheck):
        corpus = corpus_check(frames, corpus)
    predict_kwargs.setdefault("compute_stress", False)
    predictions = predict(model, frames, **predict_kwargs)
    return compare_hulls(
        frames,
        predictions.energies,
        model=predictions.model,
        tolerance_meV_per_atom=tolerance_meV_per_atom,
        corpus=corpus,
    )


# --------------------------------------------------------------------------- why it failed


def explain_failure(result: HullComparison) -> tuple[str, ...]:
    """Why ``result`` failed, one computed reason per string (``HullComparison.explanation``).

    The flips (phases missing from or spurious in the model's stable set);
    the energy-above-hull error beyond the tolerance, if that failed; the
    largest formation-energy error; its split into the phase's own error and
    what the elemental references pass on (only with one DFT setup, else
    said not decidable); and the corpus check of each phase involved.
    """
    dft_above = result.dft_e_above_hull_meV_per_atom
    model_above = result.model_e_above_hull_meV_per_atom
    reasons = []
    if result.missing:
        reasons.append(
            "stable in DFT, not in the model: "
            + ", ".join(
                f"{p} (model: {model_above[p]:.1f} meV/atom above the hull)" for p in result.missing
            )
        )
    if result.spurious:
        reasons.append(
            "stable in the model, not in DFT: "
            + ", ".join(
                f"{p} (DFT: {dft_above[p]:.1f} meV/atom above the hull)" for p in result.spurious
            )
        )
    if not result.within_tolerance:
        errors = result.e_above_hull_errors_meV_per_atom
        worst = max(errors, key=lambda p: abs(errors[p]))
        reasons.append(
            f"largest energy-above-hull error: {worst}, {errors[worst]:+.1f} meV/atom, "
            f"beyond the tolerance {result.tolerance_meV_per_atom:g}"
        )
    dominant = result.dominant_phase
    reasons.append(
        f"largest formation-energy error: {dominant}, model "
        f"{result.model_formation_meV_per_atom[dominant]:.1f} vs DFT "
        f"{result.dft_formation_meV_per_atom[dominant]:.1f} meV/atom "
        f"({result.formation_errors_meV_per_atom[dominant]:+.1f})"
    )
    reasons += _reference_reasons(result, dominant)
    reasons += _corpus_reasons(result, involved={*result.missing, *result.spurious, dominant})
    return tuple(reasons)


def formation_caveats(
    result: HullComparison, *, tolerance_meV_per_atom: float = FORMATION_TOLERANCE_meV_PER_ATOM
) -> tuple[str, ...]:
    """Formation energies off by more than ``tolerance_meV_per_atom``, and through what.

    One string naming each phase beyond the tolerance (model minus DFT,
    meV/atom), then, for the phase furthest off, its split into its own
    error and what each elemental reference passes on (only with one DFT
    setup, ``corpus.same_dft_setup``; else said not decidable). Empty when
    every formation energy is within the tolerance.
    """
    errors = result.formation_errors_meV_per_atom
    off = sorted(
        (p for p in result.phases if abs(errors[p]) > tolerance_meV_per_atom),
        key=lambda p: -abs(errors[p]),
    )
    if not off:
        return ()
    phases = ", ".join(
        f"{p} (model {result.model_formation_meV_per_atom[p]:.1f} vs DFT "
        f"{result.dft_formation_meV_per_atom[p]:.1f}, {errors[p]:+.1f})"
        for p in off
    )
    agree = "the stable sets agree, but " if result.same_stable_set else ""
    caveats = [
        f"{agree}formation energies differ from DFT's by more than {tolerance_meV_per_atom:g} "
        f"meV/atom: {phases}; formation and reaction energies of this model are not DFT's"
    ]
    if result.corpus is None:
        caveats.append(
            "no training corpus given: whether an elemental reference carries this error is "
            "not checked (pass corpus= to find out)"
        )
    return tuple(caveats + _reference_reasons(result, off[0]))


def _reference_reasons(result: HullComparison, phase: str) -> list[str]:
    """How much of ``phase``'s formation error the elemental references pass on (one DFT setup only)."""
    corpus = result.corpus
    if corpus is None or not result.model_minus_dft_meV_per_atom:
        return []
    if not corpus.same_dft_setup:
        why = "differ" if corpus.same_dft_setup is False else "are not all recorded"
        return [
            f"the DFT setups of {corpus.corpus} and the phases {why}: whether the elemental "
            "references or the phases themselves carry the errors is not decidable here"
        ]
    dft_refs, model_refs = result.reference_phases("dft"), result.reference_phases("model")
    errors = result.reference_errors_meV_per_atom
    references = ", ".join(
        f"{e} via {model_refs[e]}"
        + (f" (DFT's: {dft_refs[e]})" if model_refs[e] != dft_refs[e] else "")
        + f" {errors[e]:+.1f}"
        for e in sorted(errors, key=lambda e: -abs(errors[e]))
    )
    parts = result.formation_error_parts(phase)
    total = result.formation_errors_meV_per_atom[phase]
    split = f"{phase}'s {total:+.1f} = {parts['own']:+.1f} its own energy" + "".join(
        f", {value:+.1f} through the {e} reference" for e, value in parts.items() if e != "own"
    )
    largest = max(parts, key=lambda k: abs(parts[k]))
    if largest != "own":
        split += f": the {largest} reference ({dft_refs[largest]}) carries most of it"
    return [
        f"element references, model minus DFT in meV/atom (one DFT setup with {corpus.corpus}, "
        f"so these are the model's own errors): {references}",
        split,
    ]


def _corpus_reasons(result: HullComparison, *, involved: set[str]) -> list[str]:
    """What the corpus check says about the ``involved`` phases and the elemental references."""
    corpus = result.corpus
    if corpus is None:
        return [
            "no training corpus given: whether the phases lie outside the model's training "
            "data is not checked"
        ]
    role = {phase: element for element, phase in result.reference_phases("dft").items()}
    reasons = []
    for env in corpus.environments:
        if env.phase not in involved and env.phase not in role:
            continue  # the rest are in ``corpus.environments``
        reference = (
            f"; it is the {role[env.phase]} reference of every {role[env.phase]}-containing formation energy"
            if env.phase in role and len(result.elements) > 1
            else ""
        )
        if env.molecule:
            seen = (
                f"while all {corpus.n_frames} frames of {corpus.corpus} are 3-periodic crystals"
                if corpus.crystals_only
                else f"like {corpus.periodic_dimensions[0]} of the {corpus.n_frames} frames of "
                f"{corpus.corpus}"
            )
            reasons.append(f"{env.phase} is a molecule in a box, {seen}{reference}")
        if env.outside_corpus:
            lacking = [*env.uncovered]
            if env.missing_elements:
                lacking.insert(0, "elements " + ", ".join(env.missing_elements))
            reasons.append(
                f"{env.phase}: environments outside {corpus.corpus}: {', '.join(lacking)} "
                f"(coverage {env.coverage_score:.2f}){'' if env.molecule else reference}"
            )
        elif env.phase in involved and not env.molecule and env.coverage_score is not None:
            reasons.append(
                f"{env.phase}: its pair distances and bond angles lie inside {corpus.corpus} "
                f"(no range flagged, coverage {env.coverage_score:.2f}): its own environments "
                "are not extrapolated"
            )
    return reasons
