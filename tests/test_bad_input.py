"""Bad input reaches a user as one line ``course CMD: error: ...`` and exit code 2.

Never as a traceback, and never as a NaN in a table: each case below is what a
new user tried, run through ``course_lib.cli.main`` as the ``course`` command does.
"""

import logging

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import emt_frames

from course_lib import cli, models, runner
from course_lib import data as ds
from course_lib import finetune as ft


def one_line_error(capsys, command: str, *argv: str) -> str:
    """Run ``course COMMAND ARGV``; check exit code 2 and a single error line; return it."""
    code = cli.main([command, *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"course {command}: error: "), err
    return errors[0]


def labelled(atoms: Atoms) -> Atoms:
    """``atoms`` with zero labels: input for error paths, never for numbers."""
    atoms = atoms.copy()
    atoms.info[ds.ENERGY_KEY] = -1.0
    atoms.arrays[ds.FORCES_KEY] = np.zeros((len(atoms), 3))
    return atoms


@pytest.fixture
def emt_dataset(tmp_path, frames):
    return ds.write_dataset(tmp_path / "emt.extxyz", frames, {"method": "EMT test oracle"})


# --------------------------------------------------------------------------- 1. not a model file


@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 8], ids=["empty", "random-bytes"])
def test_a_file_that_is_not_a_model_is_named_as_such(capsys, tmp_path, emt_dataset, content):
    junk = tmp_path / "junk.model"
    junk.write_bytes(content)
    argv = ["--model", str(junk), "--dataset", str(emt_dataset)]
    for _ in range(2):  # the second use is no different: a junk file's hash is never recorded
        line = one_line_error(capsys, "evaluate", *argv)
        assert f"{junk} " in line and "is not a MACE model file" in line
        assert "pass a .model file saved by mace-torch or `course finetune`" in line
        assert str(junk.resolve()) not in models._recorded_hashes()


def test_a_real_model_placed_where_junk_was_is_trusted_on_its_own_first_use(
    capsys, tmp_path, emt_dataset, tiny_mace_file
):
    path = tmp_path / "placed.model"
    path.write_bytes(b"not yet downloaded")
    one_line_error(capsys, "evaluate", "--model", str(path), "--dataset", str(emt_dataset))
    path.write_bytes(tiny_mace_file.read_bytes())
    assert cli.main(["evaluate", "--model", str(path), "--dataset", str(emt_dataset)]) == 0


def test_a_torch_file_that_holds_no_mace_model_is_refused_and_forgotten(tmp_path):
    import torch

    path = tmp_path / "weights.model"
    torch.save({"not": "a model"}, path)
    with pytest.raises(models.NotAModelFileError, match="holds a dict, not a MACE model"):
        models.load_mace_model(path, device="cpu")
    assert str(path.resolve()) not in models._recorded_hashes()


# --------------------------------------------------------------------------- 2. unknown elements


@pytest.mark.parametrize("symbol", ["Xe", "Og"])
def test_elements_the_model_lacks_are_named(capsys, tmp_path, tiny_mace_file, symbol):
    path = tmp_path / f"{symbol}.extxyz"
    copper = labelled(bulk("Cu", "fcc", a=3.6))
    foreign = labelled(bulk(symbol, "fcc", a=6.2))
    ds.write_dataset(path, [copper, foreign], {})
    line = one_line_error(
        capsys, "evaluate", "--model", str(tiny_mace_file), "--dataset", str(path)
    )
    assert f"has no embedding for {symbol} (first in frame 1)" in line
    assert "it knows 2 elements (Al, Cu)" in line
    assert "is not in list" not in line


# --------------------------------------------------------------------------- 3. non-finite predictions


