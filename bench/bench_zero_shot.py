"""Batched MACE inference vs a per-structure ASE-calculator loop, same model, same frames.

    .venv/bin/python bench/bench_zero_shot.py [--frames 200] [--model PATH|NAME]

Without ``--model`` it uses a randomly initialised MACE of MACE-MP-0 small's size
(128x0e, 2 interactions, r_max 6 Å): timing does not depend on the weights.
Frames: the bundled Li target if present, else rattled 12-atom Li2O cells.
Prints both wall times and their ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mace  # noqa: F401
import numpy as np
import torch
from ase.build import bulk


def mace_mp_small_sized(atomic_numbers):
    from e3nn import o3
    from mace import modules

    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    return (
        modules.ScaleShiftMACE(
            r_max=6.0,
            num_bessel=10,
            num_polynomial_cutoff=5,
            max_ell=3,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=2,
            num_elements=len(atomic_numbers),
            hidden_irreps=o3.Irreps("128x0e"),
            MLP_irreps=o3.Irreps("16x0e"),
            atomic_energies=np.zeros(len(atomic_numbers)),
            avg_num_neighbors=30.0,
            atomic_numbers=atomic_numbers,
            correlation=3,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
        )
        .double()
        .eval()
    )


def bench_frames(n):
    from course_lib import data as ds

    try:
        frames = ds.read_dataset("li2o-md")
    except FileNotFoundError:
        frames = []
    while len(frames) < n:
        atoms = bulk("Li2O", "fluorite", a=4.62, cubic=True)
        atoms.rattle(0.1, seed=len(frames))
        frames.append(atoms)
    return frames[:n]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from mace.calculators import MACECalculator

    from course_lib import models, zero_shot

    frames = bench_frames(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path = models.model_file(args.model)
            model = models.load_mace_model(path, device="cpu")
        else:
            model = mace_mp_small_sized([3, 8])
            path = Path(tmp) / "bench.model"
            torch.save(model, path)
        calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")

        zero_shot.predict(model, frames[:4])  # warm-up both paths
        zero_shot.predict(calc, frames[:4])
        start = time.perf_counter()
        batched = zero_shot.predict(model, frames, batch_size=args.batch_size)
        t_batched = time.perf_counter() - start
        start = time.perf_counter()
        looped = zero_shot.predict(calc, frames)
        t_loop = time.perf_counter() - start

    agree = np.abs(batched.energies - looped.energies).max()
    print(
        f"frames: {len(frames)} x {len(frames[0])} atoms, torch threads: {torch.get_num_threads()}"
    )
    print(f"batched (batch {args.batch_size}): {t_batched:.2f} s")
    print(f"per-structure ASE loop:   {t_loop:.2f} s")
    print(f"speed-up (loop / batched): {t_loop / t_batched:.2f}x   max |dE| = {agree:.1e} eV")


if __name__ == "__main__":
    main()
