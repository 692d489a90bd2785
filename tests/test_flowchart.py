"""The decision flowchart: every branch from synthetic numbers, the threshold lock, the runner.

The runner runs on a tiny random MACE and EMT-labelled cells (a test
oracle, not DFT), with the training step stubbed where only the routing is
tested; the figure and widget are checked through their data, no browser.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ase import Atoms
from conftest import emt_frames

from course_lib import cli
from course_lib import data as ds
from course_lib import flowchart as fc
from course_lib.plots.flowchart import flowchart_figure
from course_lib.widgets import flowchart as fw
from course_lib.zero_shot import predict

torch.set_num_threads(1)

LOCKED = fc.Thresholds().lock()
GOOD_ZS, BAD_ZS = 60.0, 180.0  # meV/Å against the default 100


@pytest.mark.parametrize(
    ("measured", "path", "recommendation"),
    [
        (
            dict(zero_shot_force_mae_meV_per_A=GOOD_ZS, hull_passed=True),
            ("Start", "Check", "Q1", "Q2", "Use"),
            "zero-shot",
        ),
        (
            dict(
                zero_shot_force_mae_meV_per_A=GOOD_ZS,
                hull_passed=False,
                tuned_energy_mae_meV_per_atom=5.0,
                tuned_force_mae_meV_per_A=30.0,
            ),
            ("Start", "Check", "Q1", "Q2", "FT2", "Recheck", "Q3", "Use"),
            "few-shot-energy-weight",
        ),
        (
            dict(
                zero_shot_force_mae_meV_per_A=BAD_ZS,
                tuned_energy_mae_meV_per_atom=5.0,
                tuned_force_mae_meV_per_A=30.0,
            ),
            ("Start", "Check", "Q1", "FT1", "Recheck", "Q3", "Use"),
            "few-shot",
        ),
        (  # energy passes, forces do not: Q3 needs both; the full fine-tune passes Q4
            dict(
                zero_shot_force_mae_meV_per_A=BAD_ZS,
                tuned_energy_mae_meV_per_atom=5.0,
                tuned_force_mae_meV_per_A=70.0,
                full_energy_mae_meV_per_atom=8.0,
                full_force_mae_meV_per_A=40.0,
            ),
            ("Start", "Check", "Q1", "FT1", "Recheck", "Q3", "Full", "Recheck2", "Q4", "UseFull"),
            "full-fine-tune",
        ),
        (  # Li2O as measured: few-shot 4.9 meV/atom but 101 meV/Å; the full one misses Q4 too
            dict(
                zero_shot_force_mae_meV_per_A=GOOD_ZS,
                hull_passed=False,
                tuned_energy_mae_meV_per_atom=25.0,
                tuned_force_mae_meV_per_A=30.0,
                full_energy_mae_meV_per_atom=39.0,
                full_force_mae_meV_per_A=44.0,
            ),
            (
                *("Start", "Check", "Q1", "Q2", "FT2", "Recheck", "Q3"),
                *("Full", "Recheck2", "Q4", "NotReached"),
            ),
            "not-reached",
        ),
    ],
)
def test_every_branch_of_the_graph(measured, path, recommendation):
    result = fc.decide(fc.Measurements(**measured), LOCKED)
    assert result.path == path
    assert result.recommendation == recommendation
    assert result.complete and result.flags == ()
    assert fc.NODES[result.path[-1]][0] == "outcome"
    assert set(result.edges) <= {(a, b) for a, b, _ in fc.EDGES}  # a walk along the graph


def test_every_edge_is_taken_by_some_case():
    full = dict(  # few-shot misses Q3 on energy
        zero_shot_force_mae_meV_per_A=BAD_ZS,
        tuned_energy_mae_meV_per_atom=50.0,
        tuned_force_mae_meV_per_A=30.0,
    )
    cases = [
        fc.Measurements(GOOD_ZS, True),
        fc.Measurements(GOOD_ZS, False, None, 5.0, 30.0),
        fc.Measurements(BAD_ZS, None, None, 5.0, 30.0),
        fc.Measurements(**full, full_energy_mae_meV_per_atom=10.0, full_force_mae_meV_per_A=30.0),
        fc.Measurements(**full, full_energy_mae_meV_per_atom=10.0, full_force_mae_meV_per_A=80.0),
    ]
    taken = {edge for m in cases for edge in fc.decide(m, LOCKED).edges}
    assert taken == {(a, b) for a, b, _ in fc.EDGES}


def test_the_course_extends_the_chapters_graph_after_full_and_says_so():
    chapter = {"Start", "Check", "Q1", "Q2", "FT1", "FT2", "Recheck", "Q3", "Use", "Full"}
    assert set(fc.NODES) - fc.COURSE_NODES == chapter
    assert len(fc.CHAPTER_EDGES) == 11 and fc.EDGES == fc.CHAPTER_EDGES + fc.COURSE_EDGES
    # the extension starts at the chapter's last box and never feeds back into the chapter
    assert {a for a, _, _ in fc.COURSE_EDGES} <= fc.COURSE_NODES | {"Full"}
    assert {b for _, b, _ in fc.COURSE_EDGES} <= fc.COURSE_NODES
    assert fc.node_label("Full") == "Full fine-tune or train from scratch (Chapter 9)"
    assert fc.node_label("Q4") == fc.node_label("Q3")  # the same thresholds, re-asked


def test_the_path_stops_at_full_until_the_full_fine_tune_is_measured():
    measured = fc.Measurements(BAD_ZS, None, None, 5.0, 70.0)  # few-shot misses Q3
    result = fc.decide(measured, LOCKED)
    assert result.path[-2:] == ("Q3", "Full") and result.recommendation == "full-or-scratch"
    assert not result.complete and "full fine-tune" in result.next_step
    assert fc.decide(replace(measured, full_energy_mae_meV_per_atom=9.0), LOCKED).path[-1] == (
        "Full"
    )  # both numbers needed


def test_decisions_are_annotated_with_number_and_threshold():
    result = fc.decide(fc.Measurements(BAD_ZS, None, None, 12.0, 55.0), LOCKED)
    q1, q3 = result.decision("Q1"), result.decision("Q3")
    assert q1.answer == "no"
    assert q1.criteria[0].measured == BAD_ZS and q1.criteria[0].threshold == 100.0
    assert q1.text() == "Q1 no: zero-shot force MAE 180.0 ≥ 100 meV/Å"
    assert [c.passed for c in q3.criteria] == [True, False]
    assert "tuned force MAE 55.0 ≥ 50 meV/Å" in result.table()


def test_threshold_is_strict_and_editable():
    at_threshold = fc.Measurements(zero_shot_force_mae_meV_per_A=100.0, hull_passed=True)
    assert fc.decide(at_threshold, LOCKED).path[3] == "FT1"  # "< 100", so 100 fails
    catalysis = replace(fc.Thresholds(), zero_shot_force_mae_meV_per_A=150.0).lock()
    assert fc.decide(fc.Measurements(120.0, True), catalysis).recommendation == "zero-shot"


def test_missing_numbers_stop_the_path_where_they_are_needed():
    result = fc.decide(fc.Measurements(), LOCKED)
    assert result.path == ("Start", "Check", "Q1") and not result.complete
    result = fc.decide(fc.Measurements(GOOD_ZS), LOCKED)
    assert result.path[-1] == "Q2" and "hull" in result.next_step
    result = fc.decide(fc.Measurements(BAD_ZS), LOCKED)
    assert result.path[-1] == "Recheck" and result.recommendation == "few-shot"
    assert not result.complete and "held-out" in result.next_step


def test_lock_records_fingerprint_and_time_and_edits_after_it_are_flagged():
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    locked = fc.Thresholds().lock(now=when)
    assert locked.locked_at == when.isoformat()
    assert locked.locked_fingerprint == fc.Thresholds().fingerprint()
    assert len(locked.locked_fingerprint) == 64 and locked.lock_state == "locked"
    moved = replace(locked, zero_shot_force_mae_meV_per_A=200.0)  # after seeing 180 meV/Å
    assert moved.changed_after_lock and moved.lock_state == "changed after lock"
    result = fc.decide(fc.Measurements(BAD_ZS, True), moved)
    assert result.recommendation == "zero-shot"  # the edit changed the answer ...
    assert any("changed after the lock" in flag for flag in result.flags)  # ... and is flagged
    assert "FLAG" in result.table()
    # setting it back restores the fingerprint; relocking is a fresh, unflagged lock
    assert not replace(moved, zero_shot_force_mae_meV_per_A=100.0).changed_after_lock
    assert fc.decide(fc.Measurements(BAD_ZS, True), moved.lock()).flags == ()


def test_unlocked_and_late_locks_are_flagged():
    unlocked = fc.decide(fc.Measurements(GOOD_ZS, True), fc.Thresholds())
    assert unlocked.flags == ("thresholds were not locked before evaluating",)
    late = fc.Thresholds().lock(now=datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC))
    measured = fc.Measurements(GOOD_ZS, True, measured_at="2026-01-01T00:00:00+00:00")
    assert "after the data were measured" in fc.decide(measured, late).flags[0]


def test_thresholds_are_validated_and_read_from_course_toml():
    with pytest.raises(ValueError, match="zero_shot_force_mae_meV_per_A"):
        fc.Thresholds(zero_shot_force_mae_meV_per_A=-1.0)
    assert fc.Thresholds.from_config() == fc.Thresholds()  # course.toml holds the defaults
    assert "Force MAE < 100 meV/Å?" == fc.node_label("Q1")


# --------------------------------------------------------------------------- the runner


def stub_train(test_errors, calls):
    def train(model, train_frames, test_frames, *, node, seed, **settings):
        calls.append({"node": node, "n_train": len(train_frames), "n_test": len(test_frames)})
        return SimpleNamespace(test=SimpleNamespace(**test_errors), as_dict=lambda: test_errors)

    return train


def stub_full(test_errors, calls):
    def train_full(model, train_frames, test_frames, *, seed, **settings):
        calls.append({"node": "Full", "n_train": len(train_frames), "n_test": len(test_frames)})
        calls[-1].update(settings)
        return SimpleNamespace(test=SimpleNamespace(**test_errors), as_dict=lambda: test_errors)

    return train_full


def errors(energy_meV_per_atom: float, force_meV_per_A: float) -> dict:
    return {"energy_mae_meV_per_atom": energy_meV_per_atom, "force_mae_meV_per_A": force_meV_per_A}


def test_runner_runs_the_full_fine_tune_where_q3_fails_and_decides_q4(tiny_mace):
    frames = emt_frames(15)
    strict = fc.Thresholds(zero_shot_force_mae_meV_per_A=1e-6)  # every real model fails Q1
    calls = []
    run = dict(thresholds=strict, n_parity=2, train=stub_train(errors(5.0, 70.0), calls))
    report = fc.run_protocol(
        tiny_mace,
        frames,
        train_full=stub_full(errors(8.0, 40.0), calls),
        full_settings={"max_epochs": 3},
        **run,
    )
    # the full fine-tune trains on the few-shot step's frames, re-checked on the same test set
    assert calls == [
        {"node": "FT1", "n_train": 12, "n_test": 3},
        {"node": "Full", "n_train": 12, "n_test": 3, "corpus": None, "max_epochs": 3},
    ]
    assert report.flowchart.path[-5:] == ("Q3", "Full", "Recheck2", "Q4", "UseFull")
    q4 = report.flowchart.decision("Q4")
    assert [c.measured for c in q4.criteria] == [8.0, 40.0] and q4.answer == "yes"
    assert report.complete and report.steps_run == ("FT1", "Full")
    assert report.flowchart.recommendation == "full-fine-tune"
    assert "Full ran: held-out test E 8.0 meV/atom, F 40.0 meV/Å" in report.table()
    assert "protocol complete" in report.table()
    record = report.as_dict()
    assert record["complete"] and record["steps_run"] == ["FT1", "Full"]
    assert record["full"] == errors(8.0, 40.0)
    # a full fine-tune that misses the thresholds ends at the course's other outcome: complete
    worse = fc.run_protocol(tiny_mace, frames, train_full=stub_full(errors(8.0, 60.0), []), **run)
    assert worse.flowchart.path[-1] == "NotReached" and worse.complete
    assert worse.flowchart.recommendation == "not-reached"


def test_a_step_on_the_path_without_its_result_leaves_the_protocol_incomplete():
    decided = fc.decide(fc.Measurements(BAD_ZS, None, None, 5.0, 70.0, None, 8.0, 40.0), LOCKED)
    assert decided.complete  # the numbers alone are all there ...
    report = fc.ProtocolReport(
        model="m",
        dataset="d",
        n_parity=2,
        n_train=3,
        n_test=1,
        flowchart=decided,
        zero_shot=None,
        fine_tune=SimpleNamespace(test=SimpleNamespace(**errors(5.0, 70.0))),
    )
    assert report.steps_run == ("FT1",) and not report.complete  # ... but Full never ran here
    assert "protocol NOT complete" in report.table()


def test_runner_routes_a_bad_zero_shot_model_to_ft1_and_rechecks(tiny_mace):
    frames = emt_frames(15)
    calls = []
    strict = fc.Thresholds(zero_shot_force_mae_meV_per_A=1e-6)  # every real model fails Q1
    report = fc.run_protocol(
        tiny_mace,
        frames,
        thresholds=strict,
        n_parity=2,
        train=stub_train({"energy_mae_meV_per_atom": 4.0, "force_mae_meV_per_A": 20.0}, calls),
    )
    assert calls == [{"node": "FT1", "n_train": 12, "n_test": 3}]
    assert report.flowchart.path[-4:] == ("FT1", "Recheck", "Q3", "Use")
    assert report.flowchart.thresholds.lock_state == "locked"  # the runner locked them
    assert report.n_parity == 2
    measured = report.flowchart.measurements
    assert measured.zero_shot_force_mae_meV_per_A == report.zero_shot.raw.force_mae_meV_per_A
    assert json.loads(json.dumps(report.as_dict(), default=str))["path"][0] == "Start"


def phases_labelled_by(model, *, flip: float = 0.0):
    """Al-Cu 'phases' labelled by ``model`` itself; ``flip`` eV/atom raises the stable compound."""
    frames = []
    for name, symbols in (("Al", "AlAl"), ("Cu", "CuCu"), ("AlCu", "AlCu"), ("AlCu3", "AlCu3")):
        atoms = Atoms(symbols, cell=[10.0] * 3, pbc=True)
        atoms.positions = 2.4 * np.arange(len(atoms))[:, None] * [1, 0.3, 0.1]
        atoms.info["phase"] = name
        frames.append(atoms)
    predictions = predict(model, frames, compute_stress=False)
    for atoms, energy, forces in zip(frames, predictions.energies, predictions.forces):
        atoms.info[ds.ENERGY_KEY] = energy
        atoms.arrays[ds.FORCES_KEY] = forces
    return frames


def test_runner_uses_the_hull_check_for_q2(tiny_mace):
    frames = emt_frames(10)
    loose = fc.Thresholds(zero_shot_force_mae_meV_per_A=1e6).lock()
    phases = phases_labelled_by(tiny_mace)
    calls = []
    train = stub_train({"energy_mae_meV_per_atom": 4.0, "force_mae_meV_per_A": 20.0}, calls)
    same = fc.run_protocol(tiny_mace, frames, thresholds=loose, phases=phases, train=train)
    assert same.hull.passed and same.flowchart.path[-2:] == ("Q2", "Use") and not calls
    assert "but:" not in same.table()
    # a wrong elemental reference: every formation energy moves by a linear function of the
    # composition, so the stable set (and Q2) stays, but the report says the numbers are off
    shifted = [a.copy() for a in phases]
    shifted[0].info[ds.ENERGY_KEY] += 1.0 * len(shifted[0])  # Al 1 eV/atom higher in 'DFT'
    off = fc.run_protocol(tiny_mace, frames, thresholds=loose, phases=shifted, train=train)
    assert off.hull.passed and off.hull.caveats
    assert "hull check passed (same stable phases), but:" in off.table()
    # plant a flip: move AlCu 5 eV/atom across the hull in 'DFT', opposite to the model's view
    sign = 1.0 if "AlCu" in same.hull.model_stable else -1.0
    flipped = [a.copy() for a in phases]
    flipped[2].info[ds.ENERGY_KEY] += sign * 5.0 * len(flipped[2])
    report = fc.run_protocol(tiny_mace, frames, thresholds=loose, phases=flipped, train=train)
    assert not report.hull.passed
    assert calls[0]["node"] == "FT2"
    assert report.flowchart.recommendation == "few-shot-energy-weight"


def test_ft2_runs_the_energy_weighted_few_shot_fit_with_its_settings(tiny_mace):
    frames = emt_frames(10)
    # Q1 passes; Q3 cannot pass (1e-6 meV/atom), so the path goes on to Full
    loose = fc.Thresholds(zero_shot_force_mae_meV_per_A=1e6, tuned_energy_mae_meV_per_atom=1e-6)
    phases = phases_labelled_by(tiny_mace)
    flipped = [a.copy() for a in phases]
    flipped[2].info[ds.ENERGY_KEY] -= 5.0 * len(flipped[2])  # AlCu 5 eV/atom lower in 'DFT'
    calls = []
    report = fc.run_protocol(
        tiny_mace,
        frames,
        thresholds=loose,
        phases=flipped,
        train_full=stub_full(errors(0.0, 1.0), calls),
    )
    assert not report.hull.passed and report.fine_tune_node == "FT2"
    tuned = report.fine_tune  # the real default step, few-shot closed form
    assert tuned.regime == "few-shot" and tuned.tuner.settings.solver == "closed-form"
    weights = tuned.tuner.settings.energy_weight, tuned.tuner.settings.forces_weight
    assert weights == (100.0, 100.0) == tuple(fc.FINE_TUNE_SETTINGS["FT2"].values())
    q3 = report.flowchart.decision("Q3")
    assert q3.criteria[1].measured == tuned.test.force_mae_meV_per_A and q3.answer == "no"
    assert report.flowchart.path == (
        *("Start", "Check", "Q1", "Q2", "FT2", "Recheck", "Q3"),
        *("Full", "Recheck2", "Q4", "UseFull"),
    )
    assert report.complete and report.steps_run == ("FT2", "Full") and len(calls) == 1
    table = report.table()
    assert "hull check failed (Q2), because:" in table
    assert "AlCu" in report.hull.explanation[0]  # the planted phase, named
    assert "no training corpus given" in table  # a bare module has no registered corpus


def test_default_full_step_replays_the_corpus_like_the_replay_strategy(tiny_mace, tmp_path):
    from course_lib.strategies import STRATEGIES, replay_frames

    corpus = ds.write_dataset(tmp_path / "corpus.extxyz", emt_frames(12, seed=5), {})
    train, test = emt_frames(4, seed=1), emt_frames(3, seed=2)
    full = fc.default_train_full(
        tiny_mace, train, test, seed=0, corpus=str(corpus), max_epochs=1, progress=False
    )
    assert full.strategy == "replay" and STRATEGIES["replay"].settings["regime"] == "full"
    assert (full.n_target, full.n_replay, full.result.n_train) == (4, 4, 8)
    assert full.result.regime == "full" and full.result.history.epoch[-1] == 1
    assert full.test is full.result.test and full.as_dict()["corpus"] == str(corpus)
    assert all(a.info["config_weight"] == 1.0 for a in replay_frames(corpus, 4))
    naive = fc.default_train_full(tiny_mace, train, test, seed=0, max_epochs=1, progress=False)
    assert naive.strategy == "naive" and naive.n_replay == 0 and naive.corpus is None


def no_nan(token: str):
    raise AssertionError(f"non-strict JSON: {token}")


def test_course_flowchart_runs_every_step_ships_and_shows_the_shipped_report(
    capsys, monkeypatch, tmp_path, tiny_mace, tiny_mace_file
):
    from course_lib import shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    path = ds.write_dataset(tmp_path / "emt.extxyz", emt_frames(10), {"method": "EMT oracle"})
    phases = ds.write_dataset(tmp_path / "phases.extxyz", phases_labelled_by(tiny_mace), {})
    argv = [
        *("flowchart", "--model", str(tiny_mace_file), "--dataset", str(path)),
        *("--phases", str(phases), "--n-parity", "2", "--full-epochs", "1"),
        *("--zero-shot-force-mae", "1e-6", "--tuned-energy-mae", "1e-6"),  # FT1, then Full
    ]
    code = cli.main([*argv, "--ship", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out, parse_constant=no_nan)
    assert report["path"][:4] == ["Start", "Check", "Q1", "FT1"]
    assert report["path"][-4:] == ["Full", "Recheck2", "Q4", "NotReached"]
    assert report["complete"] and report["steps_run"] == ["FT1", "Full"]
    assert report["thresholds"]["lock_state"] == "locked"
    assert report["thresholds"]["zero_shot_force_mae_meV_per_A"] == 1e-6
    assert report["fine_tune"]["regime"] == "few-shot"
    assert report["full"]["strategy"] == "naive" and report["full"]["regime"] == "full"
    assert report["full"]["max_epochs"] == 1 and report["full"]["epochs_run"] == 1
    assert report["hull"]["passed"] and report["hull_after"]["model"] and report["hull_full"]
    q3 = next(d for d in report["decisions"] if d["node"] == "Q3")
    assert q3["criteria"][0]["measured"] == report["fine_tune"]["test"]["energy_mae_meV_per_atom"]
    q4 = next(d for d in report["decisions"] if d["node"] == "Q4")
    assert q4["criteria"][1]["measured"] == report["full"]["test"]["force_mae_meV_per_A"]
    # shipped with its provenance, and shown back without training
    (record_path,) = shipped.list_shipped("flowchart")
    record = json.loads(record_path.read_text(), parse_constant=no_nan)
    assert record["payload"]["path"] == report["path"] and "table" in record["payload"]
    made = record["provenance"]
    assert made["command"].startswith("course ") and made["cpu_s"] > 0
    assert set(made["datasets"]) == {str(path), str(phases)}
    assert all(len(sha) == 64 for sha in made["datasets"].values()) and made["model_sha256"]
    assert cli.main([*argv, "--shipped", "--json"]) == 0
    again = json.loads(capsys.readouterr().out, parse_constant=no_nan)
    assert again["path"] == report["path"] and again["shipped"]["command"] == made["command"]
    # and to a notebook, by model, dataset and phases (the command's budgets)
    found = fc.shipped_report(str(tiny_mace_file), str(path), str(phases), full_epochs=1)
    assert found.payload["path"] == report["path"]
    with pytest.raises(shipped.NotShippedError):
        fc.shipped_report(str(tiny_mace_file), str(path), str(phases))  # 40 epochs: not shipped
    assert cli.main([*argv, "--shipped"]) == 0
    assert "shipped reference result, made by: course " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n-train", "0"], "--n-train must be at least 1, got 0"),
        (["--full-epochs", "-2"], "--full-epochs must be at least 1, got -2"),
        (["--tuned-force-mae", "-5"], "tuned_force_mae_meV_per_A must be a positive number"),
        (["--shipped"], "no shipped flowchart for"),
        (["--phases", "no-such-phases.extxyz"], "no-such-phases"),
    ],
)
def test_course_flowchart_bad_input_is_a_one_line_error(
    capsys, monkeypatch, tmp_path, extra, message
):
    from course_lib import shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "shipped")
    code = cli.main(["flowchart", "--model", "course-mini", "--dataset", "li2o-md", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("course flowchart: error: ") and message in err[0]


# --------------------------------------------------------------------------- figure and widget


def highlighted(fig) -> set[str]:
    return {shape.name for shape in fig.layout.shapes if shape.name and "on-path" in shape.name}


def test_figure_highlights_the_path_and_annotates_numbers():
    result = fc.decide(fc.Measurements(BAD_ZS, None, None, 5.0, 30.0), LOCKED)
    fig = flowchart_figure(result)
    on_path = {name.split(":")[1] for name in highlighted(fig)}
    assert on_path == set(result.path)
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "180.0 ≥ 100 meV/Å" in texts and "5.0 &lt; 20 meV/atom" in texts
    blank = flowchart_figure()
    assert not highlighted(blank)
    assert len([s for s in blank.layout.shapes if s.name]) == len(fc.NODES)


def test_figure_draws_the_course_extension_dotted_and_highlights_a_full_path():
    result = fc.decide(fc.Measurements(BAD_ZS, None, None, 5.0, 70.0, None, 8.0, 40.0), LOCKED)
    fig = flowchart_figure(result)
    assert {name.split(":")[1] for name in highlighted(fig)} == set(result.path)
    dotted = {s.name.split(":")[1] for s in fig.layout.shapes if s.name and s.line.dash == "dot"}
    assert dotted == fc.COURSE_NODES
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "full force MAE 40.0 &lt; 50 meV/Å" in texts and "course's extension" in texts


def test_widget_callbacks_update_the_figure():
    explorer = fw.FlowchartExplorer()
    assert explorer.result.path == ("Start", "Check", "Q1")  # nothing measured yet
    explorer.controls["zero_shot_force_mae"].value = "180"
    assert explorer.result.path[-1] == "Recheck"
    explorer.controls["tuned_energy_mae"].value = "5"
    explorer.controls["tuned_force_mae"].value = "30"
    assert explorer.result.path[-1] == "Use"
    assert {n.split(":")[1] for n in highlighted(explorer.figure)} == set(explorer.result.path)
    assert explorer.thresholds.lock_state == "locked" and "locked" in explorer.lock_html.value
    explorer.controls["threshold_tuned_force_mae_meV_per_A"].value = 25.0
    assert explorer.result.path[-1] == "Full"
    assert "changed after lock" in explorer.lock_html.value
    explorer.controls["full_energy_mae"].value = "8"
    explorer.controls["full_force_mae"].value = "20"
    assert explorer.result.path[-1] == "UseFull" and explorer.result.complete
    explorer.lock_button.click()
    assert explorer.result.flags == () and "changed" not in explorer.lock_html.value


def test_widget_takes_inputs_from_a_runner_report():
    result = fc.decide(fc.Measurements(GOOD_ZS, False, 35.0, 30.0, 40.0, None, 9.0, 45.0), LOCKED)
    assert result.path[-1] == "UseFull"
    explorer = fw.FlowchartExplorer(report=SimpleNamespace(flowchart=result))
    assert explorer.result.path == result.path
    assert explorer.controls["hull"].value == "fail"
    assert fw.parse_number(" ") is None and fw.parse_number("12.5") == 12.5
    assert fw.parse_number("abc") is None


def test_only_mace_models_are_fine_tuned_by_default(tiny_mace, tiny_mace_file):
    assert fc.fine_tunable(tiny_mace) and fc.fine_tunable(str(tiny_mace_file))
    assert not fc.fine_tunable("chgnet-0.3.0")


def test_notebook_02_lock_is_read_back_and_a_later_edit_of_course_toml_is_flagged(tmp_path):
    from course_lib.config import load_config

    toml = tmp_path / "course.toml"
    toml.write_text("[thresholds]\ntuned_force_mae_meV_per_A = 50.0\n")
    locked = fc.lock_thresholds(load_config(toml), folder=tmp_path)
    read = fc.locked_thresholds(load_config(toml), folder=tmp_path)
    assert read.lock_state == "locked" and read.locked_by == "notebook 02"
    assert (read.locked_at, read.locked_fingerprint) == (locked.locked_at, locked.fingerprint())
    # an instructor loosens the threshold after notebook 02 printed the errors
    toml.write_text("[thresholds]\ntuned_force_mae_meV_per_A = 120.0\n")
    edited = fc.locked_thresholds(load_config(toml), folder=tmp_path)
    assert edited.lock_state == "changed after lock" and "by notebook 02" in edited.table()
    # no lock recorded: locked now, and it says where
    fresh = fc.locked_thresholds(load_config(toml), folder=tmp_path / "elsewhere")
    assert fresh.lock_state == "locked" and "no lock from notebook 02" in fresh.locked_by
