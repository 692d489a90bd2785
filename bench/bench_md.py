"""MD speed: steps per second of course-mini and of a MACE-MP-0-small-sized model, same cell.

    .venv/bin/python bench/bench_md.py [--steps 100] [--structure li2o]

The MACE-MP-0-small-sized model has random weights for Li and O (speed does
not depend on the weights). Both run the same seeded Langevin MD at 300 K
with the stability checks of ``course_lib.md`` on; the ratio is measured in
the same run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mace  # noqa: F401  (import mace before e3nn)
import torch

from course_lib import data as ds
from course_lib.mace_models import MACE_MP_0_SMALL, build_mace
from course_lib.md import md_structure, run_md
from course_lib.paths import DATASETS_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--structure", default="li2o")
    args = parser.parse_args()

    atoms = md_structure(args.structure, temperature_K=300)
    frames = ds.read_dataset(DATASETS_DIR / "li2o-md.extxyz")[:20]
    with tempfile.TemporaryDirectory() as folder:
        large = Path(folder) / "mace-mp-0-small-sized.model"
        torch.save(build_mace(frames, architecture=MACE_MP_0_SMALL), large)
        speeds = {}
        for label, model in (("course-mini", "course-mini"), ("MACE-MP-0-small-sized", large)):
            result = run_md(model, atoms, temperature_K=300, steps=args.steps, seed=0)
            speeds[label] = result.steps_per_s
    print(f"{args.steps} steps of {args.structure} ({len(atoms)} atoms), ")
    print(f"torch threads {torch.get_num_threads()}")
    for label, speed in speeds.items():
        print(f"{label:<24} {speed:7.2f} steps/s")
    ratio = speeds["course-mini"] / speeds["MACE-MP-0-small-sized"]
    print(f"course-mini is {ratio:.1f}x faster per step")


if __name__ == "__main__":
    main()
