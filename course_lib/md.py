"""Molecular dynamics with a model, and whether the model survives it.

The chapter's protocol starts with "run zero-shot MD, then check parity on
~20 snapshots". Before any parity, a model has to keep the atoms apart: a
potential with no short-range repulsive wall where its data were thin lets
two atoms fall into each other, and the run ends in nonsense (or NaN). This
module runs seeded ASE MD with any registered model (or any ASE calculator)
and reports, as data, whether it stayed physical:

* the shortest distance per species pair at every sampled step, against a
  stated limit (``min_distance_fraction`` of the sum of covalent radii);
* the Li-Li (or any pair's) radial distribution function over the run;
* the temperature, and in NVE the drift of the total energy (meV/atom/ps);
* a verdict: ``stable``, or ``unstable`` with the step and the reason
  (atoms closer than the limit, or non-finite energies or forces). The run
  stops at that step: it never continues on NaN or on fused atoms.

Ensembles: ``"langevin"`` (NVT, ASE's Langevin), ``"nose-hoover"`` (NVT,
ASE's Nosé-Hoover chain) and ``"nve"`` (velocity Verlet, for the energy
drift check). Units: Å, fs, K, eV.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list

ENSEMBLES = ("langevin", "nose-hoover", "nve")


class MDInputError(ValueError):
    """MD settings or a structure that cannot be run; the message says what to change."""


# --------------------------------------------------------------------------- structures


def md_structures() -> dict[str, str]:
    """The structures ``course md`` knows, by name, with what each is."""
    return {
        "li2o": "antifluorite Li2O, 12-atom cubic cell (the Li case study's DFT MD cell)",
        "li2o-2x2x2": "antifluorite Li2O, 96-atom 2x2x2 supercell",
        "mgo": "rocksalt MgO, 8-atom cubic cell (a = 4.25 Å)",
    }


def md_structure(name: str, *, temperature_K: float = 300.0) -> Atoms:
    """A structure of ``md_structures()``; Li2O at the lattice constant of its DFT MD at ``T``.

    Li2O's cells are those of the bundled ``li2o-md`` data (a = 4.65 Å at
    300 K, 4.73 Å at 1200 K, linearly between and beyond).
    """
    from ase.build import bulk

    from course_lib.structures import li2o_cubic

    if name not in md_structures():
        raise MDInputError(f"unknown structure {name!r}; known: {', '.join(md_structures())}")
    if name.startswith("li2o"):
        a = 4.65 + (4.73 - 4.65) * (temperature_K - 300.0) / 900.0
        cell = li2o_cubic(a)
        return cell.repeat(2) if name == "li2o-2x2x2" else cell
    return bulk("MgO", "rocksalt", a=4.25, cubic=True)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MDResult:
    """One MD run and its stability report.

    ``times_fs`` are the sampled times; ``shortest_A[pair]`` the shortest
    distance of that species pair (e.g. ``"Li-Li"``) at each sample and
    ``limits_A[pair]`` the distance below which the run counts as unstable;
    ``temperatures_K`` and ``energies_eV`` (potential) and ``total_energies_eV``
    per sample. ``energy_drift_meV_per_atom_per_ps`` is the least-squares
    slope of the total energy per atom (NVE only; None otherwise).
    ``failed_step`` is the MD step at which the run stopped, None when it
    ran every step. ``frames`` are the sampled structures (for nglview).
    """

    model: str
    structure: str
    ensemble: str
    temperature_K: float
    timestep_fs: float
    steps_requested: int
    steps_run: int
    seed: int
    stable: bool
    reason: str
    failed_step: int | None
    times_fs: tuple[float, ...]
    shortest_A: dict[str, tuple[float, ...]]
    limits_A: dict[str, float]
    temperatures_K: tuple[float, ...]
    energies_eV: tuple[float, ...]
    total_energies_eV: tuple[float, ...]
    energy_drift_meV_per_atom_per_ps: float | None
    wall_time_s: float
    frames: list[Atoms] = field(repr=False, default_factory=list)

    @property
    def verdict(self) -> str:
        return "stable" if self.stable else "unstable"

    @property
    def steps_per_s(self) -> float:
        return self.steps_run / self.wall_time_s if self.wall_time_s > 0 else float("nan")

    def closest_approach(self) -> dict[str, float]:
        """The shortest distance of each pair over the whole run (Å)."""
        return {pair: float(min(values)) for pair, values in self.shortest_A.items()}

    def rdf(self, pair: str = "Li-Li", *, r_max: float = 5.0, bins: int = 100):
        """``(r, g(r))`` of ``pair`` averaged over the sampled frames (Å, dimensionless)."""
        return pair_rdf(self.frames, pair, r_max=r_max, bins=bins)

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "frames"}
        out["verdict"] = self.verdict
        out["closest_approach_A"] = self.closest_approach()
        out["steps_per_s"] = round(self.steps_per_s, 3)
        return out

    def table(self) -> str:
        lines = [
            f"{self.model}: {self.ensemble} MD of {self.structure} at {self.temperature_K:g} K, "
            f"{self.steps_run}/{self.steps_requested} steps of {self.timestep_fs:g} fs "
            f"({self.steps_per_s:.1f} steps/s)",
            f"verdict: {self.verdict.upper()}" + (f" ({self.reason})" if self.reason else ""),
            f"{'pair':<8} {'closest (Å)':>12} {'limit (Å)':>10}",
        ]
        for pair, closest in self.closest_approach().items():
            lines.append(f"{pair:<8} {closest:>12.3f} {self.limits_A[pair]:>10.3f}")
        if self.temperatures_K:
            half = self.temperatures_K[len(self.temperatures_K) // 2 :]
            lines.append(f"mean temperature, second half: {np.mean(half):.0f} K")
        if self.energy_drift_meV_per_atom_per_ps is not None:
            lines.append(
                f"NVE energy drift: {self.energy_drift_meV_per_atom_per_ps:.2f} meV/atom/ps"
            )
        return "\n".join(lines)

    __str__ = table

    @classmethod
    def from_dict(cls, record: dict) -> MDResult:
        """An ``MDResult`` from its ``as_dict`` (e.g. a shipped run), without the frames."""
        names = {f.name for f in dataclasses.fields(cls)} - {"frames"}
        values = {k: v for k, v in record.items() if k in names}
        for key in ("times_fs", "temperatures_K", "energies_eV", "total_energies_eV"):
            values[key] = tuple(values[key])
        values["shortest_A"] = {  # strict JSON wrote "no pair within the cutoff" (inf) as null
            pair: tuple(np.inf if d is None else d for d in v)
            for pair, v in values["shortest_A"].items()
        }
        return cls(**values)


# --------------------------------------------------------------------------- shipped runs


def md_key(
    model,
    structure: str,
    *,
    temperature_K: float,
    steps: int,
    ensemble: str = "langevin",
    timestep_fs: float = 1.0,
    seed: int = 0,
    sample_every: int = 10,
) -> dict:
    """What identifies a shipped MD run (``course md --ship``): model, structure and settings.

    ``shipped.shipped("md", md_key(...))`` reads the run back; ``MDResult.from_dict``
    of its payload rebuilds the result (without frames).
    """
    from course_lib.models import resolve_model_name

    return {
        "model": resolve_model_name(model),
        "structure": structure,
        "temperature_K": float(temperature_K),
        "steps": int(steps),
        "ensemble": ensemble,
        "timestep_fs": float(timestep_fs),
        "seed": int(seed),
        "sample_every": int(sample_every),  # the closest approach is seen at samples only
    }


# --------------------------------------------------------------------------- analysis


def pair_name(a: str, b: str) -> str:
    """``"Li-O"``: the two symbols in periodic-table order."""
    from ase.data import atomic_numbers

    first, second = sorted((a, b), key=atomic_numbers.__getitem__)
    return f"{first}-{second}"


def distance_limits(
    symbols: Sequence[str], *, min_distance_fraction: float = 0.5
) -> dict[str, float]:
    """The unstable-run limit per pair: ``fraction * (r_cov(A) + r_cov(B))`` (Å).

    Half the covalent bond length: Li-Li 1.28 Å, Li-O 0.97 Å, O-O 0.66 Å.
    Hot Li2O in DFT comes no closer than ~1.7 Å (Li-Li): a model's atoms
    below the limit have fallen through its repulsive wall.
    """
    from ase.data import atomic_numbers

    species = sorted(set(symbols), key=atomic_numbers.__getitem__)
    return {
        pair_name(a, b): min_distance_fraction
        * float(covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])
        for a, b in itertools.combinations_with_replacement(species, 2)
    }


def shortest_distances(atoms: Atoms, pairs: Sequence[str], *, cutoff: float = 6.0) -> dict:
    """The shortest distance (Å) of each species pair in ``atoms`` (periodic); inf if none."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    symbols = np.array(atoms.get_chemical_symbols())
    names = np.array([pair_name(a, b) for a, b in zip(symbols[i], symbols[j])])
    return {
        pair: float(d[names == pair].min()) if np.any(names == pair) else np.inf for pair in pairs
    }


