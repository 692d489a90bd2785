"""A seeded random subsample of the real MPtrj, read over HTTP range requests.

MPtrj (Deng et al. 2023) is the training set of MACE-MP-0 and CHGNet:
1,580,395 frames of PBE/PBE+U relaxation trajectories of 145,923 Materials
Project materials. matbench-discovery publishes it as one zip archive
(figshare file 49034296, ``2024-09-03-mp-trj.extxyz.zip``, 1.52 GB) with one
member ``mp-<id>.extxyz`` per material, each a multi-frame extxyz with keys
``energy`` (eV), ``forces`` (eV/Å), ``stress`` and ``mp_id``.

:func:`sample_mptrj` draws materials at random (seeded), reads only their
members - the zip's central directory tells where each member lies, so a
:class:`HTTPRangeFile` fetches just those bytes - and keeps
``frames_per_material`` random frames of each (default 1, for the widest
chemistry). zipfile checks every member's CRC-32; the archive's size is
checked against the published one; the sample is cached under
``work_dir("mptrj")`` with a sha256 sidecar and re-read from there.

Nothing here ships an MPtrj artefact: without a network the sampler raises
:class:`MPtrjUnavailable`, and :func:`reference_histograms` then falls back to
the bundled corpus and says so in a warning and in the histograms' ``source``.
"""

from __future__ import annotations

import io
import logging
import os
import re
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from course_lib.data import (
    ENERGY_KEY,
    FORCES_KEY,
    read_dataset,
    read_provenance,
    sha256_of,
    write_dataset,
)
from course_lib.paths import work_dir

logger = logging.getLogger(__name__)

MPTRJ_URL = "https://figshare.com/ndownloader/files/49034296"
MPTRJ_FILENAME = "2024-09-03-mp-trj.extxyz.zip"
MPTRJ_SIZE_BYTES = 1_521_713_089  # as published for figshare file 49034296
MPTRJ_MD5 = "7f433171e4e5f2ef9304dccd42d5488f"  # whole archive; checked for a full local copy
FALLBACK_CORPUS = "mini-mptrj"


class MPtrjUnavailable(OSError):
    """MPtrj could not be read (offline, server refused, archive changed)."""


@dataclass(frozen=True)
class MPtrjSample:
    """Frames drawn from MPtrj and where they came from."""

    frames: list[Atoms]
    path: Path  # cached extxyz (course labels: REF_energy eV, REF_forces eV/Å)
    source: str  # URL or local zip the frames were read from
    seed: int
    n_materials: int
    sha256: str

    def __str__(self) -> str:
        return (
            f"MPtrj sample: {len(self.frames)} frames of {self.n_materials} materials "
            f"(seed {self.seed}) from {self.source}, cached at {self.path}"
        )


class HTTPRangeFile(io.RawIOBase):
    """A read-only, seekable remote file read with HTTP range requests.

    A read is served from the last :meth:`prefetch` ed block when it lies
    inside it, else fetched with one request of exactly the bytes asked for.
    Prefetching each sampled zip member (header and compressed data) makes it
    one request. Redirects (figshare -> storage) are followed on every
    request, so expiring signed URLs are never reused. ``requests`` and
    ``bytes_fetched`` count the traffic.
    """

    def __init__(self, url: str, *, timeout_s: float = 60.0):
        super().__init__()
        self.url = url
        self.timeout_s = timeout_s
        self.requests = 0
        self.bytes_fetched = 0
        self._position = 0
        self._block_start = 0
        self._block = b""
        self.size = self._remote_size()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        origin = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, origin + offset)
        return self._position

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self._position)
        if n <= 0:
            return 0
        start = self._position - self._block_start
        if 0 <= start and start + n <= len(self._block):
            data = self._block[start : start + n]
        else:
            data = self._fetch(self._position, self._position + n - 1)
        buffer[:n] = data
        self._position += n
        return n

    def prefetch(self, first: int, last: int) -> None:
        """Fetch bytes ``first..last`` (inclusive) in one request for the reads that follow."""
        last = min(last, self.size - 1)
        self._block_start, self._block = first, self._fetch(first, last)

    def _remote_size(self) -> int:
        request = self._request(0, 0)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                content_range = response.headers.get("Content-Range", "")
                if response.status != 206 or "/" not in content_range:
                    raise MPtrjUnavailable(f"{self.url} does not serve byte ranges")
                return int(content_range.rsplit("/", 1)[1])
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise MPtrjUnavailable(f"cannot reach {self.url} ({err}); are you offline?") from err

    def _fetch(self, first: int, last: int) -> bytes:
        try:
            with urllib.request.urlopen(
                self._request(first, last), timeout=self.timeout_s
            ) as response:
                if response.status != 206:
                    raise MPtrjUnavailable(f"{self.url} ignored the range request")
                data = response.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise MPtrjUnavailable(f"lost {self.url} while reading ({err})") from err
        if len(data) != last - first + 1:
            raise MPtrjUnavailable(
                f"asked {self.url} for {last - first + 1} bytes, got {len(data)}"
            )
        self.requests += 1
        self.bytes_fetched += len(data)
        return data

    def _request(self, first: int, last: int) -> urllib.request.Request:
        headers = {"Range": f"bytes={first}-{last}", "User-Agent": "foundation-mlip-course"}
        return urllib.request.Request(self.url, headers=headers)


