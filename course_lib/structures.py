"""The crystals of the course and the ways they are perturbed.

``corpus_prototypes`` are the small crystals (elements, binary prototypes, a
few ternaries) behind the pre-training corpora, near their PBE volumes;
``strained``, ``rattled`` and ``small_supercell`` make the off-equilibrium
and supercell variants the dataset recipes (``course_lib.dft_recipes``) label.
Lengths in Å.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal


def strained(atoms: Atoms, rng: np.random.Generator, *, normal: float, shear: float) -> Atoms:
    """``atoms`` under a random symmetric strain: diagonal in ±normal, off-diagonal in ±shear."""
    eps = np.diag(rng.uniform(-normal, normal, 3))
    off = rng.uniform(-shear, shear, 3)
    eps[0, 1] = eps[1, 0] = off[0]
    eps[0, 2] = eps[2, 0] = off[1]
    eps[1, 2] = eps[2, 1] = off[2]
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return out


def rattled(atoms: Atoms, rng: np.random.Generator, *, sigma: float) -> Atoms:
    """``atoms`` with Gaussian displacements of standard deviation ``sigma`` (Å)."""
    out = atoms.copy()
    out.positions += rng.normal(0.0, sigma, size=out.positions.shape)
    return out


def li2o_cubic(a: float = 4.65) -> Atoms:
    return crystal(
        ["O", "Li"], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[a] * 3 + [90] * 3
    )


def rutile(cation: str, anion: str, a: float, c: float, x: float) -> Atoms:
    return crystal(
        [cation, anion], [(0, 0, 0), (x, x, 0)], spacegroup=136, cellpar=[a, a, c, 90, 90, 90]
    )


def _half_heusler(x: str, y: str, z: str, a: float) -> Atoms:
    positions = [(0, 0, 0), (0.25, 0.25, 0.25), (0.5, 0.5, 0.5)]
    return crystal(
        [z, y, x], positions, spacegroup=216, cellpar=[a] * 3 + [90] * 3, primitive_cell=True
    )


def _perovskite(a_site: str, b_site: str, x: str, a: float) -> Atoms:
    positions = [(0.5, 0.5, 0.5), (0, 0, 0), (0.5, 0, 0)]
    return crystal([a_site, b_site, x], positions, spacegroup=221, cellpar=[a] * 3 + [90] * 3)


def _li3n() -> Atoms:
    positions = [(0, 0, 0), (0, 0, 0.5), (1 / 3, 2 / 3, 0)]
    return crystal(
        ["N", "Li", "Li"], positions, spacegroup=191, cellpar=[3.65, 3.65, 3.88, 90, 90, 120]
    )


def li2o2() -> Atoms:
    positions = [(0, 0, 0), (1 / 3, 2 / 3, 0.25), (1 / 3, 2 / 3, 0.649)]
    return crystal(
        ["Li", "Li", "O"], positions, spacegroup=194, cellpar=[3.14, 3.14, 7.65, 90, 90, 120]
    )


def _alpha_lialo2() -> Atoms:
    positions = [(0, 0, 0), (0, 0, 0.5), (0, 0, 0.24)]
    return crystal(
        ["Li", "Al", "O"],
        positions,
        spacegroup=166,
        cellpar=[2.80, 2.80, 14.2, 90, 90, 120],
        primitive_cell=True,
    )


def corpus_prototypes() -> list[tuple[str, str, Atoms]]:
    """(prototype, formula label, structure) of the mini-MPtrj crystals, near their PBE volumes."""
    protos: list[tuple[str, str, Atoms]] = []

    def add(kind: str, label: str, atoms: Atoms) -> None:
        protos.append((kind, label, atoms))

    for symbol, structure, a, c in [
        ("Li", "bcc", 3.44, None),
        ("Li", "fcc", 4.33, None),
        ("Na", "bcc", 4.20, None),
        ("Na", "fcc", 5.29, None),
        ("Mg", "hcp", 3.19, 5.18),
        ("Mg", "fcc", 4.52, None),
        ("Mg", "bcc", 3.58, None),
        ("Be", "hcp", 2.26, 3.56),
        ("Al", "fcc", 4.04, None),
        ("Al", "bcc", 3.23, None),
        ("Si", "diamond", 5.47, None),
        ("C", "diamond", 3.57, None),
    ]:
        add(structure, symbol, bulk(symbol, structure, a=a, c=c))
    for formula, a in [
        ("LiH", 4.01),
        ("LiF", 4.07),
        ("LiCl", 5.15),
        ("NaH", 4.83),
        ("NaF", 4.70),
        ("NaCl", 5.70),
        ("MgO", 4.25),
        ("MgS", 5.23),
    ]:
        add("rocksalt", formula, bulk(formula, "rocksalt", a=a))
    for formula, a in [("MgO", 2.60), ("NaCl", 3.45), ("LiF", 2.48)]:
        add("cesiumchloride", formula, bulk(formula, "cesiumchloride", a=a))
    for formula, a in [
        ("BN", 3.62),
        ("BP", 4.55),
        ("AlP", 5.51),
        ("SiC", 4.38),
        ("BeS", 4.87),
        ("MgO", 4.60),
        ("AlN", 4.40),
        ("BeO", 3.82),
    ]:
        add("zincblende", formula, bulk(formula, "zincblende", a=a))
    for formula, a, c in [
        ("AlN", 3.13, 5.02),
        ("BeO", 2.72, 4.41),
        ("SiC", 3.09, 5.06),
        ("MgO", 3.30, 5.10),
        ("BN", 2.55, 4.23),
    ]:
        add("wurtzite", formula, bulk(formula, "wurtzite", a=a, c=c))
    for label, symbols, a in [
        ("Li2O", "OLi2", 4.65),
        ("Li2S", "SLi2", 5.72),
        ("Na2O", "ONa2", 5.57),
        ("Na2S", "SNa2", 6.54),
        ("Be2C", "CBe2", 4.35),
        ("Mg2Si", "SiMg2", 6.37),
    ]:
        add("antifluorite", label, bulk(symbols, "fluorite", a=a))
    add("rutile", "MgF2", rutile("Mg", "F", 4.69, 3.10, 0.303))
    add("rutile", "SiO2", rutile("Si", "O", 4.18, 2.67, 0.306))
    add("rutile", "MgH2", rutile("Mg", "H", 4.52, 3.02, 0.304))
    add("Li3N", "Li3N", _li3n())
    add("Li2O2", "Li2O2", li2o2())
    add("half-heusler", "LiMgN", _half_heusler("Li", "Mg", "N", 4.97))
    add("half-heusler", "LiMgP", _half_heusler("Li", "Mg", "P", 6.02))
    add("half-heusler", "LiAlSi", _half_heusler("Li", "Al", "Si", 5.93))
    add("perovskite", "NaMgF3", _perovskite("Na", "Mg", "F", 3.95))
    add("alpha-NaFeO2", "LiAlO2", _alpha_lialo2())
    return protos


def small_supercell(atoms: Atoms, min_atoms: int = 8) -> Atoms:
    """The smallest diagonal repeat of ``atoms`` with at least ``min_atoms`` atoms.

    Axes are doubled shortest-first, so the supercell stays as compact as the
    cell allows (a 1-atom bcc cell becomes 2x2x2, a 3-atom fluorite 2x2x1).
    """
    repeat = [1, 1, 1]
    lengths = np.asarray(atoms.cell.lengths(), dtype=float)
    while len(atoms) * int(np.prod(repeat)) < min_atoms:
        axis = int(np.argmin(lengths * repeat))
        repeat[axis] += 1
    return atoms.repeat(repeat)


def compressed_pair(atoms: Atoms, pair: tuple[str, str], distance: float) -> Atoms:
    """``atoms`` with its closest ``pair`` of species moved to ``distance`` Å apart.

    The two atoms move symmetrically along the line joining them (minimum
    image), so the rest of the crystal stays as it was: a probe of the
    short-range repulsion between two species inside the crystal.
    """
    symbols = np.array(atoms.get_chemical_symbols())
    first = np.flatnonzero(symbols == pair[0])
    second = np.flatnonzero(symbols == pair[1])
    if not len(first) or not len(second):
        raise ValueError(f"{atoms.get_chemical_formula()} has no {pair[0]}-{pair[1]} pair")
    d = atoms.get_all_distances(mic=True)
    block = d[np.ix_(first, second)]
    block[block == 0] = np.inf  # an atom is not its own partner
    i, j = np.unravel_index(np.argmin(block), block.shape)
    a, b = int(first[i]), int(second[j])
    vector = atoms.get_distance(a, b, mic=True, vector=True)
    shift = 0.5 * (np.linalg.norm(vector) - distance) * vector / np.linalg.norm(vector)
    out = atoms.copy()
    out.positions[a] += shift
    out.positions[b] -= shift
    return out
