"""Batched MACE inference vs a per-structure ASE-calculator loop, same model, same frames.

    .venv/bin/python bench/bench_zero_shot.py [--frames 64] [--model PATH|NAME]
        [--dataset li2o-md|mini-mptrj|...] [--batch-size 32] [--repeats 3]

Without ``--model`` it uses a randomly initialised MACE of MACE-MP-0 small's size
(128x0e, max_ell 3, 2 interactions, r_max 6 Å): timing does not depend on the weights.
Frames: ``--dataset`` (default the bundled Li target, else the MgO target), cycled up
to ``--frames``. Three paths, timed alternately ``--repeats`` times in the same run
(on a shared machine the load drifts between runs, never within one repetition):

- ``predict`` as called by default (batches capped by an edge budget on a CPU),
- fixed batches of ``--batch-size`` frames without that cap (the old default),
- mace-torch's ``MACECalculator``, one structure at a time through ASE.

Prints each path's median wall time (and range) and atoms/s, the median of the per-repetition
ratios loop / path, the largest energy and force differences to the loop, and the
load average (``os.getloadavg``) before and after.

What to expect on a CPU (see ``course_lib.graphs.CPU_BATCH_BYTES``): for
MACE-MP-0 small on 12-atom frames one frame already fills the cache, so the
default path runs one frame per batch and matches the loop; fixed batches of 32
are two to three times slower. Batching wins on small frames or small models
(``--dataset mini-mptrj``, ``--model course-mini``), where per-call overhead
is a larger share of the work.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def bench_frames(n, dataset=None):
    """``n`` DFT-labelled frames from ``dataset``, else the Li or the MgO target (cycled)."""
    from itertools import cycle, islice

    from course_lib import data as ds

    for name in [dataset] if dataset else ["li2o-md", "mgo-rattled"]:
        try:
            return list(islice(cycle(ds.read_dataset(name)), n))
        except FileNotFoundError:
            continue
    raise SystemExit("no bundled dataset to benchmark on; run `course make-data li2o-md`")


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def largest_differences(predictions, reference):
    """Largest |dE| (eV) and |dF| component (eV/Å) between two ``Predictions``."""
    d_energy = np.abs(predictions.energies - reference.energies).max()
    d_forces = max(np.abs(a - b).max() for a, b in zip(predictions.forces, reference.forces))
    return float(d_energy), float(d_forces)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from mace.calculators import MACECalculator

    from course_lib import graphs, models, zero_shot

    frames = bench_frames(args.frames, args.dataset)
    n_atoms = sum(len(atoms) for atoms in frames)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path = models.model_file(args.model)
            model = models.load_mace_model(path, device="cpu")
        else:
            model = mace_mp_small_sized(frames)
            path = Path(tmp) / "bench.model"
            torch.save(model, path)
        calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
        paths = {
            "predict (default)": lambda: zero_shot.predict(model, frames),
            f"batches of {args.batch_size}": lambda: zero_shot.predict(
                model, frames, batch_size=args.batch_size, max_edges=None
            ),
            "ASE loop": lambda: zero_shot.predict(calc, frames),
        }
        zero_shot.predict(model, frames[:4])  # warm-up both
        zero_shot.predict(calc, frames[:4])
        load_before = os.getloadavg()
        seconds = {name: [] for name in paths}
        results = {}
        for _ in range(args.repeats):
            for name, run in paths.items():
                elapsed, results[name] = timed(run)
                seconds[name].append(elapsed)
        load_after = os.getloadavg()

    budget = graphs.cpu_edge_budget(model)
    print(
        f"frames: {len(frames)} ({n_atoms} atoms), torch threads: {torch.get_num_threads()}, "
        f"repeats: {args.repeats}, CPU edge budget: {budget} edges per batch"
    )
    loop = seconds["ASE loop"]
    width = max(len(name) for name in paths)
    for name in paths:
        median = statistics.median(seconds[name])
        ratio = statistics.median(a / b for a, b in zip(loop, seconds[name]))
        d_energy, d_forces = largest_differences(results[name], results["ASE loop"])
        spread = f"{min(seconds[name]):.1f}-{max(seconds[name]):.1f}"
        print(
            f"{name:<{width}}  {median:7.2f} s ({spread})  {n_atoms / median:7.1f} atoms/s  "
            f"loop/this {ratio:5.2f}x  max |dE| {d_energy:.1e} eV  max |dF| {d_forces:.1e} eV/Å"
        )
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{x:.1f}" for x in load_before)
        + "; after "
        + ", ".join(f"{x:.1f}" for x in load_after)
        + f" on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