def test_coincident_atoms_are_an_error_naming_the_frame_not_a_nan_metric(
    capsys, tmp_path, tiny_mace_file
):
    frames = emt_frames()
    frames[2].positions[1] = frames[2].positions[0]  # labels stay finite: only the model fails
    path = ds.write_dataset(tmp_path / "overlap.extxyz", frames, {})
    for extra in ([], ["--json"]):
        argv = ["--model", str(tiny_mace_file), "--dataset", str(path), *extra]
        line = one_line_error(capsys, "evaluate", *argv)
        assert "predicted non-finite energy" in line and "for frame 2 (Cu4)" in line
        assert "atoms 0 and 1 are only 0.000 Å apart" in line
        assert "nan" not in line.lower().replace("non-finite", "")


def test_error_metrics_refuse_non_finite_predictions(frames):
    from course_lib.zero_shot import NonFinitePredictionError, Predictions, error_metrics

    forces = [np.zeros((len(atoms), 3)) for atoms in frames]
    forces[3][0, 1] = np.inf
    predictions = Predictions(model="planted", energies=ds.energies(frames), forces=forces)
    with pytest.raises(NonFinitePredictionError, match="non-finite forces for frame 3"):
        error_metrics(frames, predictions)


# --------------------------------------------------------------------------- 4. coverage target files


