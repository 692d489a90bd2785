"""Comparing regimes on one test set: the frames, the table, the side-by-side figures, the card.

Tiny MACE models and EMT-labelled cells (a test oracle, not DFT), as in test_finetune.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import emt_frames

from course_lib import data as ds
from course_lib import finetune as ft
from course_lib.plots import parity, training
from course_lib.training import TrainingHistory

QUIET = {"progress": False, "batch_size": 4}


@pytest.fixture(scope="module")
def results(tiny_mace):
    """Few-shot (closed form, with forgetting) and scratch on the same six test frames."""
    train, test, corpus = emt_frames(8), emt_frames(6, seed=4), emt_frames(3, seed=11)
    few = ft.run_regime(
        tiny_mace,
        train,
        test,
        regime="few-shot",
        solver="closed-form",
        pretraining_frames=corpus,
        **QUIET,
    )
    scratch = ft.run_regime(tiny_mace, train, test, regime="scratch", max_epochs=2, **QUIET)
    return {"few-shot": few, "scratch": scratch}, test


@pytest.fixture
def dataset(tmp_path):
    """Ten frames, the last three a fixed test split, as the bundled datasets carry one."""
    frames = emt_frames(10, seed=2)
    for index, atoms in enumerate(frames):
        atoms.info["split"] = "test" if index >= 7 else "train"
    return ds.write_dataset(tmp_path / "target.extxyz", frames, {"method": "EMT (test)"})


def test_regime_frames_keep_the_fixed_test_split_and_nest_training_draws(dataset):
    small = ft.regime_frames(dataset, n=3, seed=1, corpus=dataset)
    every = ft.regime_frames(dataset, seed=1)
    assert small.pool_size == every.pool_size == len(every.train) == 7
    assert [a.info[ds.ENERGY_KEY] for a in small.test] == [
        a.info[ds.ENERGY_KEY] for a in every.test
    ]
    assert all(a.info["split"] == "test" for a in small.test)
    assert len(small.pretraining) == 3 and every.pretraining is None
    labels = ds.n_labels(small.train)
    assert labels == 3 + 3 * sum(len(a) for a in small.train)
    assert f"{labels} with forces" in small.table() and "target" in small.table()
    with pytest.raises(ds.DatasetError, match="pool has only 7"):
        ft.regime_frames(dataset, n=8)


def test_training_history_round_trips_through_json_with_nan():
    history = TrainingHistory(
        epoch=(0, 1),
        train_loss=(math.nan, 1.0),
        valid_loss=(2.0, 1.5),
        train_energy_mae=(math.nan, 3.0),
        valid_energy_mae=(4.0, 2.0),
        train_force_mae=(math.nan, 30.0),
        valid_force_mae=(40.0, 20.0),
        lr=(1e-3, 1e-3),
        best_epoch=1,
        stopped_early=False,
        wall_time_s=0.5,
    )
    back = TrainingHistory.from_dict(json.loads(json.dumps(history.as_dict())))
    assert back.valid_force_mae == history.valid_force_mae and back.best_epoch == 1
    assert math.isnan(back.train_loss[0])
    with pytest.raises(KeyError, match="best_epoch"):
        TrainingHistory.from_dict({k: v for k, v in history.as_dict().items() if k != "best_epoch"})


def test_compare_regimes_lists_zero_shot_first_and_forgetting_where_measured(results):
    by_label, _ = results
    lines = ft.compare_regimes(by_label).splitlines()
    few, scratch = by_label["few-shot"], by_label["scratch"]
    assert lines[1].startswith("zero-shot (E aligned)")
    assert f"{few.zero_shot.aligned.force_mae_meV_per_A:.1f}" in lines[1]
    before, after = few.forgetting_before.force_mae_meV_per_A, few.forgetting.force_mae_meV_per_A
    assert lines[2].startswith("few-shot") and lines[2].endswith(f"{before:.1f} -> {after:.1f}")
    assert lines[3].startswith("scratch") and lines[3].endswith(" -")
    assert f"{scratch.test.energy_mae_meV_per_atom:.2f}" in lines[3]


def test_regime_parity_draws_zero_shot_then_each_regime_on_the_test_labels(results):
    by_label, test = results
    fig = parity.regime_parity(by_label, test, quantity="forces")
    titles = [a.text for a in fig.layout.annotations]
    assert [t.split("<br>")[0] for t in titles] == ["zero-shot", "few-shot", "scratch"]
    assert f"{by_label['scratch'].test.force_mae_meV_per_A:.0f} meV/Å" in titles[2]
    points = [t for t in fig.data if t.mode == "markers"]
    assert {t.name for t in points} == {"Al", "Cu"} and len(points) == 2 * 3
    reference = np.concatenate(ds.forces(test)).ravel()
    assert sum(len(t.x) for t in points) == 3 * reference.size
    predicted = np.concatenate(by_label["scratch"].test_predictions.forces).ravel()
    drawn = np.concatenate([t.y for t in points[4:]])
    assert sorted(drawn) == pytest.approx(sorted(predicted))
    diagonals = [t for t in fig.data if t.mode == "lines"]
    assert len(diagonals) == 3  # one y = x per panel, spanning that panel's points
    assert diagonals[2].x[1] == pytest.approx(max(reference.max(), predicted.max()))

    wrapped = parity.regime_parity(by_label, test, columns=2)
    assert wrapped.layout.height > fig.layout.height and wrapped.layout.width < fig.layout.width
    assert [t.xaxis for t in wrapped.data if t.mode == "lines"] == ["x", "x2", "x3"]
    energy = parity.regime_parity(by_label, test, quantity="energy", zero_shot=False)
    assert len(energy.layout.annotations) == 2
    first = next(t for t in energy.data if t.mode == "markers")
    assert np.asarray(first.x) == pytest.approx(ds.energies(test) / ds.n_atoms(test))
    with pytest.raises(ValueError, match="6 predictions for 2 frames"):
        parity.regime_parity(by_label, test[:2])


def test_regime_errors_takes_labels_for_variants_of_one_regime(results):
    by_label, _ = results
    variants = {"closed form": by_label["few-shot"], "again": by_label["few-shot"]}
    fig = training.regime_errors(variants)
    assert list(fig.data[0].x) == ["closed form", "again"]
    assert list(training.regime_errors(list(by_label.values())).data[0].x) == [
        "few-shot",
        "scratch",
    ]
    zero_shot = by_label["few-shot"].zero_shot.aligned.force_mae_meV_per_A
    logarithmic = training.regime_errors(by_label, log_y=True)
    assert logarithmic.layout.yaxis.type == logarithmic.layout.yaxis2.type == "log"
    assert logarithmic.layout.shapes[1].y0 == pytest.approx(zero_shot)  # shapes: data units
    labels = [a for a in logarithmic.layout.annotations if a.text == "zero-shot"]
    assert labels[1].y == pytest.approx(np.log10(zero_shot))  # annotations on a log axis: log10
    linear = training.regime_errors(by_label).layout.annotations
    assert [a.y for a in linear if a.text == "zero-shot"][1] == pytest.approx(zero_shot)


def test_read_model_card_finds_the_card_next_to_the_resolved_file(tmp_path):
    from course_lib.mace_models import MaceArchitecture
    from course_lib.pretrain import pretrain, read_model_card

    frames = emt_frames(8, seed=3)
    for index, atoms in enumerate(frames):
        atoms.info["split"] = "test" if index >= 6 else "train"
    corpus = ds.write_dataset(tmp_path / "corpus.extxyz", frames, {"method": "EMT (test)"})
    tiny = MaceArchitecture(r_max=4.0, hidden_irreps="8x0e", mlp_irreps="8x0e", correlation=2)
    made = pretrain(
        corpus,
        out=tmp_path / "m" / "mini.model",
        architecture=tiny,
        max_epochs=2,
        limit=4,
        progress=False,
    )
    card = read_model_card(str(made.model_path))
    assert card.rehearsal and card.result.model_path == made.model_path
    assert card.result.validation == made.validation
    assert card.history.valid_loss == made.history.valid_loss
    assert card.result.n_parameters == made.n_parameters and card.result.elements == ("Al", "Cu")
    assert "Rehearsal model" in card._repr_markdown_()
    rows = card.element_table().splitlines()
    assert [r.split()[0] for r in rows[1:]] == list(made.energy_mae_by_element_meV_per_atom)
    assert "rehearsal model" in card.table()

    made.model_path.with_suffix(".json").unlink()
    with pytest.raises(FileNotFoundError, match="course pretrain"):
        read_model_card(str(made.model_path))
