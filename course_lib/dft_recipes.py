"""The structures behind the four bundled datasets, generated deterministically (seeded).

Each recipe turns a seed into a list of :class:`course_lib.dft.Job`; the jobs'
input structures are cached as ``data/dft-runs/<name>/inputs.extxyz`` so that a
restarted run (and the CHGNet MD behind ``li2o-md``) sees exactly the same
structures. ``course make-data NAME`` labels them and assembles the dataset.

* ``mini-mptrj``: DFT relaxations of small crystals (elements, binary
  prototypes, a few ternaries) from strained and rattled starts, every ionic
  step kept, as in MPtrj; 10 % of the relaxations are the validation split.
* ``li2o-md``: snapshots of CHGNet Langevin MD of antifluorite Li2O (12-atom
  cubic cell) at 300 K and 1200 K, each one labelled by DFT.
* ``mgo-rattled``: near-equilibrium strained and rattled rocksalt MgO (8 atoms).
* ``li-o-phases``: DFT-relaxed Li-O phases for the convex hull, elemental
  references (bcc Li, triplet O2 in a box) included.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal

from course_lib.data import atomic_write_text
from course_lib.dft import DEFAULT_SETTINGS, SECONDS_KEY, Job, assemble_dataset, read_failures
from course_lib.paths import DATA_DIR, DATASETS_DIR

RUNS_DIR = DATA_DIR / "dft-runs"
INPUTS_FILE = "inputs.extxyz"


@dataclass(frozen=True)
class Recipe:
    """How one bundled dataset is made: a seeded job list plus what its provenance says."""

    name: str
    description: str
    seed: int
    build: Callable[[int], list[Job]]
    notes: str = ""

    @property
    def run_dir(self) -> Path:
        return RUNS_DIR / self.name


# --------------------------------------------------------------------------- geometry helpers


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


def _li2o_cubic(a: float = 4.65) -> Atoms:
    return crystal(
        ["O", "Li"], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[a] * 3 + [90] * 3
    )


def _rutile(cation: str, anion: str, a: float, c: float, x: float) -> Atoms:
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


def _li2o2() -> Atoms:
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
        ("LiH", 4.01), ("LiF", 4.07), ("LiCl", 5.15), ("NaH", 4.83),
        ("NaF", 4.70), ("NaCl", 5.70), ("MgO", 4.25), ("MgS", 5.23),
    ]:  # fmt: skip
        add("rocksalt", formula, bulk(formula, "rocksalt", a=a))
    for formula, a in [("MgO", 2.60), ("NaCl", 3.45), ("LiF", 2.48)]:
        add("cesiumchloride", formula, bulk(formula, "cesiumchloride", a=a))
    for formula, a in [
        ("BN", 3.62), ("BP", 4.55), ("AlP", 5.51), ("SiC", 4.38),
        ("BeS", 4.87), ("MgO", 4.60), ("AlN", 4.40), ("BeO", 3.82),
    ]:  # fmt: skip
        add("zincblende", formula, bulk(formula, "zincblende", a=a))
    for formula, a, c in [
        ("AlN", 3.13, 5.02), ("BeO", 2.72, 4.41), ("SiC", 3.09, 5.06),
        ("MgO", 3.30, 5.10), ("BN", 2.55, 4.23),
    ]:  # fmt: skip
        add("wurtzite", formula, bulk(formula, "wurtzite", a=a, c=c))
    for label, symbols, a in [
        ("Li2O", "OLi2", 4.65), ("Li2S", "SLi2", 5.72), ("Na2O", "ONa2", 5.57),
        ("Na2S", "SNa2", 6.54), ("Be2C", "CBe2", 4.35), ("Mg2Si", "SiMg2", 6.37),
    ]:  # fmt: skip
        add("antifluorite", label, bulk(symbols, "fluorite", a=a))
    add("rutile", "MgF2", _rutile("Mg", "F", 4.69, 3.10, 0.303))
    add("rutile", "SiO2", _rutile("Si", "O", 4.18, 2.67, 0.306))
    add("rutile", "MgH2", _rutile("Mg", "H", 4.52, 3.02, 0.304))
    add("Li3N", "Li3N", _li3n())
    add("Li2O2", "Li2O2", _li2o2())
    add("half-heusler", "LiMgN", _half_heusler("Li", "Mg", "N", 4.97))
    add("half-heusler", "LiMgP", _half_heusler("Li", "Mg", "P", 6.02))
    add("half-heusler", "LiAlSi", _half_heusler("Li", "Al", "Si", 5.93))
    add("perovskite", "NaMgF3", _perovskite("Na", "Mg", "F", 3.95))
    add("alpha-NaFeO2", "LiAlO2", _alpha_lialo2())
    return protos


# --------------------------------------------------------------------------- recipes


def mini_mptrj_jobs(seed: int, *, starts: int = 3, max_steps: int = 8) -> list[Job]:
    """Relaxations from ``starts`` strained/rattled copies of every prototype (plus extra Li2O, MgO)."""
    rng = np.random.default_rng(seed)
    items = [(kind, label, atoms, 0.04, 0.02, 0.05) for kind, label, atoms in corpus_prototypes()]
    runs = [item for item in items for _ in range(starts)]
    # Near-equilibrium Li2O and MgO: the targets of the course are partly in-distribution.
    near_li2o = bulk("OLi2", "fluorite", a=4.65)
    runs += [("antifluorite", "Li2O", near_li2o, 0.01, 0.005, 0.02)] * 3
    runs += [("antifluorite", "Li2O", _li2o_cubic(), 0.01, 0.005, 0.03)] * 2
    runs += [
        ("rocksalt", "MgO", bulk("MgO", "rocksalt", a=4.25, cubic=True), 0.01, 0.005, 0.03)
    ] * 2
    order = rng.permutation(len(runs))
    n_test = round(0.1 * len(runs))
    test = set(rng.choice(len(runs), size=n_test, replace=False).tolist())
    jobs = []
    for index, run_index in enumerate(order):
        kind, label, atoms, normal, shear, sigma = runs[run_index]
        start = rattled(strained(atoms, rng, normal=normal, shear=shear), rng, sigma=sigma)
        key = f"{index:03d}-{kind}-{label}"
        start.info.update(
            config_type=kind,
            source_id=key,
            split="test" if index in test else "train",
        )
        jobs.append(
            Job(key=key, atoms=start, kind="relax", options={"fmax": 0.02, "max_steps": max_steps})
        )
    return jobs


LI2O_MD_TEMPERATURES_K = (300.0, 1200.0)
# NVT cells: the PBE lattice parameter at 300 K, +1.7 % at 1200 K (Li2O's thermal expansion).
LI2O_MD_LATTICE_A = {300.0: 4.65, 1200.0: 4.73}


def li2o_md_snapshots(
    seed: int,
    *,
    temperature_K: float,
    n_snapshots: int,
    interval: int = 30,
    equilibration: int = 250,
    timestep_fs: float = 2.0,
) -> list[Atoms]:
    """CHGNet Langevin MD of 12-atom Li2O; a snapshot every ``interval`` steps.

    With the defaults: 0.5 ps of equilibration, then snapshots 60 fs apart
    (about one period of the optical phonons, with a 100 fs thermostat time),
    ~0.2 s per step on one core.
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    atoms = _li2o_cubic(LI2O_MD_LATTICE_A[temperature_K])
    atoms.calc = CHGNetCalculator(model=CHGNet.load(verbose=False), use_device="cpu")
    rng = np.random.RandomState(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(
        atoms,
        timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=0.01 / units.fs,
        rng=rng,
    )
    dyn.run(equilibration)
    snapshots = []
    for _ in range(n_snapshots):
        dyn.run(interval)
        snap = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
        snap.wrap()
        snapshots.append(snap)
    return snapshots


def cached_md_snapshots(seed: int, *, temperature_K: float, n_snapshots: int) -> list[Atoms]:
    """``li2o_md_snapshots``, cached as ``data/dft-runs/li2o-md/md-<T>K.extxyz`` (the MD is slow)."""
    path = RUNS_DIR / "li2o-md" / f"md-{int(temperature_K)}K-seed{seed}.extxyz"
    if path.exists():
        frames = ase.io.read(path, index=":", format="extxyz")
        if len(frames) >= n_snapshots:
            return frames[:n_snapshots]
    frames = li2o_md_snapshots(seed, temperature_K=temperature_K, n_snapshots=n_snapshots)
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(path, frames, format="extxyz")
    return frames


def li2o_md_jobs(seed: int, *, per_temperature: int = 150, test_fraction: float = 0.2) -> list[Job]:
    """Single points of MD snapshots, alternating temperatures; test split stratified by T."""
    rng = np.random.default_rng(seed)
    by_temperature = {}
    for offset, temperature in enumerate(LI2O_MD_TEMPERATURES_K):
        frames = cached_md_snapshots(
            seed + offset, temperature_K=temperature, n_snapshots=per_temperature
        )
        n_test = round(test_fraction * per_temperature)
        test = set(rng.choice(per_temperature, size=n_test, replace=False).tolist())
        for index, frame in enumerate(frames):
            frame.info.update(
                temperature_K=temperature,
                md_snapshot=index,
                config_type=f"md-{int(temperature)}K",
                split="test" if index in test else "train",
            )
        by_temperature[temperature] = frames
    jobs = []
    for index in range(per_temperature):
        for temperature, frames in by_temperature.items():
            jobs.append(Job(key=f"T{int(temperature):04d}-{index:03d}", atoms=frames[index]))
    return jobs


def mgo_rattled_jobs(seed: int, *, n_frames: int = 150, test_fraction: float = 0.2) -> list[Job]:
    """Rocksalt MgO (8-atom cubic cell): ±2 % strain, ±1 % shear, rattles of 0.02-0.08 Å."""
    rng = np.random.default_rng(seed)
    ideal = bulk("MgO", "rocksalt", a=4.25, cubic=True)
    test = set(rng.choice(n_frames, size=round(test_fraction * n_frames), replace=False).tolist())
    jobs = []
    for index in range(n_frames):
        sigma = rng.uniform(0.02, 0.08)
        atoms = rattled(strained(ideal, rng, normal=0.02, shear=0.01), rng, sigma=sigma)
        atoms.info.update(
            config_type="rattled",
            rattle_sigma_A=round(sigma, 4),
            split="test" if index in test else "train",
        )
        jobs.append(Job(key=f"mgo-{index:03d}", atoms=atoms))
    return jobs


def li_o_phase_structures() -> dict[str, Atoms]:
    """The Li-O phases: stable ones, elemental references and a few above the hull."""
    o2 = Atoms(
        "O2", positions=[(4.0, 4.25, 4.5), (4.0, 4.25, 5.73)], cell=[8.0, 8.5, 9.0], pbc=True
    )
    o2.set_initial_magnetic_moments([1.0, 1.0])  # triplet: the only spin-polarised calculation
    o2.info["molecule"] = True
    anti_rutile = _rutile("O", "Li", 4.00, 3.00, 0.30)
    lio_rocksalt = bulk("LiO", "rocksalt", a=4.20)
    return {
        "Li-bcc": bulk("Li", "bcc", a=3.44),
        "Li-fcc": bulk("Li", "fcc", a=4.33),
        "Li-sc": bulk("Li", "sc", a=2.75),
        "O2-molecule": o2,
        "Li2O-antifluorite": bulk("OLi2", "fluorite", a=4.65),
        "Li2O-antirutile": anti_rutile,
        "Li2O2-P63mmc": _li2o2(),
        "LiO-rocksalt": lio_rocksalt,
    }


def li_o_phases_jobs(seed: int) -> list[Job]:
    """Tight relaxations (fmax 0.02 eV/Å, cell too except for O2) of every phase."""
    rng = np.random.default_rng(seed)
    jobs = []
    for name, atoms in li_o_phase_structures().items():
        molecule = bool(atoms.info.get("molecule"))
        start = atoms if molecule else rattled(atoms, rng, sigma=0.01)
        start.info.update(phase=name, config_type="phase")
        options = {"fmax": 0.02, "max_steps": 40, "relax_cell": not molecule}
        jobs.append(Job(key=name, atoms=start, kind="relax", options=options))
    return jobs


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="mini-mptrj",
            description=(
                "Pre-training corpus of the course's small foundation model: DFT relaxation "
                "trajectories of small crystals (elements, binary prototypes, ternaries) from "
                "strained and rattled starts, every ionic step kept as in MPtrj; 10% of the "
                "relaxations (not frames) held out as the validation split (info split='test')."
            ),
            seed=12,
            build=mini_mptrj_jobs,
            notes=(
                "Each relaxation: BFGS on positions and cell (ASE FrechetCellFilter), fmax "
                "0.02 eV/Å, at most 8 steps (9 frames), k-point grid fixed from the starting cell."
            ),
        ),
        Recipe(
            name="li2o-md",
            description=(
                "Li case study: antifluorite Li2O (12-atom cubic cell), snapshots of CHGNet "
                "Langevin MD (2 fs step) at 300 K (a=4.65 Å) and 1200 K (a=4.73 Å, thermal "
                "expansion), 60 fs apart after 0.5 ps of equilibration, every snapshot labelled "
                "by DFT, the standard protocol. Fixed test split (info split), 20% per temperature."
            ),
            seed=3,
            build=li2o_md_jobs,
            notes="MD driven by CHGNet (pretrained on MPtrj, weights bundled with the chgnet package).",
        ),
        Recipe(
            name="mgo-rattled",
            description=(
                "In-distribution target: rocksalt MgO (8-atom cubic cell, a=4.25 Å) under random "
                "strains (±2% normal, ±1% shear) with Gaussian rattles of 0.02-0.08 Å; "
                "fixed 20% test split (info split)."
            ),
            seed=5,
            build=mgo_rattled_jobs,
        ),
        Recipe(
            name="li-o-phases",
            description=(
                "Competing phases of the Li-O system for the convex-hull check: DFT relaxations "
                "(positions and cell; O2 positions only) of bcc Li, triplet O2 in a box, Li2O, "
                "Li2O2 and polymorphs/compositions above the hull (fcc and sc Li, anti-rutile "
                "Li2O, rocksalt LiO). Every ionic step is kept; info relaxed_end_point marks the "
                "converged end point whose energy enters the hull."
            ),
            seed=7,
            build=li_o_phases_jobs,
            notes=(
                "O2 is the only spin-polarised (magnetic) calculation: triplet, Γ point only, "
                "in an 8.0x8.5x9.0 Å box. All other phases, including rocksalt LiO, are computed "
                "without spin polarisation. The k-point grid of each relaxation is fixed from "
                "its starting cell."
            ),
        ),
    )
}


