"""Dask dispatch (``course_lib.distributed``): serial numbers, a killed worker, bad addresses.

One ``LocalCluster`` of two single-threaded worker processes serves the module
(starting one costs seconds on a busy 2-core machine). The DFT stand-in is EMT
through ``label_structures(compute=...)``; the learning-curve trainer is a
stub with a planted curve. Both run in the worker processes, so they record
their calls as files, not in memory.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from conftest import emt_frames

from course_lib import data as ds
from course_lib import dft
from course_lib import scaling_law as sl
from course_lib.distributed import (
    describe,
    has_dashboard,
    local_cluster,
    remove_partial_writes,
    slurm_cluster,
)

CHEAP = dft.DFTSettings(ecut_eV=300.0)
MARKERS = "test_markers"  # atoms.info key: where the stand-in records its calls


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    with local_cluster(2, dashboard=False) as cluster:
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            yield client


# --------------------------------------------------------------------------- stand-ins


def emt_compute(job: dft.Job, settings: dft.DFTSettings) -> list:
    """EMT labels for ``job``; records each finished call; the first call of "slow" sleeps.

    The sleeping call is the one the test kills (it waits at most 30 s).
    """
    markers = Path(job.atoms.info[MARKERS])
    if job.key == "slow":
        try:
            fd = os.open(markers / "slow-started", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass  # a later attempt: run normally
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            time.sleep(30)
    time.sleep(0.2)  # a job takes a while: both workers are busy when the kill comes
    atoms = job.atoms.copy()
    atoms.calc = EMT()
    atoms.get_stress()
    frames = [dft.labelled_copy(atoms, settings)]
    (markers / f"done-{job.key}-{uuid.uuid4().hex}").touch()
    return frames


def cu_jobs(keys, markers: Path) -> list[dft.Job]:
    jobs = []
    for i, key in enumerate(keys):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.01 * i, cubic=True)
        atoms.rattle(0.02, seed=i)
        atoms.info[MARKERS] = str(markers)
        jobs.append(dft.Job(key=key, atoms=atoms))
    return jobs


class _Metrics:
    def __init__(self, mae: float):
        self.energy_mae_meV_per_atom = mae / 10
        self.force_mae_meV_per_A = mae

    def as_dict(self) -> dict:
        return {"force_mae_meV_per_A": self.force_mae_meV_per_A}


class _Result:
    def __init__(self, mae: float, n_labels: int):
        self.test = _Metrics(mae)
        self.n_labels = n_labels
        self.fit_time_s = 0.5


class FileRecordingTrainer:
    """Stands in for ``run_regime`` on any process: a planted curve, one file per call."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, model, train, test, *, settings, valid_frames=None):
        (self.folder / f"n{len(train)}-s{settings.seed}-{uuid.uuid4().hex}").touch()
        mae = float(sl.power_law(len(train), 100.0, 0.5, 5.0)) + 0.1 * settings.seed
        return _Result(mae, ds.n_labels(train, with_forces=settings.forces_weight > 0))

    def calls(self) -> list[str]:
        return sorted(p.name.rsplit("-", 1)[0] for p in self.folder.iterdir())


def labels_of(folder: Path, key: str):
    (frame,) = ase.io.read(folder / f"{key}.extxyz", index=":", format="extxyz")
    return frame.info[ds.ENERGY_KEY], frame.arrays[ds.FORCES_KEY], frame.info[ds.STRESS_KEY]


# --------------------------------------------------------------------------- DFT labelling


