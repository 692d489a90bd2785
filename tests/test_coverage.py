"""The coverage diagnostic: distances, angles, merging and flagging, checked on crystals."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from course_lib.coverage import (
    CoverageError,
    CoverageHistograms,
    HistogramSettings,
    MissingElementsWarning,
    compare_coverage,
    compute_histograms,
    coverage_change,
    merge_histograms,
)


def rattled(atoms: Atoms, seed: int, stdev: float = 0.05) -> Atoms:
    atoms = atoms.copy()
    atoms.rattle(stdev=stdev, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def crystals() -> list[Atoms]:
    """Rattled crystals with small and skewed cells (cutoff > cell size)."""
    return [
        rattled(bulk("Si", "diamond", a=5.43), seed=1),
        rattled(bulk("NaCl", "rocksalt", a=5.64, cubic=True), seed=2),
        rattled(bulk("Li2O", "fluorite", a=4.62), seed=3),
        rattled(bulk("Cu", "fcc", a=3.61) * (2, 1, 1), seed=4),
        rattled(bulk("Mg", "hcp", a=3.21, c=5.21), seed=5),
    ]


def brute_force_distances(atoms: Atoms, cutoff: float) -> dict[tuple[int, int], np.ndarray]:
    """All ordered-pair distances below ``cutoff`` Å by explicit loops over periodic images."""
    cell = atoms.cell.array
    reach = np.ceil(cutoff * np.linalg.norm(atoms.cell.reciprocal(), axis=1)).astype(int) + 1
    shifts = np.array(
        [
            (a, b, c)
            for a in range(-reach[0], reach[0] + 1)
            for b in range(-reach[1], reach[1] + 1)
            for c in range(-reach[2], reach[2] + 1)
        ]
    )
    out: dict[tuple[int, int], list[float]] = {}
    for i, ri in enumerate(atoms.positions):
        for j, rj in enumerate(atoms.positions):
            d = np.linalg.norm(rj - ri + shifts @ cell, axis=1)
            d = d[(d < cutoff) & (d > 1e-9)]
            key = tuple(sorted((atoms.numbers[i], atoms.numbers[j])))
            out.setdefault(key, []).extend(d.tolist())
    return {key: np.array(value) for key, value in out.items()}


def test_distances_match_brute_force_over_periodic_images(crystals):
    settings = HistogramSettings(cutoff=6.0, bin_width=0.05)
    for atoms in crystals:
        hist = compute_histograms([atoms], settings=settings)
        expected = brute_force_distances(atoms, settings.cutoff)
        assert len(hist.pair_keys) == len(expected), atoms.get_chemical_formula()
        for (za, zb), distances in expected.items():
            label = f"{Atoms(numbers=[za]).get_chemical_symbols()[0]}-{Atoms(numbers=[zb]).get_chemical_symbols()[0]}"
            reference, _ = np.histogram(distances, bins=settings.distance_edges)
            np.testing.assert_array_equal(hist.counts(label), reference, err_msg=label)


def test_distances_match_ase_neighbor_list(crystals):
    for atoms in crystals:
        hist = compute_histograms([atoms], settings=HistogramSettings(cutoff=5.0))
        assert hist.pair_counts.sum() == len(neighbor_list("i", atoms, 5.0))


def test_tetrahedral_angle_in_diamond_silicon():
    hist = compute_histograms([bulk("Si", "diamond", a=5.43) * (2, 2, 2)])
    counts, edges = hist.counts("Si-Si-Si"), hist.edges("Si-Si-Si")
    occupied = np.flatnonzero(counts)
    assert len(occupied) == 1  # every angle is 109.47°
    assert edges[occupied[0]] <= 109.47 < edges[occupied[0] + 1]
    assert counts.sum() == 16 * 6  # 16 atoms, C(4, 2) bond pairs each


def test_right_and_straight_angles_in_rocksalt():
    hist = compute_histograms([bulk("NaCl", "rocksalt", a=5.64, cubic=True)])
    for channel in ("Cl-Na-Cl", "Na-Cl-Na"):
        counts, edges = hist.counts(channel), hist.edges(channel)
        right = np.searchsorted(edges, 90.0, side="right") - 1
        assert counts[right] == 4 * 12  # 4 centres, 12 right angles each
        assert counts[-1] == 4 * 3  # and 3 straight (180°) ones, in the last bin
        assert counts.sum() == 4 * 15
    assert hist.counts("Na-Na-Na").sum() == 0  # Na-Na is 3.99 Å, beyond the bond cutoff


def test_densities_are_normalised(crystals):
    hist = compute_histograms(crystals)
    for label in hist.channels:
        assert np.sum(hist.density(label) * np.diff(hist.edges(label))) == pytest.approx(1.0)


def test_merging_two_halves_equals_processing_the_whole(crystals):
    frames = [rattled(atoms, seed=s) for s in range(3) for atoms in crystals]
    whole = compute_histograms(frames, chunk_size=4)
    halves = merge_histograms(
        [compute_histograms(frames[:7], chunk_size=3), compute_histograms(frames[7:])]
    )
    assert halves.n_frames == whole.n_frames == len(frames)
    for name in ("pair_keys", "pair_counts", "triplet_keys", "triplet_counts", "element_counts"):
        np.testing.assert_array_equal(getattr(halves, name), getattr(whole, name), err_msg=name)


def test_truncating_and_coarsening_equal_recomputing(crystals):
    fine = compute_histograms(crystals, settings=HistogramSettings(cutoff=6.0, bin_width=0.05))
    short = compute_histograms(crystals, settings=HistogramSettings(cutoff=4.0, bin_width=0.05))
    truncated = fine.truncated(4.0)
    assert truncated.settings == short.settings
    np.testing.assert_array_equal(truncated.pair_keys, short.pair_keys)
    np.testing.assert_array_equal(truncated.pair_counts, short.pair_counts)
    coarse = fine.coarsened(distance_factor=2, angle_factor=3)
    assert coarse.settings.bin_width == pytest.approx(0.1)
    assert coarse.settings.angle_bin_width == pytest.approx(6.0)
    np.testing.assert_array_equal(coarse.pair_counts.sum(axis=1), fine.pair_counts.sum(axis=1))


def test_save_and_load_round_trip(tmp_path, crystals):
    hist = compute_histograms(crystals, source="crystals", seed=7)
    path = hist.save(tmp_path / "ref.npz")
    loaded = CoverageHistograms.load(path)
    assert loaded.settings == hist.settings
    assert loaded.n_frames == len(crystals)
    assert loaded.metadata["source"] == "crystals" and loaded.metadata["seed"] == 7
    assert "date" in loaded.metadata
    np.testing.assert_array_equal(loaded.pair_counts, hist.pair_counts)
    np.testing.assert_array_equal(loaded.triplet_counts, hist.triplet_counts)


def lithium_reference(n_frames: int = 40) -> CoverageHistograms:
    """A reference of thermally rattled bcc Li: nearest Li-Li near 2.99 Å, nothing below ~2.5 Å."""
    crystal = bulk("Li", "bcc", a=3.45, cubic=True) * (2, 2, 2)
    frames = [rattled(crystal, seed=s, stdev=0.08) for s in range(n_frames)]
    return compute_histograms(frames, source="rattled bcc Li")


def test_planted_short_li_li_distance_is_flagged():
    reference = lithium_reference()
    target = bulk("Li", "bcc", a=3.45, cubic=True) * (2, 2, 2)
    target.positions[1] = target.positions[0] + [1.0, 1.0, 1.0]  # Li-Li 1.73 Å
    report = compare_coverage(compute_histograms([target], source="planted"), reference)
    li_li = report.ranges("Li-Li")
    assert any(low <= 1.73 < high for low, high in li_li), report
    assert report.score < 1.0
    assert report.missing_elements == ()
    assert "Li-Li" in str(report)


def test_adding_the_planted_close_pair_to_the_reference_covers_it():
    """A reference that has seen the short Li-Li distance covers the target better."""
    crystal = bulk("Li", "bcc", a=3.45, cubic=True) * (2, 2, 2)
    target = crystal.copy()
    target.positions[1] = target.positions[0] + [1.0, 1.0, 1.0]  # Li-Li 1.73 Å
    target_histograms = compute_histograms([target], source="planted")
    plain = lithium_reference()
    close = [rattled(target, seed=s, stdev=0.03) for s in range(40)]
    wider = compute_histograms(
        [rattled(crystal, seed=s, stdev=0.08) for s in range(40)] + close, source="with close pairs"
    )
    before, after = (
        compare_coverage(target_histograms, plain),
        compare_coverage(target_histograms, wider),
    )
    assert after.score > before.score + 0.01
    sentence = coverage_change(before, after)
    assert "with close pairs covers the target better" in sentence
    assert "no clear change" in coverage_change(before, before)
    other = compare_coverage(compute_histograms([crystal], source="bulk"), plain)
    with pytest.raises(CoverageError, match="different targets"):
        coverage_change(before, other)


def test_bulk_crystal_of_the_reference_is_not_flagged():
    reference = lithium_reference()
    target = compute_histograms([bulk("Li", "bcc", a=3.45, cubic=True) * (2, 2, 2)])
    report = compare_coverage(target, reference)
    assert report.flagged == ()
    assert report.score == pytest.approx(1.0)


def test_missing_elements_are_reported_first_and_loudly():
    reference = lithium_reference(n_frames=2)
    target = compute_histograms([bulk("NaCl", "rocksalt", a=5.64)], source="salt")
    with pytest.warns(MissingElementsWarning, match="Na, Cl"):
        report = compare_coverage(target, reference)
    assert report.missing_elements == ("Na", "Cl")
    assert set(report.missing_channels) == {"Na-Na", "Na-Cl", "Cl-Cl", "Cl-Na-Cl", "Na-Cl-Na"}
    assert str(report).startswith("!! ELEMENTS ABSENT FROM THE REFERENCE: Na, Cl")
    assert report.score == 0.0


def test_thresholds_are_stated_in_the_result():
    reference = lithium_reference(n_frames=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = compare_coverage(
            reference, reference, min_target_share=0.01, max_reference_fraction=0.0
        )
    payload = json.loads(json.dumps(report.as_dict()))
    assert payload["thresholds"] == {"min_target_share": 0.01, "max_reference_fraction": 0.0}
    assert payload["warnings"] == [] and payload["score"] == 1.0


def test_non_periodic_input_gives_a_clear_error():
    molecule = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    with pytest.raises(CoverageError, match="not periodic in 3D.*atoms.center"):
        compute_histograms([molecule])


def test_empty_input_gives_a_clear_error():
    with pytest.raises(CoverageError, match="no frames"):
        compute_histograms([], source="nothing")
    with pytest.raises(CoverageError, match="frame 1 has no atoms"):
        compute_histograms([bulk("Si"), Atoms(cell=np.eye(3) * 3, pbc=True)])


def test_different_binning_is_refused():
    a = compute_histograms([bulk("Si")])
    b = compute_histograms([bulk("Si")], settings=HistogramSettings(bin_width=0.1))
    with pytest.raises(CoverageError, match="binned differently"):
        compare_coverage(a, b)
    with pytest.raises(CoverageError, match="whole number of bins"):
        HistogramSettings(cutoff=6.0, bin_width=0.07)


# -- the command line and the data-sources workflow ------------------------------


def labelled(frames: list[Atoms]) -> list[Atoms]:
    """Frames with zero DFT labels, as the dataset writer requires."""
    for atoms in frames:
        atoms.info["REF_energy"] = 0.0
        atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
    return frames


def test_command_line_prints_warnings_and_score(tmp_path, capsys):
    from ase.io import write

    from course_lib.cli import main
    from course_lib.data import write_dataset

    crystal = bulk("Li", "bcc", a=3.45, cubic=True) * (2, 2, 2)
    reference = write_dataset(
        tmp_path / "li.extxyz",
        labelled([rattled(crystal, seed=s, stdev=0.08) for s in range(20)]),
        {"method": "none", "licence": "none", "how_made": "test"},
    )
    planted = crystal.copy()
    planted.positions[1] = planted.positions[0] + [1.0, 1.0, 1.0]  # Li-Li 1.73 Å
    write(tmp_path / "planted.extxyz", [planted])

    assert (
        main(
            [
                "coverage",
                "--target",
                str(tmp_path / "planted.extxyz"),
                "--reference",
                str(reference),
                "--json",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["thresholds"]["min_target_share"] == 1e-3
    assert payload["warnings"][0]["channel"] == "Li-Li"  # distances first
    assert any(
        w["channel"] == "Li-Li" and w["low"] <= 1.73 < w["high"] for w in payload["warnings"]
    )

    npz = tmp_path / "li.npz"
    assert (
        main(["coverage-reference", "--source", str(reference), "--out", str(npz), "--json"]) == 0
    )
    built = json.loads(capsys.readouterr().out)
    assert built["n_frames"] == 20 and npz.exists()
    assert (
        main(
            [
                "coverage",
                "--target",
                str(tmp_path / "planted.extxyz"),
                "--reference",
                str(npz),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["score"] == payload["score"]


def test_fine_tuning_set_filters_the_corpus_to_a_chemistry(tmp_path):
    from course_lib.data import read_dataset, write_dataset
    from course_lib.datasources import fine_tuning_set

    crystals = [
        bulk("Li2O", "fluorite", a=4.62),
        bulk("Li", "bcc", a=3.45),
        bulk("MgO", "rocksalt", a=4.21),
        bulk("LiCl", "rocksalt", a=5.13),
    ]
    corpus = write_dataset(
        tmp_path / "corpus.extxyz",
        labelled([rattled(c, seed=s) for s in range(3) for c in crystals]),
        {"method": "test DFT", "licence": "CC0", "how_made": "test"},
    )
    result = fine_tuning_set(("O", "Li"), corpus=corpus, n_max=4, out=tmp_path / "li-o.extxyz")
    assert (result.n_corpus, result.n_touching, result.n_only) == (12, 12, 6)
    assert len(result.frames) == 4 and result.elements == ("Li", "O")
    written = read_dataset(result.path)
    assert all(set(a.get_chemical_symbols()) <= {"Li", "O"} for a in written)
    assert "filter" in str(result)


def test_catalogue_lists_the_chapter_datasets():
    from course_lib.datasources import catalogue

    table = catalogue()
    names = {row["name"] for row in table.to_rows()}
    assert {"MPtrj", "OMat24", "Alexandria", "OC20", "OC22", "SPICE", "ANI-1x", "QMugs"} <= names
    assert table["spice"].licence.startswith("CC0")
    assert "course_lib.mptrj" in table["MPtrj"].load
    with pytest.raises(KeyError, match="known: MPtrj"):
        table["QM9"]


# -- figure and widget -------------------------------------------------------------


def planted_report():
    reference = lithium_reference(n_frames=10)
    crystal = bulk("Li", "bcc", a=3.45, cubic=True) * (2, 2, 2)
    crystal.positions[1] = crystal.positions[0] + [1.0, 1.0, 1.0]  # Li-Li 1.73 Å
    target = compute_histograms([crystal], source="planted", settings=reference.settings)
    return target, reference, compare_coverage(target, reference)


def test_overlay_shades_the_flagged_ranges():
    from course_lib.plots.coverage import coverage_overlay, coverage_scores

    target, reference, report = planted_report()
    fig = coverage_overlay(target, reference, "Li-Li", report=report, markers={"2.6 Å": 2.6})
    assert len(fig.data) == 2
    shaded = [(s.x0, s.x1) for s in fig.layout.shapes if s.type == "rect"]
    assert shaded == report.ranges("Li-Li") and any(lo <= 1.73 < hi for lo, hi in shaded)
    assert fig.layout.xaxis.title.text == "distance (Å)"
    angles = coverage_overlay(target, reference, "Li-Li-Li", log_y=True)
    assert angles.layout.xaxis.title.text == "angle (°)" and angles.layout.yaxis.type == "log"
    scores = coverage_scores({"planted": report})
    assert scores.data[0].y[0] == pytest.approx(report.distance_score)


def test_explorer_rebins_and_rethresholds_exactly():
    from course_lib.widgets.coverage import _rebinned, coverage_explorer

    target, reference, report = planted_report()
    box = coverage_explorer(target, reference)
    controls, summary, _, table = box.children
    (channel, cutoff), (distance_width, angle_width), (min_target, max_reference) = (
        row.children for row in controls.children
    )
    assert channel.value == "Li-Li"  # the first flagged channel
    assert f"{report.score:.3f}" in summary.value and "1.70" in table.value
    distance_width.value = 2  # 0.1 Å bins
    assert "1.70-1.80 Å" in table.value
    min_target.value = 0.09  # only heavier warnings remain
    assert table.value.count("<tr>") < len(report.to_rows()) + 1
    t, r = _rebinned(target, reference, 4.0, 2, 3)
    assert t.settings.cutoff == pytest.approx(4.0) and t.settings.angle_bin_width == 6.0
    assert t.pair_counts.sum() == target.truncated(4.0).pair_counts.sum()


# -- the Li case study on the bundled DFT data (skipped until the datasets exist) ------


def _bundled(*names: str) -> bool:
    from course_lib.paths import DATASETS_DIR

    return all((DATASETS_DIR / f"{name}.extxyz").exists() for name in names)


@pytest.mark.skipif(not _bundled("li2o-md", "mini-mptrj"), reason="DFT datasets not generated yet")
def test_li_case_study_hot_frames_are_less_covered_than_cold_ones():
    from course_lib.coverage_reference import reference_histograms
    from course_lib.data import read_dataset

    reference = reference_histograms("mini-mptrj", n_frames=None, progress=False)
    frames = read_dataset("li2o-md")
    cold = [a for a in frames if a.info["temperature_K"] < 600]
    hot = [a for a in frames if a.info["temperature_K"] >= 600]
    assert cold and hot
    cold_hist = compute_histograms(cold, settings=reference.settings, source="300 K")
    hot_hist = compute_histograms(hot, settings=reference.settings, source="hot")
    assert hot_hist.shortest_distance("Li-Li") <= cold_hist.shortest_distance("Li-Li")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingElementsWarning)
        cold_report = compare_coverage(cold_hist, reference)
        hot_report = compare_coverage(hot_hist, reference)
    assert hot_report.distance_score <= cold_report.distance_score + 1e-12
