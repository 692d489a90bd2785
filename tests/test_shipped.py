"""Shipped reference results: written with provenance, read back exactly, strict JSON."""

from __future__ import annotations

import json

import pytest

from course_lib import shipped as sh


def test_a_shipped_record_round_trips_with_its_provenance(tmp_path, tiny_mace_file):
    key = {"model": "course-mini", "dataset": "li2o-md", "regime": "full", "forces": True}
    prov = sh.provenance(
        command="course learning-curve --regime full --ship",
        model=tiny_mace_file,
        datasets=["mgo-rattled"],
        cpu_s=12.34,
    )
    payload = {"curve": {"points": [{"n_train": 10, "force_mae_meV_per_A": float("nan")}]}}
    path = sh.ship("learning-curve", key, payload, prov, folder=tmp_path)
    assert "NaN" not in path.read_text()  # strict JSON: NaN became null
    back = sh.shipped("learning-curve", key, folder=tmp_path)
    assert back.key == key and back.payload["curve"]["points"][0]["force_mae_meV_per_A"] is None
    assert back.provenance["cpu_s"] == 12.3 and len(back.provenance["commit"]) == 40
    assert back.provenance["model_sha256"] == sh.ds.sha256_of(tiny_mace_file)
    assert set(back.provenance["datasets"]) == {"mgo-rattled"}
    assert json.loads(path.read_text())["kind"] == "learning-curve"


def test_a_missing_record_says_what_is_shipped(tmp_path):
    sh.ship("learning-curve", {"regime": "full"}, {}, {}, folder=tmp_path)
    with pytest.raises(sh.NotShippedError, match=r"shipped: learning-curve--full\.json"):
        sh.shipped("learning-curve", {"regime": "scratch"}, folder=tmp_path)
    assert [p.name for p in sh.list_shipped(folder=tmp_path)] == ["learning-curve--full.json"]


def test_a_record_made_with_another_model_file_is_refused_as_stale(tmp_path, tiny_mace_file):
    key = {"model": "tiny", "regime": "full"}
    prov = sh.provenance(command="course x --ship", model=tiny_mace_file, datasets=[], cpu_s=1.0)
    sh.ship("learning-curve", key, {}, prov, folder=tmp_path)
    assert sh.shipped("learning-curve", key, folder=tmp_path).provenance == prov
    tiny_mace_file.write_bytes(tiny_mace_file.read_bytes() + b"retrained")
    with pytest.raises(sh.StaleShippedError, match=r"other versions of model .*course x --ship"):
        sh.shipped("learning-curve", key, folder=tmp_path)
    # a stale record is also "not shipped" for callers that fall back to a live run
    assert issubclass(sh.StaleShippedError, sh.NotShippedError)
    # data files are checked the same way
    stale_data = {**prov, "model_sha256": None, "datasets": {"mgo-rattled": "0" * 64}}
    assert sh.stale_inputs(stale_data) == ["dataset mgo-rattled"]