def sample_mptrj(
    n_frames: int = 10_000,
    *,
    seed: int = 0,
    source: str | os.PathLike = MPTRJ_URL,
    frames_per_material: int = 1,
    verify: bool = True,
    cache: bool = True,
    progress: bool = True,
) -> MPtrjSample:
    """A seeded random subsample of MPtrj: ``n_frames`` frames of random materials.

    ``source`` is the archive's URL (default: figshare) or a local zip in the
    same format. Materials are visited in a seeded random order and up to
    ``frames_per_material`` random frames kept from each, until ``n_frames``
    are collected; only the visited members are read. The published archive
    (the default URL, or a local file named ``2024-09-03-mp-trj.extxyz.zip``)
    must have the published size, and a full local copy the published md5
    (``verify=False`` skips both, e.g. for a newer release).
    Raises :class:`MPtrjUnavailable` when the archive cannot be read.

    Over HTTP this costs about one request per sampled material (~10 kB
    each) plus one for the zip's central directory (~10 MB): for the
    default 10^4 frames expect some 100 MB and tens of minutes, once; the
    sample is cached and later calls read the cache.
    """
    if n_frames < 1 or frames_per_material < 1:
        raise ValueError(
            f"need n_frames >= 1 and frames_per_material >= 1, got {n_frames}, {frames_per_material}"
        )
    path = _cache_path(n_frames, seed, frames_per_material, source)
    if cache and path.exists():
        cached = _read_cached(path)
        if cached is not None:
            return cached
    with _open_archive(source, verify=verify) as archive:
        members = sorted(name for name in archive.namelist() if name.endswith(".extxyz"))
        if not members:
            raise MPtrjUnavailable(
                f"{source} has no .extxyz members (one per material); is it the MPtrj archive?"
            )
        frames, n_materials = _draw_frames(
            archive, members, n_frames, seed, frames_per_material, progress
        )
    if len(frames) < n_frames:
        logger.warning(
            "MPtrj archive %s holds only %d frames; asked for %d", source, len(frames), n_frames
        )
    provenance = {
        "description": f"seeded random subsample of MPtrj ({len(frames)} frames, {n_materials} materials)",
        "method": "PBE/PBE+U (VASP), Materials Project relaxation trajectories",
        "code": "MPtrj via the matbench-discovery extxyz export",
        "settings": {
            "seed": seed,
            "frames_per_material": frames_per_material,
            "source": str(source),
        },
        "licence": "CC BY 4.0 (Materials Project data)",
        "how_made": "course_lib.mptrj.sample_mptrj",
    }
    write_dataset(path, frames, provenance)
    return MPtrjSample(
        frames=frames,
        path=path,
        source=str(source),
        seed=seed,
        n_materials=n_materials,
        sha256=sha256_of(path),
    )


