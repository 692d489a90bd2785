"""The DFT pipeline: GPAW physics checks (marked ``gpaw``) and the resumable runner (no GPAW).

The GPAW tests use deliberately cheap settings, passed explicitly, so they run
in seconds; they check that the labels are consistent derivatives of the
energy, not that they are converged.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from course_lib import dft
from course_lib.data import ENERGY_KEY, FORCES_KEY, STRESS_KEY, validate_frames
from course_lib.dft import (
    DFTError,
    DFTSettings,
    Job,
    assemble_dataset,
    label_structures,
    read_failures,
    relax,
)

HAS_GPAW = importlib.util.find_spec("gpaw") is not None

# Cheap but tightly converged SCF: derivatives must match, absolute accuracy does not matter.
CHEAP = DFTSettings(
    ecut_eV=300.0, kpoint_density=1.0, energy_convergence_eV=1e-6, density_convergence=1e-6
)
FORCE_TOLERANCE = 2e-3  # eV/Å, analytic force vs central difference (h = 0.01 Å)
STRESS_TOLERANCE = 5e-4  # eV/Å³ (0.08 GPa), analytic stress vs central difference in strain


@pytest.fixture(scope="module")
def lih_rattled():
    atoms = bulk("LiH", "rocksalt", a=4.0)
    atoms.rattle(0.05, seed=2)
    return atoms


@pytest.fixture(scope="module")
def lih_labelled(lih_rattled, tmp_path_factory):
    # Through ``label``, what notebook 02 calls: runner, cache file, single point.
    (frame,) = dft.label([lih_rattled], settings=CHEAP, out_dir=tmp_path_factory.mktemp("dft"))
    return frame


# --------------------------------------------------------------------------- GPAW


@pytest.mark.gpaw
@pytest.mark.skipif(not HAS_GPAW, reason="GPAW not installed")
def test_single_point_labels_a_two_atom_cell(lih_rattled, lih_labelled):
    frame = lih_labelled
    validate_frames([frame], require_stress=True)
    assert frame.info[dft.FINGERPRINT_KEY] == CHEAP.fingerprint
    assert np.asarray(frame.info[STRESS_KEY]).shape == (6,)
    assert frame.info[ENERGY_KEY] < 0.0
    # Two atoms, no external field: the forces are equal and opposite.
    np.testing.assert_allclose(frame.arrays[FORCES_KEY].sum(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(frame.positions, lih_rattled.positions, atol=1e-6)


@pytest.mark.gpaw
@pytest.mark.skipif(not HAS_GPAW, reason="GPAW not installed")
def test_forces_are_minus_the_energy_gradient(lih_rattled, lih_labelled):
    h = 0.01  # Å
    for atom, axis in [(1, 2)]:
        energies = []
        for sign in (+1, -1):
            moved = lih_rattled.copy()
            moved.positions[atom, axis] += sign * h
            energies.append(dft.single_point(moved, CHEAP).info[ENERGY_KEY])
        finite_difference = -(energies[0] - energies[1]) / (2 * h)
        analytic = lih_labelled.arrays[FORCES_KEY][atom, axis]
        assert abs(analytic - finite_difference) < FORCE_TOLERANCE


@pytest.mark.gpaw
@pytest.mark.skipif(not HAS_GPAW, reason="GPAW not installed")
def test_stress_is_the_strain_derivative_of_the_energy_per_volume():
    # Al needs no high cutoff, so the Pulay stress is negligible at 400 eV.
    settings = DFTSettings(
        ecut_eV=400.0, kpoint_density=1.0, energy_convergence_eV=1e-6, density_convergence=1e-6
    )
    atoms = bulk("Al", "fcc", a=4.0)
    atoms.set_cell(atoms.cell @ (np.eye(3) + [[0.01, 0.005, 0], [0.005, -0.01, 0], [0, 0, 0]]))
    stress = dft.single_point(atoms, settings).info[STRESS_KEY]  # Voigt xx yy zz yz xz xy
    volume = atoms.get_volume()
    h = 0.002
    for (i, j), voigt in [((0, 0), 0), ((0, 1), 5)]:
        energies = []
        for sign in (+1, -1):
            strain = np.zeros((3, 3))
            strain[i, j] = strain[j, i] = sign * h  # symmetric strain
            strained = atoms.copy()
            strained.set_cell(atoms.cell @ (np.eye(3) + strain), scale_atoms=True)
            energies.append(dft.single_point(strained, settings).info[ENERGY_KEY])
        # dE = V sigma_ij eps_ij summed over (ij) and (ji): a shear counts twice.
        multiplicity = 1 if i == j else 2
        finite_difference = (energies[0] - energies[1]) / (2 * h) / volume / multiplicity
        assert abs(stress[voigt] - finite_difference) < STRESS_TOLERANCE


@pytest.mark.gpaw
@pytest.mark.skipif(not HAS_GPAW, reason="GPAW not installed")
def test_gpaw_relaxation_lowers_the_energy_at_every_step(lih_rattled):
    frames = relax(lih_rattled, CHEAP, fmax=0.05, max_steps=5)
    energies = np.array([frame.info[ENERGY_KEY] for frame in frames])
    assert len(frames) >= 2
    assert [frame.info["relax_step"] for frame in frames] == list(range(len(frames)))
    assert np.all(np.diff(energies) < 1e-4)  # eV: BFGS steps only go downhill here
    assert energies[-1] < energies[0]


# --------------------------------------------------------------------------- no GPAW


def test_relax_records_every_step_and_goes_downhill():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.rattle(0.08, seed=1)
    frames = relax(atoms, CHEAP, fmax=0.01, max_steps=30, calculator=EMT())
    energies = np.array([frame.info[ENERGY_KEY] for frame in frames])
    validate_frames(frames, require_stress=True)
    assert energies[-1] < energies[0] - 0.01
    assert frames[-1].info["relaxed_end_point"] and not frames[0].info["relaxed_end_point"]


def test_settings_fingerprint_is_stable_and_sensitive():
    assert DFTSettings().fingerprint == DFTSettings().fingerprint
    assert DFTSettings(ecut_eV=500.0).fingerprint != DFTSettings(ecut_eV=600.0).fingerprint
    assert len(dft.DEFAULT_SETTINGS.fingerprint) == 64


def test_missing_gpaw_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpaw", None)
    with pytest.raises(ImportError, match="apt-get install -y libxc-dev libopenblas-dev"):
        dft.require_gpaw()


def test_time_estimate_grows_with_size():
    small = bulk("Si")
    large = small.repeat((2, 2, 2))
    assert 0 < dft.estimate_time([small]) < dft.estimate_time([large])
    assert dft.estimate_time([small, small], workers=2) == pytest.approx(dft.estimate_time([small]))


def fake_compute(job: Job, settings: DFTSettings):
    """A stand-in for GPAW: EMT labels, or an SCF-style failure for keys starting with 'bad'."""
    if job.key.startswith("bad"):
        raise DFTError("SCF did not converge in 200 iterations")
    if os.environ.get("FAKE_COMPUTE_FORBIDDEN"):
        raise AssertionError(f"job {job.key} was computed again")
    atoms = job.atoms.copy()
    atoms.calc = EMT()
    atoms.get_stress()
    return [dft.labelled_copy(atoms, settings)]


def _jobs(keys):
    return [Job(key=key, atoms=bulk("Cu", "fcc", a=3.6 + 0.01 * i)) for i, key in enumerate(keys)]


def test_runner_writes_one_file_per_job_and_skips_them_on_restart(tmp_path, monkeypatch):
    jobs = _jobs(["a", "b", "c"])
    first = label_structures(jobs, tmp_path, CHEAP, compute=fake_compute, progress=False)
    assert (first.n_jobs, first.n_computed, first.n_skipped, first.n_failed) == (3, 3, 0, 0)
    assert sorted(p.name for p in tmp_path.glob("*.extxyz")) == ["a.extxyz", "b.extxyz", "c.extxyz"]
    monkeypatch.setenv("FAKE_COMPUTE_FORBIDDEN", "1")
    again = label_structures(jobs, tmp_path, CHEAP, compute=fake_compute, progress=False)
    assert (again.n_computed, again.n_skipped) == (0, 3)


def test_runner_logs_a_failed_job_and_keeps_counting_it(tmp_path):
    jobs = _jobs(["a", "bad-scf", "c"])
    report = label_structures(jobs, tmp_path, CHEAP, compute=fake_compute, progress=False)
    assert (report.n_jobs, report.n_computed, report.n_failed) == (3, 2, 1)
    assert report.n_done + report.n_failed == report.n_jobs
    logged = read_failures(tmp_path)
    assert list(logged) == ["bad-scf"] and "SCF did not converge" in logged["bad-scf"]["error"]
    assert not (tmp_path / "bad-scf.extxyz").exists()
    # On restart the failure is still reported, not silently forgotten, and not rerun.
    again = label_structures(jobs, tmp_path, CHEAP, compute=fake_compute, progress=False)
    assert (again.n_skipped, again.n_computed, again.n_failed) == (2, 0, 1)
    retried = label_structures(
        jobs, tmp_path, CHEAP, compute=fake_compute, progress=False, retry_failed=True
    )
    assert retried.n_failed == 1 and len(read_failures(tmp_path)) == 1


def test_runner_pool_matches_serial(tmp_path):
    jobs = _jobs(["a", "b", "c", "d"])
    report = label_structures(
        jobs, tmp_path, CHEAP, workers=2, compute=fake_compute, progress=False
    )
    assert report.n_computed == 4
    energies = [ase.io.read(tmp_path / f"{k}.extxyz").info[ENERGY_KEY] for k in "abcd"]
    assert np.all(np.diff(energies) != 0)


def test_runner_leaves_jobs_held_by_a_live_runner_and_takes_over_stale_ones(tmp_path):
    jobs = _jobs(["held", "stale"])
    (tmp_path / ".held.lock").write_text(str(os.getpid()))  # alive: this test process
    (tmp_path / ".stale.lock").write_text("999999999")  # no such process
    report = label_structures(jobs, tmp_path, CHEAP, compute=fake_compute, progress=False)
    assert report.n_computed == 1
    assert (tmp_path / "stale.extxyz").exists() and not (tmp_path / "held.extxyz").exists()


def test_assembly_refuses_labels_from_other_settings(tmp_path):
    label_structures(_jobs(["a"]), tmp_path / "runs", CHEAP, compute=fake_compute, progress=False)
    other = DFTSettings(ecut_eV=CHEAP.ecut_eV + 100.0)
    label_structures(_jobs(["b"]), tmp_path / "runs", other, compute=fake_compute, progress=False)
    with pytest.raises(DFTError, match="other DFT settings"):
        assemble_dataset(tmp_path / "runs", tmp_path / "x.extxyz", settings=CHEAP, provenance={})
    path, frames = assemble_dataset(
        tmp_path / "runs", tmp_path / "a.extxyz", settings=CHEAP, provenance={}, keys=["a"]
    )
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["settings_fingerprint"] == CHEAP.fingerprint and record["n_frames"] == 1


def test_recipes_are_seeded_and_cover_the_corpus_brief():
    from course_lib.dft_recipes import mgo_rattled_jobs, mini_mptrj_jobs

    jobs = mini_mptrj_jobs(12)
    again = mini_mptrj_jobs(12)
    assert [j.key for j in jobs] == [j.key for j in again]
    np.testing.assert_array_equal(jobs[5].atoms.positions, again[5].atoms.positions)
    assert len(jobs) >= 150 and len({j.key for j in jobs}) == len(jobs)
    elements = {s for job in jobs for s in job.atoms.get_chemical_symbols()}
    assert len(elements) >= 12 and {"Li", "O", "Mg"} <= elements
    assert all(1 <= len(job.atoms) <= 16 for job in jobs)
    n_test = sum(job.atoms.info["split"] == "test" for job in jobs)
    assert 0.05 < n_test / len(jobs) < 0.15  # relaxations, not frames, are held out
    assert len(mgo_rattled_jobs(5)) >= 150


def test_small_supercell_reaches_eight_atoms_compactly():
    from ase.build import bulk

    from course_lib.structures import small_supercell

    assert len(small_supercell(bulk("Li", "bcc", a=3.44))) == 8  # 1 atom -> 2x2x2
    assert len(small_supercell(bulk("OLi2", "fluorite", a=4.65))) == 12  # 3 atoms -> 2x2x1
    assert len(small_supercell(bulk("MgO", "rocksalt", a=4.25, cubic=True))) == 8  # as it is


def test_mini_omat_leaves_out_the_target_and_is_off_equilibrium():
    from course_lib.dft_recipes import OMAT_LEFT_OUT, mini_omat_jobs

    jobs = mini_omat_jobs(21, md_runs=0)
    again = mini_omat_jobs(21, md_runs=0)
    assert [j.key for j in jobs] == [j.key for j in again]
    np.testing.assert_array_equal(jobs[7].atoms.positions, again[7].atoms.positions)
    assert not {job.atoms.info["formula"] for job in jobs} & OMAT_LEFT_OUT
    assert all(job.atoms.get_chemical_formula(empirical=True) != "Li2O" for job in jobs)
    assert all(8 <= len(job.atoms) <= 16 for job in jobs)
    elements = {s for job in jobs for s in job.atoms.get_chemical_symbols()}
    assert len(elements) >= 14
    strains = [job.atoms.info["strain"] for job in jobs if "strain" in job.atoms.info]
    assert strains and all(0.05 <= abs(eps) <= 0.10 for eps in strains)
    n_test = sum(job.atoms.info["split"] == "test" for job in jobs)
    assert 0.05 < n_test / len(jobs) < 0.15


def test_mini_omat_capping_keeps_every_other_job_exactly():
    """Revision 2 drops the costly formulas' later jobs; what stays is revision 1's, unchanged."""
    from course_lib.dft_recipes import mini_omat_jobs

    full = {job.key: job for job in mini_omat_jobs(21, md_runs=0)}
    capped = mini_omat_jobs(21, md_runs=0, capped={"Na2S": 2, "Mg2Si": 1}, n_extra=5)
    formulas = [job.atoms.info["formula"] for job in capped]
    assert formulas.count("Na2S") == 2 and formulas.count("Mg2Si") == 1
    kept = [job for job in capped if job.key in full]
    extra = [job for job in capped if job.key not in full]
    assert len(extra) == 5 and not {"Na2S", "Mg2Si"} & {j.atoms.info["formula"] for j in extra}
    assert min(int(job.key[:4]) for job in extra) == len(full)
    for job in kept:
        np.testing.assert_array_equal(job.atoms.positions, full[job.key].atoms.positions)
        assert job.atoms.info["split"] == full[job.key].atoms.info["split"]
    # the first capped-formula jobs in job order are the ones kept
    first_na2s = [k for k in full if full[k].atoms.info["formula"] == "Na2S"][:2]
    assert [j.key for j in kept if j.atoms.info["formula"] == "Na2S"] == first_na2s


def test_model_md_snapshots_skip_equilibration_and_keep_the_failing_frame():
    """Snapshots come after equilibration, every interval; an unstable run gives its last frame."""
    from ase.calculators.lj import LennardJones

    from course_lib.dft_recipes import model_md_snapshots

    stable = LennardJones(sigma=1.6, epsilon=0.01, rc=4.0, smooth=True)
    frames = model_md_snapshots(
        stable, 0, temperature_K=300.0, n_snapshots=3, interval=2, equilibration=4, timestep_fs=1.0
    )
    assert len(frames) == 3
    assert [f.info["md_step"] for f in frames] == [4, 6, 8]
    assert all(f.info["md_stable"] and f.info["md_failed_step"] == -1 for f in frames)
    # a strongly attractive potential pulls atoms together: the run stops, more runs follow
    collapsing = LennardJones(sigma=3.5, epsilon=5.0, rc=6.0, smooth=True)
    frames = model_md_snapshots(
        collapsing,
        0,
        temperature_K=300.0,
        n_snapshots=4,
        interval=2,
        equilibration=0,
        timestep_fs=1.0,
        max_runs=3,
    )
    failed = [f for f in frames if not f.info["md_stable"]]
    assert failed and any(f.info["md_step"] == f.info["md_failed_step"] for f in failed)
    assert len({f.info["md_seed"] for f in frames}) >= 1
