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
from functools import partial
from importlib.metadata import version
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk

from course_lib.data import atomic_write_text
from course_lib.dft import DEFAULT_SETTINGS, SECONDS_KEY, Job, assemble_dataset, read_failures
from course_lib.paths import DATA_DIR, DATASETS_DIR
from course_lib.structures import (
    compressed_pair,
    corpus_prototypes,
    li2o2,
    li2o_cubic,
    rattled,
    rutile,
    small_supercell,
    strained,
)

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
    # Bumped when the job list grows; cached inputs of another revision are rebuilt
    # (a recipe that grows must rebuild its earlier jobs exactly: see li2o_md_jobs).
    revision: int = 1

    @property
    def run_dir(self) -> Path:
        return RUNS_DIR / self.name


# --------------------------------------------------------------------------- recipes


def mini_mptrj_jobs(seed: int, *, starts: int = 3, max_steps: int = 8) -> list[Job]:
    """Relaxations from ``starts`` strained/rattled copies of every prototype (plus extra Li2O, MgO)."""
    rng = np.random.default_rng(seed)
    items = [(kind, label, atoms, 0.04, 0.02, 0.05) for kind, label, atoms in corpus_prototypes()]
    runs = [item for item in items for _ in range(starts)]
    # Near-equilibrium Li2O and MgO: the targets of the course are partly in-distribution.
    near_li2o = bulk("OLi2", "fluorite", a=4.65)
    runs += [("antifluorite", "Li2O", near_li2o, 0.01, 0.005, 0.02)] * 3
    runs += [("antifluorite", "Li2O", li2o_cubic(), 0.01, 0.005, 0.03)] * 2
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
    return md_snapshots(
        li2o_cubic(LI2O_MD_LATTICE_A[temperature_K]),
        seed,
        temperature_K=temperature_K,
        n_snapshots=n_snapshots,
        interval=interval,
        equilibration=equilibration,
        timestep_fs=timestep_fs,
        friction_per_fs=0.01,
    )


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


def li2o_md_jobs(
    seed: int,
    *,
    per_temperature: int = 150,
    test_fraction: float = 0.2,
    extra_per_temperature: int = 250,
) -> list[Job]:
    """Single points of MD snapshots, alternating temperatures; test split stratified by T.

    The first ``per_temperature`` snapshots per temperature (trajectories seeded
    ``seed``, ``seed + 1``) are the original 300 frames with their fixed test
    split. ``extra_per_temperature`` more come from fresh trajectories (seeds
    ``seed + 10``, ``seed + 11``) and all join the training pool, so every
    number measured on the test split before the pool grew stays comparable.
    """
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
    extra = {}
    for offset, temperature in enumerate(LI2O_MD_TEMPERATURES_K):
        md_seed = seed + 10 + offset
        frames = cached_md_snapshots(
            md_seed, temperature_K=temperature, n_snapshots=extra_per_temperature
        )
        for index, frame in enumerate(frames):
            frame.info.update(
                temperature_K=temperature,
                md_snapshot=index,
                md_seed=md_seed,
                config_type=f"md-{int(temperature)}K",
                split="train",
            )
        extra[temperature] = frames
    for index in range(extra_per_temperature):
        for temperature, frames in extra.items():
            key = f"T{int(temperature):04d}-{per_temperature + index:03d}"
            jobs.append(Job(key=key, atoms=frames[index]))
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


# Left out of the off-equilibrium corpus: the Li case study's own composition, so that
# what course-mini-omat gains on hot Li2O is transfer from other chemistries.
OMAT_LEFT_OUT = frozenset({"Li2O"})
OMAT_RATTLE_SIGMAS_A = (0.05, 0.1, 0.15, 0.2)
OMAT_MD_TEMPERATURE_RANGE_K = (300.0, 1500.0)
#: Formulas whose single points cost far more than the rest, labelled only up to their first
#: frames in job order. Measured (GPAW, one core): Na2S 916 s and Mg2Si 488 s per 12-atom frame
#: against a median of 33 s over the other frames; their 40 frames alone would have cost 8 CPU h,
#: a third of the dataset. Six of each keep the antifluorite family's other chemistries in.
OMAT_CAPPED_FORMULAS = {"Na2S": 6, "Mg2Si": 6}
#: Rattled frames of other prototypes that replace the capped ones (revision 2).
OMAT_EXTRA_RATTLED = 20


