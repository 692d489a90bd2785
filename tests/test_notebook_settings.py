"""The settings banner every notebook prints, and its guard for steps that train MACE."""

from __future__ import annotations

import pytest

from course_lib.config import DATASET_ROLES, config_path, load_config
from course_lib.notebook import MaceRequiredError, notebook_settings


def test_settings_name_the_model_mode_and_datasets(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "full")
    settings = notebook_settings(model="chgnet-0.3.0", seed=3)
    assert not settings.fast and settings.seed == 3
    assert settings.dataset("target") == "li2o-md"
    assert "mode: full" in str(settings) and "chgnet-0.3.0" in str(settings)


def test_the_training_corpus_is_the_models_own_when_bundled_else_the_stand_in(monkeypatch):
    from course_lib import models

    assert notebook_settings(model="course-mini").training_corpus == "mini-mptrj"
    assert notebook_settings(model="chgnet-0.3.0").training_corpus == "mini-mptrj"  # stand-in
    twin = models.ModelSpec(
        name="twin", kind="mace", description="", licence="", pretraining_corpus="a,b"
    )
    monkeypatch.setitem(models.REGISTRY, "twin", twin)
    assert notebook_settings(model="twin").training_corpus == "a,b"


def test_require_mace_stops_a_non_mace_model_with_what_to_change(tiny_mace_file):
    with pytest.raises(MaceRequiredError, match="'chgnet-0.3.0', which is not one.*course.toml"):
        notebook_settings(model="chgnet-0.3.0").require_mace("Fine-tuning and committees")
    notebook_settings(model="course-mini").require_mace("Fine-tuning")  # registered MACE
    notebook_settings(model=str(tiny_mace_file)).require_mace("Fine-tuning")  # a MACE file


def test_course_toml_names_every_dataset_role_and_unknown_roles_are_refused(tmp_path):
    import tomllib

    shipped = tomllib.loads(config_path().read_text())["datasets"]
    assert set(shipped) == set(DATASET_ROLES)  # e.g. in_distribution_phases, read by notebook 08
    assert load_config().datasets == shipped
    partial = tmp_path / "course.toml"
    partial.write_text('[datasets]\ntarget = "mgo-rattled"\n')
    datasets = load_config(partial).datasets
    assert datasets["target"] == "mgo-rattled"
    assert datasets["in_distribution_phases"] == DATASET_ROLES["in_distribution_phases"]
    partial.write_text('[datasets]\nin_distribution_phase = "mgo-phases"\n')  # misspelt
    with pytest.raises(
        ValueError, match="unknown role.*in_distribution_phase'.*in_distribution_phases"
    ):
        load_config(partial)


def test_the_trajectory_player_holds_every_frame_where_the_md_put_the_atoms():
    from ase.build import bulk

    from course_lib.notebook import show_trajectory

    frames = [bulk("Cu", cubic=True) for _ in range(3)]
    for step, atoms in enumerate(frames):
        atoms.positions[0, 0] += 0.5 * step  # a planted hop along x, Å
    view = show_trajectory(frames, supercell=(2, 1, 1))
    assert view.max_frame == 2
    trajectory = view._trajlist[0]
    assert trajectory.get_coordinates(2)[0, 0] == pytest.approx(1.0)
    assert trajectory.get_coordinates(2).shape == (8, 3)  # 4 atoms, repeated twice
    with pytest.raises(ValueError, match="no frames"):
        show_trajectory([])
