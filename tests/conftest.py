"""Shared fixtures: small labelled frames and a tiny randomly initialised MACE.

The labels here come from ASE's EMT potential: a cheap, exact test oracle,
never presented as DFT.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from course_lib.data import ENERGY_KEY, FORCES_KEY, STRESS_KEY


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    """Keep model caches, recorded hashes and outputs of a test out of the user's home."""
    monkeypatch.setenv("COURSE_MODEL_CACHE", str(tmp_path / "model-cache"))
    monkeypatch.setenv("COURSE_WORK_DIR", str(tmp_path / "work"))


def label_with(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    atoms.calc = None
    atoms.info[ENERGY_KEY] = energy
    atoms.arrays[FORCES_KEY] = forces
    atoms.info[STRESS_KEY] = stress
    return atoms


def emt_frames(n: int = 6, seed: int = 0) -> list:
    """Rattled Cu and CuAl cells labelled with EMT (varied composition, 4-8 atoms)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.05 * rng.standard_normal(), cubic=True)
        if i % 2:
            atoms = atoms.repeat((2, 1, 1))
            atoms.symbols[: 1 + i % 3] = "Al"
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        frames.append(label_with(EMT(), atoms))
    return frames


def split_dataset(path, n: int, *, seed: int, n_test: int):
    """An EMT dataset file at ``path``: ``n`` frames, the first ``n_test`` a fixed test split."""
    from course_lib.data import write_dataset

    frames = emt_frames(n, seed=seed)
    for i, atoms in enumerate(frames):
        atoms.info["split"] = "test" if i < n_test else "train"
    return write_dataset(path, frames, {"method": "EMT (test oracle)"})


@pytest.fixture
def frames():
    return emt_frames()


@pytest.fixture(scope="session")
def tiny_mace():
    """A 2-layer MACE with 8 scalar channels for Al and Cu, random weights, float64."""
    from course_lib.mace_models import MaceArchitecture, build_mace

    architecture = MaceArchitecture(
        r_max=4.0, hidden_irreps="8x0e", mlp_irreps="8x0e", correlation=2
    )
    return build_mace(emt_frames(), architecture=architecture, seed=0).eval()


@pytest.fixture
def tiny_mace_file(tiny_mace, tmp_path):
    import torch

    path = tmp_path / "tiny.model"
    torch.save(tiny_mace, path)
    return path


# JupyterLab and headless Chromium, for the browser tests (one of each per test module).
from browser_support import browser, lab  # noqa: E402, F401