def md_snapshots(
    atoms: Atoms,
    seed: int,
    *,
    temperature_K: float,
    n_snapshots: int,
    interval: int = 15,
    equilibration: int = 60,
    timestep_fs: float = 1.0,
    friction_per_fs: float = 0.02,
) -> list[Atoms]:
    """CHGNet Langevin MD of ``atoms`` (seeded); a snapshot every ``interval`` steps.

    With the defaults: 60 fs to thermalise (a 50 fs thermostat time) and
    snapshots 15 fs apart: AIMD-like off-equilibrium frames, as in OMat24,
    not an equilibrium ensemble. 1 fs steps keep hydrogen compounds stable
    at 1500 K.
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    work = atoms.copy()
    work.calc = CHGNetCalculator(model=CHGNet.load(verbose=False), use_device="cpu")
    rng = np.random.RandomState(seed)
    MaxwellBoltzmannDistribution(work, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(
        work,
        timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        rng=rng,
    )
    dyn.run(equilibration)
    snapshots = []
    for _ in range(n_snapshots):
        dyn.run(interval)
        snap = Atoms(work.numbers, positions=work.positions, cell=work.cell, pbc=True)
        snap.wrap()
        snapshots.append(snap)
    return snapshots


def _cached(path: Path, make: Callable[[], list[Atoms]]) -> list[Atoms]:
    if path.exists():
        return ase.io.read(path, index=":", format="extxyz")
    frames = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.extxyz")
    ase.io.write(tmp, frames, format="extxyz")
    tmp.replace(path)
    return frames


def mini_omat_jobs(
    seed: int,
    *,
    per_sigma: int = 2,
    n_strained: int = 4,
    md_runs: int = 2,
    snapshots_per_run: int = 4,
    test_fraction: float = 0.1,
    capped: dict[str, int] | None = None,
    n_extra: int = OMAT_EXTRA_RATTLED,
) -> list[Job]:
    """Off-equilibrium single points of the corpus's prototypes (Li2O left out), OMat24-style.

    Per prototype, in its smallest supercell of at least 8 atoms: rattles of
    every σ in ``OMAT_RATTLE_SIGMAS_A`` (``per_sigma`` each), ``n_strained``
    strains of ±5-10 % (shear up to ±5 %, plus a 0.03 Å rattle), and
    ``md_runs`` short CHGNet MD runs at temperatures drawn from 300-1500 K,
    ``snapshots_per_run`` frames each (MD cached under ``data/dft-runs/mini-omat/md/``).
    The job order is shuffled so that a partial dataset covers every prototype;
    ``test_fraction`` of the frames are held out by frame (info split); info
    ``prototype`` and ``formula`` let training hold out whole families instead.
    ``capped`` (formula: count) keeps only the first jobs of costly formulas and
    appends ``n_extra`` rattled frames of other prototypes in their place.
    """
    rng = np.random.default_rng(seed)
    items = []
    for kind, label, atoms in corpus_prototypes():
        if label in OMAT_LEFT_OUT:
            continue
        cell = small_supercell(atoms)
        for sigma in OMAT_RATTLE_SIGMAS_A:
            for _ in range(per_sigma):
                items.append((kind, label, "rattled", rattled(cell, rng, sigma=sigma), {}))
        for _ in range(n_strained):
            magnitude = rng.uniform(0.05, 0.10)
            eps = rng.choice([-1.0, 1.0]) * magnitude
            out = strained(cell, rng, normal=0.0, shear=0.05)
            out.set_cell(np.asarray(out.cell) * (1.0 + eps), scale_atoms=True)
            info = {"strain": round(float(eps), 4)}
            items.append((kind, label, "strained", rattled(out, rng, sigma=0.03), info))
        for run in range(md_runs):
            temperature = float(round(rng.uniform(*OMAT_MD_TEMPERATURE_RANGE_K)))
            md_seed = int(rng.integers(2**31))
            path = RUNS_DIR / "mini-omat" / "md" / f"{kind}-{label}-{run}.extxyz"
            run_md = partial(
                md_snapshots,
                cell,
                md_seed,
                temperature_K=temperature,
                n_snapshots=snapshots_per_run,
            )
            frames = _cached(path, run_md)
            for frame in frames:
                items.append((kind, label, "md", frame, {"temperature_K": temperature}))
    order = rng.permutation(len(items))
    test = set(
        rng.choice(len(items), size=round(test_fraction * len(items)), replace=False).tolist()
    )
    jobs = [
        _omat_job(index, items[item_index], test=index in test)
        for index, item_index in enumerate(order)
    ]
    if capped:
        jobs = _capped(jobs, capped)
        jobs += _extra_rattled_jobs(seed, first_index=len(items), n=n_extra, skip=set(capped))
    return jobs


def _omat_job(index: int, item: tuple, *, test: bool) -> Job:
    kind, label, mode, atoms, info = item
    atoms = atoms.copy()
    atoms.info.update(
        config_type=mode,
        prototype=kind,
        formula=label,
        split="test" if test else "train",
        **info,
    )
    return Job(key=f"{index:04d}-{mode}-{kind}-{label}", atoms=atoms)


def _capped(jobs: list[Job], caps: dict[str, int]) -> list[Job]:
    """``jobs`` with only the first ``caps[formula]`` jobs of each capped formula (job order kept)."""
    seen: dict[str, int] = {}
    kept = []
    for job in jobs:
        formula = job.atoms.info["formula"]
        seen[formula] = seen.get(formula, 0) + 1
        if formula not in caps or seen[formula] <= caps[formula]:
            kept.append(job)
    return kept


def _extra_rattled_jobs(seed: int, *, first_index: int, n: int, skip: set[str]) -> list[Job]:
    """``n`` rattled frames of distinct prototypes (none in ``skip``), keys from ``first_index``.

    Drawn from their own random stream (``seed + 1``), so the jobs before them keep
    their structures, keys and splits exactly.
    """
    rng = np.random.default_rng(seed + 1)
    prototypes = [
        (kind, label, atoms)
        for kind, label, atoms in corpus_prototypes()
        if label not in OMAT_LEFT_OUT and label not in skip
    ]
    chosen = rng.choice(len(prototypes), size=n, replace=False)
    jobs = []
    for offset, choice in enumerate(chosen):
        kind, label, atoms = prototypes[choice]
        sigma = float(rng.choice(OMAT_RATTLE_SIGMAS_A))
        frame = rattled(small_supercell(atoms), rng, sigma=sigma)
        test = bool(rng.random() < 0.1)
        jobs.append(_omat_job(first_index + offset, (kind, label, "rattled", frame, {}), test=test))
    return jobs


def o2_molecule() -> Atoms:
    """Triplet O2 in an 8.0x8.5x9.0 Å box: the oxygen reference of every hull."""
    o2 = Atoms(
        "O2", positions=[(4.0, 4.25, 4.5), (4.0, 4.25, 5.73)], cell=[8.0, 8.5, 9.0], pbc=True
    )
    o2.set_initial_magnetic_moments([1.0, 1.0])  # triplet: the only spin-polarised calculation
    o2.info["molecule"] = True
    return o2


def li_o_phase_structures() -> dict[str, Atoms]:
    """The Li-O phases: stable ones, elemental references and a few above the hull."""
    anti_rutile = rutile("O", "Li", 4.00, 3.00, 0.30)
    lio_rocksalt = bulk("LiO", "rocksalt", a=4.20)
    return {
        "Li-bcc": bulk("Li", "bcc", a=3.44),
        "Li-fcc": bulk("Li", "fcc", a=4.33),
        "Li-sc": bulk("Li", "sc", a=2.75),
        "O2-molecule": o2_molecule(),
        "Li2O-antifluorite": bulk("OLi2", "fluorite", a=4.65),
        "Li2O-antirutile": anti_rutile,
        "Li2O2-P63mmc": li2o2(),
        "LiO-rocksalt": lio_rocksalt,
    }


def mg_o_phase_structures() -> dict[str, Atoms]:
    """The Mg-O phases: hcp Mg and O2 (references), rocksalt MgO, and MgO polymorphs above it."""
    return {
        "Mg-hcp": bulk("Mg", "hcp", a=3.19, c=5.18),
        "Mg-bcc": bulk("Mg", "bcc", a=3.58),
        "O2-molecule": o2_molecule(),
        "MgO-rocksalt": bulk("MgO", "rocksalt", a=4.25),
        "MgO-cesiumchloride": bulk("MgO", "cesiumchloride", a=2.60),
        "MgO-zincblende": bulk("MgO", "zincblende", a=4.60),
        "MgO-wurtzite": bulk("MgO", "wurtzite", a=3.30, c=5.10),
    }


#: Compressed pairs in Li2O (distances in Å, equilibrium Li-Li 2.33, Li-O 2.01, O-O 3.29 at
#: a = 4.65 Å): DFT points on each pair's repulsive wall, below what hot MD reaches.
LI2O_PAIR_DISTANCES_A = {
    ("Li", "Li"): (1.3, 1.5, 1.7, 1.9, 2.1),
    ("Li", "O"): (1.1, 1.3, 1.5, 1.7, 1.9),
    ("O", "O"): (1.8, 2.1, 2.4, 2.7, 3.0),
}


def li2o_pairs_jobs(seed: int) -> list[Job]:
    """Single points of the 12-atom Li2O cell with one pair pushed together (no randomness)."""
    jobs = []
    for pair, distances in LI2O_PAIR_DISTANCES_A.items():
        for distance in distances:
            atoms = compressed_pair(li2o_cubic(4.65), pair, distance)
            atoms.info.update(pair="-".join(pair), pair_distance_A=distance, config_type="pair")
            jobs.append(Job(key=f"{pair[0]}-{pair[1]}-{distance:.2f}", atoms=atoms))
    return jobs


#: The model whose own MD gives ``li2o-model-md`` its snapshots.
MODEL_MD_MODEL = "course-mini"


def model_md_snapshots(
    model: str,
    seed: int,
    *,
    temperature_K: float,
    n_snapshots: int,
    interval: int = 30,
    equilibration: int = 240,
    timestep_fs: float = 2.0,
    max_runs: int = 20,
) -> list[Atoms]:
    """Snapshots of ``model``'s own Langevin MD of 12-atom Li2O (``course_lib.md.run_md``).

    The protocol of ``li2o_md_snapshots`` (CHGNet's MD): about 0.5 ps of
    equilibration (a multiple of ``interval``), then a snapshot every
    ``interval`` steps. ``model`` is a registered name, a file or an ASE calculator. A run the MD
    module stops as unstable (atoms closer than its limit, or NaN) gives the
    snapshots it reached, the last one included: the structures where the
    model went wrong are the ones its parity check most needs. Further runs
    (seeds ``seed + 100 k``) continue until ``n_snapshots`` are collected.
    """
    from course_lib.md import md_structure, run_md

    snapshots: list[Atoms] = []
    for run in range(max_runs):
        run_seed = seed + 100 * run
        result = run_md(
            model,
            md_structure("li2o", temperature_K=temperature_K),
            temperature_K=temperature_K,
            steps=equilibration + interval * (n_snapshots - len(snapshots)),
            timestep_fs=timestep_fs,
            seed=run_seed,
            sample_every=interval,
            friction_per_fs=0.01,
            structure="li2o",
        )
        for frame, time_fs in zip(result.frames, result.times_fs):
            step = round(time_fs / timestep_fs)
            if step < equilibration and step != result.failed_step:
                continue
            frame = frame.copy()
            frame.info.update(
                md_seed=run_seed,
                md_step=step,
                md_stable=result.stable,
                md_failed_step=-1 if result.failed_step is None else result.failed_step,
            )
            snapshots.append(frame)
        if len(snapshots) >= n_snapshots:
            break
    return snapshots[:n_snapshots]


def li2o_model_md_jobs(
    seed: int, *, model: str = MODEL_MD_MODEL, per_temperature: int = 32, test_fraction: float = 0.2
) -> list[Job]:
    """Single points of snapshots of ``model``'s own MD of Li2O at 300 K and 1200 K.

    The chapter's protocol starts from the model's own zero-shot MD; ``li2o-md``
    took its snapshots from CHGNet's. The MD is cached per temperature under
    ``data/dft-runs/li2o-model-md/`` with the model file's sha256 in its name, so
    a retrained model gives new snapshots, never a silent mix.
    """
    from course_lib import data as ds
    from course_lib.models import model_file

    sha = ds.sha256_of(model_file(model))
    rng = np.random.default_rng(seed)
    jobs = []
    for offset, temperature in enumerate(LI2O_MD_TEMPERATURES_K):
        path = RUNS_DIR / "li2o-model-md" / f"md-{model}-{sha[:12]}-{int(temperature)}K.extxyz"
        frames = _cached(
            path,
            partial(
                model_md_snapshots,
                model,
                seed + offset,
                temperature_K=temperature,
                n_snapshots=per_temperature,
            ),
        )
        test = set(
            rng.choice(len(frames), size=round(test_fraction * len(frames)), replace=False).tolist()
        )
        for index, frame in enumerate(frames):
            atoms = frame.copy()
            atoms.info.update(
                temperature_K=temperature,
                md_model=model,
                md_model_sha256=sha,
                config_type=f"model-md-{int(temperature)}K",
                split="test" if index in test else "train",
            )
            jobs.append(Job(key=f"T{int(temperature):04d}-{index:03d}", atoms=atoms))
    return jobs


def li_o_phases_jobs(seed: int) -> list[Job]:
    """Tight relaxations (fmax 0.02 eV/Å, cell too except for O2) of every Li-O phase."""
    return phase_jobs(li_o_phase_structures(), seed)


def mg_o_phases_jobs(seed: int) -> list[Job]:
    """Tight relaxations (fmax 0.02 eV/Å, cell too except for O2) of every Mg-O phase."""
    return phase_jobs(mg_o_phase_structures(), seed)


def phase_jobs(structures: dict[str, Atoms], seed: int) -> list[Job]:
    """One tight relaxation per phase, from a 0.01 Å rattle (molecules as they are)."""
    rng = np.random.default_rng(seed)
    jobs = []
    for name, atoms in structures.items():
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
            notes=(
                "MD driven by CHGNet (pretrained on MPtrj, weights bundled with the chgnet "
                "package). Revision 2 adds 250 snapshots per temperature from two fresh "
                "trajectories (seeds 13 and 14), all in the training pool; the first 300 frames "
                "and their test split are those of revision 1."
            ),
            revision=2,
        ),
        Recipe(
            name="mini-omat",
            description=(
                "Off-equilibrium companion of mini-mptrj, made the way OMat24 was: the corpus's "
                "prototypes in supercells of 8+ atoms, rattled (σ 0.05-0.2 Å), strained "
                "(±5-10%, shear ±5%) and snapshots of short CHGNet MD at 300-1500 K, every frame "
                "a DFT single point. Li2O, the Li case study's composition, is left out so that "
                "what a model gains on hot Li2O is transfer from other chemistries. 10% of the "
                "frames held out (info split); info prototype/formula for holding out families."
            ),
            seed=21,
            build=partial(mini_omat_jobs, capped=OMAT_CAPPED_FORMULAS),
            notes=(
                "MD: CHGNet 0.3.0 Langevin, 1 fs steps, friction 0.02/fs, 60 fs to thermalise, "
                "snapshots 15 fs apart (short runs: off-equilibrium frames, not an ensemble). "
                "Revision 2: Na2S and Mg2Si, whose single points cost 916 and 488 CPU s per "
                "frame (median of the rest 33 s), keep only their first 6 frames each in job "
                "order; 20 rattled frames of other prototypes (keys from 1020) replace them. "
                "Every other job, key and split is that of revision 1."
            ),
            revision=2,
        ),
        Recipe(
            name="li2o-model-md",
            description=(
                "Li case study, the chapter's protocol to the letter: snapshots of the course "
                "model's own zero-shot Langevin MD (course-mini, 2 fs step) of antifluorite Li2O "
                "(12-atom cubic cell) at 300 K (a=4.65 Å) and 1200 K (a=4.73 Å), 60 fs apart "
                "after 0.5 ps of equilibration, each labelled by DFT. Where the model's MD went "
                "unstable, the snapshots it reached (the failing one included) and further "
                "seeded runs. 20% per temperature in the test split (info split)."
            ),
            seed=31,
            build=li2o_model_md_jobs,
            notes=(
                "MD: course_lib.md.run_md with the registered model named in info md_model "
                "(its file's sha256 in info md_model_sha256); info md_seed, md_step, md_stable "
                "and md_failed_step say where each snapshot comes from."
            ),
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
        Recipe(
            name="li2o-pairs",
            description=(
                "Repulsive walls in Li2O: the 12-atom antifluorite cell (a = 4.65 Å) with its "
                "closest Li-Li, Li-O or O-O pair pushed together along its axis to 1.1-3.0 Å "
                "(five distances per pair, the rest of the crystal unchanged), each a DFT single "
                "point: reference points for the pair curves of fine-tuned models."
            ),
            seed=0,
            build=li2o_pairs_jobs,
        ),
        Recipe(
            name="mgo-phases",
            description=(
                "Competing phases of the Mg-O system for the convex-hull check of the MgO "
                "target: DFT relaxations (positions and cell; O2 positions only) of hcp Mg, "
                "triplet O2 in a box (the same job as in li-o-phases, its result reused), "
                "rocksalt MgO, and "
                "polymorphs above the hull (bcc Mg; CsCl, zincblende and wurtzite MgO). Every "
                "ionic step is kept; info relaxed_end_point marks the converged end point."
            ),
            seed=9,
            build=mg_o_phases_jobs,
            notes=(
                "O2 is the only spin-polarised calculation (triplet, Γ point only). The k-point "
                "grid of each relaxation is fixed from its starting cell."
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
        first = jobs[0].atoms.info if jobs else {}
        if first.get("recipe_seed") == recipe.seed and (
            first.get("recipe_revision", 1) == recipe.revision
        ):
            return jobs
    jobs = recipe.build(recipe.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = [_atoms_from_job(job, recipe) for job in jobs]
    ase.io.write(path, inputs, format="extxyz")
    return jobs


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"no recipe called {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


JOB_INFO_KEYS = ("job_key", "job_kind", "job_options", "recipe_seed", "recipe_revision")


def _atoms_from_job(job: Job, recipe: Recipe) -> Atoms:
    atoms = job.atoms.copy()
    atoms.info.update(
        job_key=job.key,
        job_kind=job.kind,
        job_options=json.dumps(job.options),
        recipe_seed=recipe.seed,
        recipe_revision=recipe.revision,
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


def make_dataset(
    name: str,
    *,
    workers: int = 1,
    limit: int | None = None,
    assemble_only: bool = False,
    retry_failed: bool = False,
    scheduler=None,
) -> dict:
    """Label (unless ``assemble_only``) and assemble one bundled dataset; return a summary.

    ``scheduler`` (``"local"``, a Dask scheduler address or a ``distributed.Client``)
    runs the GPAW jobs on a Dask cluster instead of ``workers`` local processes;
    it is connected to first, so an unreachable address fails before anything runs.
    """
    from contextlib import nullcontext

    from course_lib.dft import label_structures, require_gpaw
    from course_lib.distributed import dask_client

    recipe = get_recipe(name)
    use_dask = scheduler is not None and not assemble_only
    with dask_client(scheduler) if use_dask else nullcontext() as client:
        jobs = load_jobs(name)
        summary = {"dataset": name, "jobs": len(jobs)}
        if not assemble_only:
            require_gpaw()
            selected = jobs if limit is None else jobs[:limit]
            report = label_structures(
                selected,
                recipe.run_dir,
                DEFAULT_SETTINGS,
                workers=workers,
                retry_failed=retry_failed,
                scheduler=client,
            )
            summary.update(computed=report.n_computed, skipped=report.n_skipped)
    path, frames = assemble_recipe(name, jobs=jobs)
    failures = read_failures(recipe.run_dir)
    summary.update(
        finished=sum((recipe.run_dir / f"{job.key}.extxyz").exists() for job in jobs),
        failed=len(failures),
        frames=len(frames),
        file=str(path),
    )
    return summary
