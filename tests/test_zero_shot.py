import numpy as np
import pytest

from course_lib import data as ds
from course_lib import zero_shot as zs


def shifted_predictions(frames, energy_shift_per_element, force_noise=0.0):
    offsets = np.array(
        [energy_shift_per_element[s] for a in frames for s in a.get_chemical_symbols()]
    )
    per_frame = np.add.reduceat(offsets, np.cumsum([0] + [len(a) for a in frames[:-1]]))
    rng = np.random.default_rng(0)
    return zs.Predictions(
        model="planted",
        energies=ds.energies(frames) - per_frame,
        forces=[f + force_noise * rng.standard_normal(f.shape) for f in ds.forces(frames)],
        stresses=np.array([a.info[ds.STRESS_KEY] for a in frames]),
    )


def test_metrics_match_hand_computed_values(frames):
    two = frames[:2]  # 4 and 8 atoms
    predictions = zs.Predictions(
        model="hand",
        energies=ds.energies(two) + np.array([0.04, -0.16]),  # +10 and -20 meV/atom
        forces=[f + 0.1 for f in ds.forces(two)],  # every component off by 100 meV/Å
        stresses=np.array([a.info[ds.STRESS_KEY] + 0.002 for a in two]),
    )
    m = zs.error_metrics(two, predictions)
    assert m.energy_mae_meV_per_atom == pytest.approx(15.0)
    assert m.energy_rmse_meV_per_atom == pytest.approx(np.sqrt((10**2 + 20**2) / 2))
    assert m.force_mae_meV_per_A == pytest.approx(100.0)
    assert m.force_rmse_meV_per_A == pytest.approx(100.0)
    assert m.stress_mae_meV_per_A3 == pytest.approx(2.0)
    assert m.force_mae_by_element_meV_per_A == pytest.approx({"Al": 100.0, "Cu": 100.0})
    assert "15.0 meV/atom" in m.table()


def test_force_slope_recovers_a_planted_softening_and_ignores_orthogonal_noise(frames):
    # a soft model: every force scaled by 0.8, plus noise orthogonal to the DFT forces
    rng = np.random.default_rng(1)
    forces = []
    for f in ds.forces(frames):
        noise = rng.standard_normal(f.shape)
        noise -= f * np.sum(noise * f) / np.sum(f * f)  # no component along this frame's F
        forces.append(0.8 * f + 0.05 * noise)
    soft = zs.Predictions(model="soft", energies=ds.energies(frames), forces=forces)
    metrics = zs.error_metrics(frames, soft)
    assert metrics.force_slope == pytest.approx(0.8, abs=1e-12)
    assert "force slope s" in metrics.table()
    exact = zs.Predictions(model="exact", energies=ds.energies(frames), forces=ds.forces(frames))
    assert zs.error_metrics(frames, exact).force_slope == pytest.approx(1.0)


def test_alignment_recovers_planted_per_element_offsets_exactly(frames):
    planted = {"Al": 0.731, "Cu": -1.25}
    predictions = shifted_predictions(frames, planted)
    offsets = zs.fit_reference_offsets(frames, predictions.energies)
    assert offsets == pytest.approx(planted, abs=1e-10)
    aligned = zs.error_metrics(frames, zs.apply_offsets(frames, predictions, offsets))
    raw = zs.error_metrics(frames, predictions)
    assert raw.energy_mae_meV_per_atom > 500
    assert aligned.energy_mae_meV_per_atom == pytest.approx(0.0, abs=1e-8)


def test_single_composition_alignment_is_still_unique(frames):
    same = [a for a in frames if set(a.get_chemical_symbols()) == {"Cu"}]
    predictions = shifted_predictions(same, {"Cu": 0.3})
    offsets = zs.fit_reference_offsets(same, predictions.energies)
    aligned = zs.apply_offsets(same, predictions, offsets)
    assert np.allclose(aligned.energies, ds.energies(same))


def test_mace_batched_equals_mace_calculator_per_structure(frames, tiny_mace, tiny_mace_file):
    from mace.calculators import MACECalculator

    batched = zs.predict(tiny_mace, frames, batch_size=4)
    calc = MACECalculator(model_paths=str(tiny_mace_file), device="cpu", default_dtype="float64")
    looped = zs.predict(calc, frames)
    assert np.abs(batched.energies - looped.energies).max() < 1e-6
    assert max(np.abs(a - b).max() for a, b in zip(batched.forces, looped.forces)) < 1e-6
    assert np.abs(batched.stresses - looped.stresses).max() < 1e-8


