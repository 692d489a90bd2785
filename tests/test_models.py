import pickle
import time

import pytest

from course_lib import models


class Canary:
    """Unpickling this object creates a file: proof that a pickle was loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def registered(monkeypatch, spec):
    monkeypatch.setitem(models.REGISTRY, spec.name, spec)
    return spec


def test_mismatched_file_is_refused_before_unpickling(tmp_path, monkeypatch):
    canary = tmp_path / "canary-was-unpickled"
    planted = tmp_path / "planted.model"
    planted.write_bytes(pickle.dumps(Canary(str(canary))))
    registered(
        monkeypatch,
        models.ModelSpec(
            name="planted",
            kind="mace",
            description="",
            licence="",
            bundled=planted,
            sha256="0" * 64,
        ),
    )
    with pytest.raises(models.ModelIntegrityError, match="was not loaded"):
        models.load_mace_model("planted", device="cpu")
    assert not canary.exists()


def test_first_use_records_the_hash_and_a_later_swap_is_caught(tmp_path, tiny_mace_file):
    model = models.load_mace_model(tiny_mace_file, device="cpu")
    assert model.r_max == 4.0
    recorded = models._recorded_hashes()
    assert recorded[str(tiny_mace_file.resolve())] == models.sha256_of(tiny_mace_file)
    tiny_mace_file.write_bytes(tiny_mace_file.read_bytes() + b"tampered")
    with pytest.raises(models.ModelIntegrityError):
        models.load_mace_model(tiny_mace_file, device="cpu")


def test_unreachable_url_gives_the_offline_message_quickly(tmp_path, monkeypatch):
    spec = registered(
        monkeypatch,
        models.ModelSpec(
            name="unreachable",
            kind="mace",
            description="",
            licence="",
            url="http://127.0.0.1:9/unreachable.model",
        ),
    )
    start = time.perf_counter()
    with pytest.raises(models.ModelUnavailableError) as err:
        models.fetch("unreachable", timeout=3)
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert spec.env_var in message and str(models.model_cache_dir()) in message
    assert not list(models.model_cache_dir().glob("unreachable*"))  # nothing partial left


def test_env_var_points_at_a_placed_file(tiny_mace_file, monkeypatch):
    monkeypatch.setenv(models.REGISTRY["mace-mp-0-small"].env_var, str(tiny_mace_file))
    assert models.is_available("mace-mp-0-small")
    assert models.resolve_model_name("auto") == "mace-mp-0-small"
    assert models.model_file("mace-mp-0-small") == tiny_mace_file
    # the file was verified: its hash is now recorded, and a swapped file is refused
    assert models._recorded_hashes()["mace-mp-0-small"] == models.sha256_of(tiny_mace_file)
    tiny_mace_file.write_bytes(tiny_mace_file.read_bytes() + b"swapped")
    with pytest.raises(models.ModelIntegrityError, match="was not loaded"):
        models.model_file("mace-mp-0-small")


def test_cached_mace_mp_file_in_maces_own_cache_is_used(tiny_mace_file, monkeypatch):
    cache = tiny_mace_file.parent / "mace-cache"
    cache.mkdir()
    spec = models.REGISTRY["mace-mp-0-medium"]
    (cache / spec.filename).write_bytes(tiny_mace_file.read_bytes())
    monkeypatch.setenv("COURSE_MODEL_CACHE", str(cache))
    assert models.is_available("mace-mp-0-medium")


def test_auto_falls_back_to_an_offline_model_without_mace_mp():
    assert not models.is_available("mace-mp-0-small")
    expected = "course-mini" if models.is_available("course-mini") else "chgnet-0.3.0"
    assert models.resolve_model_name("auto") == expected


def test_listing_and_unknown_names():
    names = [status.name for status in models.list_models()]
    assert names == [
        "mace-mp-0-small",
        "mace-mp-0-medium",
        "chgnet-0.3.0",
        "course-mini",
        "course-mini-omat",
        "course-mini-li2o",
    ]
    with pytest.raises(ValueError, match="registered"):
        models.get_spec("mace-mp-9")
    with pytest.raises(FileNotFoundError, match="neither a registered model"):
        models.model_file("no/such/file.model")


def test_pin_in_course_config_is_enforced(tmp_path, tiny_mace_file, monkeypatch):
    config = tmp_path / "course.toml"
    config.write_text('[models.sha256]\n"mace-mp-0-small" = "' + "f" * 64 + '"\n')
    monkeypatch.setenv("COURSE_CONFIG", str(config))
    monkeypatch.setenv(models.REGISTRY["mace-mp-0-small"].env_var, str(tiny_mace_file))
    with pytest.raises(models.ModelIntegrityError):
        models.model_file("mace-mp-0-small")


def test_a_fine_tuned_model_is_found_by_its_base_and_dataset(monkeypatch):
    from dataclasses import replace

    spec = replace(
        models.REGISTRY["course-mini"],
        name="course-mini-li2o",
        fine_tuned=("course-mini", "li2o-md"),
    )
    monkeypatch.setitem(models.REGISTRY, spec.name, spec)
    assert models.fine_tuned_model("course-mini", "li2o-md") == "course-mini-li2o"
    assert (
        models.fine_tuned_model("course-mini", "data/datasets/li2o-md.extxyz") == "course-mini-li2o"
    )
    assert models.fine_tuned_model("course-mini", "mgo-rattled") is None
    assert models.fine_tuned_model("chgnet-0.3.0", "li2o-md") is None
