"""Datasets: lists of ``ase.Atoms`` carrying DFT labels, stored as extxyz.

Labels use the keys that ``mace_run_train`` reads, so every file here can be
handed to mace-torch unchanged:

* ``atoms.info["REF_energy"]``: total energy, eV
* ``atoms.arrays["REF_forces"]``: forces, eV/Å, shape (n_atoms, 3)
* ``atoms.info["REF_stress"]``: stress, eV/Å³, Voigt order (xx, yy, zz, yz, xz, xy),
  ASE's sign convention (positive = tensile)

Each ``NAME.extxyz`` has a provenance sidecar ``NAME.json`` saying how its
labels were made (method, code and version, settings, date, licence).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from course_lib.paths import DATASETS_DIR

ENERGY_KEY = "REF_energy"
FORCES_KEY = "REF_forces"
STRESS_KEY = "REF_stress"


class DatasetError(ValueError):
    """A dataset file or frame is unusable; the message names file, frame and key."""


class OutputPathError(ValueError):
    """An output file cannot be written where asked: checked before any work is done."""


@dataclass(frozen=True)
class DatasetInfo:
    """What ``course datasets`` shows about one bundled dataset."""

    name: str
    path: Path
    n_frames: int
    elements: tuple[str, ...]
    provenance: dict = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "n_frames": self.n_frames,
            "elements": list(self.elements),
            "description": self.provenance.get("description", ""),
            "method": self.provenance.get("method", ""),
            "licence": self.provenance.get("licence", ""),
        }


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves any previous
    file intact. The file gets the permissions a plain ``open`` would give
    (mkstemp's are owner-only, which a shared classroom copy cannot read).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_output_file(path: str | os.PathLike) -> Path:
    """``path`` if a file can be written there, else ``OutputPathError`` saying why.

    Meant for the start of a long computation, so that a result is never lost
    to an output path that was unusable from the beginning: ``path`` must not
    be a directory, and its nearest existing folder must be a writable directory.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(
            f"{path} is a directory; give a file path for the output, e.g. {path / 'NAME.model'}"
        )
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {path}: no permission to write in {folder}")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers never see a half-written file."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def dataset_names(name_or_path: str | os.PathLike) -> list[str | os.PathLike]:
    """The datasets a name stands for: a corpus may be several joined by commas.

    ``"mini-mptrj,mini-omat"`` (how ``course pretrain --corpus`` and the model
    registry name course-mini-omat's corpus) gives both names; any other
    name or path gives itself.
    """
    if not (isinstance(name_or_path, str) and "," in name_or_path) or Path(name_or_path).is_file():
        return [name_or_path]  # one name, or one file whose path holds a comma
    parts = [part.strip() for part in name_or_path.split(",")]
    if not all(parts):
        raise DatasetError(f"{name_or_path!r}: a dataset name is missing between the commas")
    return parts


def dataset_paths(name_or_path: str | os.PathLike) -> list[Path]:
    """The extxyz path of every dataset ``name_or_path`` stands for (see ``dataset_names``)."""
    return [dataset_path(part) for part in dataset_names(name_or_path)]


def dataset_sha256(name_or_path: str | os.PathLike) -> str:
    """sha256 of a dataset file; of a joined corpus, its parts' joined by ``+``."""
    return "+".join(sha256_of(path) for path in dataset_paths(name_or_path))


def dataset_path(name_or_path: str | os.PathLike) -> Path:
    """Resolve a bundled dataset name (``"li2o-md"``) or a file path to an extxyz path."""
    if len(dataset_names(name_or_path)) > 1:
        raise DatasetError(
            f"{name_or_path!r} names several datasets, not one file; "
            "use dataset_paths() for their files or read_dataset() for their frames"
        )
    candidate = Path(name_or_path)
    if candidate.suffix in {".xyz", ".extxyz"}:
        if not candidate.exists():
            raise FileNotFoundError(f"dataset file {candidate} does not exist")
        return candidate
    bundled = DATASETS_DIR / f"{name_or_path}.extxyz"
    if bundled.exists():
        return bundled
    known = ", ".join(info.name for info in list_datasets()) or "none"
    raise FileNotFoundError(
        f"no dataset called {name_or_path!r}; bundled datasets: {known}. "
        "Pass a path to an .extxyz file to use your own."
    )


