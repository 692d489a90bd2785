"""A committee of closed-form readout fits: one shared design pass vs one fit per member.

    .venv/bin/python bench/bench_committee.py [--members 4] [--frames 8] [--model NAME|PATH]

Both paths fit the same members (bootstrap resamples of the same Li2O frames,
course-mini by default) and must give the same energies on held-out frames;
the bench prints both wall times, their ratio (measured in the same run) and
the largest energy difference between the two committees.
"""

from __future__ import annotations

import argparse
import time

import mace  # noqa: F401  (import mace before e3nn)
import numpy as np
import torch

from course_lib import data as ds
from course_lib import uncertainty as unc
from course_lib.finetune import FineTuner, load_model
from course_lib.paths import DATASETS_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8, help="fine-tuning frames")
    parser.add_argument("--model", default="course-mini")
    args = parser.parse_args()

    frames = ds.read_dataset(DATASETS_DIR / "li2o-md.extxyz")
    pool, test = ds.train_test_split(frames, seed=0)
    train, check = pool[: args.frames], test[:20]
    model = load_model(args.model)

    def one_fit_per_member(start, train_frames, *, seed):
        tuner = FineTuner(model=start, solver="closed-form", seed=seed, progress=False)
        return tuner.fit(train_frames).model_

    timings, energies = {}, {}
    for name, fit in (("one fit per member", one_fit_per_member), ("shared design", None)):
        began = time.perf_counter()
        members = unc.fine_tune_committee(model, train, n_members=args.members, fit=fit)
        timings[name] = time.perf_counter() - began
        energies[name] = unc.predict_committee(members, check).energies

    print(f"committee of {args.members} on {len(train)} Li2O frames, {args.model}, ")
    print(f"torch threads {torch.get_num_threads()}")
    for name, seconds in timings.items():
        print(f"{name:<20} {seconds:7.2f} s")
    ratio = timings["one fit per member"] / timings["shared design"]
    difference = np.abs(energies["one fit per member"] - energies["shared design"]).max()
    print(f"speed-up of the shared design: {ratio:.2f}x")
    print(f"largest energy difference between the two committees: {difference:.1e} eV")


if __name__ == "__main__":
    main()
