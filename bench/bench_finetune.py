"""Few-shot fine-tuning on 200 structures: gradient training vs the closed-form readout fit.

    .venv/bin/python bench/bench_finetune.py [--frames 200] [--epochs 10] [--model NAME|PATH]

Data: the bundled Li target (``li2o-md``) when present, else rattled 32-atom
Cu/Al cells labelled with ASE's EMT (a stand-in oracle, not DFT). Model:
``--model`` (e.g. ``course-mini``, ``mace-mp-0-small``, a file), else
``course-mini`` when available, else a stand-in "foundation" MACE (32x0e,
2 layers) pre-trained here for 4 epochs on other EMT cells; timing does
not depend on the weights. ``--model mp-small-sized`` uses a randomly
initialised MACE with MACE-MP-0 small's hyper-parameters (timing only).

Prints the wall and CPU time of each solver on the same frames, their test
errors, and the ratios (gradient / closed form), measured in the same run. On
a shared machine the CPU time (all threads) is the fairer number: on an idle
machine the wall time is at most the CPU time.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import mace  # noqa: F401
import numpy as np
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from course_lib import data as ds
from course_lib import finetune as ft
from course_lib import mace_models as mm

MP_SMALL_LIKE = mm.MACE_MP_0_SMALL


def emt_cells(n: int, *, seed: int, al_fraction: float = 0.3) -> list:
    """Rattled, strained 3x1x1 fcc Cu/Al cells (12 atoms, as the Li2O target) labelled with EMT."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.6 * (1 + 0.02 * rng.standard_normal()), cubic=True)
        atoms = atoms.repeat((3, 1, 1))
        atoms.symbols[rng.random(len(atoms)) < al_fraction] = "Al"
        atoms.rattle(0.08, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.info[ds.ENERGY_KEY] = atoms.get_potential_energy()
        atoms.arrays[ds.FORCES_KEY] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    return frames


def bench_data(n_train: int, n_test: int) -> tuple[list, list, str]:
    try:
        frames = ds.read_dataset("li2o-md")
    except FileNotFoundError:
        frames = []
    pool, test = ds.train_test_split(frames, seed=0) if frames else ([], [])
    if len(pool) >= n_train and test:
        return ds.subset(pool, n_train, seed=0), test[:n_test], "li2o-md"
    frames = emt_cells(n_train + n_test, seed=1)
    name = f"EMT Cu/Al cells (stand-in, not DFT; li2o-md has {len(pool)} training frames)"
    return frames[:n_train], frames[n_train:], name


def bench_model(name: str | None, frames: list):
    from course_lib import models

    if name == "mp-small-sized":
        return mm.build_mace(frames, architecture=MP_SMALL_LIKE), "random MACE-MP-0-small-sized"
    if name is None and models.is_available("course-mini"):
        name = "course-mini"
    if name is not None:
        return models.load_mace_model(name, device="cpu"), name
    corpus = emt_cells(40, seed=2, al_fraction=0.5)
    tuner = ft.FineTuner(regime="scratch", max_epochs=4, batch_size=8, progress=False)
    return tuner.fit(corpus).model_, "stand-in foundation (32x0e, 4 epochs on 40 EMT cells)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--test", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default=None)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    train, test, data_name = bench_data(args.frames, args.test)
    model, model_name = bench_model(args.model, train)
    print(f"data: {data_name}; model: {model_name}", flush=True)
    common = dict(model=model, batch_size=args.batch_size, dtype=args.dtype, progress=False)
    gradient = ft.FineTuner(max_epochs=args.epochs, patience=args.epochs, **common)
    closed = ft.FineTuner(solver="closed-form", **common)
    train_part, valid_part = ft.split_validation(train, valid_fraction=0.1, seed=0)

    timings, cpu, errors = {}, {}, {}
    for label, tuner, valid in (("gradient", gradient, valid_part), ("closed-form", closed, None)):
        start, start_cpu = time.perf_counter(), time.process_time()
        tuner.fit(train_part, valid_frames=valid)
        timings[label] = time.perf_counter() - start
        cpu[label] = time.process_time() - start_cpu
        errors[label] = tuner.evaluate(test)
        print(f"  {label}: {timings[label]:.1f} s wall, {cpu[label]:.1f} s CPU", flush=True)
    start_errors = ft.error_metrics(test, ft.predict(model, test))

    atoms = sum(len(a) for a in train_part) / len(train_part)
    print(
        f"{len(train_part)} training + {len(valid_part)} validation structures of "
        f"{atoms:.0f} atoms, {len(test)} test; {args.dtype}; torch threads: "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'':<28} {'wall s':>8} {'CPU s':>8} {'E meV/atom':>11} {'F meV/Å':>9}")
    print(
        f"{'start (E0s not refitted)':<28} {'':>8} {'':>8} "
        f"{start_errors.energy_mae_meV_per_atom:>11.2f} {start_errors.force_mae_meV_per_A:>9.1f}"
    )
    for label in timings:
        e = errors[label]
        name = f"{label} ({args.epochs} epochs)" if label == "gradient" else label
        print(
            f"{name:<28} {timings[label]:>8.1f} {cpu[label]:>8.1f} "
            f"{e.energy_mae_meV_per_atom:>11.2f} {e.force_mae_meV_per_A:>9.1f}"
        )
    print(
        f"per gradient epoch: {timings['gradient'] / args.epochs:.1f} s wall, "
        f"{cpu['gradient'] / args.epochs:.1f} s CPU"
    )
    ratio = cpu["gradient"] / cpu["closed-form"]
    force_ratio = errors["gradient"].force_mae_meV_per_A / errors["closed-form"].force_mae_meV_per_A
    print(
        f"CPU-time ratio (gradient / closed form): {ratio:.1f}x; "
        f"force-error ratio (gradient / closed form): {force_ratio:.2f}"
    )


if __name__ == "__main__":
    main()