def pair_rdf(
    frames: Sequence[Atoms], pair: str, *, r_max: float = 5.0, bins: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function of ``pair`` (e.g. ``"Li-Li"``), averaged over ``frames``.

    ``g(r) = n(r) / (4π r² dr ρ_B N_A)`` with ``n(r)`` the B neighbours of A
    atoms in the shell, so ``g → 1`` for an uncorrelated liquid. Returns bin
    centres (Å) and ``g``.
    """
    a, b = pair.split("-")
    edges = np.linspace(0.0, r_max, bins + 1)
    counts = np.zeros(bins)
    norm = 0.0
    for atoms in frames:
        symbols = np.array(atoms.get_chemical_symbols())
        i, j, d = neighbor_list("ijd", atoms, r_max)
        keep = (symbols[i] == a) & (symbols[j] == b)
        counts += np.histogram(d[keep], bins=edges)[0]
        n_a, n_b = np.sum(symbols == a), np.sum(symbols == b)
        norm += n_a * n_b / atoms.get_volume()
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = counts / (shell * norm) if norm > 0 else np.zeros(bins)
    return 0.5 * (edges[1:] + edges[:-1]), g


def energy_drift(times_fs: Sequence[float], total_eV: Sequence[float], n_atoms: int) -> float:
    """Least-squares slope of the total energy per atom, meV/atom/ps."""
    slope = np.polyfit(np.asarray(times_fs) / 1000.0, np.asarray(total_eV) / n_atoms, 1)[0]
    return float(1e3 * slope)


# --------------------------------------------------------------------------- the run


def run_md(
    model,
    atoms: Atoms,
    *,
    temperature_K: float,
    steps: int,
    ensemble: str = "langevin",
    timestep_fs: float = 1.0,
    seed: int = 0,
    sample_every: int = 10,
    friction_per_fs: float = 0.01,
    min_distance_fraction: float = 0.5,
    structure: str | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> MDResult:
    """Seeded MD of ``atoms`` with ``model``; stops at the first unphysical step.

    ``model`` is a registered name, a MACE file, or an ASE calculator.
    Velocities start from a Maxwell-Boltzmann distribution at
    ``temperature_K`` (seeded; centre-of-mass motion removed). Every step
    is checked: non-finite energies or forces, or any pair closer than its
    limit (``distance_limits``), stop the run there, and the result says
    where and why. Every ``sample_every`` steps (and at the last step) a
    sample is recorded.
    """
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from tqdm.auto import tqdm

    _check_settings(temperature_K, steps, ensemble, timestep_fs, sample_every)
    calculator, label = _calculator(model, atoms, device=device)
    work = atoms.copy()
    work.calc = calculator
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(work, temperature_K=temperature_K, rng=rng)
    Stationary(work)
    dynamics = _dynamics(work, ensemble, temperature_K, timestep_fs, friction_per_fs, rng)
    limits = distance_limits(
        work.get_chemical_symbols(), min_distance_fraction=min_distance_fraction
    )
    samples = {"t": [], "T": [], "E": [], "Etot": [], "frames": []}
    shortest = {pair: [] for pair in limits}
    reason, failed_step = "", None

    def check(step: int) -> str:
        """Record a sample when due; return why the run must stop here ("" if it need not)."""
        energy = work.get_potential_energy()
        forces = work.get_forces()
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            return f"non-finite energy or forces at step {step}"
        closest = shortest_distances(work, list(limits))
        too_close = {p: v for p, v in closest.items() if v < limits[p]}
        if step % sample_every == 0 or too_close:
            for pair, value in closest.items():
                shortest[pair].append(value)
            samples["t"].append(step * timestep_fs)
            samples["T"].append(float(work.get_temperature()))
            samples["E"].append(float(energy))
            samples["Etot"].append(float(energy + work.get_kinetic_energy()))
            samples["frames"].append(_snapshot(work))
        if too_close:
            pair, value = min(too_close.items(), key=lambda item: item[1] / limits[item[0]])
            return (
                f"{pair} came to {value:.2f} Å at step {step}, below the limit "
                f"{limits[pair]:.2f} Å ({min_distance_fraction:g} x covalent bond length)"
            )
        return ""

    began = time.perf_counter()
    reason = check(0)
    step = 0
    bar = tqdm(total=steps, desc=f"MD {temperature_K:g} K", disable=not progress, leave=False)
    while not reason and step < steps:
        dynamics.run(1)  # every step is checked: the run never goes on from NaN or fused atoms
        step += 1
        bar.update(1)
        reason = check(step)
    bar.close()
    if reason:
        failed_step = step
    wall = time.perf_counter() - began
    drift = None
    if ensemble == "nve" and len(samples["t"]) >= 3 and not reason:
        drift = energy_drift(samples["t"], samples["Etot"], len(work))
    return MDResult(
        model=label,
        structure=structure or work.get_chemical_formula(),
        ensemble=ensemble,
        temperature_K=float(temperature_K),
        timestep_fs=float(timestep_fs),
        steps_requested=int(steps),
        steps_run=int(step),
        seed=int(seed),
        stable=not reason,
        reason=reason,
        failed_step=failed_step,
        times_fs=tuple(samples["t"]),
        shortest_A={pair: tuple(values) for pair, values in shortest.items()},
        limits_A=limits,
        temperatures_K=tuple(samples["T"]),
        energies_eV=tuple(samples["E"]),
        total_energies_eV=tuple(samples["Etot"]),
        energy_drift_meV_per_atom_per_ps=drift,
        wall_time_s=round(wall, 3),
        frames=samples["frames"],
    )


def _check_settings(temperature_K, steps, ensemble, timestep_fs, sample_every) -> None:
    if not (np.isfinite(temperature_K) and temperature_K > 0):
        raise MDInputError(f"temperature must be > 0 K, got {temperature_K}")
    if int(steps) != steps or steps <= 0:
        raise MDInputError(f"steps must be a positive whole number, got {steps}")
    if ensemble not in ENSEMBLES:
        raise MDInputError(f"ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
    if not (np.isfinite(timestep_fs) and 0 < timestep_fs <= 5):
        raise MDInputError(f"timestep must lie in (0, 5] fs, got {timestep_fs}")
    if sample_every < 1:
        raise MDInputError(f"sample_every must be >= 1, got {sample_every}")


def _calculator(model, atoms: Atoms, *, device: str):
    """An ASE calculator for ``model`` and its label; refuses elements the model lacks."""
    from ase.calculators.calculator import BaseCalculator

    if isinstance(model, BaseCalculator):
        return model, type(model).__name__
    from course_lib import models

    name = models.resolve_model_name(model)
    known = models.model_elements(name)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(known or atoms.get_chemical_symbols()))
    if missing:
        raise MDInputError(
            f"{name} has no parameters for {missing} (it knows {' '.join(known)}); "
            "pick a structure of its elements or another model"
        )
    label = name if name in models.REGISTRY else os.path.basename(str(name))
    return models.load_calculator(name, device=device), label


def _dynamics(atoms, ensemble, temperature_K, timestep_fs, friction_per_fs, rng):
    timestep = timestep_fs * units.fs
    if ensemble == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms,
            timestep,
            temperature_K=temperature_K,
            friction=friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
    if ensemble == "nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(
            atoms, timestep, temperature_K=temperature_K, tdamp=100 * timestep
        )
    from ase.md.verlet import VelocityVerlet

    return VelocityVerlet(atoms, timestep)


def _snapshot(atoms: Atoms) -> Atoms:
    frame = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.wrap()
    return frame