@pytest.mark.parametrize("kind", ["empty", "truncated"])
def test_coverage_target_that_cannot_be_read_fails_before_the_reference(
    capsys, tmp_path, emt_dataset, monkeypatch, kind
):
    import course_lib.coverage_reference as reference

    def must_not_run(*args, **kwargs):
        raise AssertionError("the reference was computed before the target was read")

    monkeypatch.setattr(reference, "reference_histograms", must_not_run)
    target = tmp_path / f"{kind}.extxyz"
    text = emt_dataset.read_text()
    target.write_text("" if kind == "empty" else text[: len(text) // 2])
    line = one_line_error(capsys, "coverage", "--target", str(target), "--reference", "x")
    expected = "the file is empty" if kind == "empty" else "not a readable extxyz file"
    assert f"course coverage: error: {target}: {expected}" in line


def test_coverage_target_may_be_an_unlabelled_structure_file(capsys, tmp_path, frames):
    target = tmp_path / "structures.extxyz"
    ase.io.write(target, [bulk("Cu", "fcc", a=3.6, cubic=True)], format="extxyz")
    reference = ds.write_dataset(tmp_path / "reference.extxyz", frames, {})
    argv = ["--target", str(target), "--reference", str(reference), "--frames", "6", "--json"]
    assert cli.main(["coverage", *argv]) == 0, capsys.readouterr().err


# --------------------------------------------------------------------------- 5. finetune --out


@pytest.fixture
def no_training(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("training started before the bad input was reported")

    monkeypatch.setattr(ft.FineTuner, "fit", must_not_run)


def finetune_args(model, dataset, *extra):
    return ["--model", str(model), "--dataset", str(dataset), "--n", "2", "--epochs", "1", *extra]


def test_finetune_out_under_a_file_fails_before_training(
    capsys, tmp_path, tiny_mace_file, emt_dataset, no_training
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "tuned.model"
    line = one_line_error(
        capsys, "finetune", *finetune_args(tiny_mace_file, emt_dataset, "--out", str(out))
    )
    assert f"cannot write {out}: {blocker} is a file, not a folder" in line


def test_finetune_out_an_existing_folder_writes_the_model_into_it(
    capsys, tmp_path, tiny_mace_file, emt_dataset
):
    folder = tmp_path / "models"
    folder.mkdir()
    argv = finetune_args(tiny_mace_file, emt_dataset, "--out", str(folder), "--solver")
    assert cli.main(["finetune", *argv, "closed-form", "--json"]) == 0
    saved = list(folder.glob("*.model"))
    assert [p.name for p in saved] == ["tiny-emt-few-shot-n2.model"]
    assert ft.load_model(saved[0]) is not None


def test_run_regime_checks_its_output_path_before_training(tiny_mace, tmp_path, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(ft, "train", must_not_run)
    with pytest.raises(ds.OutputPathError, match="is a directory"):
        ft.run_regime(tiny_mace, emt_frames(4), emt_frames(2, seed=9), regime="full", out=tmp_path)


def test_a_failed_save_after_training_keeps_the_model(tiny_mace, tmp_path, monkeypatch, caplog):
    out = tmp_path / "tuned.model"
    original = ft.save_model

    def disk_full_at_out(model, path):
        if path == out:
            raise OSError(28, "No space left on device")
        return original(model, path)

    monkeypatch.setattr(ft, "save_model", disk_full_at_out)
    with caplog.at_level(logging.WARNING, logger="course_lib.finetune"):
        result = ft.run_regime(
            tiny_mace,
            emt_frames(4),
            emt_frames(2, seed=9),
            solver="closed-form",
            out=out,
            progress=False,
        )
    assert not out.exists() and result.model_path.is_file()
    assert result.model_path.parent.name == "unsaved"
    assert f"could not write {out}" in caplog.text and str(result.model_path) in caplog.text


# --------------------------------------------------------------------------- 6. finetune on one frame


def test_finetune_on_one_frame_with_an_unknown_element_names_the_element(
    capsys, tmp_path, tiny_mace_file, no_training
):
    path = ds.write_dataset(tmp_path / "xe.extxyz", [labelled(bulk("Xe", "fcc", a=6.2))], {})
    line = one_line_error(capsys, "finetune", *finetune_args(tiny_mace_file, path, "--n", "1"))
    assert "elements ['Xe'] are not among the 2 elements the model was trained on" in line
    assert "split" not in line


def test_finetune_on_one_frame_with_a_missing_label_names_the_label(
    capsys, tmp_path, tiny_mace_file, no_training
):
    path = tmp_path / "unlabelled.extxyz"
    frame = labelled(bulk("Cu", "fcc", a=3.6))
    del frame.arrays[ds.FORCES_KEY]
    ase.io.write(path, [frame], format="extxyz")
    line = one_line_error(capsys, "finetune", *finetune_args(tiny_mace_file, path, "--n", "1"))
    assert "frame 0: missing force label" in line


def test_finetune_on_one_good_frame_says_it_needs_two(
    capsys, tmp_path, tiny_mace_file, no_training
):
    path = ds.write_dataset(tmp_path / "one.extxyz", emt_frames(1), {})
    line = one_line_error(capsys, "finetune", *finetune_args(tiny_mace_file, path, "--n", "1"))
    assert "split of 1 frames left 0 training and 1 test frames" in line
    assert "at least 2 frames" in line


# --------------------------------------------------------------------------- course run: no TCP warning


def test_running_a_notebook_emits_no_unencrypted_tcp_warning(tmp_path, capfd, caplog, recwarn):
    notebook = tmp_path / "01_tiny.py"
    notebook.write_text("# %%\nprint(6 * 7)\n")
    with caplog.at_level(logging.DEBUG):
        run = runner.run_notebook(notebook, tmp_path, timeout_s=120)
    assert run.ok, run.error
    assert '"42\\n"' in (tmp_path / "01_tiny.ipynb").read_text()  # the kernel did run the cell
    captured = capfd.readouterr()  # the kernel writes its log to the stderr it inherited
    seen = captured.out + captured.err + caplog.text + " ".join(str(w.message) for w in recwarn)
    assert "without encryption" not in seen
    assert "Executing notebook with kernel" not in captured.err  # only the summary table shows


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lrs", "1e-3,1e-2"], "give --valid N"),
        (["--valid", "999"], "the training pool has"),
    ],
)
def test_learning_curve_validation_options_fail_in_one_line(capsys, emt_dataset, extra, message):
    argv = ["--dataset", str(emt_dataset), "--regime", "scratch", "--sizes", "2", *extra]
    assert message in one_line_error(capsys, "learning-curve", *argv)