def _open_archive(source: str | os.PathLike, *, verify: bool) -> zipfile.ZipFile:
    """The archive as a ZipFile over a local file or over HTTP range requests."""
    published = verify and (str(source) == MPTRJ_URL or Path(str(source)).name == MPTRJ_FILENAME)
    if str(source).startswith(("http://", "https://")):
        handle: io.RawIOBase | io.BufferedIOBase = HTTPRangeFile(str(source))
        size = handle.size
    else:
        path = Path(source)
        if not path.exists():
            raise MPtrjUnavailable(f"no archive at {path}")
        handle, size = path.open("rb"), path.stat().st_size
    if published and size != MPTRJ_SIZE_BYTES:
        handle.close()
        raise MPtrjUnavailable(
            f"{source} is {size} bytes, not the published {MPTRJ_SIZE_BYTES}: the archive "
            "changed (pass verify=False to accept a new release)"
        )
    if published and not isinstance(handle, HTTPRangeFile):
        _check_md5(Path(source))
    try:
        return zipfile.ZipFile(handle)
    except zipfile.BadZipFile as err:
        handle.close()
        raise MPtrjUnavailable(f"{source} is not a zip archive ({err})") from err


def _draw_frames(archive, members, n_frames, seed, frames_per_material, progress):
    """Visit members in seeded random order, keeping random frames of each."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(members))
    frames: list[Atoms] = []
    n_materials = 0
    with tqdm(total=n_frames, desc="MPtrj frames", unit="frame", disable=not progress) as bar:
        for index in order:
            material = _read_member(archive, members[index])
            keep = rng.choice(
                len(material), size=min(frames_per_material, len(material)), replace=False
            )
            chosen = [material[k] for k in sorted(keep)][: n_frames - len(frames)]
            frames += chosen
            n_materials += 1
            bar.update(len(chosen))
            if len(frames) >= n_frames:
                break
    return frames, n_materials


def _read_member(archive: zipfile.ZipFile, name: str) -> list[Atoms]:
    """One material's frames with course labels (``archive.read`` checks the CRC-32)."""
    if isinstance(archive.fp, HTTPRangeFile):
        info = archive.getinfo(name)
        header = 30 + len(info.orig_filename.encode()) + len(info.extra) + 256  # + slack
        archive.fp.prefetch(info.header_offset, info.header_offset + header + info.compress_size)
    text = archive.read(name).decode()
    material = ase.io.read(io.StringIO(text), index=":", format="extxyz")
    return [_with_course_labels(atoms, Path(name).stem) for atoms in material]


def _with_course_labels(atoms: Atoms, mp_id: str) -> Atoms:
    """Move MPtrj's ``energy``/``forces`` into ``REF_energy``/``REF_forces``.

    The export does not document the stress unit, so stress is kept
    unconverted as ``info["mptrj_stress"]`` and not used as a label.
    """
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    results.update({k: atoms.info.pop(k) for k in ("energy", "stress") if k in atoms.info})
    if "forces" in atoms.arrays:
        results["forces"] = atoms.arrays.pop("forces")
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info.update({k: v for k, v in atoms.info.items() if np.isscalar(v)})
    out.info.setdefault("mp_id", mp_id)
    out.info[ENERGY_KEY] = float(results["energy"])
    out.arrays[FORCES_KEY] = np.asarray(results["forces"], dtype=float)
    if "stress" in results:
        out.info["mptrj_stress"] = np.asarray(results["stress"], dtype=float).ravel()
    return out


def _check_md5(path: Path) -> None:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != MPTRJ_MD5:
        raise MPtrjUnavailable(f"{path}: md5 {digest.hexdigest()} is not the published {MPTRJ_MD5}")


def _cache_path(n_frames: int, seed: int, frames_per_material: int, source) -> Path:
    tag = "figshare" if str(source) == MPTRJ_URL else re.sub(r"\W+", "_", Path(str(source)).stem)
    name = f"mptrj-{tag}-n{n_frames}-k{frames_per_material}-seed{seed}.extxyz"
    return work_dir("mptrj") / name


def _read_cached(path: Path) -> MPtrjSample | None:
    """The cached sample, or None (with a warning) if its checksum does not match."""
    provenance = read_provenance(path)
    digest = sha256_of(path)
    if provenance.get("sha256") != digest:
        logger.warning("cached MPtrj sample %s fails its sha256 check; drawing it again", path)
        return None
    frames = read_dataset(path)
    settings = provenance.get("settings", {})
    return MPtrjSample(
        frames=frames,
        path=path,
        source=str(settings.get("source", "")),
        seed=int(settings.get("seed", -1)),
        n_materials=len({atoms.info.get("mp_id") for atoms in frames}),
        sha256=digest,
    )
