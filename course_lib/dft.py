"""DFT labels with GPAW: single points, relaxations and a resumable batch runner.

Every bundled dataset is labelled with one settings object, ``DEFAULT_SETTINGS``
(PBE, PAW, plane waves). Its fingerprint (sha256 of its JSON) is written into
every result frame (``info["dft_fingerprint"]``) and into each dataset's
provenance; ``assemble_dataset`` refuses to mix frames whose fingerprints differ.

Labels follow :mod:`course_lib.data`:

* ``info["REF_energy"]``: the Mermin free energy, eV, the quantity the forces
  and stress are derivatives of (with 0.1 eV Fermi-Dirac smearing it differs
  from the zero-width extrapolation, kept as ``info["energy_sigma0_eV"]``, by
  meV only, and by nothing for insulators);
* ``arrays["REF_forces"]``: eV/Å; ``info["REF_stress"]``: eV/Å³, Voigt order, ASE sign.

GPAW is an optional dependency (``pip install -e .[dft]``); everything here
that needs it imports it lazily and says how to install it when missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.calculator import kptdensity2monkhorstpack

from course_lib.data import ENERGY_KEY, FORCES_KEY, STRESS_KEY, atomic_write_text, write_dataset

logger = logging.getLogger(__name__)

FINGERPRINT_KEY = "dft_fingerprint"
SECONDS_KEY = "dft_seconds"
FAILURES_FILE = "failures.jsonl"
STALE_LOCK_SECONDS = 3 * 3600  # no single job here takes an hour
GPAW_INSTALL_HINT = (
    "GPAW is not installed. Install it with:\n"
    "    apt-get install -y libxc-dev libopenblas-dev\n"
    "    CC=g++ pip install gpaw      # or: pip install -e .[dft]\n"
    "(its PAW setups come with the gpaw-data wheel)."
)


class DFTError(RuntimeError):
    """A DFT calculation did not give usable labels (e.g. SCF not converged)."""


def require_gpaw():
    """Import and return the ``gpaw`` module, or raise ImportError saying how to install it."""
    try:
        import gpaw
    except ImportError as err:
        raise ImportError(GPAW_INSTALL_HINT) from err
    return gpaw


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class DFTSettings:
    """Numerical settings of every GPAW calculation in one dataset.

    ``kpoint_density`` is in k-points per Å⁻¹ (reciprocal lengths include 2π),
    GPAW's ``kpts={"density": d, "gamma": gamma_centred}``. Plain Monkhorst-Pack
    grids (not Γ-centred) halve the k-points of even grids by time reversal,
    which matters for the rattled, symmetry-free cells here. Molecules in a box
    (``info["molecule"]``) use Γ only. The 800 eV cutoff is what GPAW's Li and O
    setups need for a stress free of Pulay error (at 400 eV it is ~0.3 eV/Å³,
    at 600 eV ~0.02 eV/Å³, at 800 eV < 0.001 eV/Å³, measured on Li2O and MgO). ``energy_convergence_eV``
    is per valence electron, GPAW's convention.
    """

    xc: str = "PBE"
    ecut_eV: float = 800.0
    kpoint_density: float = 1.3
    smearing_eV: float = 0.1
    energy_convergence_eV: float = 5e-5
    density_convergence: float = 1e-4
    max_scf_iterations: int = 200
    gamma_centred: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def fingerprint(self) -> str:
        """sha256 of the settings as sorted JSON: equal settings, equal fingerprint."""
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def kpts(self, atoms: Atoms) -> tuple[int, int, int]:
        """The Monkhorst-Pack grid size these settings give ``atoms``."""
        if atoms.info.get("molecule"):
            return (1, 1, 1)
        return tuple(int(n) for n in kptdensity2monkhorstpack(atoms, self.kpoint_density, False))


DEFAULT_SETTINGS = DFTSettings()


def make_calculator(atoms: Atoms, settings: DFTSettings = DEFAULT_SETTINGS, *, txt=None):
    """A GPAW calculator for ``atoms``; spin-polarised only when ``atoms`` has initial magmoms.

    The k-point grid is fixed here, from the cell of ``atoms``: a relaxation
    keeps the grid of its starting cell, as MP's relaxations do, so that its
    energies stay continuous when the cell changes (a grid recomputed at every
    step jumps, by ~0.1 eV for a metal, when a side crosses a threshold).
    """
    gpaw = require_gpaw()
    gamma = True if atoms.info.get("molecule") else settings.gamma_centred
    kpts = {"size": settings.kpts(atoms), "gamma": gamma}
    return gpaw.GPAW(
        mode={"name": "pw", "ecut": settings.ecut_eV},
        xc=settings.xc,
        kpts=kpts,
        occupations={"name": "fermi-dirac", "width": settings.smearing_eV},
        convergence={
            "energy": settings.energy_convergence_eV,
            "density": settings.density_convergence,
        },
        maxiter=settings.max_scf_iterations,
        spinpol=bool(np.any(atoms.get_initial_magnetic_moments())),
        txt=txt,
    )


# --------------------------------------------------------------------------- single points


def labelled_copy(atoms: Atoms, settings: DFTSettings, *, seconds: float | None = None) -> Atoms:
    """A copy of ``atoms`` (with a finished calculation attached) carrying REF_* labels."""
    calc = atoms.calc
    frame = atoms.copy()
    frame.calc = None
    frame.info[ENERGY_KEY] = float(calc.get_potential_energy(atoms, force_consistent=True))
    frame.info["energy_sigma0_eV"] = float(calc.get_potential_energy(atoms))
    frame.arrays[FORCES_KEY] = np.array(calc.get_forces(atoms), dtype=float)
    frame.info[STRESS_KEY] = np.array(calc.get_stress(atoms), dtype=float)
    if np.any(atoms.get_initial_magnetic_moments()):
        frame.info["magnetic_moment_muB"] = float(calc.get_magnetic_moment(atoms))
    frame.info[FINGERPRINT_KEY] = settings.fingerprint
    if seconds is not None:
        frame.info[SECONDS_KEY] = round(float(seconds), 2)
    return frame


def single_point(atoms: Atoms, settings: DFTSettings = DEFAULT_SETTINGS) -> Atoms:
    """Energy (eV), forces (eV/Å) and stress (eV/Å³) of ``atoms``, as a labelled copy."""
    work = atoms.copy()
    work.calc = make_calculator(work, settings)
    start = time.perf_counter()
    work.get_forces()
    work.get_stress()
    return labelled_copy(work, settings, seconds=time.perf_counter() - start)


def relax(
    atoms: Atoms,
    settings: DFTSettings = DEFAULT_SETTINGS,
    *,
    fmax: float = 0.05,
    max_steps: int = 10,
    relax_cell: bool = True,
    calculator=None,
) -> list[Atoms]:
    """Relax positions (and the cell) with BFGS; one labelled frame per ionic step.

    The first frame is the starting geometry; at most ``max_steps`` steps are
    taken (``max_steps + 1`` frames), as MPtrj keeps relaxation frames.
    ``fmax`` (eV/Å) applies to the forces and, through ASE's
    ``FrechetCellFilter``, to the stress times the cell volume. The last
    frame has ``info["relaxed_end_point"] = True`` when the run converged. Pass
    ``calculator`` to use another ASE calculator (tests do).
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = calculator if calculator is not None else make_calculator(work, settings)
    target = FrechetCellFilter(work) if relax_cell else work
    frames: list[Atoms] = []
    clock = [time.perf_counter()]

    def record() -> None:
        work.get_stress()  # the filter asks for it anyway; cached
        now = time.perf_counter()
        frame = labelled_copy(work, settings, seconds=now - clock[0])
        frame.info["relax_step"] = len(frames)
        frame.info["relaxed_end_point"] = False
        frames.append(frame)
        clock[0] = now

    optimizer = BFGS(target, logfile=None)
    optimizer.attach(record, interval=1)
    converged = optimizer.run(fmax=fmax, steps=max_steps)
    frames[-1].info["relaxed_end_point"] = bool(converged)
    return frames