def read_provenance(path: str | os.PathLike) -> dict:
    """The provenance sidecar of a dataset file (empty dict if it has none)."""
    sidecar = Path(path).with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.exists() else {}


def write_dataset(path: str | os.PathLike, frames: Sequence[Atoms], provenance: dict) -> Path:
    """Write labelled frames to ``path`` (extxyz) with a provenance sidecar, atomically.

    ``provenance`` should at least say ``method``, ``code``, ``settings``,
    ``licence`` and ``how_made``; the frame count, elements, date and file
    checksum are added here.
    """
    path = Path(path)
    if path.suffix != ".extxyz":
        raise ValueError(f"dataset files end in .extxyz, got {path.name}")
    validate_frames(frames, source=str(path))
    with atomic_output(path) as tmp:
        ase.io.write(tmp, list(frames), format="extxyz")
    record = {
        "name": path.stem,
        **provenance,
        "n_frames": len(frames),
        "elements": sorted({s for atoms in frames for s in atoms.get_chemical_symbols()}),
        "sha256": sha256_of(path),
    }
    record.setdefault("date", _today())
    atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return path


def read_dataset(
    name_or_path: str | os.PathLike,
    *,
    require_stress: bool = False,
    require_pbc: bool = True,
    allowed_elements: Iterable[str] | None = None,
) -> list[Atoms]:
    """Read and validate a labelled dataset (bundled name or extxyz path).

    Several names joined by commas (``"mini-mptrj,mini-omat"``, a model's
    pre-training corpus) read as one list, each file's frames in turn; a
    fixed ``info["split"]`` stays with its frame.

    Raises ``DatasetError`` naming the file, frame and key for missing labels,
    non-finite values, shape mismatches, non-periodic cells (when
    ``require_pbc``) and elements outside ``allowed_elements`` (e.g. the
    elements a model was trained on).
    """
    frames, fixed = [], set()
    for path in dataset_paths(name_or_path):
        part = _read_frames(path, format="extxyz")
        validate_frames(
            part,
            source=str(path),
            require_stress=require_stress,
            require_pbc=require_pbc,
            allowed_elements=allowed_elements,
        )
        fixed.add(all("split" in atoms.info for atoms in part))
        frames += part
    if len(fixed) > 1:  # train_test_split would drop the fixed split of the parts that have one
        raise DatasetError(
            f"{name_or_path!r}: some parts carry a fixed split (info['split']) and some do not; "
            "give every part one, or none"
        )
    return frames


def read_structures(name_or_path: str | os.PathLike) -> list[Atoms]:
    """Every structure of a file ASE reads (any format), or of a bundled dataset; labels optional.

    Raises ``DatasetError`` naming the file for an empty, truncated or
    unreadable file, as ``read_dataset`` does.
    """
    candidate = Path(name_or_path)
    path = candidate if candidate.is_file() else dataset_path(name_or_path)
    return _read_frames(path, format="extxyz" if path.suffix in {".xyz", ".extxyz"} else None)


def _read_frames(path: Path, *, format: str | None) -> list[Atoms]:
    """All frames of ``path``; ``DatasetError`` (one line) for an empty or malformed file."""
    kind = f"{format} file" if format else "structure file ASE can read"
    if path.is_file() and path.stat().st_size == 0:
        raise DatasetError(f"{path}: the file is empty")
    try:
        frames = ase.io.read(path, index=":", format=format)
    except Exception as err:  # ase raises many types for a malformed file
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DatasetError(f"{path}: not a readable {kind} ({reason})") from err
    if not frames:
        raise DatasetError(f"{path}: contains no frames")
    return frames