def test_every_batching_gives_the_calculator_loop_numbers(frames, tiny_mace, tiny_mace_file):
    """One frame per batch, edge-budgeted batches, one batch of all: the same numbers as ASE."""
    from mace.calculators import MACECalculator

    from course_lib.graphs import to_graphs

    calc = MACECalculator(model_paths=str(tiny_mace_file), device="cpu", default_dtype="float64")
    looped = zs.predict(calc, frames)
    graphs = to_graphs(frames, atomic_numbers=tiny_mace.atomic_numbers.tolist(), r_max=4.0)
    edges = [int(g.edge_index.shape[1]) for g in graphs]
    settings = [
        {},  # the default: the CPU edge budget
        {"max_edges": 1},  # one frame per batch
        {"max_edges": max(edges) + 2 * min(edges)},  # batches of 3, 2 and 1 frames here
        {"batch_size": len(frames), "max_edges": None},  # one batch of all
    ]
    for kwargs in settings:
        batched = zs.predict(tiny_mace, frames, **kwargs)
        assert np.abs(batched.energies - looped.energies).max() < 1e-6, kwargs
        for a, b in zip(batched.forces, looped.forces, strict=True):
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-6, kwargs
        assert np.abs(batched.stresses - looped.stresses).max() < 1e-8, kwargs


def test_prediction_leaves_the_parameters_trainable(frames, tiny_mace):
    params = list(tiny_mace.parameters())
    params[0].requires_grad_(False)  # a frozen layer stays frozen
    try:
        zs.predict(tiny_mace, frames[:2])
        assert not params[0].requires_grad
        assert all(p.requires_grad for p in params[1:])
    finally:
        params[0].requires_grad_(True)


def test_cpu_edge_budget_fits_the_widest_edge_tensor_in_the_byte_budget(tiny_mace):
    from course_lib import graphs

    # 8 channels x (l_max 2 + 1)^2 = 72 numbers per edge, float64
    assert graphs.cpu_edge_budget(tiny_mace) == graphs.CPU_BATCH_BYTES // (72 * 8)


def test_edge_budget_batches_keep_order_and_both_limits():
    from course_lib.graphs import edge_budget_batches

    edges = [100, 100, 250, 40, 40, 40, 40, 500, 10]
    batches = edge_budget_batches(edges, batch_size=3, max_edges=200)
    assert batches == [[0, 1], [2], [3, 4, 5], [6], [7], [8]]
    assert edge_budget_batches(edges, batch_size=100, max_edges=10**6) == [list(range(9))]
    with pytest.raises(ValueError, match="max_edges"):
        edge_budget_batches(edges, batch_size=3, max_edges=0)


def test_model_file_path_is_evaluated_through_the_registry(frames, tiny_mace_file):
    result = zs.evaluate(str(tiny_mace_file), frames, dataset="emt")
    assert result.raw.n_frames == len(frames)
    assert np.isfinite(result.aligned.force_mae_meV_per_A)
    assert result.raw.force_mae_meV_per_A == result.aligned.force_mae_meV_per_A


def test_chgnet_zero_shot_on_a_periodic_cell_is_physical():
    from ase.build import bulk

    cell = bulk("Li2O", "fluorite", a=4.62, cubic=True)
    cell.rattle(0.05, seed=2)
    predictions = zs.predict("chgnet-0.3.0", [cell])
    assert np.isfinite(predictions.energies).all()
    assert np.isfinite(predictions.forces[0]).all()
    # Newton's third law: the forces inside a periodic cell sum to zero.
    assert np.abs(predictions.forces[0].sum(axis=0)).max() < 1e-4
    assert -6.5 < predictions.energies[0] / len(cell) < -3.5  # MP (PBE) Li2O: about -4.8 eV/atom


def cold_and_hot(frames):
    """The same structures at "300 K" and at "1200 K", where the DFT forces are twice as large."""
    cold = [a.copy() for a in frames[:3]]
    hot = [a.copy() for a in frames[:3]]
    for atoms in cold:
        atoms.info["temperature_K"] = 300.0
    for atoms in hot:
        atoms.arrays[ds.FORCES_KEY] = 2 * atoms.arrays[ds.FORCES_KEY]
        atoms.info["temperature_K"] = 1200.0
    return hot + cold