# --------------------------------------------------------------------------- cost


# Fitted to the single points of the bundled datasets (GPAW 26.7, one core of
# the 2-core course machine shared with other work, 800 eV, rattled cells
# without symmetry): 8-atom MgO 18 s and 12-atom Li2O 25-39 s at 4 k-points.
# t ≈ SECONDS_OVERHEAD + SECONDS_PER_UNIT · n_k(irreducible) · n_atoms² · (ecut / 800 eV)^1.5
SECONDS_PER_UNIT = 0.06
SECONDS_OVERHEAD = 2.0


def irreducible_kpoints(size: Sequence[int], *, gamma_centred: bool) -> int:
    """k-points left of a Monkhorst-Pack grid by time reversal alone (k ≡ -k kept once)."""
    self_inverse = math.prod(1 if n % 2 else (2 if gamma_centred else 0) for n in size)
    return (math.prod(size) + self_inverse) // 2


def estimate_seconds(atoms: Atoms, settings: DFTSettings = DEFAULT_SETTINGS) -> float:
    """Rough one-core wall time (s) of one single point of ``atoms`` with ``settings``."""
    n_k = irreducible_kpoints(settings.kpts(atoms), gamma_centred=settings.gamma_centred)
    size = max(len(atoms), 2) ** 2
    if atoms.info.get("molecule"):
        spins = 2 if np.any(atoms.get_initial_magnetic_moments()) else 1
        size *= 20 * spins  # a box of vacuum costs like a crystal of ~10 atoms
    scale = (settings.ecut_eV / 800.0) ** 1.5
    return SECONDS_OVERHEAD + SECONDS_PER_UNIT * n_k * size * scale


