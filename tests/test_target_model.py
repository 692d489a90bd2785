"""The fine-tuned target model: the regime rule, the card round trip, per-temperature errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_learning_curve import curve_of

from course_lib import data as ds
from course_lib import target_model as tm


def test_choice_is_the_lowest_mean_force_error_at_n_and_ties_go_to_the_cheaper_regime():
    sizes = (10, 500)
    force = {"few-shot": (90.0, 60.0), "full": (80.0, 30.0), "scratch": (300.0, 30.0)}
    curves = {
        label: curve_of(regime, dict(zip(sizes, force[regime])), dict(zip(sizes, (5.0, 5.0))))
        for label, regime in (
            ("few-shot (closed form)", "few-shot"),
            ("full", "full"),
            ("scratch", "scratch"),
        )
    }
    choice = tm.choose_regime(curves, 500)
    assert choice.label == "full"  # 30 = 30: full comes first in the mapping
    assert choice.force_mae_meV_per_A["few-shot (closed form)"] == pytest.approx(60.0)
    assert choice.reason.index("full 30.0") < choice.reason.index("few-shot (closed form) 60.0")
    assert tm.choose_regime(curves, 10).label == "full"
    with pytest.raises(ValueError, match="no curve was run at N = 200"):
        tm.choose_regime(curves, 200)


def card(**changes) -> tm.TargetModelCard:
    fields = dict(
        name="course-mini-li2o", base_model="course-mini", base_sha256="a" * 64,
        dataset="li2o-md", dataset_sha256="b" * 64, regime="full",
        choice="lowest mean test force MAE at N = 500", n_train=500, n_valid=20, seed=0,
        settings={"lr": 0.001, "max_epochs": 80}, test={"n_frames": 160,
        "energy_mae_meV_per_atom": 3.0, "force_mae_meV_per_A": 40.0},
        test_by_temperature={"300": {"n_frames": 80, "energy_mae_meV_per_atom": 2.0,
        "force_mae_meV_per_A": 30.0, "dft_force_meV_per_A": 350.0}},
        reproduces={"curve_force_mae_meV_per_A": 40.0, "force_mae_meV_per_A": 40.0},
        md=[{"temperature_K": 1200.0, "timestep_fs": 1.0, "steps_requested": 3000,
             "steps_run": 3000, "seed": 0, "stable": True, "reason": "", "failed_step": None,
             "verdict": "stable", "closest_approach_A": {"Li-Li": 1.9}, "limits_A": {}}],
        sha256="c" * 64, n_parameters=245392, size_bytes=2_000_000,
        command="python scripts/make_target_model.py", cpu_s=600.0,
    )  # fmt: skip
    return tm.TargetModelCard(**(fields | changes))


def test_card_round_trips_and_says_what_the_md_did(tmp_path):
    model = tmp_path / "course-mini-li2o.model"
    model.write_bytes(b"weights")
    written = card()
    path = tm.write_card(written, model)
    assert tm.TargetModelCard.from_dict(json.loads(path.read_text())) == written
    text = path.with_suffix(".md").read_text()
    assert "| 300 | 80 | 2.0 | 30.0 | 350 |" in text
    assert "1200 K, seed 0: stable after 3000/3000 steps" in text and "Li-Li 1.90 Å" in text
    assert written.md_stable
    unstable = card(md=[written.md[0] | {"stable": False, "verdict": "unstable"}])
    assert not unstable.md_stable


def test_errors_by_temperature_recover_a_planted_force_error(monkeypatch):
    """A model whose forces are the DFT forces plus 0.1 eV/Å on one component per atom."""
    from course_lib.zero_shot import Predictions

    frames = ds.read_dataset("li2o-md")[:4] + ds.read_dataset("li2o-md")[-4:]
    temperatures = {float(a.info["temperature_K"]) for a in frames}
    assert len(temperatures) == 2

    class Shifted:
        pass

    def predict(model, group, compute_stress=False):
        return Predictions(
            energies=ds.energies(group),
            forces=[a.arrays[ds.FORCES_KEY] + np.array([0.1, 0.0, 0.0]) for a in group],
            model="shifted",
        )

    monkeypatch.setattr("course_lib.zero_shot.predict", predict)
    errors = tm.errors_by_temperature(Shifted(), frames)
    for row in errors.values():
        assert row["force_mae_meV_per_A"] == pytest.approx(100.0 / 3)  # one of three components
        assert row["energy_mae_meV_per_atom"] == pytest.approx(0.0)
        assert row["n_frames"] == 4 and row["dft_force_meV_per_A"] > 0


def test_the_bundled_target_model_loads_in_mace_and_matches_its_card():
    """course-mini-li2o is a plain MACE file: mace-torch's own calculator gives our numbers."""
    from course_lib import models

    name = models.fine_tuned_model("course-mini", "li2o-md")
    if name is None:
        pytest.skip("no fine-tuned target model registered yet")
    import mace  # noqa: F401  (before e3nn)
    from mace.calculators import MACECalculator

    path = models.model_file(name)
    card = tm.read_card(name)
    assert card.sha256 == ds.sha256_of(path) == models.REGISTRY[name].sha256
    assert path.stat().st_size <= 5e6  # the budget for a bundled model
    atoms = ds.read_dataset("li2o-md")[-1].copy()
    dft_forces = atoms.arrays[ds.FORCES_KEY]
    atoms.calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
    forces = atoms.get_forces()
    from course_lib.zero_shot import predict

    ours = predict(name, [atoms], compute_stress=False)
    np.testing.assert_allclose(forces, ours.forces[0], atol=1e-5)
    assert np.abs(forces - dft_forces).mean() < 0.2  # a fine-tuned model, not a random one (eV/Å)
