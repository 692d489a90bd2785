"""The convex-hull check on a made-up A-B system (Cu-Au symbols, energies invented).

DFT (formation energies, eV/atom): A 0, B 0, AB -0.5 (stable), AB2 -0.4
(stable), A2B -0.2 (0.133 eV/atom above the A-AB tie line), AB-beta, a
polymorph 50 meV/atom above AB.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111

from course_lib import hull
from course_lib.data import ENERGY_KEY, DatasetError
from course_lib.dft import FINGERPRINT_KEY

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


# --------------------------------------------------------------------------- why it fails

SAME_SETUP = hull.CorpusCheck("corpus", 10, (0, 0, 0, 10), True, ())


def test_a_planted_wrongly_stable_phase_is_named_with_its_formation_error():
    frames = phase_frames()
    model_view = phase_frames({"A2B": -0.45})  # A2B drops 250 meV/atom: now on the hull
    result = hull.compare_hulls(frames, shifted(model_view, {A: 0.3, B: -0.7}), model="m")
    assert result.spurious == ("A2B",) and result.dominant_phase == "A2B"
    assert result.formation_errors_meV_per_atom["A2B"] == pytest.approx(-250.0)
    assert result.missing == ()  # AB stays below the new A2B-AB2 tie line
    why = result.explanation
    assert why[0] == "stable in the model, not in DFT: A2B (DFT: 133.3 meV/atom above the hull)"
    assert why[1] == (
        "largest formation-energy error: A2B, model -450.0 vs DFT -200.0 meV/atom (-250.0)"
    )
    assert "no training corpus given" in why[-1]
    assert "why: stable in the model" in result.table()
    assert result.as_dict()["explanation"] == list(why)
    # a passing check has nothing to explain
    assert hull.compare_hulls(frames, hull.ds.energies(frames)).explanation == ()


def test_a_planted_wrong_elemental_reference_is_recovered_from_the_raw_energies():
    frames = phase_frames()
    energies = hull.ds.energies(frames).copy()
    b_ref = [f.info["phase"] for f in frames].index("B")
    energies[b_ref] -= 1.5 * len(frames[b_ref])  # the model's B reference 1.5 eV/atom too low
    result = hull.compare_hulls(frames, energies, corpus=SAME_SETUP)
    assert not result.passed and set(result.missing) == {"AB", "AB2"}
    assert result.reference_errors_meV_per_atom == pytest.approx({A: 0.0, B: -1500.0})
    # every compound's own energy is right; the reference passes on x_B x 1500 meV/atom
    parts = result.formation_error_parts("AB2")
    assert parts == pytest.approx({"own": 0.0, A: 0.0, B: 1000.0}, abs=1e-9)
    assert sum(parts.values()) == pytest.approx(result.formation_errors_meV_per_atom["AB2"])
    assert result.dominant_phase == "AB2"
    assert any("the Au reference (B) carries most of it" in r for r in result.explanation)
    # with two DFT setups the split is not decidable, and the explanation says so
    other = hull.compare_hulls(frames, energies, corpus=replace(SAME_SETUP, same_dft_setup=False))
    assert not any("carries most" in r for r in other.explanation)
    assert any("differ" in r and "not decidable" in r for r in other.explanation)


def test_a_pass_with_a_planted_wrong_elemental_reference_names_it_in_a_caveat():
    frames = phase_frames()
    energies = hull.ds.energies(frames).copy()
    b_ref = [f.info["phase"] for f in frames].index("B")
    energies[b_ref] += 0.6 * len(frames[b_ref])  # the model's B reference 0.6 eV/atom too high
    result = hull.compare_hulls(frames, energies, corpus=SAME_SETUP)
    # every compound sinks by x_B x 600 meV/atom: the same phases stay on the hull
    assert result.passed and set(result.model_stable) == {"A", "B", "AB", "AB2"}
    assert result.explanation == ()
    assert result.formation_errors_meV_per_atom == pytest.approx(
        {"A": 0.0, "B": 0.0, "AB": -300.0, "AB-beta": -300.0, "AB2": -400.0, "A2B": -200.0}
    )
    caveats = result.caveats
    assert caveats[0].startswith(
        "the stable sets agree, but formation energies differ from DFT's by more than 100 "
        "meV/atom: AB2 (model -800.0 vs DFT -400.0, -400.0), "  # the furthest off first
    )
    for off in ("AB (model -800.0 vs DFT -500.0, -300.0)", "A2B (model -400.0 vs DFT -200.0"):
        assert off in caveats[0]
    assert caveats[0].count("(model ") == 4  # the compounds, not the exact references
    assert "Au via B +600.0" in caveats[1]
    assert caveats[2].endswith("the Au reference (B) carries most of it")
    assert "  caveat: the stable sets agree" in result.table() and "PASS" in result.table()
    assert result.as_dict()["caveats"] == list(caveats)
    # without the corpus the reference cannot be told from the phases' own errors
    unchecked = hull.compare_hulls(frames, energies).caveats
    assert len(unchecked) == 2 and "no training corpus given" in unchecked[1]


def test_a_pass_within_the_formation_tolerance_has_no_caveat():
    frames = phase_frames()
    setup = {A: 0.3, B: -0.7}  # another DFT setup: the elemental alignment removes it
    result = hull.compare_hulls(frames, shifted(frames, setup, noise=0.002), corpus=SAME_SETUP)
    assert result.passed
    assert max(map(abs, result.formation_errors_meV_per_atom.values())) < 10
    assert result.caveats == () and "caveat" not in result.table()
    # a failed check explains itself instead
    energies = hull.ds.energies(frames).copy()
    b_ref = [f.info["phase"] for f in frames].index("B")
    energies[b_ref] -= 1.5 * len(frames[b_ref])
    failed = hull.compare_hulls(frames, energies, corpus=SAME_SETUP)
    assert not failed.passed and failed.caveats == () and failed.explanation


def test_periodic_dimension_of_a_crystal_a_slab_and_a_molecule_in_a_box():
    assert hull.periodic_dimension(bulk("Cu", "fcc", a=3.6)) == 3
    assert hull.periodic_dimension(bulk("Li", "bcc", a=3.44)) == 3  # a metal, not isolated atoms
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=8.0)
    slab.pbc = True
    assert hull.periodic_dimension(slab) == 2
    assert hull.periodic_dimension(molecule_in_box("O2", 1.23)) == 0
    assert hull.periodic_dimension(Atoms("O2", positions=[(0, 0, 0), (0, 0, 1.23)])) == 0


def molecule_in_box(symbols: str, bond_A: float) -> Atoms:
    atoms = Atoms(symbols, positions=[(0, 0, 0), (0, 0, bond_A)], cell=[8.0, 8.5, 9.0], pbc=True)
    atoms.center()
    return atoms


def labelled(atoms: Atoms, phase: str, energy_eV: float, fingerprint: str = "setup-1") -> Atoms:
    atoms.info.update({"phase": phase, ENERGY_KEY: energy_eV, FINGERPRINT_KEY: fingerprint})
    return atoms


def test_corpus_check_finds_a_molecule_outside_a_crystal_corpus_and_the_explanation_says_so():
    corpus = [labelled(bulk("Cu", "fcc", a=a).repeat(2), "c", 0.0) for a in (3.55, 3.6, 3.65)] + [
        labelled(bulk("Au", "fcc", a=a).repeat(2), "c", 0.0) for a in (4.05, 4.1, 4.15)
    ]
    phases = [
        labelled(bulk("Cu", "fcc", a=3.6), "Cu-fcc", -1.0),
        labelled(molecule_in_box("Au2", 2.5), "Au2-molecule", -2.0 * 2),
        labelled(bulk("CuAu", "rocksalt", a=5.0), "CuAu-rs", -1.0 - 2.0 - 2 * 0.3),
    ]
    check = hull.corpus_check(phases, corpus, corpus_name="crystals")
    assert check.crystals_only and check.periodic_dimensions == (0, 0, 0, 6)
    assert check.same_dft_setup is True
    cu, au2, cuau = check.environments
    assert cu.periodic_dimension == 3 and not cu.outside_corpus and cu.coverage_score == 1.0
    assert au2.molecule and au2.outside_corpus
    assert any(r.startswith("Au-Au 2.") for r in au2.uncovered)  # the 2.5 Å bond
    # the model gets the molecule 1 eV/atom too low: CuAu loses its place on the hull
    energies = np.array([-1.0, -2.0 * 2 - 2.0, -1.0 - 2.0 - 2 * 0.3])
    result = hull.compare_hulls(phases, energies, corpus=check, model="m")
    assert result.missing == ("CuAu-rs",)
    why = "\n".join(result.explanation)
    assert (
        "Au2-molecule is a molecule in a box, while all 6 frames of crystals are 3-periodic" in why
    )
    assert "it is the Au reference of every Au-containing formation energy" in why
    assert "Au2-molecule: environments outside crystals: Au-Au 2." in why
    assert "the Au reference (Au2-molecule) carries most of it" in why
    assert result.as_dict()["corpus"]["environments"][1]["molecule"] is True
    # a frame without a fingerprint leaves the DFT setup unknown
    unknown = hull.corpus_check(phases, [*corpus, bulk("Cu", "fcc", a=3.6)], corpus_name="x")
    assert unknown.same_dft_setup is None