# --------------------------------------------------------------------------- cached inputs


def load_jobs(name: str, *, rebuild: bool = False) -> list[Job]:
    """The recipe's jobs, from ``data/dft-runs/NAME/inputs.extxyz`` when cached, else built and cached."""
    recipe = get_recipe(name)
    path = recipe.run_dir / INPUTS_FILE
    if path.exists() and not rebuild:
        jobs = [_job_from_atoms(atoms) for atoms in ase.io.read(path, index=":", format="extxyz")]
        if jobs and jobs[0].atoms.info.get("recipe_seed") == recipe.seed:
            return jobs
    jobs = recipe.build(recipe.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(path, [_atoms_from_job(job, recipe.seed) for job in jobs], format="extxyz")
    return jobs


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"no recipe called {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


JOB_INFO_KEYS = ("job_key", "job_kind", "job_options", "recipe_seed")


def _atoms_from_job(job: Job, seed: int) -> Atoms:
    atoms = job.atoms.copy()
    atoms.info.update(
        job_key=job.key, job_kind=job.kind, job_options=json.dumps(job.options), recipe_seed=seed
    )
    return atoms


def _job_from_atoms(atoms: Atoms) -> Job:
    info = atoms.info
    job = Job(
        key=info["job_key"],
        atoms=atoms,
        kind=info["job_kind"],
        options=json.loads(info["job_options"]),
    )
    return job


# --------------------------------------------------------------------------- assembly


def assemble_recipe(name: str, *, jobs: list[Job] | None = None, settings=None):
    """Gather the finished results of recipe ``name`` into ``data/datasets/NAME.extxyz``.

    Returns ``(path, frames)``. The provenance sidecar says how the labels
    were made, how many structures are finished or failed, and the CPU time.
    """
    settings = settings or DEFAULT_SETTINGS
    recipe = get_recipe(name)
    jobs = jobs if jobs is not None else load_jobs(name)
    keys = [job.key for job in jobs]
    finished = [key for key in keys if (recipe.run_dir / f"{key}.extxyz").exists()]
    failures = read_failures(recipe.run_dir)
    provenance = {
        "description": recipe.description,
        "method": "DFT (PBE, PAW, plane waves)",
        "code": "GPAW",
        "code_version": version("gpaw"),
        "licence": "CC-BY-4.0",
        "how_made": f"course make-data {name}",
        "seed": recipe.seed,
        "notes": recipe.notes,
        "structures_planned": len(keys),
        "structures_finished": len(finished),
        "structures_failed": len(failures),
        "failures": sorted(failures.values(), key=lambda record: record["key"]),
        "energy_note": (
            "REF_energy is the Mermin free energy (force-consistent, 0.1 eV Fermi-Dirac "
            "smearing); info energy_sigma0_eV is GPAW's zero-width extrapolation."
        ),
    }
    path, frames = assemble_dataset(
        recipe.run_dir,
        DATASETS_DIR / f"{name}.extxyz",
        settings=settings,
        provenance=provenance,
        keys=finished,
        drop_info=(*JOB_INFO_KEYS, SECONDS_KEY),
    )
    groups = Counter(f"{f.info.get('config_type', '?')}/{f.info.get('split', '-')}" for f in frames)
    record = json.loads(path.with_suffix(".json").read_text())
    record["frames_by_group"] = dict(sorted(groups.items()))
    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return path, frames