def test_labelling_on_dask_gives_the_serial_numbers_and_resumes(client, tmp_path):
    keys = [f"cu{i}" for i in range(6)]
    jobs = cu_jobs(keys, tmp_path)
    run = dict(settings=CHEAP, compute=emt_compute, progress=False)
    serial = dft.label_structures(jobs, tmp_path / "serial", **run)
    # Half the jobs done elsewhere first (another machine, an interrupted run): only the rest run.
    dft.label_structures(jobs[:3], tmp_path / "dask", **run)
    report = dft.label_structures(jobs, tmp_path / "dask", scheduler=client, **run)
    assert (serial.n_computed, report.n_computed, report.n_skipped, report.n_failed) == (6, 3, 3, 0)
    for key in keys:
        for ours, theirs in zip(
            labels_of(tmp_path / "serial", key), labels_of(tmp_path / "dask", key)
        ):
            np.testing.assert_array_equal(ours, theirs)
    again = dft.label_structures(jobs, tmp_path / "dask", scheduler=client, **run)
    assert (again.n_computed, again.n_skipped) == (0, 6)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(client, tmp_path):
    keys = ["slow", *(f"cu{i}" for i in range(7))]
    jobs = cu_jobs(keys, tmp_path)
    out = tmp_path / "runs"
    killed = []

    def kill_the_slow_worker():
        marker = tmp_path / "slow-started"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pid = marker.read_text() if marker.exists() else ""
            if pid:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_slow_worker, daemon=True)
    began = time.monotonic()
    killer.start()
    report = dft.label_structures(
        jobs, out, CHEAP, compute=emt_compute, progress=False, scheduler=client
    )
    killer.join()
    assert killed, "the slow job never started"
    assert time.monotonic() - began < 60
    assert (report.n_computed, report.n_failed, report.n_skipped) == (8, 0, 0)
    finished = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.glob("done-*"))
    assert finished == sorted(f"done-{key}" for key in keys)  # each job ran to the end once
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{key}.extxyz" for key in keys)
    for key in keys:  # complete files: one labelled frame each; no .tmp or .lock left
        energy, forces, stress = labels_of(out, key)
        assert np.isfinite(energy) and forces.shape == (4, 3) and np.shape(stress) == (6,)


def test_partial_writes_and_dead_locks_of_a_killed_attempt_are_cleared(tmp_path):
    jobs = cu_jobs(["a"], tmp_path)
    out = tmp_path / "runs"
    out.mkdir()
    (out / ".a.extxyz.x1y2.tmp").write_text("half a fra")
    (out / ".a.lock").write_text(f"999999999 {socket.gethostname()} run-1")
    report = dft.label_structures(jobs, out, CHEAP, compute=emt_compute, progress=False)
    assert report.n_computed == 1 and sorted(p.name for p in out.iterdir()) == ["a.extxyz"]
    old = out / ".b.json.z9.tmp"
    old.write_text("{")
    assert remove_partial_writes(out / "b.json", older_than_s=60) == 0 and old.exists()
    os.utime(old, (time.time() - 120,) * 2)
    assert remove_partial_writes(out / "b.json", older_than_s=60) == 1 and not old.exists()


def test_locks_of_other_machines_hold_and_of_the_same_run_fall(tmp_path):
    lock = tmp_path / ".a.lock"
    lock.write_text(f"{os.getpid()} {socket.gethostname()} run-1")
    assert dft._lock_is_held(lock, "run-2")  # alive here, another run
    assert not dft._lock_is_held(lock, "run-1")  # an earlier attempt of this run: Dask retried
    lock.write_text("1 some-other-node run-1")
    assert dft._lock_is_held(lock, "run-2")  # its owner cannot be seen from here
    os.utime(lock, (time.time() - dft.STALE_LOCK_SECONDS - 1,) * 2)
    assert not dft._lock_is_held(lock, "run-2")


# --------------------------------------------------------------------------- learning curves


