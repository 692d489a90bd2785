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


@pytest.fixture
def frames():
    return emt_frames()


@pytest.fixture(scope="session")
def tiny_mace():
    """A 2-layer MACE with 8 scalar channels for Cu and Al, random weights, float64."""
    import mace  # noqa: F401
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=4.0,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=2,
        interaction_cls=block,
        interaction_cls_first=block,
        num_interactions=2,
        num_elements=2,
        hidden_irreps=o3.Irreps("8x0e"),
        MLP_irreps=o3.Irreps("8x0e"),
        atomic_energies=np.array([-3.5, -2.9]),
        avg_num_neighbors=12.0,
        atomic_numbers=[13, 29],
        correlation=2,
        gate=torch.nn.functional.silu,
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )
    return model.double().eval()


@pytest.fixture
def tiny_mace_file(tiny_mace, tmp_path):
    import torch

    path = tmp_path / "tiny.model"
    torch.save(tiny_mace, path)
    return path
