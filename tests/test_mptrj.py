"""The MPtrj sampler, on a small zip in the matbench-discovery format (local file and localhost HTTP)."""

from __future__ import annotations

import http.server
import re
import socket
import threading
import zipfile
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from course_lib.coverage_reference import reference_histograms
from course_lib.data import ENERGY_KEY, FORCES_KEY, write_dataset
from course_lib.mptrj import (
    MPTRJ_FILENAME,
    HTTPRangeFile,
    MPtrjUnavailable,
    _read_member,
    sample_mptrj,
)

N_MATERIALS = 24


def material_frames(index: int) -> list:
    """A short 'relaxation trajectory' of one material, labelled like MPtrj."""
    crystal = [bulk("Li2O", "fluorite", a=4.62), bulk("MgO", "rocksalt", a=4.21), bulk("Si")][
        index % 3
    ]
    rng = np.random.default_rng(index)
    frames = []
    for step in range(1 + index % 4):
        atoms = crystal.copy()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=-5.0 * len(atoms) - index - 0.01 * step,
            forces=rng.normal(size=(len(atoms), 3)),
            stress=rng.normal(size=6),
        )
        atoms.info["mp_id"] = f"mp-{1000 + index}"
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A zip with one ``mp-<id>.extxyz`` member per material, like figshare file 49034296."""
    folder = tmp_path_factory.mktemp("mptrj")
    path = folder / "mini-mp-trj.extxyz.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for index in range(N_MATERIALS):
            member = folder / f"mp-{1000 + index}.extxyz"
            ase.io.write(member, material_frames(index), format="extxyz")
            zf.write(member, arcname=member.name)
    return path


@pytest.fixture(scope="module")
def served(archive):
    """The archive on a localhost HTTP server that honours Range requests."""
    payload = archive.read_bytes()

    class RangeHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            if match is None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            first, last = int(match[1]), min(int(match[2]), len(payload) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(payload)}")
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            self.wfile.write(payload[first : last + 1])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def work_dir_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WORK_DIR", str(tmp_path / "work"))


def test_sample_is_seeded_and_keeps_the_labels(archive):
    sample = sample_mptrj(10, seed=3, source=archive, cache=False, progress=False)
    assert len(sample.frames) == 10 and sample.n_materials == 10  # one frame per material
    ids = [atoms.info["mp_id"] for atoms in sample.frames]
    assert len(set(ids)) == 10
    for atoms in sample.frames:
        index = int(atoms.info["mp_id"].split("-")[1]) - 1000
        originals = material_frames(index)
        energies = [a.get_potential_energy() for a in originals]
        assert atoms.info[ENERGY_KEY] in energies  # eV, unchanged (extxyz keeps 8 digits)
        step = energies.index(atoms.info[ENERGY_KEY])
        np.testing.assert_allclose(
            atoms.arrays[FORCES_KEY], originals[step].get_forces(), atol=1e-6
        )
        assert atoms.info["mptrj_stress"].shape == (6,)  # kept raw, units undocumented
    again = sample_mptrj(10, seed=3, source=archive, cache=False, progress=False)
    assert [a.info["mp_id"] for a in again.frames] == ids
    other = sample_mptrj(10, seed=4, source=archive, cache=False, progress=False)
    assert [a.info["mp_id"] for a in other.frames] != ids


def test_several_frames_per_material(archive):
    sample = sample_mptrj(
        12, seed=0, source=archive, frames_per_material=3, cache=False, progress=False
    )
    assert len(sample.frames) == 12
    assert sample.n_materials < 12


def test_http_range_reads_fetch_only_the_sampled_members(archive, served):
    remote = HTTPRangeFile(served)
    assert remote.size == archive.stat().st_size
    with zipfile.ZipFile(remote) as zf:
        before = remote.requests
        names = sorted(zf.namelist())[:3]
        frames = [frame for name in names for frame in _read_member(zf, name)]
        assert remote.requests - before == 3  # one prefetch per member
    assert remote.bytes_fetched < archive.stat().st_size
    with zipfile.ZipFile(archive) as zf:
        local = [frame for name in names for frame in _read_member(zf, name)]
    assert [f.info[ENERGY_KEY] for f in frames] == [f.info[ENERGY_KEY] for f in local]


def test_sampling_over_http_equals_sampling_the_local_file(archive, served):
    remote = sample_mptrj(8, seed=1, source=served, cache=False, progress=False)
    local = sample_mptrj(8, seed=1, source=archive, cache=False, progress=False)
    for a, b in zip(remote.frames, local.frames, strict=True):
        assert a.info["mp_id"] == b.info["mp_id"]
        np.testing.assert_array_equal(a.positions, b.positions)


def test_cache_is_checksummed(archive):
    first = sample_mptrj(6, seed=2, source=archive, progress=False)
    assert first.path.exists() and first.path.parent.name == "mptrj"
    cached = sample_mptrj(6, seed=2, source=archive, progress=False)
    assert cached.sha256 == first.sha256
    assert [a.info["mp_id"] for a in cached.frames] == [a.info["mp_id"] for a in first.frames]
    first.path.write_text(first.path.read_text().replace("Li", "Na", 1))  # corrupt the cache
    redrawn = sample_mptrj(6, seed=2, source=archive, progress=False)
    assert redrawn.sha256 == first.sha256


def test_offline_falls_back_to_the_bundled_corpus_and_says_so(tmp_path):
    corpus = write_dataset(
        tmp_path / "corpus.extxyz",
        [frame for index in range(4) for frame in _labelled(material_frames(index))],
        {"method": "test", "licence": "none", "how_made": "test"},
    )
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.warns(UserWarning, match="NOT MPtrj"):
        hist = reference_histograms(
            "mptrj",
            n_frames=5,
            fallback=corpus,
            mptrj_source=f"http://127.0.0.1:{port}/{MPTRJ_FILENAME}",
            progress=False,
        )
    assert "offline fallback" in hist.source and hist.metadata["fallback_for"] == "mptrj"
    assert hist.n_frames == 5


def test_archives_that_are_not_mptrj_are_refused(tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("README.txt", "not MPtrj")
    with pytest.raises(MPtrjUnavailable, match="no .extxyz members"):
        sample_mptrj(2, source=other, cache=False, progress=False)
    wrong_size = tmp_path / MPTRJ_FILENAME
    wrong_size.write_bytes(other.read_bytes())
    with pytest.raises(MPtrjUnavailable, match="not the published"):
        sample_mptrj(2, source=wrong_size, cache=False, progress=False)
    with pytest.raises(MPtrjUnavailable, match="no .extxyz members"):  # size not checked
        sample_mptrj(2, source=wrong_size, verify=False, cache=False, progress=False)
    with pytest.raises(MPtrjUnavailable, match="no archive"):
        sample_mptrj(2, source=tmp_path / "missing.zip", cache=False, progress=False)


def _labelled(frames):
    """Frames with the course's label keys, as ``write_dataset`` expects."""
    for atoms in frames:
        atoms.info[ENERGY_KEY] = atoms.get_potential_energy()
        atoms.arrays[FORCES_KEY] = atoms.get_forces()
        atoms.calc = None
    return frames
