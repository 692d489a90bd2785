"""DFT labelling on a Dask LocalCluster: 2 worker processes vs 1, measured in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_dask_labelling.py [--jobs 8] [--ecut 300]

The job: ``--jobs`` GPAW single points (real GPAW, not the EMT stand-in of the
tests) of rattled 2-atom LiH rocksalt cells at a low cutoff (300 eV, k-point
density 1.0 Å, as tests/test_dft.py), each in its own result file through
``label_structures``. It is labelled three times into fresh folders: in this
process (no Dask), on a LocalCluster of 1 worker and on one of 2 workers (one
thread each). The workers are started and have imported GPAW before the clock
starts. The bench prints the wall times, the speed-up of 2 workers over 1, the
largest energy difference between the runs (same inputs, same numbers), and
the load average before and after: on a shared machine the speed-up is what
the cores left over allowed, not what two free cores give.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk

from course_lib import dft
from course_lib.data import ENERGY_KEY


def lih_jobs(n: int) -> list[dft.Job]:
    """``n`` LiH rocksalt primitive cells (2 atoms), each rattled by 0.05 Å with its own seed."""
    jobs = []
    for i in range(n):
        atoms = bulk("LiH", "rocksalt", a=4.0)
        atoms.rattle(0.05, seed=i)
        jobs.append(dft.Job(key=f"lih-{i}", atoms=atoms))
    return jobs


def warm_up() -> str:
    """Import GPAW on a worker (seconds) so that the timed run does not pay for it."""
    import gpaw  # noqa: F401

    return os.environ.get("OMP_NUM_THREADS", "unset")


def timed_labelling(jobs, out_dir: Path, settings, *, workers: int | None) -> float:
    """Wall time (s) of ``label_structures`` here (``workers=None``) or on a LocalCluster."""
    from distributed import Client

    from course_lib.distributed import local_cluster

    if workers is None:
        began = time.perf_counter()
        dft.label_structures(jobs, out_dir, settings, progress=False)
        return time.perf_counter() - began
    with local_cluster(workers, dashboard=False) as cluster:
        with Client(cluster, set_as_default=False) as client:
            threads = set(client.run(warm_up).values())
            print(f"  {workers} worker(s) ready, OMP_NUM_THREADS on the workers: {threads}")
            began = time.perf_counter()
            report = dft.label_structures(jobs, out_dir, settings, progress=False, scheduler=client)
            seconds = time.perf_counter() - began
    assert report.n_computed == len(jobs), report
    return seconds


def energies(out_dir: Path, jobs) -> np.ndarray:
    return np.array([f.info[ENERGY_KEY] for f in dft.read_results(out_dir, [j.key for j in jobs])])


def _rounded(load: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(x, 2) for x in load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="single points to label")
    parser.add_argument("--ecut", type=float, default=300.0, help="plane-wave cutoff, eV")
    args = parser.parse_args()
    dft.require_gpaw()
    settings = dft.DFTSettings(ecut_eV=args.ecut, kpoint_density=1.0)
    jobs = lih_jobs(args.jobs)
    load_before = os.getloadavg()
    runs = {"this process, no Dask": None, "Dask, 1 worker": 1, "Dask, 2 workers": 2}
    timings, labels = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, workers) in enumerate(runs.items()):
            print(f"{name} ...", flush=True)
            out_dir = Path(tmp) / f"run-{i}"
            timings[name] = timed_labelling(jobs, out_dir, settings, workers=workers)
            labels[name] = energies(out_dir, jobs)
    load_after = os.getloadavg()

    print(
        f"\n{args.jobs} GPAW single points of 2-atom LiH at {args.ecut:.0f} eV on {os.cpu_count()} cores"
    )
    print(
        f"load average (1, 5, 15 min): before {_rounded(load_before)}, after {_rounded(load_after)}"
    )
    for name, seconds in timings.items():
        print(f"{name:<24} {seconds:7.1f} s   ({seconds / args.jobs:.2f} s per job)")
    ratio = timings["Dask, 1 worker"] / timings["Dask, 2 workers"]
    print(f"speed-up of 2 workers over 1: {ratio:.2f}x (2.00x on two free cores)")
    spread = max(np.abs(e - labels["this process, no Dask"]).max() for e in labels.values())
    print(f"largest energy difference between the three runs: {spread:.1e} eV")


if __name__ == "__main__":
    main()