def validate_frames(
    frames: Sequence[Atoms],
    *,
    source: str = "<frames>",
    require_stress: bool = False,
    require_pbc: bool = True,
    allowed_elements: Iterable[str] | None = None,
) -> None:
    """Check labels and geometry of every frame; raise ``DatasetError`` on the first problem."""
    if len(frames) == 0:
        raise DatasetError(f"{source}: contains no frames")
    allowed = set(allowed_elements) if allowed_elements is not None else None
    for index, atoms in enumerate(frames):
        where = f"{source}, frame {index}"
        if ENERGY_KEY not in atoms.info:
            raise DatasetError(f"{where}: missing energy label info[{ENERGY_KEY!r}]")
        if not np.isfinite(float(atoms.info[ENERGY_KEY])):
            raise DatasetError(f"{where}: {ENERGY_KEY} is not finite")
        if FORCES_KEY not in atoms.arrays:
            raise DatasetError(f"{where}: missing force label arrays[{FORCES_KEY!r}]")
        forces = np.asarray(atoms.arrays[FORCES_KEY])
        if forces.shape != (len(atoms), 3):
            raise DatasetError(
                f"{where}: {FORCES_KEY} has shape {forces.shape}, expected ({len(atoms)}, 3)"
            )
        if not np.all(np.isfinite(forces)):
            raise DatasetError(f"{where}: {FORCES_KEY} contains NaN or inf")
        if STRESS_KEY in atoms.info:
            stress = np.asarray(atoms.info[STRESS_KEY], dtype=float)
            if stress.shape not in {(6,), (3, 3)}:
                raise DatasetError(
                    f"{where}: {STRESS_KEY} has shape {stress.shape}, expected (6,) or (3, 3)"
                )
            if not np.all(np.isfinite(stress)):
                raise DatasetError(f"{where}: {STRESS_KEY} contains NaN or inf")
        elif require_stress:
            raise DatasetError(f"{where}: missing stress label info[{STRESS_KEY!r}]")
        if require_pbc and not (atoms.pbc.all() and atoms.cell.rank == 3):
            raise DatasetError(
                f"{where}: cell is not periodic in 3D (pbc={atoms.pbc.tolist()}); "
                "pass require_pbc=False for molecules"
            )
        if allowed is not None:
            unknown = sorted(set(atoms.get_chemical_symbols()) - allowed)
            if unknown:
                raise DatasetError(
                    f"{where}: elements {unknown} are not covered (allowed: {sorted(allowed)})"
                )


def list_datasets(folder: Path = DATASETS_DIR) -> list[DatasetInfo]:
    """The bundled datasets, read from their provenance sidecars (files are not parsed)."""
    infos = []
    for path in sorted(folder.glob("*.extxyz")):
        provenance = read_provenance(path)
        infos.append(
            DatasetInfo(
                name=path.stem,
                path=path,
                n_frames=int(provenance.get("n_frames", _count_frames(path))),
                elements=tuple(provenance.get("elements", ())),
                provenance=provenance,
            )
        )
    return infos


def energies(frames: Sequence[Atoms]) -> np.ndarray:
    """Reference total energies, eV."""
    return np.array([float(atoms.info[ENERGY_KEY]) for atoms in frames])


def forces(frames: Sequence[Atoms]) -> list[np.ndarray]:
    """Reference forces per frame, eV/Å."""
    return [np.asarray(atoms.arrays[FORCES_KEY], dtype=float) for atoms in frames]


def n_atoms(frames: Sequence[Atoms]) -> np.ndarray:
    return np.array([len(atoms) for atoms in frames])


def force_scale_meV_per_A(frames: Sequence[Atoms]) -> float:
    """Mean |F| component of the DFT labels, meV/Å: the size a force MAE is read against.

    Predicting zero force everywhere has exactly this MAE.
    """
    return float(np.abs(np.concatenate(forces(frames))).mean() * 1e3)