def planted_errors(frames, *, cold, hot):
    """Errors per group, each (energy error meV/atom, force error as a fraction of the DFT force)."""
    energies, forces = [], []
    for atoms, f in zip(frames, ds.forces(frames)):
        energy, force = cold if atoms.info["temperature_K"] == 300.0 else hot
        energies.append(atoms.info[ds.ENERGY_KEY] + energy * 1e-3 * len(atoms))
        forces.append(f * (1 + force))
    predictions = zs.Predictions(model="planted", energies=np.array(energies), forces=forces)
    return zs.errors_by(frames, predictions, "temperature_K")


def test_errors_by_group_read_force_errors_against_the_size_of_the_forces(frames):
    both = cold_and_hot(frames)
    same = planted_errors(both, cold=(10, 0.5), hot=(10, 0.5))
    assert list(same.metrics) == [300.0, 1200.0]
    ratios = same.ratios(300.0, 1200.0)
    assert ratios["force_mae"] == pytest.approx(2.0)  # twice the MAE ...
    assert ratios["force_scale"] == pytest.approx(2.0)  # ... on twice the forces
    assert ratios["relative_force_error"] == pytest.approx(1.0)
    assert same.relative_force_error(300.0) == pytest.approx(0.5)
    assert same.metrics[1200.0].energy_mae_meV_per_atom == pytest.approx(10.0)
    assert "are about as hard as" in same.comparison()
    assert "1200" in same.table() and "50%" in same.table()
    harder = planted_errors(both, cold=(10, 0.5), hot=(30, 0.5))
    assert "1200 frames are harder than the 300 frames" in harder.comparison()
    easier = planted_errors(both, cold=(10, 0.5), hot=(5, 0.1))
    assert "are easier than" in easier.comparison()


def test_errors_by_group_figure_draws_the_planted_numbers_per_model(frames):
    from course_lib.plots.parity import errors_by_group

    both = cold_and_hot(frames)
    grouped = {
        "a": planted_errors(both, cold=(10, 0.5), hot=(30, 0.5)),
        "b": planted_errors(both, cold=(5, 0.25), hot=(15, 0.1)),
    }
    fig = errors_by_group(grouped)
    bars = {(t.name, t.xaxis): t for t in fig.data}
    assert list(bars[("a", "x")].x) == ["300", "1200"]
    np.testing.assert_allclose(bars[("a", "x")].y, [10, 30])
    np.testing.assert_allclose(bars[("b", "x")].y, [5, 15])
    np.testing.assert_allclose(bars[("b", "x2")].y, [25, 10])  # % of the DFT force scale


def test_zero_shot_result_groups_its_aligned_errors(frames):
    for i, atoms in enumerate(frames):
        atoms.info["temperature_K"] = 1200.0 if i % 2 else 300.0
    from ase.calculators.emt import EMT

    result = zs.evaluate(EMT(), frames)  # the labels' own oracle: any calculator will do
    assert list(result.metrics_by("temperature_K")) == [300.0, 1200.0]
    assert result.metrics_by("temperature_K")[300.0].n_frames == 3
    assert result.errors_by("temperature_K").metrics == result.metrics_by("temperature_K")


def planted_raw_and_aligned(frames, *, same_dft_setup):
    """Raw errors 10 / 30 meV/atom (cold / hot), 10 / 11 after a planted alignment; forces 50 % off."""

    def predictions(cold_meV, hot_meV):
        energies = [
            a.info[ds.ENERGY_KEY]
            + 1e-3 * len(a) * (cold_meV if a.info["temperature_K"] == 300.0 else hot_meV)
            for a in frames
        ]
        forces = [1.5 * f for f in ds.forces(frames)]
        return zs.Predictions(model="m", energies=np.array(energies), forces=forces)

    return zs.errors_by(
        frames,
        predictions(10.0, 11.0),
        "temperature_K",
        raw_predictions=predictions(10.0, 30.0),
        same_dft_setup=same_dft_setup,
    )


def test_comparison_judges_raw_energies_for_a_model_of_the_targets_dft_setup(frames):
    both = cold_and_hot(frames)
    own = planted_raw_and_aligned(both, same_dft_setup=True)
    assert own.judged_energies == "raw"
    assert own.ratios(300.0, 1200.0)["energy_mae"] == pytest.approx(3.0)
    sentence = own.comparison()
    assert "energy MAE x3.00 (30.0 vs 10.0 meV/atom, raw energies" in sentence
    assert "1200 frames are harder than the 300 frames" in sentence
    # the table still shows the aligned errors: the model's own offsets are not hidden there
    assert own.metrics[1200.0].energy_mae_meV_per_atom == pytest.approx(11.0)
    for setup, why in ((False, "another DFT setup"), (None, "a DFT setup not known")):
        other = planted_raw_and_aligned(both, same_dft_setup=setup)
        assert other.judged_energies == "aligned"
        assert other.ratios(300.0, 1200.0)["energy_mae"] == pytest.approx(1.1)
        aligned = "(11.0 vs 10.0 meV/atom, energies aligned per element: the model was pre-trained"
        assert f"{aligned} on {why})" in other.comparison()
        assert "are about as hard as" in other.comparison()


