"""Batched MACE inference vs a per-structure ASE-calculator loop, same model, same frames.

    .venv/bin/python bench/bench_zero_shot.py [--frames 200] [--model PATH|NAME]

Without ``--model`` it uses a randomly initialised MACE of MACE-MP-0 small's size
(128x0e, 2 interactions, r_max 6 Å): timing does not depend on the weights.
Frames: the bundled Li target (else the MgO target), cycled up to ``--frames``.
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


def mace_mp_small_sized(frames):
    """A random MACE with MACE-MP-0 small's hyper-parameters, for these frames' elements."""
    from course_lib.mace_models import MACE_MP_0_SMALL, build_mace

    return build_mace(frames, architecture=MACE_MP_0_SMALL).eval()


def bench_frames(n):
    """``n`` DFT-labelled frames from the Li target, else the in-distribution target (cycled)."""
    from itertools import cycle, islice

    from course_lib import data as ds

    for name in ("li2o-md", "mgo-rattled"):
        try:
            return list(islice(cycle(ds.read_dataset(name)), n))
        except FileNotFoundError:
            continue
    raise SystemExit("no bundled dataset to benchmark on; run `course make-data li2o-md`")


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
            model = mace_mp_small_sized(frames)
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
