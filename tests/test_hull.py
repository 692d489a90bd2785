"""The convex-hull check on a made-up A-B system (Cu-Au symbols, energies invented).

DFT (formation energies, eV/atom): A 0, B 0, AB -0.5 (stable), AB2 -0.4
(stable), A2B -0.2 (0.133 eV/atom above the A-AB tie line), AB-beta, a
polymorph 50 meV/atom above AB.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from course_lib import hull
from course_lib.data import ENERGY_KEY, DatasetError

A, B = "Cu", "Au"
MU = {A: -1.0, B: -2.0}  # DFT elemental energies, eV/atom
PHASES = {  # name: (n_A, n_B, formation energy eV/atom)
    "A": (2, 0, 0.0),
    "B": (0, 2, 0.0),
    "AB": (1, 1, -0.5),
    "AB-beta": (2, 2, -0.45),
    "AB2": (1, 2, -0.4),
    "A2B": (2, 1, -0.2),
}


def phase_frames(formation=None):
    formation = {**{p: v[2] for p, v in PHASES.items()}, **(formation or {})}
    frames = []
    for name, (n_a, n_b, _) in PHASES.items():
        atoms = Atoms(
            [A] * n_a + [B] * n_b, positions=np.arange(3 * (n_a + n_b)).reshape(-1, 3) * 0.7
        )
        atoms.info["phase"] = name
        atoms.info[ENERGY_KEY] = n_a * MU[A] + n_b * MU[B] + (n_a + n_b) * formation[name]
        frames.append(atoms)
    return frames


def shifted(frames, shift_per_atom, *, noise=0.0, seed=0):
    """Energies of ``frames`` plus a per-element constant (another 'DFT setup') and noise (eV/atom)."""
    rng = np.random.default_rng(seed)
    return np.array(
        [
            a.info[ENERGY_KEY]
            + sum(shift_per_atom[s] for s in a.get_chemical_symbols())
            + len(a) * noise * rng.standard_normal()
            for a in frames
        ]
    )


def test_dft_hull_of_the_made_up_system():
    frames = phase_frames()
    result = hull.compare_hulls(frames, hull.ds.energies(frames))
    assert set(result.dft_stable) == {"A", "B", "AB", "AB2"}
    assert result.dft_e_above_hull_meV_per_atom["A2B"] == pytest.approx(1e3 * (0.5 * 2 / 3 - 0.2))
    assert result.dft_e_above_hull_meV_per_atom["AB-beta"] == pytest.approx(50.0)
    assert result.dft_formation_meV_per_atom["AB"] == pytest.approx(-500.0)


def test_per_element_offsets_and_small_noise_pass_and_offsets_are_recovered():
    frames = phase_frames()
    setup = {A: 0.3, B: -0.7}
    result = hull.compare_hulls(frames, shifted(frames, setup, noise=0.002), model="shifted")
    assert result.passed and result.same_stable_set
    assert result.max_abs_e_above_hull_error_meV_per_atom < 10
    # elemental alignment undoes the setup's shift (noise on the elements aside)
    assert result.offsets_eV[A] == pytest.approx(-setup[A], abs=0.01)
    assert result.offsets_eV[B] == pytest.approx(-setup[B], abs=0.01)
    assert "PASS" in result.table()


def test_planted_ordering_flip_is_caught():
    frames = phase_frames()
    model_view = phase_frames({"AB2": -0.3, "A2B": -0.45})  # AB2 loses, A2B wins
    energies = shifted(model_view, {A: 0.3, B: -0.7})
    result = hull.compare_hulls(frames, energies, model="flipped")
    assert not result.passed
    assert result.missing == ("AB2",)
    assert result.spurious == ("A2B",)
    errors = result.e_above_hull_errors_meV_per_atom
    assert errors["A2B"] == pytest.approx(-1e3 * (0.5 * 2 / 3 - 0.2))
    assert errors["AB2"] > 0
    assert "<- flip" in result.table()


def test_polymorph_ordering_flip_within_one_composition_is_caught():
    frames = phase_frames()
    energies = shifted(phase_frames({"AB-beta": -0.55}), {A: 0.0, B: 0.0})
    result = hull.compare_hulls(frames, energies)
    assert result.missing == ("AB",) and result.spurious == ("AB-beta",)


def test_tolerance_on_energy_above_hull_fails_a_same_set_with_large_errors():
    frames = phase_frames()
    energies = shifted(phase_frames({"A2B": -0.3}), {A: 0.0, B: 0.0})  # still unstable
    loose = hull.compare_hulls(frames, energies)
    strict = hull.compare_hulls(frames, energies, tolerance_meV_per_atom=50)
    assert loose.passed and not strict.passed
    assert strict.max_abs_e_above_hull_error_meV_per_atom == pytest.approx(100.0)


def test_missing_phase_label_or_elemental_reference_is_a_clear_error():
    frames = phase_frames()
    del frames[2].info["phase"]
    with pytest.raises(DatasetError, match="frame 2 has no info"):
        hull.compare_hulls(frames, hull.ds.energies(frames))
    frames = [f for f in phase_frames() if f.info["phase"] != "B"]
    with pytest.raises(DatasetError, match="no elemental phase of Au"):
        hull.compare_hulls(frames, hull.ds.energies(frames))
