"""Committees and calibration: spreads from planted disagreements, calibration on planted errors.

Members here are synthetic predictions (exact numbers), copies of a tiny
MACE, or readouts refitted on bootstrap resamples of EMT-labelled cells (a
test oracle, not DFT).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import data as ds
from course_lib import uncertainty as unc
from course_lib.zero_shot import Predictions

torch.set_num_threads(1)


def perturbed(frames, *, energy_eV=0.0, force_eV_per_A=0.0, name="m"):
    """DFT labels shifted by a constant energy (eV) and a force on atom 0 of each frame (eV/Å)."""
    forces = []
    for f in ds.forces(frames):
        f = f.copy()
        f[0, 0] += force_eV_per_A
        forces.append(f)
    return Predictions(model=name, energies=ds.energies(frames) + energy_eV, forces=forces)


def test_identical_members_have_zero_spread(frames):
    committee = unc.Committee.from_predictions([perturbed(frames)] * 3)
    spread = unc.committee_spread(committee, frames)
    assert np.all(spread.energy_meV_per_atom == 0)
    assert np.all(spread.atom_force_meV_per_A == 0)


def test_spread_grows_with_disagreement_and_has_the_planted_size(frames):
    natoms = ds.n_atoms(frames)
    previous = 0.0
    for delta in (0.01, 0.05, 0.2):  # eV and eV/Å
        committee = unc.Committee.from_predictions(
            [perturbed(frames, energy_eV=d, force_eV_per_A=d) for d in (-delta, delta)]
        )
        spread = unc.committee_spread(committee, frames)
        # two members at ±delta: std = delta; per atom energy: delta / N
        np.testing.assert_allclose(spread.energy_meV_per_atom, delta / natoms * 1e3)
        np.testing.assert_allclose(spread.max_force_meV_per_A, delta * 1e3)
        assert all(np.count_nonzero(f) == 1 for f in spread.force_meV_per_A)  # only atom 0
        assert spread.max_force_meV_per_A.mean() > previous
        previous = spread.max_force_meV_per_A.mean()
    assert "force spread, max atom" in spread.table()


def test_committee_mean_is_the_average_member(frames):
    committee = unc.Committee.from_predictions(
        [perturbed(frames, energy_eV=-0.1), perturbed(frames, energy_eV=0.3)]
    )
    np.testing.assert_allclose(committee.mean().energies, ds.energies(frames) + 0.1)


def test_calibration_of_a_perfect_and_a_planted_ranking():
    rng = np.random.default_rng(0)
    error = rng.exponential(size=100)
    perfect = unc.calibrate(2 * error, error, k=10)
    assert perfect.spearman == pytest.approx(1.0)
    assert perfect.top_k_capture == 1.0
    assert perfect.chance == pytest.approx(0.1)
    assert np.all(np.diff(perfect.bin_rms_error) > 0)  # calibration curve rises
    # planted: the spread finds 5 of the 10 worst errors, the rest of its top 10 is mid-range
    order = np.argsort(-error)
    spread = error.copy()
    spread[order[5:10]] = np.median(error)
    spread[order[20:25]] = error.max() + 1
    planted = unc.calibrate(spread, error, k=10)
    assert planted.top_k_capture == pytest.approx(0.5)
    assert 0.5 < planted.spearman < 1.0
    reversed_ = unc.calibrate(-error, error, k=10)
    assert reversed_.spearman == pytest.approx(-1.0) and reversed_.top_k_capture == 0.0
    assert "Spearman" in planted.table()


def test_calibrate_committee_uses_errors_of_the_mean(frames):
    """Members at E ± s_i per frame: the mean is exact in energy; errors of a given model rank."""
    s = np.linspace(0.01, 0.1, len(frames))
    members = [
        Predictions(model=n, energies=ds.energies(frames) + sign * s, forces=ds.forces(frames))
        for n, sign in (("a", 1), ("b", -1))
    ]
    committee = unc.Committee.from_predictions(members)
    production = Predictions(
        model="p", energies=ds.energies(frames) + 3 * s, forces=ds.forces(frames)
    )
    energy, force = unc.calibrate_committee(committee, frames, predictions=production, k=2)
    assert energy.spearman == pytest.approx(1.0)
    assert energy.top_k_capture == 1.0
    assert np.isnan(force.spearman)  # no force spread, no force error: nothing to rank


def test_bootstrap_readout_committee_disagrees_and_identical_fits_agree(tiny_mace, frames):
    kwargs = {"batch_size": 4}
    members = unc.fine_tune_committee(tiny_mace, frames, n_members=3, seed=0, **kwargs)
    spread = unc.committee_spread(unc.predict_committee(members, frames), frames)
    assert spread.energy_meV_per_atom.max() > 0
    assert spread.atom_force_meV_per_A.max() > 0
    same = unc.fine_tune_committee(tiny_mace, frames, n_members=2, bootstrap=False, **kwargs)
    spread = unc.committee_spread(unc.predict_committee(same, frames), frames)
    np.testing.assert_allclose(spread.energy_meV_per_atom, 0, atol=1e-9)


def test_fit_step_is_injectable_and_sees_resamples(frames):
    seen = []

    def fit(model, train_frames, *, seed):
        seen.append((seed, [id(a) for a in train_frames]))
        return torch.nn.Linear(1, 1)

    unc.fine_tune_committee(object(), frames, n_members=3, seed=7, fit=fit)
    assert [s for s, _ in seen] == [7, 8, 9]
    assert len({tuple(ids) for _, ids in seen}) == 3  # three different resamples
    assert all(len(ids) == len(frames) for _, ids in seen)


def test_mace_file_committee_of_one_file_twice_has_zero_spread(tiny_mace_file, frames):
    committee = unc.mace_file_committee([tiny_mace_file, tiny_mace_file], frames[:2])
    assert committee.n_members == 2
    spread = unc.committee_spread(committee, frames[:2])
    np.testing.assert_allclose(spread.energy_meV_per_atom, 0, atol=1e-9)
    np.testing.assert_allclose(spread.atom_force_meV_per_A, 0, atol=1e-9)
    assert committee.forces[0].shape == (2, len(frames[0]), 3)


def test_committee_needs_two_members(frames):
    with pytest.raises(ValueError, match="at least 2"):
        unc.Committee.from_predictions([perturbed(frames)])


def test_calibration_plot_shows_points_bins_and_numbers():
    from course_lib.plots.uncertainty import calibration_plot, spread_by_group

    error = np.linspace(1, 20, 40)
    calibration = unc.calibrate(error, error, k=4, n_bins=4)
    fig = calibration_plot(calibration, groups=["300 K"] * 20 + ["1200 K"] * 20)
    assert [t.name for t in fig.data][:2] == ["1200 K", "300 K"]
    assert len(fig.data[2].x) == 4  # the binned curve
    assert "Spearman 1.00" in fig.layout.title.text and "100%" in fig.layout.title.text
    boxes = spread_by_group(error, ["300 K"] * 20 + ["1200 K"] * 20)
    assert sorted(b.name for b in boxes.data) == ["1200 K", "300 K"]
