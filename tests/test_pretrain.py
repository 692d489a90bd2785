"""Pre-training in miniature: ``course pretrain`` on a tiny EMT corpus (a rehearsal)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import emt_frames

from course_lib import data as ds
from course_lib.mace_models import MaceArchitecture
from course_lib.pretrain import pretrain

TINY = MaceArchitecture(r_max=4.0, hidden_irreps="8x0e", mlp_irreps="8x0e", correlation=2)


@pytest.fixture
def corpus(tmp_path):
    """Twelve EMT frames, the last three a fixed held-out split, as the bundled corpus has."""
    frames = emt_frames(12, seed=3)
    for index, atoms in enumerate(frames):
        atoms.info["split"] = "test" if index >= 9 else "train"
    return ds.write_dataset(tmp_path / "tiny-corpus.extxyz", frames, {"method": "EMT (test)"})


def test_pretrain_writes_a_model_mace_loads_and_a_card_with_its_numbers(corpus, tmp_path):
    from mace.calculators import MACECalculator

    result = pretrain(
        corpus, out=tmp_path / "mini.model", architecture=TINY, max_epochs=3, progress=False
    )
    assert result.sha256 == ds.sha256_of(result.model_path)
    assert (result.n_train_frames, result.n_validation_frames) == (9, 3)
    assert result.elements == ("Al", "Cu")
    card = json.loads(result.card_path.with_suffix(".json").read_text())
    assert card["sha256"] == result.sha256
    assert card["validation"]["force_mae_meV_per_A"] == pytest.approx(
        result.validation.force_mae_meV_per_A
    )
    assert card["corpus_provenance"]["method"] == "EMT (test)"
    assert "not for production" in result.card_path.read_text().lower()

    held_out = ds.train_test_split(ds.read_dataset(corpus))[1]
    calc = MACECalculator(model_paths=str(result.model_path), device="cpu", default_dtype="float64")
    atoms = held_out[0].copy()
    atoms.calc = calc
    forces = atoms.get_forces()
    error = np.abs(forces - held_out[0].arrays[ds.FORCES_KEY]).mean() * 1e3
    assert np.isfinite(error) and error < 10 * result.validation.force_mae_meV_per_A + 1


def test_pretrain_is_deterministic_for_a_seed(corpus, tmp_path):
    runs = [
        pretrain(
            corpus, out=tmp_path / f"run{i}.model", architecture=TINY, max_epochs=2, progress=False
        )
        for i in range(2)
    ]
    assert runs[0].validation == runs[1].validation
    assert runs[0].history.valid_loss == runs[1].history.valid_loss


def test_pretrain_limit_marks_the_card_as_a_rehearsal(corpus, tmp_path):
    result = pretrain(
        corpus, out=tmp_path / "r.model", architecture=TINY, max_epochs=1, limit=5, progress=False
    )
    assert result.n_train_frames == 5
    assert "Rehearsal model" in result.card_path.read_text()


def test_held_out_families_never_train_and_get_their_own_errors(corpus, tmp_path):
    """Frames of a held-out prototype, from every corpus, are kept out of training."""
    second = emt_frames(6, seed=8)
    for index, atoms in enumerate(second):
        atoms.info["split"] = "test" if index >= 5 else "train"
        atoms.info["prototype"] = "odd" if index % 2 else "even"
    extra = ds.write_dataset(tmp_path / "second.extxyz", second, {"method": "EMT (test)"})
    result = pretrain(
        [corpus, extra],
        out=tmp_path / "two.model",
        architecture=TINY,
        max_epochs=1,
        held_out_prototypes=("odd",),
        progress=False,
    )
    assert result.corpus == "tiny-corpus+second"
    assert (result.n_train_frames, result.n_validation_frames) == (9 + 3, 3)  # "even" trains
    assert result.held_out_prototypes == ("odd",) and result.n_prototype_frames == 3
    assert result.prototype_validation.n_frames == 3
    card = result.card_path.read_text()
    assert "unseen families" in card.lower() and "odd" in card
    from course_lib.pretrain import read_model_card

    back = read_model_card(result.model_path)
    assert back.result.prototype_validation == result.prototype_validation


def test_a_step_budget_gives_corpora_of_different_sizes_the_same_number_of_updates(
    corpus, tmp_path
):
    """9 training frames, a tenth split off for early stopping: 8 fit, batch 2 -> 4 steps/epoch."""
    from dataclasses import replace

    from course_lib.pretrain import COURSE_MINI_SETTINGS, epochs_for_steps, rebuild_command

    settings = replace(COURSE_MINI_SETTINGS, batch_size=2)
    frames = emt_frames(9, seed=3)
    assert epochs_for_steps(12, frames, settings) == 3
    assert epochs_for_steps(12, frames + emt_frames(9, seed=4), settings) == 2  # 16 fit: 8/epoch
    assert epochs_for_steps(1, frames, settings) == 1
    with pytest.raises(ValueError, match="at least 1"):
        epochs_for_steps(0, frames, settings)
    result = pretrain(
        corpus, out=tmp_path / "s.model", architecture=TINY, batch_size=2, steps=8, progress=False
    )
    assert result.epochs_run == 2 and result.training["gradient_steps"] == 8
    assert "8 gradient steps (4 per epoch)" in result.card_path.read_text()
    assert rebuild_command(result).startswith("course pretrain --corpus ")


def test_keep_last_ends_with_the_final_weights_not_the_best_validation_epoch(corpus, tmp_path):
    import torch

    from course_lib import training
    from course_lib.mace_models import build_mace

    frames = ds.read_dataset(corpus)
    model = build_mace(frames, architecture=TINY, seed=0)
    history = training.train(
        model, frames[:6], frames[6:9], max_epochs=4, lr=0.05, keep="last", progress=False
    )
    assert history.kept_epoch == 4
    last = {k: v.clone() for k, v in model.state_dict().items()}
    again = build_mace(frames, architecture=TINY, seed=0)
    best = training.train(again, frames[:6], frames[6:9], max_epochs=4, lr=0.05, progress=False)
    assert best.kept_epoch == best.best_epoch
    if best.best_epoch != 4:  # the two runs are identical up to the weights they keep
        assert any(not torch.equal(last[k], v) for k, v in again.state_dict().items())
    with pytest.raises(ValueError, match="keep must be"):
        training.train(model, frames[:6], frames[6:9], keep="first", progress=False)


def test_stage_two_weights_the_energies_and_keeps_its_best_epoch(corpus):
    """mace's stage two: from stage one's best weights, train on energy weight 1000.

    The validation loss changes meaning at the switch, so the epoch kept is the best one
    *under the stage-two loss*, and the energy error there is no worse than where stage one
    handed over (stage two starts from that state and only keeps improvements).
    """
    from course_lib import training
    from course_lib.mace_models import build_mace

    frames = ds.read_dataset(corpus)
    model = build_mace(frames, architecture=TINY, seed=0)
    two = training.LossWeights(energy=training.MACE_STAGE_TWO_ENERGY_WEIGHT, forces=100.0)
    history = training.train(
        model, frames[:6], frames[6:9], max_epochs=6, lr=0.02, stage_two=two,
        stage_two_epochs=3, patience=10, progress=False,
    )  # fmt: skip
    assert history.stage_two_from == 4 and history.epoch == tuple(range(7))
    assert history.best_epoch >= 3  # the handover state or a stage-two epoch, judged anew
    stage_two_losses = history.valid_loss[history.stage_two_from :]
    loader = training.graph_loader(frames[6:9], model, batch_size=8)
    kept = training._run_epoch(model, loader, two).loss  # the weights the model ended with
    assert kept <= min(stage_two_losses) * (1 + 1e-4)
    if history.best_epoch >= history.stage_two_from:
        assert kept == pytest.approx(min(stage_two_losses), rel=1e-4)
    plain = training.train(
        build_mace(frames, architecture=TINY, seed=0), frames[:6], frames[6:9], max_epochs=6,
        lr=0.02, progress=False,
    )  # fmt: skip
    assert plain.stage_two_from is None
