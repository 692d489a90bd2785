"""Reference histograms: the coverage diagnostic's picture of a model's training data.

``reference_histograms`` turns a corpus into ``coverage.CoverageHistograms``:
a sample of the real MPtrj (``mptrj.sample_mptrj``, needs a network) or a
bundled dataset. It sits above both the sampler and the diagnostic, so
neither needs the other.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace

from course_lib.coverage import CoverageHistograms, HistogramSettings, compute_histograms
from course_lib.data import read_dataset, subset
from course_lib.mptrj import FALLBACK_CORPUS, MPTRJ_URL, MPtrjUnavailable, sample_mptrj


def reference_histograms(
    source: str = "mptrj",
    *,
    n_frames: int | None = 10_000,
    seed: int = 0,
    settings: HistogramSettings | None = None,
    fallback: str | os.PathLike = FALLBACK_CORPUS,
    mptrj_source: str | os.PathLike = MPTRJ_URL,
    progress: bool = True,
) -> CoverageHistograms:
    """Coverage histograms of a model's training data.

    ``source="mptrj"`` samples the real MPtrj (:func:`sample_mptrj` from
    ``mptrj_source``); when it cannot be reached this warns and uses the bundled ``fallback`` corpus
    instead, and the histograms' ``source`` says so. Any other ``source`` is
    a bundled dataset name or an extxyz path, subsampled (seeded) to
    ``n_frames`` when larger (``None``: all frames).
    """
    if source == "mptrj":
        try:
            sample = sample_mptrj(
                n_frames or 10_000, seed=seed, source=mptrj_source, progress=progress
            )
        except MPtrjUnavailable as err:
            warnings.warn(
                f"MPtrj is not available ({err}). Falling back to the bundled corpus "
                f"{fallback!r}: the reference below is NOT MPtrj.",
                stacklevel=2,
            )
            hist = _dataset_histograms(fallback, n_frames, seed, settings, progress)
            label = f"{hist.source} (offline fallback: MPtrj unreachable)"
            return replace(
                hist, metadata={**hist.metadata, "source": label, "fallback_for": source}
            )
        label = f"MPtrj sample ({sample.n_materials} materials, sha256 {sample.sha256[:12]})"
        return compute_histograms(
            sample.frames, settings=settings, source=label, seed=seed, progress=progress
        )
    return _dataset_histograms(source, n_frames, seed, settings, progress)


def _dataset_histograms(name, n_frames, seed, settings, progress) -> CoverageHistograms:
    frames = read_dataset(name)
    if n_frames is not None and n_frames < len(frames):
        frames = subset(frames, n_frames, seed=seed)
    return compute_histograms(
        frames, settings=settings, source=str(name), seed=seed, progress=progress
    )