def estimate_time(
    structures: Iterable[Atoms], settings: DFTSettings = DEFAULT_SETTINGS, *, workers: int = 1
) -> float:
    """Rough wall time (s) to single-point all ``structures`` on ``workers`` cores."""
    total = sum(estimate_seconds(atoms, settings) for atoms in structures)
    return total / max(1, workers)


# --------------------------------------------------------------------------- batch runner


@dataclass(frozen=True)
class Job:
    """One structure to label: ``kind`` is "single" or "relax" (``options`` go to ``relax``)."""

    key: str
    atoms: Atoms = field(compare=False)
    kind: str = "single"
    options: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LabelReport:
    """What one ``label_structures`` call did; ``n_failed`` counts all logged failures."""

    n_jobs: int
    n_skipped: int
    n_computed: int
    n_failed: int
    failures: tuple[dict, ...]
    wall_seconds: float

    @property
    def n_done(self) -> int:
        return self.n_skipped + self.n_computed

    def as_dict(self) -> dict:
        return asdict(self)


def run_job(job: Job, settings: DFTSettings) -> list[Atoms]:
    """Label one job with GPAW: one frame for a single point, one per step for a relaxation."""
    if job.kind == "single":
        frames = [single_point(job.atoms, settings)]
    elif job.kind == "relax":
        frames = relax(job.atoms, settings, **job.options)
    else:
        raise ValueError(f"job {job.key}: unknown kind {job.kind!r} (use 'single' or 'relax')")
    for frame in frames:
        for key, value in job.atoms.info.items():
            frame.info.setdefault(key, value)
    return frames


