"""The bridge to mace_run_train: the exported command runs, and its model loads in mace-torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import split_dataset

from course_lib import cli
from course_lib import data as ds
from course_lib.mace_export import STRATEGY_FLAGS, export_mace_train


@pytest.fixture
def target_and_corpus(tmp_path):
    target = split_dataset(tmp_path / "target.extxyz", 8, seed=1, n_test=2)
    corpus = split_dataset(tmp_path / "corpus.extxyz", 8, seed=2, n_test=2)
    return target, corpus


def test_export_writes_the_splits_and_a_command_per_strategy(
    target_and_corpus, tiny_mace_file, tmp_path
):
    target, corpus = target_and_corpus
    for strategy, flags in STRATEGY_FLAGS.items():
        export = export_mace_train(
            tiny_mace_file, target, tmp_path / strategy, strategy=strategy, corpus=str(corpus)
        )
        assert export.counts == {"train": 5, "valid": 1, "test": 2, "pt_train": 6}
        command = " ".join(export.command)
        assert " ".join(flags) in command and "--E0s estimated" in command
        assert ("--pt_train_file pt_train.xyz" in command) == (strategy == "replay")
        assert ("--lr" in command) == (strategy != "replay")  # replay: mace's 1e-4 and EMA
        script = (tmp_path / strategy / "train.sh").read_text()
        assert "--distributed" in script and "torchrun" in script
        assert json.loads((tmp_path / strategy / "export.json").read_text())["strategy"] == strategy


def test_cli_refuses_a_folder_that_is_not_empty(
    capsys, target_and_corpus, tiny_mace_file, tmp_path
):
    target, corpus = target_and_corpus
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    argv = ["export-mace-train", "--model", str(tiny_mace_file), "--dataset", str(target)]
    assert cli.main([*argv, "--corpus", str(corpus), "--out", str(busy)]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    assert (busy / "keep.txt").read_text() == "mine"


def test_exported_replay_command_trains_one_epoch_and_loads_in_mace(
    target_and_corpus, tiny_mace_file, tmp_path
):
    """The real mace_run_train, multihead replay, one epoch on a tiny subset, on the CPU."""
    from mace.calculators import MACECalculator

    target, corpus = target_and_corpus
    out = tmp_path / "run"
    export_mace_train(
        tiny_mace_file, target, out, corpus=str(corpus), max_epochs=1, num_samples_pt=4
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(
        ["bash", "train.sh"], cwd=out, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    model = out / "finetuned.model"
    assert model.is_file()
    atoms = ds.read_dataset(target)[0]
    atoms.calc = MACECalculator(model_paths=str(model), device="cpu", default_dtype="float64")
    assert abs(atoms.get_potential_energy()) < 1e3 and atoms.get_forces().shape == (len(atoms), 3)
