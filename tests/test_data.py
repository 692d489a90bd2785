import json

import ase.io
import numpy as np
import pytest
from ase import Atoms

from course_lib import data as ds


def write_bad(tmp_path, frames, name="bad.extxyz"):
    path = tmp_path / name
    ase.io.write(path, frames, format="extxyz")
    return path


def test_round_trip_keeps_labels_and_provenance(tmp_path, frames):
    path = ds.write_dataset(tmp_path / "cu.extxyz", frames, {"method": "EMT (test oracle)"})
    back = ds.read_dataset(path)
    assert np.allclose(ds.energies(back), ds.energies(frames))
    assert np.allclose(np.concatenate(ds.forces(back)), np.concatenate(ds.forces(frames)))
    assert np.allclose(back[0].info[ds.STRESS_KEY], frames[0].info[ds.STRESS_KEY])
    provenance = json.loads(path.with_suffix(".json").read_text())
    assert provenance["n_frames"] == len(frames)
    assert provenance["elements"] == ["Al", "Cu"]
    assert provenance["sha256"] == ds.sha256_of(path)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda a: a.info.pop(ds.ENERGY_KEY), "frame 2: missing energy label"),
        (lambda a: a.arrays.pop(ds.FORCES_KEY), "frame 2: missing force label"),
        (lambda a: a.info.__setitem__(ds.ENERGY_KEY, np.nan), "REF_energy is not finite"),
        (lambda a: a.arrays[ds.FORCES_KEY].__setitem__((0, 1), np.inf), "contains NaN or inf"),
        (lambda a: a.info.__setitem__(ds.STRESS_KEY, np.zeros(4)), "REF_stress has shape (4,)"),
        (lambda a: a.set_pbc(False), "not periodic in 3D"),
    ],
)
def test_each_bad_frame_is_named(tmp_path, frames, spoil, message):
    spoil(frames[2])
    path = write_bad(tmp_path, frames)
    with pytest.raises(ds.DatasetError) as err:
        ds.read_dataset(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_force_shape_mismatch_is_reported(frames):
    frames[1].arrays[ds.FORCES_KEY] = frames[1].arrays[ds.FORCES_KEY][:, :2].copy()
    with pytest.raises(ds.DatasetError, match=r"frame 1: REF_forces has shape \(8, 2\)"):
        ds.validate_frames(frames)


def test_elements_outside_a_model_are_named(tmp_path, frames):
    path = ds.write_dataset(tmp_path / "cu.extxyz", frames, {})
    with pytest.raises(ds.DatasetError, match=r"elements \['Al'\] are not covered"):
        ds.read_dataset(path, allowed_elements=["Cu"])


def test_unreadable_and_empty_files(tmp_path):
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("3\nnot a header\nH 0 0\n")
    with pytest.raises(ds.DatasetError, match="garbage.extxyz"):
        ds.read_dataset(garbage)
    with pytest.raises(ds.DatasetError, match="contains no frames"):
        ds.validate_frames([])


def test_unknown_dataset_name_lists_the_bundled_ones():
    with pytest.raises(FileNotFoundError, match="bundled datasets"):
        ds.dataset_path("no-such-dataset")


def test_a_corpus_joined_by_commas_reads_as_its_parts_in_order_with_their_splits(tmp_path, frames):
    for index, atoms in enumerate(frames):
        atoms.info["split"] = "test" if index % 3 == 0 else "train"
    first = ds.write_dataset(tmp_path / "a.extxyz", frames[:4], {})
    second = ds.write_dataset(tmp_path / "b.extxyz", frames[4:], {})
    joined = f"{first}, {second}"
    assert ds.dataset_names(joined) == [str(first), str(second)]
    union = ds.read_dataset(joined)
    assert np.allclose(ds.energies(union), ds.energies(frames))
    _, test = ds.train_test_split(union)
    assert len(test) == sum(index % 3 == 0 for index in range(len(frames)))
    assert ds.dataset_sha256(joined) == f"{ds.sha256_of(first)}+{ds.sha256_of(second)}"
    with pytest.raises(ds.DatasetError, match="names several datasets"):
        ds.dataset_path(joined)
    with pytest.raises(ds.DatasetError, match="missing between the commas"):
        ds.read_dataset(f"{first},,{second}")
    comma = ds.write_dataset(tmp_path / "a,b.extxyz", frames[:2], {})  # one file, not two
    assert ds.dataset_names(str(comma)) == [str(comma)] and len(ds.read_dataset(str(comma))) == 2
    for atoms in frames[4:]:
        del atoms.info["split"]
    no_split = ds.write_dataset(tmp_path / "c.extxyz", frames[4:], {})
    with pytest.raises(ds.DatasetError, match="some parts carry a fixed split"):
        ds.read_dataset(f"{first},{no_split}")
    frames[5].arrays.pop(ds.FORCES_KEY)  # a bad frame is named by its own file
    bad = write_bad(tmp_path, frames[4:], name="bad.extxyz")
    with pytest.raises(ds.DatasetError, match=r"bad.extxyz, frame 1: missing force label"):
        ds.read_dataset(f"{first},{bad}")


def test_split_is_seeded_disjoint_and_stratified(frames):
    for i, atoms in enumerate(frames):
        atoms.info["temperature_K"] = 300 if i < 3 else 1200
    train, test = ds.train_test_split(
        frames, test_fraction=0.34, seed=3, stratify_key="temperature_K"
    )
    again, _ = ds.train_test_split(frames, test_fraction=0.34, seed=3, stratify_key="temperature_K")
    assert [id(a) for a in train] == [id(a) for a in again]
    assert len(train) + len(test) == len(frames)
    assert {a.info["temperature_K"] for a in test} == {300, 1200}


def test_fixed_split_in_the_file_wins(frames):
    for i, atoms in enumerate(frames):
        atoms.info["split"] = "test" if i == 0 else "train"
    train, test = ds.train_test_split(frames, seed=99)
    assert test == [frames[0]] and len(train) == len(frames) - 1


def test_subset_is_nested_and_checked(frames):
    assert ds.subset(frames, 2, seed=1) == ds.subset(frames, 4, seed=1)[:2]
    with pytest.raises(ds.DatasetError, match="pool has only 6"):
        ds.subset(frames, 7)


def test_labels_count_energy_plus_three_force_components_per_atom(frames):
    assert ds.n_labels(frames, with_forces=False) == 6
    assert ds.n_labels(frames) == 6 + 3 * sum(len(a) for a in frames)


def test_group_by_keeps_order_within_groups_and_sorts_the_values(frames):
    for atoms, temperature in zip(frames, (1200.0, 300.0, 1200.0, 300.0, 300.0, 1200.0)):
        atoms.info["temperature_K"] = temperature
    groups = ds.group_by(frames, "temperature_K")
    assert list(groups) == [300.0, 1200.0]  # by value, not by text ("1200" < "300")
    assert groups[300.0] == [frames[1], frames[3], frames[4]]
    assert ds.group_indices(frames, "temperature_K")[1200.0] == [0, 2, 5]
    del frames[0].info["temperature_K"]  # a frame without the key: its own group, no error
    mixed = ds.group_indices(frames, "temperature_K")
    assert mixed == {1200.0: [2, 5], 300.0: [1, 3, 4], None: [0]}  # ordered by text then


def test_subset_by_takes_up_to_n_of_each_group(frames):
    for atoms, temperature in zip(frames, (1200.0, 300.0, 1200.0, 300.0, 300.0, 1200.0)):
        atoms.info["temperature_K"] = temperature
    two_each = ds.subset_by(frames, "temperature_K", 2, seed=1)
    assert [a.info["temperature_K"] for a in two_each] == [300.0, 300.0, 1200.0, 1200.0]
    assert two_each[:2] == ds.subset(ds.group_by(frames, "temperature_K")[300.0], 2, seed=1)
    assert len(ds.subset_by(frames, "temperature_K", 10)) == 6  # small groups taken whole
    assert ds.subset_by(frames, "temperature_K", None) == frames


def test_force_scale_is_the_mae_of_predicting_zero_force(frames):
    from course_lib.zero_shot import Predictions, error_metrics

    zero = Predictions(
        model="zero",
        energies=ds.energies(frames),
        forces=[np.zeros_like(f) for f in ds.forces(frames)],
    )
    assert ds.force_scale_meV_per_A(frames) == pytest.approx(
        error_metrics(frames, zero).force_mae_meV_per_A
    )


def test_filter_elements_keeps_only_that_chemistry(frames):
    assert all(set(a.get_chemical_symbols()) == {"Cu"} for a in ds.filter_elements(frames, ["Cu"]))
    assert ds.filter_elements([Atoms("H2O")], ["Cu"]) == []


def test_atomic_output_replaces_only_on_success_with_normal_permissions(tmp_path):
    import os
    import stat

    from course_lib.data import atomic_output

    path = tmp_path / "result.txt"
    path.write_text("previous")
    with pytest.raises(RuntimeError), atomic_output(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "previous"
    with atomic_output(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