def group_indices(frames: Sequence[Atoms], key: str) -> dict[object, list[int]]:
    """Indices of the frames per value of ``info[key]`` (None where absent), in ascending order.

    Values that do not compare (mixed types, None) are ordered by their text.
    """
    groups: dict[object, list[int]] = {}
    for index, atoms in enumerate(frames):
        groups.setdefault(atoms.info.get(key), []).append(index)
    try:
        order = sorted(groups)
    except TypeError:
        order = sorted(groups, key=str)
    return {value: groups[value] for value in order}


def group_by(frames: Sequence[Atoms], key: str) -> dict[object, list[Atoms]]:
    """Frames grouped by ``info[key]``, e.g. ``"temperature_K"`` (see ``group_indices``)."""
    return {
        value: [frames[i] for i in indices] for value, indices in group_indices(frames, key).items()
    }


def n_labels(frames: Sequence[Atoms], *, with_forces: bool = True) -> int:
    """Scalar labels a training set offers: one energy, plus 3N force components if used."""
    count = len(frames)
    if with_forces:
        count += 3 * int(n_atoms(frames).sum())
    return count


def train_test_split(
    frames: Sequence[Atoms],
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify_key: str | None = None,
) -> tuple[list[Atoms], list[Atoms]]:
    """Seeded random split; with ``stratify_key`` each ``info[key]`` group is split alike.

    Frames that already carry ``info["split"]`` ("train"/"test") keep their
    fixed split, so a bundled test set never changes between runs.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if frames and all("split" in atoms.info for atoms in frames):
        train = [atoms for atoms in frames if atoms.info["split"] == "train"]
        test = [atoms for atoms in frames if atoms.info["split"] == "test"]
    else:
        rng = np.random.default_rng(seed)
        groups: dict[object, list[int]] = {}
        for index, atoms in enumerate(frames):
            key = atoms.info.get(stratify_key) if stratify_key else None
            groups.setdefault(key, []).append(index)
        test_idx: set[int] = set()
        for indices in groups.values():
            shuffled = rng.permutation(indices)
            test_idx.update(shuffled[: max(1, round(test_fraction * len(indices)))].tolist())
        train = [atoms for i, atoms in enumerate(frames) if i not in test_idx]
        test = [atoms for i, atoms in enumerate(frames) if i in test_idx]
    if not train or not test:
        raise DatasetError(
            f"split of {len(frames)} frames left {len(train)} training and {len(test)} test "
            "frames; need both non-empty (at least 2 frames, and with info['split'] at least "
            "one 'train' and one 'test')"
        )
    return train, test


def subset(frames: Sequence[Atoms], n: int, *, seed: int = 0) -> list[Atoms]:
    """``n`` frames drawn without replacement (seeded); nested for growing ``n`` at one seed."""
    if n > len(frames):
        raise DatasetError(f"asked for {n} frames but the pool has only {len(frames)}")
    if n < 1:
        raise DatasetError(f"asked for {n} frames; need at least 1")
    order = np.random.default_rng(seed).permutation(len(frames))
    return [frames[i] for i in order[:n]]


def subset_by(frames: Sequence[Atoms], key: str, n: int | None, *, seed: int = 0) -> list[Atoms]:
    """Up to ``n`` frames of each ``info[key]`` group (seeded, ``subset``); None: every frame.

    Groups follow ``group_by``'s order; a group smaller than ``n`` is taken whole.
    """
    if n is None:
        return list(frames)
    return [
        atoms
        for group in group_by(frames, key).values()
        for atoms in subset(group, min(n, len(group)), seed=seed)
    ]


def filter_elements(frames: Iterable[Atoms], elements: Iterable[str]) -> list[Atoms]:
    """Frames made only of ``elements`` (the chapter's "filter to your chemistry")."""
    allowed = set(elements)
    return [atoms for atoms in frames if set(atoms.get_chemical_symbols()) <= allowed]


def _count_frames(path: Path) -> int:
    return len(ase.io.read(path, index=":", format="extxyz"))


def _today() -> str:
    import datetime

    return datetime.date.today().isoformat()
