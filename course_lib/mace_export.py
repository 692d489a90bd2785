"""The bridge to the real tool: a ready ``mace_run_train`` fine-tuning run from course data.

What the course does in-process at classroom scale, mace-torch's
``mace_run_train`` does at production scale (GPUs, multihead replay, EMA,
SWA, checkpoints). ``export_mace_train`` writes, into one folder:

* ``train.xyz``, ``valid.xyz``, ``test.xyz``: the target's training split
  (a seeded ``valid_fraction`` held out for validation) and its fixed test split;
* ``pt_train.xyz``: the pre-training corpus's training split, for replay
  (``--pt_train_file``, multihead fine-tuning);
* ``train.sh``: the command, with the foundation model, ``REF_*`` keys,
  estimated E0s, the strategy's flags, the seed, and the ``torchrun``
  (``--distributed``) form for a GPU node in a comment;
* ``export.json``: what was written and why.

Course settings and their mace-torch flags (docs/instructor-guide.md has the table):
``STRATEGY_FLAGS`` and ``SETTING_FLAGS``.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import ase.io

from course_lib import data as ds

#: Strategy -> mace_run_train flags (see course_lib.strategies for what each does).
STRATEGY_FLAGS = {
    "replay": ["--multiheads_finetuning", "True", "--weight_pt_head", "1.0"],
    "naive": ["--multiheads_finetuning", "False"],
    "frozen": ["--multiheads_finetuning", "False", "--freeze", "5"],
    "lora": ["--multiheads_finetuning", "False", "--lora", "--lora_rank", "4", "--lora_alpha", "1"],
}
#: Course setting (FineTuneSettings field) -> mace_run_train flag.
SETTING_FLAGS = {
    "energy_weight": "--energy_weight",
    "forces_weight": "--forces_weight",
    "stress_weight": "--stress_weight",
    "max_epochs": "--max_num_epochs",
    "batch_size": "--batch_size",
    "lr": "--lr",
    "patience": "--patience",
    "lr_factor": "--lr_factor",
    "lr_patience": "--scheduler_patience",
    "seed": "--seed",
    "dtype": "--default_dtype",
    "device": "--device",
    "valid_fraction": "--valid_fraction (here: the split is written to valid.xyz)",
    "e0s='refit'": "--E0s estimated (mace's least squares on the fine-tuning data)",
    "trainable='freeze-5'": "--freeze 5",
    "trainable='lora'": "--lora --lora_rank 4 --lora_alpha 1",
    "lora_rank, lora_alpha": "--lora_rank, --lora_alpha",
    "l2_pull": "(none: --weight_decay pulls toward zero, not toward the pre-trained weights)",
    "solver='closed-form'": "(none: the course's own closed-form readout fit)",
}


class ExportError(ValueError):
    """The export cannot be written as asked; the message says what to change."""


@dataclass(frozen=True)
class MaceTrainExport:
    """What ``export_mace_train`` wrote: the folder, its files and the command (argv)."""

    directory: Path
    files: dict[str, str]
    command: tuple[str, ...]
    strategy: str
    counts: dict[str, int]

    def as_dict(self) -> dict:
        return {
            "directory": str(self.directory),
            "files": self.files,
            "command": shlex.join(self.command),
            "strategy": self.strategy,
            "frames": self.counts,
        }

    def table(self) -> str:
        lines = [f"mace_run_train export ({self.strategy}) in {self.directory}:"]
        lines += [
            f"  {name:<12} {self.counts.get(name, '')!s:>6}  {path}"
            for name, path in self.files.items()
        ]
        lines.append(f"run it with:  cd {self.directory} && bash train.sh")
        return "\n".join(lines)

    __str__ = table


def export_mace_train(
    model: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    *,
    strategy: str = "replay",
    n: int | None = None,
    corpus: str | None = None,
    num_samples_pt: int | None = None,
    max_epochs: int = 50,
    batch_size: int = 4,
    lr: float = 1e-3,
    energy_weight: float = 1.0,
    forces_weight: float = 100.0,
    valid_fraction: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float64",
) -> MaceTrainExport:
    """Write the files and the ``mace_run_train`` command of one fine-tuning run into ``out``.

    ``out`` must not exist or be an empty folder (nothing is overwritten).
    ``n`` training structures are drawn (seeded) from the dataset's training
    split (None: all). ``corpus`` defaults to the model's pre-training corpus
    (the registry's); replay needs one. ``num_samples_pt`` caps the replayed
    pre-training frames (mace's ``--num_samples_pt``).
    """
    from course_lib.models import model_file, pretraining_corpus

    if strategy not in STRATEGY_FLAGS:
        raise ExportError(f"strategy must be one of {list(STRATEGY_FLAGS)}, got {strategy!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; choose a new --out")
    corpus = corpus or pretraining_corpus(str(model))
    if strategy == "replay" and corpus is None:
        raise ExportError("replay needs the pre-training corpus: pass --corpus")
    model_path = model_file(model).resolve()
    frames = ds.read_dataset(dataset, require_pbc=False)
    pool, test = ds.train_test_split(frames, seed=0)
    chosen = ds.subset(pool, len(pool) if n is None else n, seed=seed)
    n_valid = max(1, round(valid_fraction * len(chosen)))
    if len(chosen) - n_valid < 1:
        raise ExportError(f"{len(chosen)} structures leave none for training after validation")
    splits = {"train": chosen[n_valid:], "valid": chosen[:n_valid], "test": test}
    if corpus is not None:
        splits["pt_train"] = ds.train_test_split(ds.read_dataset(corpus), seed=0)[0]
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, part in splits.items():
        path = out / f"{name}.xyz"
        with ds.atomic_output(path) as tmp:
            ase.io.write(tmp, part, format="extxyz")
        files[name] = str(path)
    command = mace_train_command(
        model_path,
        strategy=strategy,
        pt_train=corpus is not None and strategy == "replay",
        num_samples_pt=num_samples_pt,
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        energy_weight=energy_weight,
        forces_weight=forces_weight,
        seed=seed,
        device=device,
        dtype=dtype,
    )
    script = out / "train.sh"
    ds.atomic_write_text(script, _script(command))
    files["train.sh"] = str(script)
    export = MaceTrainExport(
        directory=out,
        files=files,
        command=tuple(command),
        strategy=strategy,
        counts={name: len(part) for name, part in splits.items()},
    )
    record = export.as_dict() | {
        "model": str(model_path),
        "dataset": str(dataset),
        "corpus": corpus,
    }
    ds.atomic_write_text(out / "export.json", json.dumps(record, indent=2) + "\n")
    return export


def mace_train_command(
    model_path: Path,
    *,
    strategy: str,
    pt_train: bool,
    num_samples_pt: int | None,
    max_epochs: int,
    batch_size: int,
    lr: float,
    energy_weight: float,
    forces_weight: float,
    seed: int,
    device: str,
    dtype: str,
) -> list[str]:
    """The ``mace_run_train`` argv, run from the export folder (relative file names)."""
    flags = {
        "--name": "finetuned",
        "--foundation_model": str(model_path),
        "--train_file": "train.xyz",
        "--valid_file": "valid.xyz",
        "--test_file": "test.xyz",
        "--energy_key": ds.ENERGY_KEY,
        "--forces_key": ds.FORCES_KEY,
        "--stress_key": ds.STRESS_KEY,
        "--E0s": "estimated",
        "--energy_weight": f"{energy_weight:g}",
        "--forces_weight": f"{forces_weight:g}",
        "--batch_size": str(batch_size),
        "--valid_batch_size": str(batch_size),
        "--max_num_epochs": str(max_epochs),
        "--seed": str(seed),
        "--device": device,
        "--default_dtype": dtype,
    }
    command = ["mace_run_train", *(item for pair in flags.items() for item in pair)]
    if strategy != "replay":  # multihead replay runs at mace's own lr 1e-4 with EMA
        command += ["--lr", f"{lr:g}"]
    command += STRATEGY_FLAGS[strategy]
    if pt_train:
        command += ["--pt_train_file", "pt_train.xyz"]
        if num_samples_pt is not None:
            command += ["--num_samples_pt", str(num_samples_pt)]
    return command


def _script(command: list[str]) -> str:
    flags = shlex.join(command[1:])
    return f"""#!/usr/bin/env bash
# Fine-tune with mace-torch's own trainer, as exported by `course export-mace-train`.
# Run from this folder; the model ends up in ./finetuned.model (and _stagetwo / compiled variants).
set -euo pipefail
cd "$(dirname "$0")"
mace_run_train {flags}

# On a GPU node, data-parallel over its GPUs (torchrun starts one process per GPU):
#   torchrun --standalone --nproc_per_node=4 $(python -c "import mace.cli.run_train as m; print(m.__file__)") \\
#       {flags.replace("--device cpu", "--device cuda")} --distributed
"""
