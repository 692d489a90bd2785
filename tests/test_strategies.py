"""Fine-tuning strategies side by side: every axis measured, and bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from conftest import label_with, split_dataset

from course_lib import cli
from course_lib import strategies as st
from course_lib.structures import compressed_pair


@pytest.fixture
def target_and_corpus(tmp_path):
    target = split_dataset(tmp_path / "target.extxyz", 10, seed=1, n_test=3)
    corpus = split_dataset(tmp_path / "corpus.extxyz", 10, seed=2, n_test=3)
    return target, corpus


def emt_pair_frames():
    """Compressed Cu-Cu pairs in fcc Cu, labelled with EMT (a wall that certainly holds)."""
    frames = []
    for distance in (1.8, 2.0, 2.2, 2.4):
        atoms = compressed_pair(bulk("Cu", "fcc", a=3.61, cubic=True), ("Cu", "Cu"), distance)
        atoms.info.update(pair="Cu-Cu", pair_distance_A=distance)
        frames.append(label_with(EMT(), atoms))
    return frames


def test_compressed_pair_moves_only_the_closest_pair_to_the_distance():
    cell = bulk("Cu", "fcc", a=3.61, cubic=True)
    moved = compressed_pair(cell, ("Cu", "Cu"), 1.9)
    d = moved.get_all_distances(mic=True)
    assert np.min(d[np.triu_indices(len(moved), 1)]) == pytest.approx(1.9)
    changed = np.flatnonzero(np.linalg.norm(moved.positions - cell.positions, axis=1) > 1e-9)
    assert len(changed) == 2
    assert np.allclose(moved.get_center_of_mass(), cell.get_center_of_mass())  # symmetric move


def test_wall_check_sees_emt_repel_and_matches_itself():
    frames = emt_pair_frames()
    check = st.wall_check(EMT(), frames)
    (curve,) = check.curves
    assert curve.pair == "Cu-Cu" and curve.distances_A == (1.8, 2.0, 2.2, 2.4)
    assert curve.repulsive and check.holds
    assert check.mae_vs_dft_eV == pytest.approx(0.0, abs=1e-12)  # the model is the reference


def test_a_curve_that_turns_over_has_lost_its_wall():
    curve = st.PairCurve("Li-Li", (1.3, 1.5, 1.7), (-0.2, 0.1, 0.0), None)
    assert not curve.repulsive and curve.mae_vs_dft_eV is None


def test_pareto_front_keeps_only_undominated_strategies():
    def result(name, target, forgetting):
        metrics = lambda f: type("M", (), {"force_mae_meV_per_A": f})()  # noqa: E731
        return type(
            "R", (), {"name": name, "target": metrics(target), "forgetting": metrics(forgetting)}
        )

    results = [result("a", 10, 100), result("b", 20, 50), result("c", 30, 60), result("d", 5, 200)]
    assert st.pareto_front(results) == ["a", "b", "d"]


def test_every_strategy_runs_and_is_measured_on_every_axis(target_and_corpus, tiny_mace_file):
    target, corpus = target_and_corpus
    comparison = st.run_strategies(
        str(tiny_mace_file),
        str(target),
        n=5,
        corpus=str(corpus),
        wall_frames=emt_pair_frames(),
        md_temperature_K=300,
        md_steps=3,
        progress=False,
        max_epochs=2,
        batch_size=4,
    )
    names = [r.name for r in comparison.results]
    assert names == list(st.STRATEGIES)
    before = comparison.start.forgetting.force_mae_meV_per_A
    for r in comparison.results:
        assert r.forgetting_before.force_mae_meV_per_A == before  # one reference for all
        assert np.isfinite(r.target.force_mae_meV_per_A) and r.cpu_s > 0
        assert r.wall is not None and len(r.wall.curves) == 1
        assert r.md_verdict in ("stable", "unstable")
    replay = comparison.results[names.index("replay")]
    assert replay.n_replay == 5 and all(
        r.n_replay == 0 for r in comparison.results if r is not replay
    )
    # the closed form fits the readouts only: every strategy changes the model, the start stays
    start_curve = comparison.start.wall.curves[0].energies_eV
    assert any(r.wall.curves[0].energies_eV != start_curve for r in comparison.results)
    record = comparison.as_dict()
    assert st.StrategyComparison.from_dict(json.loads(json.dumps(record))).as_dict() == record
    assert {s["name"] for s in record["strategies"]} == set(st.STRATEGIES)
    assert {"before", "after", "force_mae_ratio"} <= set(record["strategies"][0]["forgetting"])
    assert "replay" in comparison.table()
    from course_lib.plots.strategies import pareto_figure, wall_figure

    assert len(pareto_figure(comparison).data) == len(names) + 2
    assert wall_figure(comparison).data


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategies", "naive,magic"], "unknown strategies ['magic']"),
        (["--n", "500"], "the pool has only 7"),
    ],
)
def test_cli_bad_input_is_one_line(capsys, target_and_corpus, tiny_mace_file, extra, message):
    target, corpus = target_and_corpus
    argv = ["strategies", "--model", str(tiny_mace_file), "--dataset", str(target)]
    argv += ["--corpus", str(corpus), "--n", "3", *extra]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "course strategies: error: " in err and message in err and "Traceback" not in err


def test_cli_refuses_a_corpus_without_held_out_frames(capsys, tmp_path, tiny_mace_file):
    target = split_dataset(tmp_path / "t.extxyz", 8, seed=0, n_test=2)
    corpus = split_dataset(tmp_path / "c.extxyz", 4, seed=0, n_test=0)
    argv = ["strategies", "--model", str(tiny_mace_file), "--dataset", str(target)]
    assert cli.main([*argv, "--corpus", str(corpus), "--n", "3"]) == 2
    assert "has no held-out frames" in capsys.readouterr().err


def test_cli_json_lists_the_strategies(capsys, target_and_corpus, tiny_mace_file, monkeypatch):
    from course_lib import shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", target_and_corpus[0].parent / "shipped")
    target, corpus = target_and_corpus
    argv = ["strategies", "--model", str(tiny_mace_file), "--dataset", str(target)]
    argv += ["--corpus", str(corpus), "--n", "4", "--strategies", "closed-form,naive"]
    argv += ["--epochs", "1", "--md-steps", "2", "--md-temperature", "300", "--json"]
    assert cli.main([*argv, "--ship"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in record["strategies"]] == ["closed-form", "naive"]
    assert record["strategies"][0]["wall"] is None  # no compressed-pair frames for this target
    assert cli.main([*argv, "--shipped"]) == 0  # the stored result, no training
    back = json.loads(capsys.readouterr().out)
    assert back["strategies"] == record["strategies"] and back["shipped"]["cpu_s"] > 0
    comparison, made_by = st.shipped_comparison(tiny_mace_file, target, 4)
    assert [r.name for r in comparison.results] == ["closed-form", "naive"]
    assert made_by["cpu_s"] > 0 and "command" in made_by


def test_benchmark_findings_are_computed_from_the_numbers():
    from course_lib.zero_shot import ErrorMetrics

    def metrics(force):
        return ErrorMetrics(1, 1, 1.0, 1.0, force, force, None, {})

    def result(name, target, after, cpu, wall_holds):
        curve = st.PairCurve("Li-Li", (1.0, 2.0), (1.0 if wall_holds else -1.0, 0.0), None)
        return st.StrategyResult(
            name,
            "",
            "",
            10,
            10 if name == "replay" else 0,
            metrics(target),
            metrics(10.0),
            metrics(after),
            st.WallCheck((curve,)),
            "stable",
            "",
            cpu,
        )

    start = result("zero-shot", 100.0, 10.0, 0.0, True)
    textbook = st.StrategyComparison(
        "m",
        "d",
        "c",
        {},
        start,
        (
            result("naive", 20.0, 40.0, 10.0, False),
            result("frozen", 60.0, 20.0, 5.0, False),
            result("replay", 25.0, 11.0, 50.0, True),
        ),
    )
    assert all(f.holds for f in st.benchmark_findings(textbook))
    # frozen keeps the corpus too, naive keeps its wall, replay is cheap: three findings fail
    other = st.StrategyComparison(
        "m",
        "d",
        "c",
        {},
        start,
        (
            result("naive", 20.0, 40.0, 10.0, True),
            result("frozen", 60.0, 12.0, 5.0, False),
            result("replay", 15.0, 11.0, 12.0, True),
        ),
    )
    verdicts = [f.holds for f in st.benchmark_findings(other)]
    assert verdicts == [True, False, False, False]
    assert "1.2x" in str(st.benchmark_findings(other)[-1])