def test_a_between_group_miss_split_by_one_alignment_is_named(frames):
    """Aligned errors of +16 and -16 meV/atom (a hot-minus-cold miss of 32) with a small scatter."""
    both = cold_and_hot(frames)
    rng = np.random.default_rng(0)

    def predictions(cold_meV, hot_meV, noise_meV):
        energies = [
            a.info[ds.ENERGY_KEY]
            + 1e-3
            * len(a)
            * (
                (cold_meV if a.info["temperature_K"] == 300.0 else hot_meV)
                + noise_meV * rng.standard_normal()
            )
            for a in both
        ]
        forces = [1.5 * f for f in ds.forces(both)]
        return zs.Predictions(model="m", energies=np.array(energies), forces=forces)

    split = zs.errors_by(
        both, predictions(16.0, -16.0, 1.0), "temperature_K",
        raw_predictions=predictions(16.0, -16.0, 1.0), same_dft_setup=False,
    )  # fmt: skip
    assert split.metrics[300.0].energy_bias_meV_per_atom == pytest.approx(16.0, abs=2.0)
    sentence = split.comparison()
    bias = {t: m.energy_bias_meV_per_atom for t, m in split.metrics.items()}
    assert "share one offset" in sentence
    assert f"misses by {abs(bias[1200.0] - bias[300.0]):.1f} meV/atom" in sentence
    assert abs(bias[1200.0] - bias[300.0]) == pytest.approx(32.0, abs=3.0)
    # a scatter larger than the offsets: the MAEs measure the scatter, nothing to name
    noisy = zs.errors_by(
        both, predictions(2.0, -2.0, 20.0), "temperature_K",
        raw_predictions=predictions(2.0, -2.0, 20.0), same_dft_setup=False,
    )  # fmt: skip
    assert "share one offset" not in noisy.comparison()
    # raw energies (a model of our own setup) and same-sign means: nothing to name
    own = zs.errors_by(both, predictions(16.0, -16.0, 1.0), "temperature_K")
    assert "share one offset" not in own.comparison()
    same_sign = zs.errors_by(
        both, predictions(16.0, 30.0, 1.0), "temperature_K",
        raw_predictions=predictions(16.0, 30.0, 1.0), same_dft_setup=False,
    )  # fmt: skip
    assert "share one offset" not in same_sign.comparison()


def test_against_judges_energy_and_force_each_on_its_own(frames):
    both = cold_and_hot(frames)
    own = planted_errors(both, cold=(10, 0.2), hot=(30, 0.5))
    other = planted_errors(both, cold=(20, 0.2), hot=(31, 0.25))
    lines = own.against(other, label="its own trajectory", other_label="CHGNet's").splitlines()
    assert lines[0].startswith("300 K: relative force error 20% on its own trajectory vs 20%")
    assert (
        "about the same (within 20%); energy MAE 10.0 vs 20.0 meV/atom (raw), smaller" in lines[0]
    )
    assert "50% on its own trajectory vs 25% on CHGNet's, larger" in lines[1]
    assert lines[1].endswith("30.0 vs 31.0 meV/atom (raw), about the same (within 20%)")


def test_zero_shot_result_knows_the_dft_setup_of_its_model(frames):
    from dataclasses import replace

    from ase.calculators.emt import EMT

    for i, atoms in enumerate(frames):
        atoms.info["temperature_K"] = 1200.0 if i % 2 else 300.0
    result = zs.evaluate(EMT(), frames)
    assert result.same_dft_setup is False  # EMT was trained on no bundled corpus
    grouped = result.errors_by("temperature_K")
    assert grouped.same_dft_setup is False and grouped.judged_energies == "aligned"
    assert grouped.raw_energy_mae_meV_per_atom[300.0] == pytest.approx(
        zs.errors_by(frames, result.predictions, "temperature_K")
        .metrics[300.0]
        .energy_mae_meV_per_atom
    )
    assert replace(result, model="course-mini", dataset="li2o-md").same_dft_setup is True
    assert replace(result, model="course-mini").same_dft_setup is None  # "<frames>": unknown