def result_path(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / f"{key}.extxyz"


def read_failures(out_dir: Path) -> dict[str, dict]:
    """Logged failures by job key (the latest entry per key)."""
    path = Path(out_dir) / FAILURES_FILE
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {record["key"]: record for record in records}


def _write_result(path: Path, frames: Sequence[Atoms]) -> None:
    """Write one job's frames so that a reader (or a restart) never sees half a file."""
    buffer = io.StringIO()
    ase.io.write(buffer, list(frames), format="extxyz")
    atomic_write_text(path, buffer.getvalue())


def _log_failure(out_dir: Path, key: str, error: str) -> dict:
    record = {"key": key, "error": error, "time": round(time.time())}
    with open(Path(out_dir) / FAILURES_FILE, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    logger.warning("job %s failed and is left out: %s", key, record["error"])
    return record


def _lock_path(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / f".{key}.lock"


def _claim(out_dir: Path, key: str, run_id: str = "") -> bool:
    """Take the job ``key`` for this process (a lock file "pid host run"); False if another has it.

    Several runners (``course make-data`` twice, a pool, Dask workers on
    several machines) can so share one dataset; ``_lock_is_held`` says which
    locks are taken over.
    """
    lock = _lock_path(out_dir, key)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _lock_is_held(lock, run_id):
                return False
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()} {socket.gethostname()} {run_id}".strip())
        return True
    return False


def _lock_is_held(lock: Path, run_id: str) -> bool:
    """Whether a lock still stands: fresh, and its owner may be alive.

    A lock older than ``STALE_LOCK_SECONDS`` (its pid may have been reused)
    falls, as does one of a dead process on this machine. A process on another
    machine cannot be seen from here: its lock stands until stale. A lock of
    the same ``run_id`` is an earlier attempt of this job in this very run,
    which Dask retries only after the worker running it died: it falls too.
    A lock written by an older version holds the pid alone.
    """
    try:
        fields = lock.read_text().split()
        age_s = time.time() - lock.stat().st_mtime
        pid = int(fields[0]) if fields else 0
    except (OSError, ValueError):
        return True
    if age_s >= STALE_LOCK_SECONDS or (run_id and fields[2:] == [run_id]):
        return False
    if not fields:
        return age_s < 60  # created this instant, its pid not written yet
    host = fields[1] if len(fields) > 1 else socket.gethostname()
    return host != socket.gethostname() or _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_one(
    job: Job, *, compute, settings: DFTSettings, out_dir: Path, run_id: str = ""
) -> tuple[str, str, str]:
    """Label one job and write its result file; return (key, status, error message).

    ``status`` is "done", "failed", "skipped" (result already there) or
    "busy" (another runner holds it). Runs in the worker process (pool or
    Dask); what a killed earlier attempt half-wrote is removed first.
    """
    from course_lib.distributed import remove_partial_writes

    path = result_path(out_dir, job.key)
    if path.exists():
        return job.key, "skipped", ""
    if not _claim(out_dir, job.key, run_id):
        return job.key, "busy", ""
    remove_partial_writes(path)
    try:
        frames = compute(job, settings)
        _write_result(path, frames)
        return job.key, "done", ""
    except Exception as err:  # SCF failure or any other error: reported, not raised
        return job.key, "failed", f"{type(err).__name__}: {err}"
    finally:
        _lock_path(out_dir, job.key).unlink(missing_ok=True)


def label_structures(
    jobs: Sequence[Job],
    out_dir: str | os.PathLike,
    settings: DFTSettings = DEFAULT_SETTINGS,
    *,
    workers: int = 1,
    retry_failed: bool = False,
    compute: Callable[[Job, DFTSettings], list[Atoms]] = run_job,
    progress: bool = True,
    scheduler=None,
) -> LabelReport:
    """Label ``jobs`` into ``out_dir/<key>.extxyz``, one file per job, resumably.

    Jobs whose result file exists are skipped; so are jobs logged in
    ``failures.jsonl`` unless ``retry_failed``, and jobs another live runner
    is working on. Failures (e.g. an SCF that does not converge) are appended
    to ``failures.jsonl`` with the error, left out of the results and counted
    in the report. ``workers > 1`` runs a process pool (one core each);
    ``compute`` must then be a module-level function.

    ``scheduler`` (``"local"``, a scheduler address or a ``distributed.Client``,
    see ``course_lib.distributed``) runs each job as a Dask task instead, with
    Dask's progress bar; ``out_dir`` must then be on a filesystem the workers
    share, and a job whose worker keeps dying (e.g. out of memory) is logged
    as failed.
    """
    if scheduler is not None and workers > 1:
        raise ValueError(
            f"workers={workers} sizes the local process pool; with a Dask scheduler its "
            "workers run the jobs: pass one of the two"
        )
    out_dir = Path(out_dir).absolute()  # Dask workers may start elsewhere
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("job keys must be unique")
    failed_before = {} if retry_failed else read_failures(out_dir)
    done_before = {job.key for job in jobs if result_path(out_dir, job.key).exists()}
    todo = [job for job in jobs if job.key not in done_before and job.key not in failed_before]
    failures = [
        failed_before[key] for key in keys if key in failed_before and key not in done_before
    ]
    start = time.perf_counter()
    options = dict(compute=compute, settings=settings, out_dir=out_dir, run_id=uuid.uuid4().hex)
    if scheduler is not None:
        outcomes = _execute_on_cluster(todo, scheduler, progress=progress, **options)
    else:
        outcomes = _execute(todo, workers, **options)
    bar = _progress_bar(
        total=len(jobs), initial=len(jobs) - len(todo), enabled=progress and scheduler is None
    )
    counts = {"done": 0, "skipped": 0, "busy": 0}
    for key, status, error in outcomes:
        if status == "failed":
            failures.append(_log_failure(out_dir, key, error))
        else:
            counts[status] += 1
        bar.update(1)
    bar.close()
    report = LabelReport(
        n_jobs=len(jobs),
        n_skipped=len(done_before) + counts["skipped"] + counts["busy"],
        n_computed=counts["done"],
        n_failed=len(failures),
        failures=tuple(failures),
        wall_seconds=round(time.perf_counter() - start, 1),
    )
    logger.info(
        "%d jobs: %d already done or taken by another runner, %d computed, %d failed (see %s)",
        report.n_jobs,
        report.n_skipped,
        report.n_computed,
        report.n_failed,
        out_dir / FAILURES_FILE,
    )
    return report


def _execute(jobs: Sequence[Job], workers: int, **options):
    """``_run_one`` outcomes of ``jobs``, in this process or a pool of ``workers`` processes."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _run_one(job, **options)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_run_one, job, **options) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def _execute_on_cluster(jobs: Sequence[Job], scheduler, *, progress: bool, **options):
    """``_run_one`` outcomes of ``jobs`` run as Dask tasks, as they end.

    A job whose worker died on every attempt (``KilledWorker``) is reported
    failed; any other task error is raised.
    """
    if not jobs:
        return
    from distributed import KilledWorker

    from course_lib.distributed import dask_client, map_unordered, require_visible

    with dask_client(scheduler) as client:
        tasks = map_unordered(
            client, _run_one, jobs, name="dft-label", progress=progress, **options
        )
        for index, future in tasks:
            try:
                key, status, error = future.result()
            except KilledWorker as err:
                key, status, error = jobs[index].key, "failed", f"KilledWorker: {err}"
            if status == "done":
                require_visible(result_path(options["out_dir"], key))
            yield key, status, error


def _progress_bar(*, total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="job", desc="DFT", disable=not enabled)


# --------------------------------------------------------------------------- results -> dataset


def read_results(out_dir: str | os.PathLike, keys: Iterable[str] | None = None) -> list[Atoms]:
    """All result frames in ``out_dir`` (in ``keys`` order, or sorted by file name)."""
    out_dir = Path(out_dir)
    paths = (
        [result_path(out_dir, key) for key in keys]
        if keys is not None
        else sorted(out_dir.glob("*.extxyz"))
    )
    frames: list[Atoms] = []
    for path in paths:
        if path.exists():
            frames.extend(ase.io.read(path, index=":", format="extxyz"))
    return frames


def assemble_dataset(
    out_dir: str | os.PathLike,
    dataset: str | os.PathLike,
    *,
    settings: DFTSettings = DEFAULT_SETTINGS,
    provenance: dict,
    keys: Iterable[str] | None = None,
    drop_info: Iterable[str] = (),
) -> tuple[Path, list[Atoms]]:
    """Gather the results in ``out_dir`` into one dataset file with its provenance.

    Raises ``DFTError`` if any frame was labelled with settings other than
    ``settings`` (by fingerprint). CPU seconds and settings are added to the
    provenance.
    """
    frames = read_results(out_dir, keys)
    if not frames:
        raise DFTError(f"no results in {out_dir} yet; run `course make-data` first")
    foreign = {f.info.get(FINGERPRINT_KEY) for f in frames} - {settings.fingerprint}
    if foreign:
        raise DFTError(
            f"{out_dir} holds frames labelled with other DFT settings (fingerprints "
            f"{sorted(map(str, foreign))}); move them away or label them again"
        )
    cpu_seconds = sum(float(f.info.get(SECONDS_KEY, 0.0)) for f in frames)
    for frame in frames:
        for key in drop_info:
            frame.info.pop(key, None)
    record = {
        **provenance,
        "settings": settings.as_dict(),
        "settings_fingerprint": settings.fingerprint,
        "cpu_seconds": round(cpu_seconds, 1),
        "cpu_seconds_note": (
            "sum over frames of the wall-clock time of each one-core GPAW calculation "
            "(an upper bound of the CPU time where the machine was shared)"
        ),
        "info_keys": sorted({k for f in frames for k in f.info}),
    }
    path = write_dataset(dataset, frames, record)
    return path, frames


# --------------------------------------------------------------------------- convenience


def structure_key(atoms: Atoms) -> str:
    """A stable key for a structure: sha256 of its numbers, positions, cell and pbc (rounded)."""
    digest = hashlib.sha256()
    digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.round(atoms.positions, 6).tobytes())
    digest.update(np.round(np.asarray(atoms.cell), 6).tobytes())
    digest.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return digest.hexdigest()[:16]


def label(
    structures: Sequence[Atoms],
    *,
    settings: DFTSettings = DEFAULT_SETTINGS,
    workers: int = 1,
    out_dir: str | os.PathLike | None = None,
    scheduler=None,
) -> list[Atoms]:
    """DFT single points of ``structures`` with ``settings``; labelled copies, in order.

    Logs a time estimate first. Results are cached under ``out_dir`` (default
    ``course-work/dft/labels``), so an interrupted call resumes where it
    stopped. Structures whose SCF fails are left out, with a warning.
    ``scheduler`` runs them on Dask (see ``label_structures``).
    """
    from course_lib.paths import work_dir

    structures = list(structures)
    out_dir = Path(out_dir) if out_dir is not None else work_dir("dft", "labels")
    logger.info(
        "labelling %d structures with GPAW; estimated %.0f s on %d core(s)",
        len(structures),
        estimate_time(structures, settings, workers=workers),
        workers,
    )
    require_gpaw()
    jobs = [Job(key=structure_key(a), atoms=a) for a in structures]
    unique = list({job.key: job for job in jobs}.values())
    label_structures(unique, out_dir, settings, workers=workers, scheduler=scheduler)
    labelled = []
    for job in jobs:
        path = result_path(out_dir, job.key)
        if path.exists():
            labelled.append(ase.io.read(path, index=0, format="extxyz"))
    return labelled


def write_json(path: Path, payload: dict) -> None:
    atomic_write_text(Path(path), json.dumps(payload, indent=2) + "\n")
