"""Benchmark: coverage histograms of 10^4 frames of 10-30 atoms (distances and angles).

Compares ``course_lib.coverage.compute_histograms`` (matscipy neighbour list,
vectorised binning per chunk) with a straightforward baseline (ASE
``neighbor_list`` plus per-atom Python loops) on a subsample in the same run,
checks both give the same counts there, and prints the speed ratio.
Goal from issue 7: <= 30 s for 10^4 frames on 2 CPU cores.

    .venv/bin/python bench/bench_coverage.py [--frames 10000] [--baseline-frames 200]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.neighborlist import neighbor_list  # noqa: E402

from course_lib.coverage import HistogramSettings, compute_histograms  # noqa: E402

PROTOTYPES = (
    bulk("Si", "diamond", a=5.43),
    bulk("NaCl", "rocksalt", a=5.64),
    bulk("MgO", "rocksalt", a=4.21),
    bulk("Li2O", "fluorite", a=4.62),
    bulk("Cu", "fcc", a=3.61),
    bulk("Li", "bcc", a=3.45),
    bulk("ZnO", "wurtzite", a=3.25, c=5.21),
    bulk("CsCl", "cesiumchloride", a=4.12),
)


def rattled_supercells(n_frames: int, *, seed: int = 0) -> list[Atoms]:
    """Strained, rattled supercells of simple crystals with 10-30 atoms each."""
    rng = np.random.default_rng(seed)
    shapes = {
        len(p): [
            r for r in itertools.product((1, 2, 3), repeat=3) if 10 <= len(p) * np.prod(r) <= 30
        ]
        for p in PROTOTYPES
    }
    frames = []
    for _ in range(n_frames):
        proto = PROTOTYPES[rng.integers(len(PROTOTYPES))]
        options = shapes[len(proto)]
        atoms = proto.repeat(options[rng.integers(len(options))])
        strain = np.eye(3) + rng.normal(scale=0.02, size=(3, 3))
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.positions += rng.normal(scale=rng.uniform(0.02, 0.15), size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def baseline_counts(frames: list[Atoms], settings: HistogramSettings) -> dict[str, np.ndarray]:
    """The straightforward way: ASE neighbour list, then Python loops over atoms and bonds."""
    distances: dict[str, list[float]] = {}
    angles: dict[str, list[float]] = {}
    for atoms in frames:
        i, j, d, vectors = neighbor_list("ijdD", atoms, settings.cutoff)
        symbols = atoms.get_chemical_symbols()
        numbers = atoms.numbers
        for centre in range(len(atoms)):
            mine = np.flatnonzero(i == centre)
            bonds = []
            for n in mine:
                a, b = sorted((centre, j[n]), key=lambda k: numbers[k])
                distances.setdefault(f"{symbols[a]}-{symbols[b]}", []).append(d[n])
                if d[n] < settings.bond_cutoff:
                    bonds.append(n)
            for p, q in itertools.combinations(bonds, 2):
                cosine = vectors[p] @ vectors[q] / (d[p] * d[q])
                b, c = sorted((j[p], j[q]), key=lambda k: numbers[k])
                label = f"{symbols[b]}-{symbols[centre]}-{symbols[c]}"
                angles.setdefault(label, []).append(np.degrees(np.arccos(np.clip(cosine, -1, 1))))
    counts = {}
    for label, values in distances.items():
        bins = np.minimum(
            (np.array(values) / settings.bin_width).astype(int), settings.n_distance_bins - 1
        )
        counts[label] = np.bincount(bins, minlength=settings.n_distance_bins)
    for label, values in angles.items():
        bins = np.minimum(
            (np.array(values) / settings.angle_bin_width).astype(int), settings.n_angle_bins - 1
        )
        counts[label] = np.bincount(bins, minlength=settings.n_angle_bins)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--baseline-frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = HistogramSettings()

    start = time.perf_counter()
    frames = rattled_supercells(args.frames, seed=args.seed)
    n_atoms = np.array([len(a) for a in frames])
    print(
        f"generated {len(frames)} frames ({n_atoms.min()}-{n_atoms.max()} atoms, "
        f"mean {n_atoms.mean():.1f}) in {time.perf_counter() - start:.1f} s"
    )

    start = time.perf_counter()
    hist = compute_histograms(frames, settings=settings, source="bench")
    fast = time.perf_counter() - start
    n_pairs, n_angles = int(hist.pair_counts.sum()), int(hist.triplet_counts.sum())
    print(
        f"course_lib.coverage: {fast:.2f} s for {len(frames)} frames "
        f"({1e3 * fast / len(frames):.3f} ms/frame; {n_pairs:.3g} distances, {n_angles:.3g} angles)"
    )

    sample = frames[: args.baseline_frames]
    start = time.perf_counter()
    slow_counts = baseline_counts(sample, settings)
    slow = time.perf_counter() - start
    per_frame_slow = slow / len(sample)
    print(
        f"baseline (ASE neighbor_list + Python loops): {slow:.2f} s for {len(sample)} frames "
        f"({1e3 * per_frame_slow:.3f} ms/frame; ~{per_frame_slow * len(frames):.0f} s for {len(frames)})"
    )
    check = compute_histograms(sample, settings=settings)
    same = set(slow_counts) == set(check.channels) and all(
        np.array_equal(check.counts(label), counts) for label, counts in slow_counts.items()
    )
    print(f"same counts on the {len(sample)}-frame subsample: {same}")
    ratio = per_frame_slow / (fast / len(frames))
    print(
        f"speed-up: {ratio:.0f}x; goal <= 30 s for 10^4 frames: {'met' if fast * 1e4 / len(frames) <= 30 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
