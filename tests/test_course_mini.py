"""The shipped pre-trained course models (course-mini and its off-equilibrium twin): the files
the registry pins, and the models their cards describe.

The stored predictions catch an accidental retrain or a changed file; after a deliberate
retrain (``course pretrain --out data/models/NAME.model``) update the registry pin and
``REFERENCE_ENERGIES_eV`` below from the new file, on purpose.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

from course_lib import data as ds
from course_lib.models import REGISTRY, load_mace_model, model_file
from course_lib.zero_shot import error_metrics, predict

#: Every bundled model pre-trained from scratch on the course's corpora (not a fine-tune).
PRETRAINED = [
    name
    for name, spec in REGISTRY.items()
    if spec.bundled is not None and spec.pretraining_corpus and spec.fine_tuned is None
]
#: The card states this bound; the shipped model must stay below it on the corpus's held-out split.
HELD_OUT_FORCE_MAE_BOUND_meV_per_A = 150.0

# Energies (eV) of three fixed structures, float64, from each shipped file.
REFERENCE_ENERGIES_eV = {
    "course-mini": {
        "MgO-rocksalt": -12.1941511691,
        "Li2O-antifluorite": -53.3724499741,
        "Si-diamond": -10.7872210427,
    },
    "course-mini-omat": {
        "MgO-rocksalt": -12.1142779680,
        "Li2O-antifluorite": -48.9445496413,
        "Si-diamond": -10.9106891201,
    },
}


def card_of(name: str) -> dict:
    return json.loads(REGISTRY[name].bundled.with_suffix(".json").read_text())


def test_every_registered_course_model_and_twin_is_checked_here():
    from course_lib.off_equilibrium import TWINS

    registered = {name for pair in TWINS.items() for name in pair if name in REGISTRY}
    assert "course-mini" in registered and registered <= set(PRETRAINED)


def fixed_structures() -> dict:
    li2o = bulk("Li2O", "fluorite", a=4.65, cubic=True)
    li2o.rattle(0.05, seed=1)  # off equilibrium, so forces are not zero by symmetry
    return {
        "MgO-rocksalt": bulk("MgO", "rocksalt", a=4.25),
        "Li2O-antifluorite": li2o,
        "Si-diamond": bulk("Si", "diamond", a=5.47),
    }


@pytest.mark.parametrize("name", PRETRAINED)
def test_shipped_file_matches_the_pinned_sha256_and_is_small(name):
    spec = REGISTRY[name]
    path = model_file(name)
    assert spec.sha256 is not None, f"pin {name}'s sha256 in the registry"
    assert ds.sha256_of(path) == spec.sha256
    assert path.stat().st_size < 5e6
    assert card_of(name)["sha256"] == spec.sha256


@pytest.mark.parametrize("name", PRETRAINED)
def test_predictions_on_three_fixed_structures_match_the_stored_values(name):
    assert name in REFERENCE_ENERGIES_eV, f"store {name}'s energies of fixed_structures() above"
    model = load_mace_model(name, device="cpu", dtype="float64")
    structures = fixed_structures()
    energies = predict(model, list(structures.values()), compute_stress=False).energies
    expected = REFERENCE_ENERGIES_eV[name]
    for (structure, reference), energy in zip(expected.items(), energies, strict=True):
        assert energy == pytest.approx(reference, abs=1e-6), structure


@pytest.mark.parametrize("name", PRETRAINED)
def test_mace_calculator_loads_the_shipped_file_and_agrees_with_the_course_loader(name):
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(model_file(name)), device="cpu", default_dtype="float64")
    atoms = fixed_structures()["Li2O-antifluorite"]
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    reference = REFERENCE_ENERGIES_eV[name]["Li2O-antifluorite"]
    assert energy == pytest.approx(reference, abs=1e-6)
    assert np.abs(forces.sum(axis=0)).max() < 1e-8  # no net force on a periodic cell


@pytest.mark.parametrize("name", PRETRAINED)
def test_held_out_force_error_is_below_the_stated_bound_and_matches_the_card(name):
    """Both of the card's numbers: held-out frames of seen families, and unseen families."""
    from course_lib.pretrain import prototype_of

    spec, card = REGISTRY[name], card_of(name)
    families = set(card["held_out_prototypes"])
    assert families, "the card reports errors on whole families kept out of training"
    corpus = ds.read_dataset(spec.pretraining_corpus)
    held_out = ds.train_test_split(corpus)[1]
    seen = [a for a in held_out if prototype_of(a) not in families]
    unseen = [a for a in corpus if prototype_of(a) in families]
    model = load_mace_model(name, device="cpu", dtype="float64")
    for frames, entry in ((seen, "validation"), (unseen, "prototype_validation")):
        metrics = error_metrics(frames, predict(model, frames, compute_stress=False))
        assert metrics.n_frames == card[entry]["n_frames"]
        assert metrics.force_mae_meV_per_A == pytest.approx(
            card[entry]["force_mae_meV_per_A"], rel=1e-6
        )
    assert card["validation"]["force_mae_meV_per_A"] < HELD_OUT_FORCE_MAE_BOUND_meV_per_A
    assert card["corpus_sha256"] == ds.dataset_sha256(spec.pretraining_corpus)
