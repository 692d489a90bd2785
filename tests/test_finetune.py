"""The three training regimes, on tiny models and EMT-labelled cells (a test oracle, not DFT).

Checks numbers and physics: what few-shot freezes stays bitwise equal, a
planted per-element energy shift and a planted scaling of the interaction
energy are recovered, save -> load -> mace's calculator give identical
predictions, the same seed gives the same model, and bad input fails before
training with a message that says what to do.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import emt_frames

from course_lib import closed_form as cf
from course_lib import data as ds
from course_lib import finetune as ft
from course_lib import mace_models as mm
from course_lib import training
from course_lib.composition import RankDeficientCompositionWarning, composition_matrix
from course_lib.graphs import graph_loader
from course_lib.zero_shot import error_metrics, predict

torch.set_num_threads(1)

TINY = mm.MaceArchitecture(
    r_max=4.0,
    num_bessel=6,
    max_ell=1,
    hidden_irreps="8x0e",
    mlp_irreps="8x0e",
    correlation=2,
    radial_mlp=(16, 16),
)
QUIET = {"progress": False, "batch_size": 4}


def planted(model, frames, *, shift_eV, scale=1.0):
    """Frames labelled by ``model`` itself, interaction energy and forces scaled, E0s shifted."""
    e0s = mm.model_e0s(model)
    predictions = predict(model, frames, compute_stress=False)
    out = []
    for atoms, energy, forces in zip(frames, predictions.energies, predictions.forces):
        atoms = atoms.copy()
        symbols = atoms.get_chemical_symbols()
        reference = sum(e0s[s] for s in symbols)
        atoms.info[ds.ENERGY_KEY] = (
            scale * (energy - reference) + reference + sum(shift_eV[s] for s in symbols)
        )
        atoms.arrays[ds.FORCES_KEY] = scale * forces
        del atoms.info[ds.STRESS_KEY]
        out.append(atoms)
    return out


def parameters(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_lora_adapters_train_and_fold_back_into_a_plain_mace(tiny_mace):
    before = parameters(tiny_mace)
    frames = emt_frames(8)
    start = error_metrics(frames, predict(tiny_mace, frames)).force_mae_meV_per_A
    tuner = ft.FineTuner(model=tiny_mace, trainable="lora", max_epochs=4, lr=0.05, **QUIET)
    tuner.fit(frames, valid_frames=emt_frames(2, seed=5))
    assert tuner.trainable_ and all(".lora_" in name for name in tuner.trainable_)
    after = parameters(tuner.model_)
    assert set(after) == set(before)  # adapters merged: the same parameters as the start
    assert any(not torch.equal(before[n], after[n]) for n in before)  # ... with new values
    assert tuner.evaluate(frames).force_mae_meV_per_A < start
    assert parameters(tiny_mace).keys() == before.keys()  # the start was not modified


@pytest.mark.parametrize(
    ("trainable", "changed_prefixes"),
    [
        ("readouts", ("readouts.",)),
        ("last-layer", ("readouts.", "interactions.1.", "products.1.")),
        ("freeze-5", ("readouts.", "products.")),  # mace-torch's --freeze 5
    ],
)
def test_few_shot_trains_only_the_chosen_blocks(tiny_mace, trainable, changed_prefixes):
    before = parameters(tiny_mace)
    tuner = ft.FineTuner(model=tiny_mace, trainable=trainable, max_epochs=3, lr=0.05, **QUIET)
    tuner.fit(emt_frames(8), valid_frames=emt_frames(2, seed=5))
    after = parameters(tuner.model_)
    assert set(tuner.trainable_) == {n for n in before if n.startswith(changed_prefixes)}
    for name in before:
        if name.startswith(changed_prefixes):
            assert not torch.equal(before[name], after[name]), f"{name} did not train"
        else:
            assert torch.equal(before[name], after[name]), f"frozen {name} changed"
    assert all(torch.equal(p, before[n]) for n, p in parameters(tiny_mace).items())  # input intact


def test_refit_e0s_recovers_a_planted_per_element_shift(tiny_mace):
    shift = {"Al": 0.30, "Cu": -0.20}  # eV per atom, another "DFT setup"
    frames = planted(tiny_mace, emt_frames(8, seed=1), shift_eV=shift)
    tuner = ft.FineTuner(model=tiny_mace, max_epochs=1, **QUIET).fit(frames)
    original = mm.model_e0s(tiny_mace)
    for symbol, delta in shift.items():
        assert tuner.e0s_[symbol] == pytest.approx(original[symbol] + delta, abs=1e-8)
        assert tuner.e0_shift_[symbol] == pytest.approx(delta, abs=1e-8)
    assert tuner.evaluate(frames).energy_mae_meV_per_atom < 1e-5


def test_closed_form_readout_recovers_planted_scaling_exactly(tiny_mace):
    # E_inter -> 1.1 E_inter, F -> 1.1 F, E0 -> E0 + shift: linear in the readouts and E0s
    shift = {"Al": 0.30, "Cu": -0.10}
    frames = planted(tiny_mace, emt_frames(10, seed=2), shift_eV=shift, scale=1.1)
    tuner = ft.FineTuner(model=tiny_mace, solver="closed-form", ridge=0.0, **QUIET).fit(frames)
    got = tuner.predict(frames)
    assert np.abs(got.energies - ds.energies(frames)).max() < 1e-9
    assert max(np.abs(f - r).max() for f, r in zip(got.forces, ds.forces(frames))) < 1e-9
    # the per-atom shift of the scaled interaction energy, 0.1 * shift, joins the E0s
    extra = 0.1 * float(tiny_mace.scale_shift.shift)
    original = mm.model_e0s(tiny_mace)
    for symbol, delta in shift.items():
        assert tuner.e0s_[symbol] == pytest.approx(original[symbol] + delta + extra, abs=1e-5)
    posterior = tuner.posterior_
    assert posterior.covariance.shape == (posterior.mean.size, posterior.mean.size)
    assert posterior.noise_variance < 1e-20


def test_closed_form_is_the_minimum_of_the_training_loss(tiny_mace):
    frames = emt_frames(6, seed=3)
    tuner = ft.FineTuner(model=tiny_mace, solver="closed-form", ridge=0.0, **QUIET).fit(frames)
    model, weights = tuner.model_, training.LossWeights()
    layers = [layer.weight for layer in cf.readout_linears(model).values()]
    for weight in layers:
        weight.requires_grad_(True)
    batch = next(iter(graph_loader(frames, model, batch_size=len(frames))))
    loss = training.batch_loss(batch, model(batch.to_dict(), training=True), weights)
    gradient = torch.cat([g.ravel() for g in torch.autograd.grad(loss, layers)])
    assert float(gradient.abs().max()) < 1e-8 * max(float(loss), 1.0)


def test_gradient_few_shot_reduces_error_on_planted_scaling(tiny_mace):
    frames = planted(tiny_mace, emt_frames(12, seed=1), shift_eV={"Al": 0, "Cu": 0}, scale=1.1)
    before = error_metrics(frames, predict(tiny_mace, frames)).force_mae_meV_per_A
    tuner = ft.FineTuner(model=tiny_mace, max_epochs=12, lr=0.02, **QUIET).fit(frames)
    assert tuner.evaluate(frames).force_mae_meV_per_A < 0.3 * before
    history = tuner.history_
    assert history.valid_force_mae[history.best_epoch] < history.valid_force_mae[0]


def test_save_load_and_mace_calculator_give_identical_predictions(tiny_mace, tmp_path):
    from mace.calculators import MACECalculator

    from course_lib.models import load_mace_model

    frames = emt_frames(6)
    tuner = ft.FineTuner(model=tiny_mace, max_epochs=1, **QUIET).fit(frames)
    path = tuner.save(tmp_path / "out" / "few-shot.model")
    expected = tuner.predict(frames)
    reloaded = predict(load_mace_model(path, device="cpu"), frames)
    np.testing.assert_array_equal(reloaded.energies, expected.energies)
    np.testing.assert_array_equal(np.concatenate(reloaded.forces), np.concatenate(expected.forces))
    calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
    for atoms, energy, forces in zip(frames[:2], expected.energies, expected.forces):
        atoms = atoms.copy()
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-10)
    atoms = frames[0].copy()
    atoms.calc = tuner.calculator()
    assert atoms.get_potential_energy() == pytest.approx(expected.energies[0], abs=1e-10)


def test_scratch_is_seeded_and_keeps_the_foundation_architecture(tiny_mace):
    frames = emt_frames(6)
    runs = [
        ft.FineTuner(regime="scratch", model=tiny_mace, max_epochs=1, seed=7, **QUIET).fit(frames)
        for _ in range(2)
    ]
    first, second = (parameters(run.model_) for run in runs)
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert runs[0].history_.valid_loss == runs[1].history_.valid_loss
    reference = parameters(tiny_mace)
    assert {n: p.shape for n, p in first.items()} == {n: p.shape for n, p in reference.items()}
    assert not torch.equal(first["readouts.0.linear.weight"], reference["readouts.0.linear.weight"])
    # E0s of a scratch model: least squares on composition of its own data
    assert runs[0].e0s_ == pytest.approx(
        mm.fit_e0s(ft.split_validation(frames, valid_fraction=0.1, seed=7)[0])
    )


def test_energy_only_mode_trains_without_forces():
    tuner = ft.FineTuner(
        regime="scratch", architecture=TINY, forces_weight=0.0, max_epochs=2, **QUIET
    ).fit(emt_frames(6))
    history = tuner.history_
    assert np.isnan(history.train_force_mae[1:]).all()  # forces never computed while training
    assert np.isfinite(history.valid_force_mae).all()  # but validated
    assert "best epoch" in history.table()


def test_fit_e0s_warns_when_compositions_do_not_separate_elements():
    frames = [f for f in emt_frames(8) if len(f) == 8 and f.get_chemical_symbols().count("Al") == 2]
    with pytest.warns(RankDeficientCompositionWarning, match="minimum-norm"):
        e0s = mm.fit_e0s(frames)
    counts = composition_matrix(frames, sorted(e0s))
    fitted = counts @ np.array([e0s[s] for s in sorted(e0s)])
    assert fitted.mean() == pytest.approx(ds.energies(frames).mean())


def _nan_energy():
    frames = emt_frames(4)
    frames[2].info[ds.ENERGY_KEY] = float("nan")
    return frames


def _with_nickel():
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from conftest import label_with

    return emt_frames(4) + [label_with(EMT(), bulk("Ni", "fcc", a=3.52, cubic=True))]


@pytest.mark.parametrize(
    ("frames", "settings", "error", "match"),
    [
        (_with_nickel, {}, ft.UnknownElementsError, r"\['Ni'\].*regime='scratch'"),
        (lambda: [], {}, ds.DatasetError, "empty"),
        (lambda: emt_frames(1), {}, ds.DatasetError, "at least 2"),
        (_nan_energy, {}, ds.DatasetError, "frame 2.*not finite"),
        (lambda: emt_frames(4), {"regime": "partial"}, ValueError, "regime must be"),
        (lambda: emt_frames(4), {"trainable": "all"}, ValueError, "trainable must be"),
        (
            lambda: emt_frames(4),
            {"solver": "closed-form", "regime": "full"},
            ValueError,
            "few-shot",
        ),
        (lambda: emt_frames(4), {"e0s": "average"}, ValueError, "e0s must be"),
    ],
)
def test_bad_input_fails_before_training(tiny_mace, monkeypatch, frames, settings, error, match):
    monkeypatch.setattr(ft, "train", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(error, match=match):
        ft.FineTuner(model=tiny_mace, **{**QUIET, **settings}).fit(frames())


def test_empty_validation_set_is_refused(tiny_mace):
    with pytest.raises(ds.DatasetError, match="valid_frames is empty"):
        ft.FineTuner(model=tiny_mace, **QUIET).fit(emt_frames(4), valid_frames=[])


def test_interrupted_run_leaves_previous_output_intact(tiny_mace, tmp_path, monkeypatch):
    out = tmp_path / "model.model"
    out.write_bytes(b"previous model")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ft, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ft.run_regime(tiny_mace, emt_frames(4), emt_frames(2, seed=9), regime="full", out=out)
    assert out.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.model"]


def test_cli_finetune_prints_metrics_and_refuses_n_beyond_pool(tiny_mace_file, tmp_path, capsys):
    from course_lib.cli import main

    dataset = tmp_path / "emt.extxyz"
    ds.write_dataset(dataset, emt_frames(10), {"method": "EMT test oracle (not DFT)"})
    out = tmp_path / "tuned.model"
    args = ["finetune", "--model", str(tiny_mace_file), "--dataset", str(dataset)]
    args += ["--regime", "few-shot", "--out", str(out), "--epochs", "1", "--json"]
    assert main([*args, "--n", "6"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_train"] == 6 and report["model_path"] == str(out) and out.is_file()
    # the reported errors are those of the saved model: reload it and recompute them
    test = ds.train_test_split(ds.read_dataset(dataset), seed=0)[1]
    saved = error_metrics(test, predict(ft.load_model(out), test))
    assert report["test"]["force_mae_meV_per_A"] == pytest.approx(saved.force_mae_meV_per_A)
    assert report["test"]["energy_mae_meV_per_atom"] == pytest.approx(saved.energy_mae_meV_per_atom)
    assert main([*args, "--n", "50"]) == 2
    assert "pool has only 8" in capsys.readouterr().err


def test_training_curves_draw_each_history_with_its_best_epoch():
    from course_lib.plots.training import training_curves

    history = training.TrainingHistory(
        epoch=(0, 1, 2),
        train_loss=(np.nan, 2.0, 1.0),
        valid_loss=(3.0, 1.5, 2.5),
        train_energy_mae=(np.nan, 5.0, 4.0),
        valid_energy_mae=(6.0, 3.0, 4.0),
        train_force_mae=(np.nan, 50.0, 40.0),
        valid_force_mae=(60.0, 30.0, 45.0),
        lr=(1e-3, 1e-3, 1e-3),
        best_epoch=1,
        stopped_early=False,
        wall_time_s=1.0,
    )
    fig = training_curves({"few-shot": history, "full": history}, show_train=False)
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert len(fig.data) == 8 and [s.y[0] for s in stars] == [3.0, 30.0, 3.0, 30.0]
    assert history.rows()[1]["valid_force_mae"] == 30.0


def test_run_regime_reports_test_zero_shot_and_forgetting(tiny_mace, tmp_path):
    corpus = emt_frames(4, seed=11)  # stands in for the pre-training corpus's held-out split
    result = ft.run_regime(
        tiny_mace,
        emt_frames(6),
        emt_frames(3, seed=4),
        regime="few-shot",
        solver="closed-form",
        out=tmp_path / "m.model",
        pretraining_frames=corpus,
        progress=False,
    )
    before = error_metrics(corpus, predict(tiny_mace, corpus))
    assert result.forgetting_before.force_mae_meV_per_A == pytest.approx(before.force_mae_meV_per_A)
    assert result.forgetting.n_frames == 4 and result.zero_shot is not None
    assert result.n_labels == ds.n_labels(emt_frames(6))
    report = result.as_dict()
    assert json.loads(json.dumps(report, default=str))["regime"] == "few-shot"
    assert "pre-training set, after" in result.table()


def test_readout_posterior_gives_energy_spread_that_vanishes_on_exact_data(tiny_mace):
    frames = emt_frames(8, seed=6)
    exact = planted(tiny_mace, frames, shift_eV={"Al": 0.1, "Cu": 0.0}, scale=1.1)
    spreads = []
    for data in (frames, exact):
        tuner = ft.FineTuner(model=tiny_mace, solver="closed-form", ridge=0.0, **QUIET).fit(data)
        spreads.append(cf.readout_energy_std(tuner.model_, tuner.posterior_, frames))
    assert (spreads[0] > 0).all() and np.isfinite(spreads[0]).all()
    assert spreads[1].max() < 1e-6 * spreads[0].max()


# --------------------------------------------------------------------------- shared work


def test_readout_column_maps_reproduce_the_layer_for_any_weights(tiny_mace):
    # the layer is bilinear: layer(x; w) = x @ B @ w for every input and weight vector
    generator = torch.Generator().manual_seed(0)
    for layer in cf.readout_linears(tiny_mace).values():
        (column_map,) = cf.readout_column_maps({"layer": layer}, torch.float64).values()
        x = torch.randn(5, layer.irreps_in.dim, generator=generator, dtype=torch.float64)
        w = torch.randn(layer.weight.numel(), generator=generator, dtype=torch.float64)
        direct = torch.func.functional_call(layer, {"weight": w}, (x,))[:, 0]
        assert torch.allclose(x @ column_map @ w, direct, atol=1e-12)


def test_design_cache_reuses_a_design_only_for_the_same_model_and_frames(tiny_mace, monkeypatch):
    frames = emt_frames(4, seed=5)
    computed = []
    real = cf.readout_design
    monkeypatch.setattr(cf, "readout_design", lambda *a, **k: computed.append(1) or real(*a, **k))
    cache = cf.DesignCache()
    first = cache.design(tiny_mace, frames, with_forces=True)
    assert cache.design(tiny_mace, [a.copy() for a in frames], with_forces=True) is first
    assert len(computed) == 1
    moved = [a.copy() for a in frames]
    moved[0].positions[0, 0] += 0.01
    cache.design(tiny_mace, moved, with_forces=True)  # other frames: a new design
    changed = mm.load_model(tiny_mace)
    mm.set_model_e0s(changed, {"Al": -1.0})
    cache.design(changed, frames, with_forces=True)  # other E0s: a new design
    cache.design(tiny_mace, frames, with_forces=False)
    assert len(computed) == len(cache) == 4


def test_regime_runner_shares_work_and_matches_separate_runs(tiny_mace, monkeypatch):
    import course_lib.zero_shot as zs

    frames, test = emt_frames(8, seed=6), emt_frames(4, seed=7)
    held_out = emt_frames(3, seed=8)
    evaluated = []
    real = zs.evaluate
    monkeypatch.setattr(zs, "evaluate", lambda *a, **k: evaluated.append(1) or real(*a, **k))
    runner = ft.RegimeRunner(tiny_mace, frames, test, pretraining_frames=held_out, ridge=1e-4)
    refit = runner(regime="few-shot", solver="closed-form")
    kept = runner(regime="few-shot", solver="closed-form", e0s="keep")
    assert len(runner.design_cache) == 1 and len(evaluated) == 1  # one design, one zero-shot
    assert kept.zero_shot is refit.zero_shot and kept.forgetting_before is refit.forgetting_before
    for result, e0s in ((refit, "refit"), (kept, "keep")):
        alone = ft.run_regime(
            tiny_mace,
            frames,
            test,
            pretraining_frames=held_out,
            ridge=1e-4,
            solver="closed-form",
            e0s=e0s,
        )
        assert result.test.force_mae_meV_per_A == pytest.approx(
            alone.test.force_mae_meV_per_A, rel=1e-9
        )
        assert result.forgetting.energy_mae_meV_per_atom == pytest.approx(
            alone.forgetting.energy_mae_meV_per_atom, rel=1e-9
        )
    assert refit.fit_cpu_s > 0


def test_shared_closed_form_predicts_the_test_set_alike_by_design_and_by_model(tiny_mace):
    pool, test = emt_frames(10, seed=9), emt_frames(3, seed=10)
    few = cf.SharedClosedForm(tiny_mace, [pool[:4], pool], test)
    many = cf.SharedClosedForm(tiny_mace, [pool[: 1 + i % 10] for i in range(40)], test)
    assert few.test is None and many.test is not None  # few fits: predicting is cheaper
    delta = few.solve(pool)
    by_model, by_design = few.test_predictions(delta), many.test_predictions(delta)
    assert np.allclose(by_model.energies, by_design.energies, atol=1e-9)
    for f_model, f_design in zip(by_model.forces, by_design.forces):
        assert np.allclose(f_model, f_design, atol=1e-9)


def test_regime_frames_can_take_a_seeded_test_subset_per_temperature(tmp_path):
    from conftest import split_dataset

    path = split_dataset(tmp_path / "target.extxyz", 20, seed=1, n_test=8)
    frames = ds.read_dataset(path)
    for i, atoms in enumerate(frames):
        atoms.info["temperature_K"] = 300 if i % 2 else 1200
    ds.write_dataset(path, frames, {"method": "EMT (test oracle)"})
    whole = ft.regime_frames(path, n=4)
    part = ft.regime_frames(path, n=4, n_test=2)
    assert len(whole.test) == 8 and len(part.test) == 4
    assert sorted(a.info["temperature_K"] for a in part.test) == [300, 300, 1200, 1200]
    assert all((a.positions == b.positions).all() for a, b in zip(part.train, whole.train))
    assert "a seeded subset of the 8" in part.table()
