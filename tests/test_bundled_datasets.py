"""Integrity of the bundled DFT datasets (data/datasets/*.extxyz): what CI checks instead of
regenerating them. Datasets still being generated are checked for what they hold so far."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from course_lib.data import (
    ENERGY_KEY,
    FORCES_KEY,
    STRESS_KEY,
    read_dataset,
    read_provenance,
    sha256_of,
)
from course_lib.dft import FINGERPRINT_KEY
from course_lib.paths import DATASETS_DIR

# name: (minimum frames, per-frame info keys); every shipped dataset is complete
EXPECTED = {
    "li2o-md": (300, ("temperature_K", "split", "config_type")),
    "mgo-rattled": (150, ("split", "config_type")),
    "mini-mptrj": (1000, ("config_type", "source_id", "relax_step", "split")),
    "li-o-phases": (8, ("phase", "relax_step", "relaxed_end_point")),
    "mgo-phases": (7, ("phase", "relax_step", "relaxed_end_point")),
    "li2o-pairs": (15, ("pair", "pair_distance_A", "config_type")),
}
WITHOUT_SPLIT = ("li-o-phases", "mgo-phases", "li2o-pairs")  # reference structures, not samples
# GPAW's plane-wave forces are translation invariant up to the XC grid: |sum F| per frame
# stays far below this (eV/Å), while a mislabelled or permuted frame breaks it.
NET_FORCE_TOLERANCE = 0.05


@pytest.fixture(scope="module", params=list(EXPECTED))
def bundled(request):
    name = request.param
    path = DATASETS_DIR / f"{name}.extxyz"
    frames = read_dataset(path, require_stress=True, require_pbc=True)
    return name, path, frames, read_provenance(path)


def test_provenance_is_complete_and_matches_the_file(bundled):
    name, path, frames, provenance = bundled
    for key in ("description", "method", "code", "code_version", "settings", "licence"):
        assert provenance.get(key), f"{name}: provenance lacks {key!r}"
    assert provenance["method"] == "DFT (PBE, PAW, plane waves)"
    assert provenance["how_made"] == f"course make-data {name}"
    assert provenance["n_frames"] == len(frames)
    assert provenance["sha256"] == sha256_of(path)
    assert provenance["cpu_seconds"] > 0


def test_counts_and_per_frame_keys(bundled):
    name, _, frames, provenance = bundled
    minimum, keys = EXPECTED[name]
    for index, frame in enumerate(frames):
        missing = [key for key in keys if key not in frame.info]
        assert not missing, f"{name} frame {index} lacks {missing}"
    assert provenance["structures_finished"] == provenance["structures_planned"], (
        f"{name}: {provenance['structures_finished']} of {provenance['structures_planned']} "
        "structures labelled; finish with `course make-data` before shipping"
    )
    assert len(frames) >= minimum


def test_one_settings_fingerprint_per_dataset(bundled):
    name, _, frames, provenance = bundled
    fingerprints = {frame.info[FINGERPRINT_KEY] for frame in frames}
    assert fingerprints == {provenance["settings_fingerprint"]}, name


def test_labels_are_finite_and_forces_sum_to_zero(bundled):
    name, _, frames, _ = bundled
    for index, frame in enumerate(frames):
        assert np.isfinite(frame.info[ENERGY_KEY])
        assert np.all(np.isfinite(frame.info[STRESS_KEY]))
        net = np.linalg.norm(frame.arrays[FORCES_KEY].sum(axis=0))
        assert net < NET_FORCE_TOLERANCE, f"{name} frame {index}: net force {net:.3f} eV/Å"
        energy_per_atom = frame.info[ENERGY_KEY] / len(frame)
        assert -15.0 < energy_per_atom < 0.0, f"{name} frame {index}: {energy_per_atom} eV/atom"


def test_splits_are_fixed_and_non_empty(bundled):
    name, _, frames, provenance = bundled
    if name in WITHOUT_SPLIT:
        return
    splits = [frame.info["split"] for frame in frames]
    assert set(splits) <= {"train", "test"}
    if provenance["structures_finished"] == provenance["structures_planned"]:
        assert 0.05 <= splits.count("test") / len(frames) <= 0.35


def test_li2o_md_test_split_is_stratified_by_temperature(bundled):
    name, _, frames, _ = bundled
    if name != "li2o-md":
        pytest.skip("li2o-md only")
    by_temperature = defaultdict(list)
    for frame in frames:
        by_temperature[float(frame.info["temperature_K"])].append(frame.info["split"])
    assert set(by_temperature) <= {300.0, 1200.0}
    for temperature, splits in by_temperature.items():
        if len(splits) >= 20:
            assert "test" in splits and "train" in splits, temperature


def test_relaxations_end_lower_than_they_start(bundled):
    name, _, frames, _ = bundled
    if name not in ("mini-mptrj", "li-o-phases", "mgo-phases"):
        pytest.skip("relaxation datasets only")
    trajectories = defaultdict(list)
    for frame in frames:
        source = frame.info.get("source_id", frame.info.get("phase"))
        trajectories[source].append(frame)
    for source, trajectory in trajectories.items():
        steps = [frame.info["relax_step"] for frame in trajectory]
        assert steps == list(range(len(trajectory))), source
        if len(trajectory) > 1:
            first, last = trajectory[0].info[ENERGY_KEY], trajectory[-1].info[ENERGY_KEY]
            assert last <= first + 1e-3, f"{source}: {first} -> {last} eV"
        # A relaxation is held out as a whole, never split across train and test.
        assert len({frame.info.get("split") for frame in trajectory}) == 1, source


def test_dft_walls_rise_as_each_pair_is_pushed_together(bundled):
    """The li2o-pairs reference: every compressed pair's DFT energy falls with distance."""
    name, _, frames, _ = bundled
    if name != "li2o-pairs":
        pytest.skip("li2o-pairs only")
    for pair in ("Li-Li", "Li-O", "O-O"):
        curve = sorted(
            (f.info["pair_distance_A"], f.info[ENERGY_KEY])
            for f in frames
            if f.info["pair"] == pair
        )
        assert len(curve) == 5 and all(e1 > e2 for (_, e1), (_, e2) in zip(curve, curve[1:])), pair