def test_learning_curve_on_dask_gives_the_serial_numbers_and_resumes(client, tmp_path, monkeypatch):
    from course_lib import learning_curve as lc  # here: the DFT tests' workers skip torch

    pool, test = emt_frames(12, seed=3), emt_frames(3, seed=4)
    trainer = FileRecordingTrainer(tmp_path / "calls")
    monkeypatch.setattr(lc, "run_regime", trainer)
    options = dict(regime="scratch", sizes=(3, 5, 8), seeds=2, progress=False, max_epochs=1)
    serial = lc.run_learning_curve(None, pool, test, cache_dir=tmp_path / "serial", **options)
    # Split: N = 3 and 5 done in this process, N = 8 on the cluster.
    lc.run_learning_curve(
        None, pool, test, cache_dir=tmp_path / "dask", **{**options, "sizes": (3, 5)}
    )
    assert len(trainer.calls()) == 10
    on_dask = lc.run_learning_curve(
        None, pool, test, cache_dir=tmp_path / "dask", scheduler=client, **options
    )
    assert trainer.calls().count("n8-s0") == trainer.calls().count("n8-s1") == 2
    assert len(trainer.calls()) == 12
    assert [dataclass_fields(p) for p in on_dask.points] == [
        dataclass_fields(p) for p in serial.points
    ]
    assert [p.cached for p in on_dask.points] == [True] * 4 + [False] * 2
    again = lc.run_learning_curve(
        None, pool, test, cache_dir=tmp_path / "dask", scheduler=client, **options
    )
    assert len(trainer.calls()) == 12 and all(p.cached for p in again.points)
    assert not list((tmp_path / "dask").glob(".*.tmp"))


def dataclass_fields(point) -> tuple:
    return (
        point.n_train,
        point.seed,
        point.energy_mae_meV_per_atom,
        point.force_mae_meV_per_A,
        point.n_labels,
        point.fit_time_s,
    )


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "no-port-here"])
def test_an_unreachable_scheduler_is_a_one_line_error_within_seconds(
    address, tmp_path, monkeypatch, capsys
):
    from course_lib import dft_recipes
    from course_lib import learning_curve as lc
    from course_lib.cli import main

    def must_not_run(*args, **kwargs):
        raise AssertionError("work started before the scheduler answered")

    monkeypatch.setattr(dft_recipes, "load_jobs", must_not_run)
    monkeypatch.setattr(lc, "run_regime", must_not_run)
    frames = emt_frames(8, seed=5)
    dataset = ds.write_dataset(tmp_path / "emt.extxyz", frames, {"method": "EMT (test oracle)"})
    commands = {
        "make-data": ["make-data", "mini-omat"],
        "learning-curve": ["learning-curve", "--dataset", str(dataset), "--regime", "scratch"]
        + ["--sizes", "2,4"],
    }
    for command, argv in commands.items():
        began = time.monotonic()
        assert main([*argv, "--scheduler", address]) == 2
        assert time.monotonic() - began < 15
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"course {command}: error: cannot reach")
        assert "--scheduler local" in err[0]


def test_scheduler_and_a_local_pool_exclude_each_other(tmp_path, capsys):
    from course_lib.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["make-data", "mini-omat", "--workers", "2", "--scheduler", "local"])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pass one of the two"):
        dft.label_structures([], tmp_path, workers=2, scheduler="local")


def test_dashboard_link_or_why_there_is_none(client):
    line = describe(client)
    assert "2 workers, 2 threads" in line
    assert ("dashboard http" in line) if has_dashboard() else ("bokeh is not installed" in line)


# --------------------------------------------------------------------------- HPC


def test_slurm_cluster_is_configured_for_one_serial_gpaw_per_core_without_sbatch():
    cluster = slurm_cluster(cores=32, memory="64GB", walltime="04:00:00", account="mat-course")
    try:
        script = cluster.job_script()
        assert not cluster.workers  # nothing submitted
    finally:
        cluster.close()
    for line in (
        "#SBATCH --cpus-per-task=32",
        "#SBATCH -t 04:00:00",
        "#SBATCH -A mat-course",
        "export OMP_NUM_THREADS=1",
        "export OPENBLAS_NUM_THREADS=1",
    ):
        assert line in script
    assert "--nthreads 1" in script and "--nworkers 32" in script
    assert "--lifetime 14100s" in script  # retire 5 min before the walltime kill
