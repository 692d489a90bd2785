"""Learning curves: the fit of MAE(N) = A·N^-α + B, the cached runner, plots and the widget.

Numbers checked: planted A, α, B are recovered from noisy synthetic curves
within stated tolerances; a target below the floor is reported unreachable;
the cache gives back identical numbers without training; the runner trains
a tiny scratch MACE on EMT-labelled cells (a test oracle, not DFT) and
counts 1 + 3 n_atoms labels per structure.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import emt_frames, split_dataset

from course_lib import data as ds
from course_lib import learning_curve as lc
from course_lib import scaling_law as sl
from course_lib.mace_models import MaceArchitecture

torch.set_num_threads(1)

TINY = MaceArchitecture(
    r_max=4.0,
    num_bessel=6,
    max_ell=1,
    hidden_irreps="8x0e",
    mlp_irreps="8x0e",
    correlation=2,
    radial_mlp=(16, 16),
)
PLANTED = dict(a=300.0, alpha=0.4, b=20.0)  # meV/Å, a typical force curve
SIZES = np.repeat([10, 20, 50, 100, 200, 500], 5)  # 6 sizes x 5 seeds


def noisy_curve(seed: int, relative_noise: float = 0.03):
    rng = np.random.default_rng(seed)
    clean = sl.power_law(SIZES, **PLANTED)
    return clean * (1 + relative_noise * rng.standard_normal(len(SIZES)))


# --------------------------------------------------------------------------- the fit


def test_fit_is_exact_on_noise_free_data():
    fit = sl.fit_power_law(SIZES, sl.power_law(SIZES, **PLANTED), n_bootstrap=0)
    assert (fit.a, fit.alpha, fit.b) == pytest.approx(tuple(PLANTED.values()), rel=1e-5)
    assert fit.r2 == pytest.approx(1.0)


@pytest.mark.parametrize("noise_seed", [0, 1, 2])
def test_fit_recovers_planted_parameters_from_noisy_data(noise_seed):
    """Tolerance (3% noise per run, 5 seeds): α within 0.05, A within 15%, B within 4 meV/Å,
    and each within 3 bootstrap standard deviations of the planted value."""
    fit = sl.fit_power_law(SIZES, noisy_curve(noise_seed), n_bootstrap=100, seed=noise_seed)
    assert fit.alpha == pytest.approx(PLANTED["alpha"], abs=0.05)
    assert fit.a == pytest.approx(PLANTED["a"], rel=0.15)
    assert fit.b == pytest.approx(PLANTED["b"], abs=4.0)
    for name, std in (("a", fit.a_std), ("alpha", fit.alpha_std), ("b", fit.b_std)):
        assert 0 < std and abs(getattr(fit, name) - PLANTED[name]) < 3 * std, name
    assert fit.sigma_from_seeds and fit.bootstrap.shape == (100, 3)
    assert 0.05 < fit.reduced_chi2 < 5  # the weights are the noise actually put in
    assert "α" in fit.table() and fit.as_dict()["n_bootstrap"] == 100


def test_identical_runs_at_the_whole_pool_do_not_pin_the_fit():
    """At N = pool size every seed trains on the same structures: their spread is rounding."""
    rng = np.random.default_rng(0)
    maes = noisy_curve(0)
    whole_pool = SIZES == 500
    maes[whole_pool] = maes[whole_pool][0] * (1 + 1e-9 * rng.standard_normal(whole_pool.sum()))
    fit = sl.fit_power_law(SIZES, maes, n_bootstrap=50)
    assert fit.alpha == pytest.approx(PLANTED["alpha"], abs=0.05)
    assert fit.sigmas[-1] > 1e-3 * fit.means[-1] and fit.r2 > 0.99


def test_fit_respects_bounds_when_the_errors_do_not_fall():
    sizes, maes = [10, 20, 50, 100], [30.0, 31.0, 30.5, 30.2]
    fit = sl.fit_power_law(sizes, maes, n_bootstrap=0)
    assert fit.a > 0 and fit.alpha > 0 and fit.b >= 0
    assert fit.predict(1e6) == pytest.approx(np.mean(maes), rel=0.05)


def test_alpha_verdict_compares_a_pinned_alpha_with_the_chapter_range():
    inside = sl.alpha_verdict(sl.fit_power_law(SIZES, noisy_curve(0), n_bootstrap=100))
    assert inside.pinned and inside.relation == "inside" and "inside" in inside.message()
    noise = 1 + 0.01 * np.random.default_rng(1).standard_normal(len(SIZES))
    steep = sl.fit_power_law(SIZES, sl.power_law(SIZES, **{**PLANTED, "alpha": 0.9}) * noise)
    assert steep.alpha == pytest.approx(0.9, abs=0.05) and 0 < steep.alpha_std < 0.05
    assert sl.alpha_verdict(steep).relation == "steeper"
    assert sl.alpha_verdict(steep, expected=(0.8, 1.0)).relation == "inside"


def test_alpha_verdict_says_when_a_curve_cannot_pin_alpha():
    short = np.repeat([10, 20, 30, 50], 5)  # a factor 5
    noise = 1 + 0.03 * np.random.default_rng(0).standard_normal(len(short))
    verdict = sl.alpha_verdict(sl.fit_power_law(short, sl.power_law(short, **PLANTED) * noise))
    assert not verdict.pinned and verdict.relation == "not pinned"
    assert "factor 5" in verdict.message() and "neither confirms nor refutes" in verdict.message()
    one_seed = sl.fit_power_law(
        [10, 20, 50, 100, 200], sl.power_law([10, 20, 50, 100, 200], **PLANTED)
    )
    assert any("one seed" in reason for reason in sl.alpha_verdict(one_seed).reasons)
    flat = sl.fit_power_law(
        np.repeat([10, 50, 200, 1000], 3), [30, 31, 29, 30, 29, 31, 31, 30, 29, 30, 31, 29]
    )
    assert not sl.alpha_verdict(flat).pinned
    noisy = sl.fit_power_law(SIZES, noisy_curve(2, relative_noise=0.3), n_bootstrap=100)
    assert noisy.alpha_std > 0.2 and not sl.alpha_verdict(noisy).pinned
    assert "uncertainty" in sl.alpha_verdict(noisy).message()


@pytest.mark.parametrize(
    ("sizes", "maes", "match"),
    [
        ([10, 20, 10, 20], [5, 4, 5, 4], "at least 4 distinct sizes, got 2"),
        ([10, 20, 50, 10, 20, 50], [5, 4, 3, 5, 4, 3], "zero degrees of freedom"),
        ([10, 20, 50], [5, -4, 3], "maes must be positive"),
        ([10, 20, 50], [5, 0, 3], "maes must be positive"),
        ([10, 20, 50], [5, 4], "got 3 sizes and 2 maes"),
        ([10, 20, 50], [5, np.nan, 3], "NaN"),
        ([0, 20, 50, 100], [9, 5, 4, 3], "zero-shot"),
    ],
)
def test_fit_rejects_bad_input_with_a_clear_error(sizes, maes, match):
    with pytest.raises(sl.LearningCurveInputError, match=match):
        sl.fit_power_law(sizes, maes)


def test_target_below_the_floor_is_unreachable_and_above_it_has_a_range():
    fit = sl.fit_power_law(SIZES, noisy_curve(0), n_bootstrap=100)
    below = fit.n_for(0.5 * fit.b)
    assert not below.reachable and below.n == np.inf
    assert "below the fitted floor" in below.message()
    above = fit.n_for(40.0)
    expected = (fit.a / (40.0 - fit.b)) ** (1 / fit.alpha)
    assert above.reachable and above.n == pytest.approx(expected)
    assert above.n_low <= above.n <= above.n_high
    assert above.reachable_fraction == pytest.approx(1.0)
    assert above.measured == (10, 500) and "beyond the largest measured N = 500" in str(above)
    inside = fit.n_for(float(fit.predict(100.0)))
    assert inside.n == pytest.approx(100.0) and "extrapolation" not in inside.message()
    easy = fit.n_for(float(fit.predict(5.0)))
    assert easy.n == pytest.approx(5.0) and "below the smallest measured N = 10" in easy.message()
    assert "N ≈ 5 structures" in easy.message()
    with pytest.raises(sl.LearningCurveInputError, match="target"):
        fit.n_for(-1.0)


def test_no_target_estimate_far_beyond_the_data_or_without_a_pinned_alpha():
    fit = sl.fit_power_law(SIZES, noisy_curve(0), n_bootstrap=100)
    far = fit.n_for(float(fit.predict(20_000.0)))  # 40x the largest measured N
    assert far.refused and np.isnan(far.n) and not far.reachable
    assert "more than 3x outside the measured sizes 10-500" in far.message()
    near = fit.n_for(float(fit.predict(1_400.0)))  # within the stated factor: an extrapolation
    assert not near.refused and near.n == pytest.approx(1_400.0, rel=1e-6)
    one_seed = sl.fit_power_law(np.unique(SIZES), sl.power_law(np.unique(SIZES), **PLANTED))
    estimate = one_seed.n_for(40.0)
    assert estimate.refused and "cannot pin α" in estimate.message()
    assert "one seed per size" in estimate.message()


# --------------------------------------------------------------------------- the runner


class StubTrainer:
    """Stands in for ``run_regime``: counts calls, returns a planted curve, may fail."""

    def __init__(self, fail_on_call: int | None = None):
        self.calls = []
        self.fail_on_call = fail_on_call

    def __call__(self, model, train, test, *, settings, valid_frames=None):
        seed, forces_weight = settings.seed, settings.forces_weight
        self.calls.append((len(train), seed, forces_weight))
        self.valid = valid_frames
        if self.fail_on_call == len(self.calls):
            raise KeyboardInterrupt("interrupted")
        mae = float(sl.power_law(len(train), 100.0, 0.5, 5.0)) + 0.1 * seed
        test_metrics = SimpleNamespace(
            energy_mae_meV_per_atom=mae / 10,
            force_mae_meV_per_A=mae,
            as_dict=lambda: {"force_mae_meV_per_A": mae},
        )
        labels = ds.n_labels(train, with_forces=forces_weight > 0)
        return SimpleNamespace(test=test_metrics, n_labels=labels, fit_time_s=0.5)


@pytest.fixture
def pool_and_test():
    return emt_frames(12, seed=3), emt_frames(3, seed=4)


def test_cache_returns_identical_numbers_without_retraining(pool_and_test, monkeypatch):
    pool, test = pool_and_test
    stub = StubTrainer()
    monkeypatch.setattr(lc, "run_regime", stub)
    options = dict(regime="scratch", sizes=(2, 3, 5, 8), seeds=2, progress=False, max_epochs=1)
    first = lc.run_learning_curve(None, pool, test, **options)
    assert len(stub.calls) == 8 and not any(p.cached for p in first.points)
    second = lc.run_learning_curve(None, pool, test, **options)
    assert len(stub.calls) == 8  # nothing retrained
    assert all(p.cached for p in second.points)
    strip = [(p.n_train, p.seed, p.force_mae_meV_per_A, p.n_labels) for p in first.points]
    assert strip == [(p.n_train, p.seed, p.force_mae_meV_per_A, p.n_labels) for p in second.points]
    assert first.fit().alpha == second.fit().alpha
    # an explicit default is the same key as an omitted one
    lc.run_learning_curve(None, pool, test, **options, batch_size=8, lr=None)
    assert len(stub.calls) == 8
    # another key trains again: energy-only, other settings, other test frames
    lc.run_learning_curve(None, pool, test, **{**options, "energy_only": True})
    assert len(stub.calls) == 16 and stub.calls[-1][2] == 0.0
    lc.run_learning_curve(None, pool, test, **{**options, "max_epochs": 2})
    assert len(stub.calls) == 24
    lc.run_learning_curve(None, pool, test[:2], **options)
    assert len(stub.calls) == 32


def test_an_interrupted_curve_resumes_where_it_stopped(pool_and_test, monkeypatch, tmp_path):
    pool, test = pool_and_test
    options = dict(
        regime="scratch", sizes=(3, 5, 8), seeds=1, progress=False, cache_dir=tmp_path / "lc"
    )
    monkeypatch.setattr(lc, "run_regime", StubTrainer(fail_on_call=3))
    with pytest.raises(KeyboardInterrupt):
        lc.run_learning_curve(None, pool, test, **options)
    stored = sorted(p.name for p in (tmp_path / "lc").glob("*.json"))
    assert len(stored) == 2 and not list((tmp_path / "lc").glob(".*.tmp"))
    (tmp_path / "lc" / stored[0]).write_text("{ half a file")  # unreadable: retrained
    resumed = StubTrainer()
    monkeypatch.setattr(lc, "run_regime", resumed)
    curve = lc.run_learning_curve(None, pool, test, **options)
    assert sorted(call[0] for call in resumed.calls) == [3, 8]
    assert [p.n_train for p in curve.points] == [3, 5, 8]


def test_a_fixed_validation_set_reaches_every_run_and_is_keyed(pool_and_test, monkeypatch):
    pool, test = pool_and_test
    valid, pool = pool[:3], pool[3:]
    stub = StubTrainer()
    monkeypatch.setattr(lc, "run_regime", stub)
    options = dict(regime="scratch", sizes=(2, 4), seeds=1, progress=False, max_epochs=1)
    lc.run_learning_curve(None, pool, test, **options)
    assert stub.valid is None and len(stub.calls) == 2
    lc.run_learning_curve(None, pool, test, valid_frames=valid, **options)
    assert stub.valid == valid and len(stub.calls) == 4  # another key: trained again
    lc.run_learning_curve(None, pool, test, valid_frames=valid, **options)
    assert len(stub.calls) == 4
    with pytest.raises(ValueError, match="overlap"):
        lc.run_learning_curve(None, pool, test, valid_frames=[pool[0]], **options)


def test_small_training_sets_repeat_within_an_epoch(tiny_mace):
    """min_epoch_frames: 2 structures, batch 2, at least 8 frames per epoch -> 4 steps per epoch."""
    from course_lib import training

    frames = emt_frames(3, seed=5)
    steps = []
    model = copy_of(tiny_mace)

    class Counting(torch.optim.Adam):
        def step(self, *args, **kwargs):
            steps.append(1)
            return super().step(*args, **kwargs)

    original = torch.optim.Adam
    torch.optim.Adam = Counting
    try:
        training.train(model, frames[:2], frames[2:], max_epochs=2, batch_size=2, progress=False)
        assert len(steps) == 2  # one batch per epoch
        training.train(
            model,
            frames[:2],
            frames[2:],
            max_epochs=2,
            batch_size=2,
            min_epoch_frames=8,
            progress=False,
        )
        assert len(steps) == 2 + 8
    finally:
        torch.optim.Adam = original


def copy_of(model):
    import copy

    return copy.deepcopy(model)


def test_lr_sweep_chooses_the_rate_that_learns_on_validation(tiny_mace):
    pool, valid = emt_frames(8, seed=6), emt_frames(3, seed=7)
    sweep = lc.sweep_learning_rate(
        tiny_mace,
        pool,
        valid,
        regime="full",
        lrs=(1e-12, 1e-2),
        n_train=6,
        max_epochs=4,
        batch_size=3,
        progress=False,
    )
    assert sweep.best_lr == 1e-2 and sweep.n_train == 6
    assert sweep.valid_loss[1] < sweep.valid_loss[0]
    assert lc.LearningRateSweep.from_dict(json.loads(json.dumps(sweep.as_dict()))) == sweep
    assert "<- chosen" in sweep.table()
    with pytest.raises(ValueError, match="positive"):
        lc.sweep_learning_rate(tiny_mace, pool, valid, regime="full", lrs=(0.0,), n_train=2)


def test_an_interrupted_lr_sweep_resumes_from_its_stored_rates(tiny_mace, tmp_path, monkeypatch):
    from course_lib import finetune

    pool, valid = emt_frames(8, seed=6), emt_frames(3, seed=7)
    options = dict(
        regime="full",
        n_train=4,
        max_epochs=2,
        batch_size=2,
        progress=False,
        cache_dir=tmp_path / "sweeps",
    )
    first = lc.sweep_learning_rate(tiny_mace, pool, valid, lrs=(1e-3,), **options)
    assert len(list((tmp_path / "sweeps").glob("*.json"))) == 1
    fits = []
    original_fit = finetune.FineTuner.fit
    monkeypatch.setattr(
        finetune.FineTuner,
        "fit",
        lambda self, *a, **k: fits.append(self.settings.lr) or original_fit(self, *a, **k),
    )
    both = lc.sweep_learning_rate(tiny_mace, pool, valid, lrs=(1e-3, 1e-2), **options)
    assert fits == [1e-2]  # the stored rate is read, only the new one trains
    assert both.valid_loss[0] == first.valid_loss[0]
    assert len(list((tmp_path / "sweeps").glob("*.json"))) == 2
    options["max_epochs"] = 3  # another setting is another key: trained again
    lc.sweep_learning_rate(tiny_mace, pool, valid, lrs=(1e-3,), **options)
    assert fits == [1e-2, 1e-3]


def test_sizes_are_capped_by_the_pool():
    assert lc.curve_sizes((10, 20, 50, 100), 60) == (10, 20, 50, 60)
    assert lc.curve_sizes((10, 20), 100) == (10, 20)
    with pytest.raises(sl.LearningCurveInputError):
        lc.curve_sizes((0, 5), 10)


def test_runner_trains_a_tiny_scratch_model_end_to_end(pool_and_test, tmp_path):
    pool, test = pool_and_test
    options = dict(
        regime="scratch",
        sizes=(3, 4, 6),
        seeds=1,
        architecture=TINY,
        max_epochs=1,
        batch_size=4,
        progress=False,
        cache_dir=tmp_path / "lc",
        models_dir=tmp_path / "models",
    )
    curve = lc.run_learning_curve(None, pool, test, **options)
    assert curve.sizes == (3, 4, 6) and curve.model == "none" and curve.zero_shot is None
    from course_lib.finetune import load_model
    from course_lib.zero_shot import evaluate

    saved = tmp_path / "models" / curve.points[0].model_file
    again = evaluate(load_model(saved), test).raw  # the saved file is the run that was scored
    assert again.force_mae_meV_per_A == pytest.approx(curve.points[0].force_mae_meV_per_A)
    for point in curve.points:
        train = ds.subset(pool, point.n_train, seed=point.seed)
        assert point.n_labels == len(train) + 3 * sum(len(a) for a in train)
        assert point.force_mae_meV_per_A > 0 and np.isfinite(point.energy_mae_meV_per_atom)
        assert point.fit_time_s > 0
        assert (point.epochs_trained, point.stopped_early) == (1, False)  # used up its 1 epoch
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "lc").glob("*.json"))]
    assert len(records) == 3
    assert records[0]["key"]["settings"]["architecture"]["hidden_irreps"] == "8x0e"
    options["sizes"] = (4,)
    energy_only = lc.run_learning_curve(None, pool, test, energy_only=True, **options)
    assert [p.n_labels for p in energy_only.points] == [4]  # one label per structure
    assert "energy only" in energy_only.table()
    assert lc.LearningCurve.from_dict(json.loads(json.dumps(curve.as_dict()))) == curve


def test_few_shot_curve_has_the_zero_shot_line(pool_and_test, tiny_mace, tmp_path):
    pool, test = pool_and_test
    curve = lc.run_learning_curve(
        tiny_mace,
        pool,
        test,
        regime="few-shot",
        solver="closed-form",
        sizes=(2, 4, 6),
        seeds=1,
        progress=False,
        cache_dir=tmp_path,
    )
    assert curve.model.startswith("params-sha256:")
    assert set(curve.zero_shot) == {"energy", "force"}
    # the readout fit on 6 structures beats the random starting model
    assert curve.points[-1].force_mae_meV_per_A < curve.zero_shot["force"]
    assert "zero-shot" in curve.table()
    assert len(list(tmp_path.glob("zero-shot-*.json"))) == 1  # stored like the runs


@pytest.mark.parametrize("energy_only", [False, True])
def test_closed_form_curve_shares_one_design_and_matches_run_regime(
    pool_and_test, tiny_mace, tmp_path, monkeypatch, energy_only
):
    """The shared design pass gives each run the numbers of its own closed-form fit."""
    from course_lib.finetune import run_regime

    pool, test = pool_and_test
    settings = dict(solver="closed-form", ridge=1e-4)
    forces_weight = 0.0 if energy_only else 100.0
    expected = {
        (n, seed): run_regime(
            tiny_mace,
            ds.subset(pool, n, seed=seed),
            test,
            regime="few-shot",
            seed=seed,
            progress=False,
            forces_weight=forces_weight,
            **settings,
        )
        for n in (2, 5)
        for seed in (0, 1)
    }
    monkeypatch.setattr(lc, "run_regime", StubTrainer(fail_on_call=1))  # must not be called
    curve = lc.run_learning_curve(
        tiny_mace,
        pool,
        test,
        regime="few-shot",
        sizes=(2, 5),
        seeds=2,
        energy_only=energy_only,
        progress=False,
        cache_dir=tmp_path,
        zero_shot=False,
        **settings,
    )
    for point in curve.points:
        result = expected[(point.n_train, point.seed)]
        assert point.force_mae_meV_per_A == pytest.approx(result.test.force_mae_meV_per_A, rel=1e-6)
        assert point.energy_mae_meV_per_atom == pytest.approx(
            result.test.energy_mae_meV_per_atom, rel=1e-6
        )
        assert point.n_labels == result.n_labels and point.fit_time_s > 0


def test_runner_rejects_settings_it_sets_itself_and_unknown_ones(pool_and_test):
    pool, test = pool_and_test
    with pytest.raises(ValueError, match="energy_only"):
        lc.run_learning_curve(None, pool, test, regime="scratch", forces_weight=0.0)
    with pytest.raises(ValueError, match="not a fine-tuning setting"):
        lc.run_learning_curve(None, pool, test, regime="scratch", max_epoch=3)


def test_model_file_is_keyed_by_its_sha256(tiny_mace_file):
    assert lc.model_key(tiny_mace_file) == "sha256:" + ds.sha256_of(tiny_mace_file)
    assert lc.model_key(None) == "none"


# --------------------------------------------------------------------------- figure and widget


def synthetic_curve(*, regime="few-shot", energy_only=False, zero_shot=None) -> lc.LearningCurve:
    """Three seeds per N of the planted law with 3% noise; 8-atom cells for the label count."""
    errors = noisy_curve(0)
    points = tuple(
        lc.CurvePoint(
            n_train=int(n),
            seed=i % 5,
            energy_mae_meV_per_atom=e / 10,
            force_mae_meV_per_A=e,
            n_labels=int(n) * (1 if energy_only else 25),
            fit_time_s=1.0,
        )
        for i, (n, e) in enumerate(zip(SIZES, errors))
    )
    return lc.LearningCurve("test", regime, energy_only, points, n_test=10, zero_shot=zero_shot)


def curve_of(regime: str, force: dict, energy: dict, *, stopped=None) -> lc.LearningCurve:
    """Two seeds per N at mean ``force[N]`` ± 1 and ``energy[N]`` ± 1 (meV/Å, meV/atom)."""
    points = tuple(
        lc.CurvePoint(
            n_train=n,
            seed=seed,
            energy_mae_meV_per_atom=energy[n] + sign,
            force_mae_meV_per_A=force[n] + sign,
            n_labels=n,
            fit_time_s=1.0,
            epochs_trained=None if stopped is None else 10,
            stopped_early=None if stopped is None else stopped[n],
        )
        for n in force
        for seed, sign in ((0, -1.0), (1, 1.0))
    )
    return lc.LearningCurve("test", regime, False, points, n_test=10)


def test_regime_table_finds_the_first_measured_n_below_each_target_and_says_why_not():
    sizes = (1, 10, 50, 200, 500)
    good = curve_of(
        "full",
        dict(zip(sizes, (300.0, 120.0, 60.0, 49.0, 30.0))),  # below 50 from N = 200
        dict(zip(sizes, (40.0, 19.0, 10.0, 5.0, 3.0))),  # below 20 from N = 10
        stopped=dict.fromkeys(sizes, True),
    )
    stuck = curve_of(
        "scratch",
        dict(zip(sizes, (900.0, 500.0, 200.0, 90.0, 70.0))),
        dict(zip(sizes, (500.0, 200.0, 80.0, 30.0, 21.0))),
        stopped={1: True, 10: True, 50: True, 200: False, 500: False},
    )
    table = lc.regime_table(
        {"full": good, "scratch": stuck}, force_target_meV_per_A=50, energy_target_meV_per_atom=20
    )
    full, scratch = table.rows
    assert (full.n_force, full.n_energy) == (200, 10)
    assert full.force[200] == pytest.approx((49.0, np.sqrt(2), 2))  # mean, std (ddof 1), seeds
    assert (scratch.n_force, scratch.n_energy) == (None, None)
    assert "best 70.0" in scratch.why_not_force and "N = 500" in scratch.why_not_force
    assert "60% of its runs ended before their epoch budget" in scratch.why_not_force
    assert full.why_not_force == "" and scratch.converged_fraction == pytest.approx(0.6)
    text = table.table()
    assert "| full | F (meV/Å) | 299.0" not in text  # means, not single runs
    assert "not reached" in text and "49.0 ± 1.4" in text
    # strictly below, as the flowchart asks: a mean exactly at the target does not meet it
    at = curve_of("full", {10: 51.0, 50: 50.0}, {10: 20.0, 50: 20.0})
    assert at.first_n_below("force", 50.0) is None and at.first_n_below("force", 50.5) == 50
    assert at.converged_fraction() is None  # no gradient runs recorded
    # with a budget: a run that trained fewer epochs than it (stage one stopped early, then a
    # stage two ran its full length) ended before its budget too
    assert stuck.converged_fraction() == pytest.approx(0.6)  # 10 epochs each in curve_of
    assert stuck.converged_fraction(max_epochs=10) == pytest.approx(0.6)
    assert stuck.converged_fraction(max_epochs=80) == pytest.approx(1.0)


def test_figure_draws_shipped_reference_curves_pale_beneath_the_live_ones():
    from course_lib.plots.learning_curve import learning_curve_figure

    live = synthetic_curve()
    shipped = synthetic_curve()
    fig = learning_curve_figure(
        {"live": live, "shipped (full mode)": shipped}, references=["shipped (full mode)"]
    )
    means = {t.name: t for t in fig.data if t.name in ("live", "shipped (full mode)")}
    assert means["shipped (full mode)"].marker.color.startswith("rgba(")
    assert means["shipped (full mode)"].marker.symbol == "square-open"
    assert not means["live"].marker.color.startswith("rgba(")
    with pytest.raises(ValueError, match="match no curve"):
        learning_curve_figure({"live": live}, references=["other"])


def test_figure_draws_means_with_seed_spread_fits_and_the_data_size_guide():
    from course_lib.plots.learning_curve import FIT_TRACE_NAME, learning_curve_figure

    forces = synthetic_curve(zero_shot={"energy": 30.0, "force": 150.0})
    energy_only = synthetic_curve(energy_only=True)
    fits = {forces.label: forces.fit(n_bootstrap=20)}
    fig = learning_curve_figure([forces, energy_only], fits=fits)
    means = next(t for t in fig.data if t.name == forces.label)
    summary = forces.summary("force")
    assert list(means.x) == [row.n_train for row in summary]
    np.testing.assert_allclose(means.error_y.array, [row.std for row in summary])
    fitted = next(t for t in fig.data if t.meta == FIT_TRACE_NAME)
    np.testing.assert_allclose(fitted.y, fits[forces.label].predict(fitted.customdata))
    assert "α = 0.4" in fitted.name
    assert any("zero-shot" in t.name and t.y[0] == 150.0 for t in fig.data)
    assert len(fig.layout.shapes) == 4  # ~50, ~500, ~5000, >= 50000
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    # by labels: energy + forces points move right by the labels per structure, energy-only not
    by_labels = learning_curve_figure([forces, energy_only], x="labels", log_log=False)
    xs = {t.name: t.x[0] for t in by_labels.data if t.name in (forces.label, energy_only.label)}
    assert xs == {forces.label: 10 * 25, energy_only.label: 10}
    assert not by_labels.layout.shapes
    with pytest.raises(ValueError, match="match no curve"):
        learning_curve_figure(forces, fits={"other": fits[forces.label]})


def test_widget_sliders_move_the_curve_and_fit_snaps_them():
    from course_lib.widgets import learning_curve as lw

    curve = synthetic_curve()
    explorer = lw.learning_curve_explorer(curve, target=40.0, n_bootstrap=20)
    trace = lw.slider_trace(explorer.figure)
    explorer.sliders["alpha"].value = 0.7
    explorer.sliders["b"].value = 5.0
    expected = sl.power_law(trace.x, **explorer.parameters())
    np.testing.assert_allclose(lw.slider_trace(explorer.figure).y, expected)
    assert explorer.parameters()["alpha"] == 0.7

    explorer.fit_button.click()
    fit = explorer.fit_
    assert fit is not None
    assert explorer.parameters() == pytest.approx({"a": fit.a, "alpha": fit.alpha, "b": fit.b})
    np.testing.assert_allclose(lw.slider_trace(explorer.figure).y, fit.predict(trace.x))
    assert "least-squares fit" in explorer.message.value and "N ≈" in explorer.message.value

    explorer.target.value = 0.5 * fit.b
    assert "unreachable" in explorer.message.value
    explorer.log_log.value = False
    assert explorer.figure.layout.xaxis.type == "linear"
    assert tuple(explorer.figure.layout.xaxis.range) == pytest.approx((0, 525))
    visible = [n.visible for n in explorer.figure.layout.annotations if n.name]
    assert visible == [True, False, False, False]  # only the ~50 note lies inside N <= 500
    explorer.log_log.value = True
    assert explorer.figure.layout.yaxis.type == "log"


def test_snap_sliders_widens_a_range_the_fit_lies_outside():
    import ipywidgets as widgets

    from course_lib.widgets.learning_curve import snap_sliders

    fit = sl.fit_power_law(SIZES, sl.power_law(SIZES, **PLANTED), n_bootstrap=0)
    sliders = {
        "a": widgets.FloatLogSlider(value=10, base=10, min=0, max=2),
        "alpha": widgets.FloatSlider(value=0.1, min=0, max=0.2),
        "b": widgets.FloatSlider(value=1, min=0, max=5),
    }
    snap_sliders(sliders, fit)
    assert {k: s.value for k, s in sliders.items()} == pytest.approx(PLANTED, rel=1e-5)


# --------------------------------------------------------------------------- command line


def test_command_prints_points_fit_and_target_as_json(tmp_path, monkeypatch, capsys):
    from course_lib.cli import main

    path = split_dataset(tmp_path / "emt.extxyz", 14, seed=5, n_test=3)
    stub = StubTrainer()
    monkeypatch.setattr(lc, "run_regime", stub)
    argv = ["learning-curve", "--dataset", str(path), "--regime", "scratch", "--sizes", "2,3,5,8"]
    argv += ["--seeds", "2", "--target", "50", "--bootstrap", "20", "--json"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "NaN" not in printed and "Infinity" not in printed  # strict JSON
    out = json.loads(printed)
    assert [p["n_train"] for p in out["curve"]["points"]] == [2, 2, 3, 3, 5, 5, 8, 8]
    assert out["curve"]["n_test"] == 3 and out["fit"]["sizes"] == [2, 3, 5, 8]
    # N from 2 to 8 spans a factor 4: α is not pinned, so no N-for-target is given
    assert out["target"]["n"] is None and "cannot pin α" in out["target"]["refused"]
    assert out["target"]["unit"] == "meV/Å"
    assert main(argv) == 0 and len(stub.calls) == 8  # second call: all cached
    capsys.readouterr()
    assert main([*argv[:4], "few-shot", "--json"]) == 2
    assert "pass --model" in capsys.readouterr().err


def test_a_shipped_curve_comes_back_without_training_in_the_live_json(
    tmp_path, monkeypatch, capsys
):
    from course_lib import shipped
    from course_lib.cli import main

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    path = split_dataset(tmp_path / "emt.extxyz", 14, seed=5, n_test=3)
    stub = StubTrainer()
    monkeypatch.setattr(lc, "run_regime", stub)
    argv = ["learning-curve", "--dataset", str(path), "--regime", "scratch", "--sizes", "2,3,5,8"]
    argv += ["--seeds", "2", "--json"]
    assert main(["learning-curve", *argv[1:], "--shipped"]) == 2  # nothing shipped yet
    assert "no shipped learning-curve" in capsys.readouterr().err
    assert main([*argv, "--ship"]) == 0
    live = json.loads(capsys.readouterr().out)
    calls = len(stub.calls)
    assert main([*argv, "--shipped"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert len(stub.calls) == calls  # nothing trained
    assert back["curve"]["points"] == live["curve"]["points"]
    assert back["fit"]["alpha"] == pytest.approx(live["fit"]["alpha"])
    assert back["shipped"]["command"].startswith("course ")
    assert back["shipped"]["datasets"] == {str(path): ds.sha256_of(path)}


def test_two_point_slope_recovers_a_planted_exponent_and_the_rmd17_median():
    assert sl.two_point_alpha(
        sl.power_law(10, 300.0, 0.42, 0.0), sl.power_law(400, 300.0, 0.42, 0.0), 10, 400
    ) == pytest.approx(0.42)
    # a floor flattens the two-point slope: it is a lower bound of alpha
    assert (
        sl.two_point_alpha(
            sl.power_law(10, 300.0, 0.42, 20.0), sl.power_law(400, 300.0, 0.42, 20.0), 10, 400
        )
        < 0.42
    )
    alphas = sl.rmd17_scratch_alphas()
    assert len(alphas) == 10 and all(0.5 < a < 1.0 for a in alphas.values())
    assert np.median(list(alphas.values())) == pytest.approx(0.728, abs=0.002)


def test_shipped_curves_gathers_every_regime_and_says_why_one_is_missing(tmp_path):
    from course_lib.shipped import ship

    full, scratch = synthetic_curve(regime="full"), synthetic_curve(regime="scratch")
    data_sha = ds.sha256_of(ds.dataset_path("li2o-md"))
    for curve, sha in ((full, data_sha), (scratch, "0" * 64)):  # scratch: made on other data
        key = lc.shipped_key("course-mini", "li2o-md", regime=curve.regime, energy_only=False)
        prov = {"command": f"course learning-curve --regime {curve.regime}", "datasets": {}}
        prov["datasets"]["li2o-md"] = sha
        ship("learning-curve", key, {"curve": curve.as_dict()}, prov, folder=tmp_path)
    found = lc.shipped_curves("course-mini", "li2o-md", folder=tmp_path)
    assert list(found.curves) == ["full"] and found.curves["full"] == full
    assert "Remake it" in found.missing["scratch"]
    assert found.missing["few-shot (closed form)"] == "no record for this model and dataset"
    assert "SHIPPED full: course learning-curve --regime full" in found.summary()
    assert (
        lc.shipped_curves("course-mini", "li2o-md", energy_only=True, folder=tmp_path).curves == {}
    )


def test_regime_table_command_reads_the_shipped_curves_as_strict_json(
    tmp_path, monkeypatch, capsys
):
    from course_lib import cli, shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    full = curve_of(
        "full", {1: 300.0, 10: 120.0, 50: 60.0, 200: 45.0}, dict.fromkeys((1, 10, 50, 200), 10.0)
    )
    key = lc.shipped_key("course-mini", "li2o-md", regime="full", energy_only=False)
    prov = {"command": "course learning-curve --regime full --ship", "datasets": {}}
    shipped.ship("learning-curve", key, {"curve": full.as_dict()}, prov)
    assert cli.main(["regime-table", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)  # strict: no NaN tokens
    (row,) = record["rows"]
    assert row["label"] == "full" and row["n_force"] == 200 and row["n_energy"] == 1
    assert record["commands"] == {"full": prov["command"]}
    assert cli.main(["regime-table", "--dataset", "mgo-rattled"]) == 2
    assert "no shipped curves of course-mini on mgo-rattled" in capsys.readouterr().err
