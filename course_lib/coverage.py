"""The coverage diagnostic: does the training set contain the target's local geometry?

The chapter's cheapest sanity check ("A concrete diagnostic"): histogram the
pair distances (Å) and three-body bond angles (degrees) of the target, do the
same for a subsample of the model's training set, overlay the two, and treat
every bin where the target has substantial density and the training set has
almost none as an extrapolation warning.

What is counted
---------------
* Pair distances: for every element pair ``A-B`` (atomic numbers ``Z_A <= Z_B``)
  the distances ``|r_j - r_i + S·cell|`` below ``cutoff`` Å, over all periodic
  images, in bins of ``bin_width`` Å. Neighbour pairs are ordered, so every
  distance is counted once from each end; densities are unaffected.
* Bond angles: for every centre atom ``i`` and every unordered pair of its
  bonds ``i-j``, ``i-k`` shorter than ``bond_cutoff`` Å, the angle ``j-i-k`` in
  degrees on [0, 180], in bins of ``angle_bin_width``. The channel is written
  ``B-A-C`` with the centre ``A`` in the middle and ``Z_B <= Z_C``.

Histograms keep raw integer counts, so they add: a reference built in chunks,
or in parallel, and merged is identical to one built in one go. Densities are
computed on demand and integrate to one over each channel (1/Å or 1/degree).
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from matscipy.neighbours import neighbour_list

from course_lib.data import atomic_output

logger = logging.getLogger(__name__)

N_Z = 119  # atomic numbers 0..118 encode element keys as base-119 digits
FORMAT_VERSION = 1


class CoverageError(ValueError):
    """Input the coverage diagnostic cannot use; the message says what to change."""


class MissingElementsWarning(UserWarning):
    """The target contains elements that never occur in the reference."""


@dataclass(frozen=True)
class HistogramSettings:
    """Binning of the coverage histograms.

    cutoff: pair distances are histogrammed on [0, cutoff) Å.
    bin_width: width of a distance bin, Å; must divide ``cutoff``.
    bond_cutoff: two neighbours closer than this (Å) to a centre atom form an angle.
    angle_bin_width: width of an angle bin, degrees; must divide 180.
    """

    cutoff: float = 6.0
    bin_width: float = 0.05
    bond_cutoff: float = 3.0
    angle_bin_width: float = 2.0

    def __post_init__(self):
        for name in ("cutoff", "bin_width", "bond_cutoff", "angle_bin_width"):
            if not getattr(self, name) > 0:
                raise CoverageError(f"{name} must be positive, got {getattr(self, name)}")
        _whole_number(self.cutoff / self.bin_width, "cutoff / bin_width")
        _whole_number(180.0 / self.angle_bin_width, "180 / angle_bin_width")

    @property
    def n_distance_bins(self) -> int:
        return round(self.cutoff / self.bin_width)

    @property
    def n_angle_bins(self) -> int:
        return round(180.0 / self.angle_bin_width)

    @property
    def distance_edges(self) -> np.ndarray:
        """Bin edges of the distance histograms, Å."""
        return np.arange(self.n_distance_bins + 1) * self.bin_width

    @property
    def angle_edges(self) -> np.ndarray:
        """Bin edges of the angle histograms, degrees."""
        return np.arange(self.n_angle_bins + 1) * self.angle_bin_width


@dataclass(frozen=True, eq=False)
class CoverageHistograms:
    """Raw counts of pair distances and bond angles of a set of structures.

    ``pair_keys`` (sorted) encode element pairs as ``Z_A * 119 + Z_B`` with
    ``Z_A <= Z_B``; ``triplet_keys`` (sorted) encode angle channels as
    ``(Z_centre * 119 + Z_B) * 119 + Z_C`` with ``Z_B <= Z_C``. Row ``n`` of
    ``pair_counts`` / ``triplet_counts`` belongs to key ``n``. Use the labels
    (``"Li-O"``, ``"O-Li-O"``) rather than the keys.
    """

    settings: HistogramSettings
    pair_keys: np.ndarray
    pair_counts: np.ndarray
    triplet_keys: np.ndarray
    triplet_counts: np.ndarray
    element_counts: np.ndarray  # atoms per atomic number, shape (119,)
    n_frames: int
    metadata: dict = field(default_factory=dict)

    # -- what is inside ---------------------------------------------------
    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(chemical_symbols[z] for z in np.flatnonzero(self.element_counts))

    @property
    def pair_labels(self) -> tuple[str, ...]:
        return tuple(_pair_label(key) for key in self.pair_keys)

    @property
    def triplet_labels(self) -> tuple[str, ...]:
        return tuple(_triplet_label(key) for key in self.triplet_keys)

    @property
    def channels(self) -> tuple[str, ...]:
        """All channel labels: element pairs first, then angle triplets."""
        return self.pair_labels + self.triplet_labels

    def counts(self, label: str) -> np.ndarray:
        """Raw counts of one channel (zeros if this set never has it)."""
        kind, key = channel_key(label)
        keys, table = self._table(kind)
        row = np.searchsorted(keys, key)
        if row < len(keys) and keys[row] == key:
            return table[row].copy()
        return np.zeros(table.shape[1], dtype=np.int64)

    def edges(self, label: str) -> np.ndarray:
        """Bin edges of a channel: Å for pairs, degrees for triplets."""
        kind, _ = channel_key(label)
        return self.settings.distance_edges if kind == "pair" else self.settings.angle_edges

    def fractions(self, label: str) -> np.ndarray:
        """Fraction of the channel's counts in each bin (sums to 1; zeros if empty)."""
        return _fractions(self.counts(label))

    def density(self, label: str) -> np.ndarray:
        """Normalised density of a channel: 1/Å for pairs, 1/degree for angles."""
        return self.fractions(label) / np.diff(self.edges(label))

    def shortest_distance(self, label: str) -> float:
        """Lower edge (Å) of the first occupied distance bin of a pair channel."""
        counts = self.counts(label)
        if channel_key(label)[0] != "pair" or not counts.any():
            return float("nan")
        return float(self.settings.distance_edges[np.flatnonzero(counts)[0]])

    # -- arithmetic -------------------------------------------------------
    def merged(self, other: CoverageHistograms) -> CoverageHistograms:
        """The histograms of both sets of structures together (exact)."""
        return merge_histograms([self, other])

    __add__ = merged

    def truncated(self, cutoff: float) -> CoverageHistograms:
        """Distance histograms restricted to [0, cutoff) Å; exact, no recomputation.

        ``cutoff`` is rounded down to a whole number of bins. Angles are unchanged.
        """
        n_bins = int(np.floor(cutoff / self.settings.bin_width + 1e-9))
        if not 0 < n_bins <= self.settings.n_distance_bins:
            raise CoverageError(
                f"cutoff {cutoff} Å must lie in ({self.settings.bin_width}, {self.settings.cutoff}] Å"
            )
        counts = self.pair_counts[:, :n_bins]
        keep = counts.any(axis=1)
        settings = replace(self.settings, cutoff=n_bins * self.settings.bin_width)
        return replace(
            self, settings=settings, pair_keys=self.pair_keys[keep], pair_counts=counts[keep]
        )

    def coarsened(self, *, distance_factor: int = 1, angle_factor: int = 1) -> CoverageHistograms:
        """Histograms with bins ``distance_factor`` / ``angle_factor`` times wider (exact)."""
        pair_counts = _coarsen(self.pair_counts, distance_factor, "distance_factor")
        triplet_counts = _coarsen(self.triplet_counts, angle_factor, "angle_factor")
        settings = replace(
            self.settings,
            bin_width=self.settings.bin_width * distance_factor,
            angle_bin_width=self.settings.angle_bin_width * angle_factor,
        )
        return replace(
            self, settings=settings, pair_counts=pair_counts, triplet_counts=triplet_counts
        )

    # -- table view and files ---------------------------------------------
    def to_rows(self) -> list[dict]:
        """One row per channel: kind, label, total counts, shortest distance (Å)."""
        rows = []
        for kind, labels, table in (
            ("pair", self.pair_labels, self.pair_counts),
            ("triplet", self.triplet_labels, self.triplet_counts),
        ):
            for label, counts in zip(labels, table, strict=True):
                row = {"kind": kind, "channel": label, "counts": int(counts.sum())}
                if kind == "pair":
                    row["shortest_A"] = self.shortest_distance(label)
                rows.append(row)
        return rows

    def __str__(self) -> str:
        s = self.settings
        head = (
            f"CoverageHistograms of {self.source or 'unnamed'}: {self.n_frames} frames, "
            f"elements {'-'.join(self.elements)}, {len(self.pair_keys)} pairs < {s.cutoff} Å "
            f"(bins {s.bin_width} Å), {len(self.triplet_keys)} angle channels with bonds "
            f"< {s.bond_cutoff} Å (bins {s.angle_bin_width}°)"
        )
        lines = [head, f"{'channel':<12} {'counts':>12} {'shortest (Å)':>13}"]
        for row in self.to_rows():
            shortest = f"{row['shortest_A']:13.2f}" if "shortest_A" in row else ""
            lines.append(f"{row['channel']:<12} {row['counts']:>12d} {shortest}")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> Path:
        """Write a compressed ``.npz`` (counts plus JSON metadata), atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            raise CoverageError(f"coverage histograms are saved as .npz, got {path.name}")
        header = {
            "format_version": FORMAT_VERSION,
            "settings": asdict(self.settings),
            "n_frames": self.n_frames,
            "metadata": self.metadata,
        }
        with atomic_output(path, suffix=".npz") as tmp:
            np.savez_compressed(
                tmp,
                header=np.array(json.dumps(header)),
                pair_keys=self.pair_keys,
                pair_counts=_compact_ints(self.pair_counts),
                triplet_keys=self.triplet_keys,
                triplet_counts=_compact_ints(self.triplet_counts),
                element_counts=self.element_counts,
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CoverageHistograms:
        """Read histograms written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(str(npz["header"]))
            if header.get("format_version") != FORMAT_VERSION:
                raise CoverageError(
                    f"{path}: unknown format version {header.get('format_version')}"
                )
            return cls(
                settings=HistogramSettings(**header["settings"]),
                pair_keys=npz["pair_keys"].astype(np.int64),
                pair_counts=npz["pair_counts"].astype(np.int64),
                triplet_keys=npz["triplet_keys"].astype(np.int64),
                triplet_counts=npz["triplet_counts"].astype(np.int64),
                element_counts=npz["element_counts"].astype(np.int64),
                n_frames=int(header["n_frames"]),
                metadata=header["metadata"],
            )

    def _table(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        if kind == "pair":
            return self.pair_keys, self.pair_counts
        return self.triplet_keys, self.triplet_counts


def compute_histograms(
    frames: Iterable[Atoms],
    *,
    settings: HistogramSettings | None = None,
    chunk_size: int = 512,
    source: str = "",
    seed: int | None = None,
    progress: bool = False,
) -> CoverageHistograms:
    """Pair-distance (Å) and bond-angle (degree) histograms of periodic structures.

    Frames are processed ``chunk_size`` at a time: one matscipy neighbour list
    per frame, then vectorised binning of the whole chunk (``np.bincount`` on
    combined channel-and-bin indices); chunks are merged exactly. ``source``
    and ``seed`` are recorded in the metadata (what the frames are, and the
    seed that sampled them).
    """
    settings = settings or HistogramSettings()
    if chunk_size < 1:
        raise CoverageError(f"chunk_size must be at least 1, got {chunk_size}")
    iterator = iter(frames)
    if progress:
        from tqdm.auto import tqdm

        iterator = iter(tqdm(iterator, desc="histograms", unit="frame", total=_len_or_none(frames)))
    parts = []
    offset = 0
    while chunk := list(itertools.islice(iterator, chunk_size)):
        parts.append(_chunk_histograms(chunk, settings, first_index=offset))
        offset += len(chunk)
    if not parts:
        raise CoverageError(f"no frames to histogram (source {source or 'unnamed'!r} is empty)")
    total = merge_histograms(parts)
    metadata = {"source": source, "seed": seed, "date": _now()}
    return replace(total, metadata=metadata)


def merge_histograms(parts: Sequence[CoverageHistograms]) -> CoverageHistograms:
    """Sum histograms computed with the same settings (e.g. chunks of one reference)."""
    if not parts:
        raise CoverageError("nothing to merge")
    settings = parts[0].settings
    for part in parts[1:]:
        if part.settings != settings:
            raise CoverageError(
                f"cannot merge histograms with different settings: {settings} vs {part.settings}"
            )
    pair_keys, pair_counts = _merge_tables([(p.pair_keys, p.pair_counts) for p in parts])
    triplet_keys, triplet_counts = _merge_tables(
        [(p.triplet_keys, p.triplet_counts) for p in parts]
    )
    sources = list(dict.fromkeys(p.source for p in parts if p.source))
    seeds = {p.metadata.get("seed") for p in parts}
    metadata = {
        "source": " + ".join(sources),
        "seed": seeds.pop() if len(seeds) == 1 else None,
        "date": _now(),
    }
    return CoverageHistograms(
        settings=settings,
        pair_keys=pair_keys,
        pair_counts=pair_counts,
        triplet_keys=triplet_keys,
        triplet_counts=triplet_counts,
        element_counts=np.sum([p.element_counts for p in parts], axis=0),
        n_frames=sum(p.n_frames for p in parts),
        metadata=metadata,
    )


# -- comparing a target with a reference --------------------------------------


@dataclass(frozen=True)
class FlaggedRange:
    """Adjacent bins of one channel where the target has counts and the reference (almost) none.

    ``target_share`` (what the threshold applies to) is the share of *all*
    the target's distances, or all its angles, that fall in the range;
    ``target_fraction`` and ``reference_fraction`` are shares of the
    channel's own counts, as drawn in the overlay.
    """

    kind: str  # "pair" or "triplet"
    channel: str  # "Li-Li", "O-Li-O"
    low: float  # Å or degrees
    high: float
    unit: str  # "Å" or "°"
    target_share: float
    target_fraction: float
    reference_fraction: float

    def as_row(self) -> dict:
        return {
            "kind": self.kind,
            "channel": self.channel,
            "range": f"{self.low:.2f}-{self.high:.2f} {self.unit}",
            "target_share": self.target_share,
            "target_fraction": self.target_fraction,
            "reference_fraction": self.reference_fraction,
        }


@dataclass(frozen=True)
class CoverageReport:
    """Result of :func:`compare_coverage`.

    ``distance_score`` (``angle_score``) is the fraction of the target's
    distances (angles) lying in bins the reference covers, i.e. where the
    reference puts more than ``max_reference_fraction`` of that channel's
    counts; ``score`` is the lower of the two. ``flagged`` lists the uncovered
    ranges holding at least ``min_target_share`` of the target's distances
    (angles).
    """

    target: str
    reference: str
    missing_elements: tuple[str, ...]
    missing_channels: tuple[str, ...]  # target pairs/angles the reference never shows
    flagged: tuple[FlaggedRange, ...]
    score: float
    distance_score: float
    angle_score: float
    min_target_share: float
    max_reference_fraction: float
    settings: HistogramSettings
    n_target_frames: int
    n_reference_frames: int

    def ranges(self, channel: str) -> list[tuple[float, float]]:
        """Flagged (low, high) ranges of one channel, Å or degrees."""
        return [(f.low, f.high) for f in self.flagged if f.channel == channel]

    def to_rows(self) -> list[dict]:
        return [flag.as_row() for flag in self.flagged]

    def as_dict(self) -> dict:
        return {
            "target": self.target,
            "reference": self.reference,
            "missing_elements": list(self.missing_elements),
            "missing_channels": list(self.missing_channels),
            "score": self.score,
            "distance_score": self.distance_score,
            "angle_score": self.angle_score,
            "thresholds": {
                "min_target_share": self.min_target_share,
                "max_reference_fraction": self.max_reference_fraction,
            },
            "settings": asdict(self.settings),
            "n_target_frames": self.n_target_frames,
            "n_reference_frames": self.n_reference_frames,
            "warnings": [asdict(flag) for flag in self.flagged],
        }

    def __str__(self) -> str:
        lines = []
        if self.missing_elements:
            lines.append(
                f"!! ELEMENTS ABSENT FROM THE REFERENCE: {', '.join(self.missing_elements)} "
                "- the model has never seen them; every pair and angle with them is extrapolated"
            )
        if self.missing_channels:
            lines.append(f"channels the reference never shows: {', '.join(self.missing_channels)}")
        lines += [
            f"coverage of {self.target} ({self.n_target_frames} frames) by {self.reference} "
            f"({self.n_reference_frames} frames): score {self.score:.3f} "
            f"(distances {self.distance_score:.3f}, angles {self.angle_score:.3f})",
            f"flagged: ranges holding >= {self.min_target_share:g} of the target's distances "
            f"(angles) where the reference has <= {self.max_reference_fraction:g} of the "
            f"channel; {len(self.flagged)} ranges",
        ]
        if self.flagged:
            lines.append(
                f"{'kind':<8} {'channel':<10} {'range':<18} {'target':>8} "
                f"{'of channel':>10} {'reference':>10}"
            )
            for row in self.to_rows():
                lines.append(
                    f"{row['kind']:<8} {row['channel']:<10} {row['range']:<18} "
                    f"{row['target_share']:>8.2%} {row['target_fraction']:>10.2%} "
                    f"{row['reference_fraction']:>10.4%}"
                )
        return "\n".join(lines)


def compare_coverage(
    target: CoverageHistograms,
    reference: CoverageHistograms,
    *,
    min_target_share: float = 1e-3,
    max_reference_fraction: float = 1e-4,
) -> CoverageReport:
    """Flag where the target has substantial density and the reference (almost) none.

    A bin of a channel is *uncovered* when the reference puts at most
    ``max_reference_fraction`` of that channel's counts in it. A run of
    adjacent uncovered bins, trimmed to the bins where the target has counts,
    forms a range (so a channel the reference lacks is one range); a range is
    *flagged* when it holds at least ``min_target_share`` of all the target's
    distances (for pairs) or angles (for triplets), so a channel with a
    handful of counts cannot raise a warning on its own. Elements of the
    target absent from the reference are reported first, with a
    :class:`MissingElementsWarning`.
    """
    if target.settings != reference.settings:
        raise CoverageError(
            f"target and reference were binned differently ({target.settings} vs "
            f"{reference.settings}); recompute the target with the reference's settings, "
            "or use .truncated() / .coarsened() on both"
        )
    if not (0 <= max_reference_fraction < 1 and 0 < min_target_share <= 1):
        raise CoverageError(
            "need 0 <= max_reference_fraction < 1 and 0 < min_target_share <= 1, got "
            f"{max_reference_fraction} and {min_target_share}"
        )
    missing = tuple(sorted(set(target.elements) - set(reference.elements), key=atomic_numbers.get))
    if missing:
        warnings.warn(
            f"elements {', '.join(missing)} of {target.source or 'the target'} never occur in "
            f"the reference {reference.source or ''}: the model extrapolates for every "
            "environment that contains them",
            MissingElementsWarning,
            stacklevel=2,
        )
    flagged: list[FlaggedRange] = []
    scores = {}
    missing_channels = [label for label in target.channels if not reference.counts(label).any()]
    for kind, labels in (("pair", target.pair_labels), ("triplet", target.triplet_labels)):
        total = int(target._table(kind)[1].sum())
        uncovered_total = 0
        for label in labels:
            counts = target.counts(label)
            reference_fraction = reference.fractions(label)
            uncovered = reference_fraction <= max_reference_fraction
            uncovered_total += int(counts[uncovered].sum())
            for a, b in _runs(uncovered):
                occupied = np.flatnonzero(counts[a:b])
                if not len(occupied):
                    continue
                a, b = a + occupied[0], a + occupied[-1] + 1
                share = counts[a:b].sum() / total
                if share >= min_target_share:
                    flagged.append(
                        FlaggedRange(
                            kind=kind,
                            channel=label,
                            low=float(target.edges(label)[a]),
                            high=float(target.edges(label)[b]),
                            unit="Å" if kind == "pair" else "°",
                            target_share=float(share),
                            target_fraction=float(counts[a:b].sum() / counts.sum()),
                            reference_fraction=float(reference_fraction[a:b].sum()),
                        )
                    )
        scores[kind] = 1.0 - uncovered_total / total if total else 1.0
    flagged.sort(key=lambda f: (f.kind != "pair", f.channel, f.low))  # distances first
    return CoverageReport(
        target=target.source or "target",
        reference=reference.source or "reference",
        missing_elements=missing,
        missing_channels=tuple(missing_channels),
        flagged=tuple(flagged),
        score=min(scores.values()),
        distance_score=scores["pair"],
        angle_score=scores["triplet"],
        min_target_share=min_target_share,
        max_reference_fraction=max_reference_fraction,
        settings=target.settings,
        n_target_frames=target.n_frames,
        n_reference_frames=reference.n_frames,
    )


def coverage_change(before: CoverageReport, after: CoverageReport, *, margin: float = 0.01) -> str:
    """One sentence: does reference ``after`` cover ``before``'s target better?

    Better when the score rises by more than ``margin`` (the margin the
    ``coverage-flags-hot`` check uses); worse when it falls by more; the
    flagged ranges are reported beside. Both reports must be of the same target.
    """
    if before.target != after.target:
        raise CoverageError(
            f"the two reports are of different targets ({before.target!r}, {after.target!r}); "
            "compare one target against two references"
        )
    change = after.score - before.score
    verdict = (
        f"{after.reference} covers the target better"
        if change > margin
        else f"{after.reference} covers it worse"
        if change < -margin
        else f"no clear change in coverage (within {margin:g})"
    )
    return (
        f"{before.target} against {before.reference} → {after.reference}: score "
        f"{before.score:.3f} → {after.score:.3f}, flagged ranges {len(before.flagged)} → "
        f"{len(after.flagged)}: {verdict}"
    )


def channel_key(label: str) -> tuple[str, int]:
    """``"Li-O"`` -> ("pair", key); ``"O-Li-O"`` -> ("triplet", key); order-insensitive."""
    try:
        zs = [atomic_numbers[symbol] for symbol in label.split("-")]
    except KeyError as err:
        raise CoverageError(f"unknown element {err} in channel {label!r}") from None
    if len(zs) == 2:
        low, high = sorted(zs)
        return "pair", low * N_Z + high
    if len(zs) == 3:
        low, high = sorted((zs[0], zs[2]))
        return "triplet", (zs[1] * N_Z + low) * N_Z + high
    raise CoverageError(f"channel {label!r} is neither a pair 'A-B' nor an angle 'B-A-C'")


# -- the kernel -----------------------------------------------------------------


def _chunk_histograms(
    frames: Sequence[Atoms], settings: HistogramSettings, *, first_index: int
) -> CoverageHistograms:
    """Histograms of one chunk: neighbour lists per frame, one vectorised binning."""
    cutoff = max(settings.cutoff, settings.bond_cutoff)
    i_parts, j_parts, d_parts, vec_parts, z_parts = [], [], [], [], []
    offset = 0
    for index, atoms in enumerate(frames, start=first_index):
        _check_frame(atoms, index)
        i, j, d, vec = neighbour_list("ijdD", atoms=atoms, cutoff=cutoff)
        i_parts.append(i + offset)
        j_parts.append(j + offset)
        d_parts.append(d)
        vec_parts.append(vec)
        z_parts.append(atoms.numbers)
        offset += len(atoms)
    i, j, d = np.concatenate(i_parts), np.concatenate(j_parts), np.concatenate(d_parts)
    vec, z = np.concatenate(vec_parts), np.concatenate(z_parts).astype(np.int64)
    if len(d) and d.min() < 1e-6:
        raise CoverageError(
            f"two atoms coincide (distance {d.min():.2e} Å) in frames "
            f"{first_index}-{first_index + len(frames) - 1}; remove duplicated atoms"
        )
    pair_keys, pair_counts = _pair_table(i, j, d, z, settings)
    triplet_keys, triplet_counts = _triplet_table(i, j, d, vec, z, settings)
    return CoverageHistograms(
        settings=settings,
        pair_keys=pair_keys,
        pair_counts=pair_counts,
        triplet_keys=triplet_keys,
        triplet_counts=triplet_counts,
        element_counts=np.bincount(z, minlength=N_Z),
        n_frames=len(frames),
    )


def _pair_table(i, j, d, z, settings: HistogramSettings):
    """Counts of neighbour pairs closer than ``settings.cutoff`` per element pair and bin."""
    inside = d < settings.cutoff
    zi, zj = z[i[inside]], z[j[inside]]
    keys = np.minimum(zi, zj) * N_Z + np.maximum(zi, zj)
    bins = _bin_index(d[inside], settings.bin_width, settings.n_distance_bins)
    return _count_table(keys, bins, settings.n_distance_bins)


def _triplet_table(i, j, d, vec, z, settings: HistogramSettings):
    """Counts of bond angles j-i-k (degrees) per (centre, neighbour, neighbour) and bin."""
    bond = d < settings.bond_cutoff
    i_b, j_b, d_b, vec_b = i[bond], j[bond], d[bond], vec[bond]
    ij, ik = _bond_pairs(i_b, len(z))
    cosine = np.einsum("ab,ab->a", vec_b[ij], vec_b[ik]) / (d_b[ij] * d_b[ik])
    angles = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    zc, za, zb = z[i_b[ij]], z[j_b[ij]], z[j_b[ik]]
    keys = (zc * N_Z + np.minimum(za, zb)) * N_Z + np.maximum(za, zb)
    bins = _bin_index(angles, settings.angle_bin_width, settings.n_angle_bins)
    return _count_table(keys, bins, settings.n_angle_bins)


def _bond_pairs(centres: np.ndarray, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair (p, q), p < q, of bonds sharing a centre; ``centres`` sorted.

    Bond ``p`` of a centre with ``n`` bonds, at rank ``r`` within them, pairs
    with the ``n - r - 1`` bonds after it; built with ``np.repeat``, no loops.
    """
    per_centre = np.bincount(centres, minlength=n_atoms)
    starts = np.cumsum(per_centre) - per_centre
    rank = np.arange(len(centres)) - starts[centres]
    partners = per_centre[centres] - rank - 1
    first = np.repeat(np.arange(len(centres)), partners)
    step = np.arange(len(first)) - np.repeat(np.cumsum(partners) - partners, partners)
    return first, first + 1 + step


def _bin_index(values: np.ndarray, width: float, n_bins: int) -> np.ndarray:
    """Bin of each value on [0, n_bins * width]; the upper edge joins the last bin."""
    return np.minimum((values / width).astype(np.int64), n_bins - 1)


def _count_table(keys: np.ndarray, bins: np.ndarray, n_bins: int):
    """Sorted unique keys and their (n_keys, n_bins) counts, via one bincount."""
    unique, inverse = np.unique(keys, return_inverse=True)
    flat = np.bincount(inverse.ravel() * n_bins + bins, minlength=len(unique) * n_bins)
    return unique.astype(np.int64), flat.reshape(len(unique), n_bins).astype(np.int64)


def _merge_tables(tables: list[tuple[np.ndarray, np.ndarray]]):
    """Sum sparse count tables over the union of their keys."""
    keys = np.unique(np.concatenate([k for k, _ in tables]))
    n_bins = tables[0][1].shape[1]
    total = np.zeros((len(keys), n_bins), dtype=np.int64)
    for part_keys, part_counts in tables:
        total[np.searchsorted(keys, part_keys)] += part_counts  # keys unique per part
    return keys.astype(np.int64), total


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of True in a boolean array, stop exclusive."""
    padded = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(padded == 1), np.flatnonzero(padded == -1), strict=True))


def _check_frame(atoms: Atoms, index: int) -> None:
    if not isinstance(atoms, Atoms):
        raise CoverageError(f"frame {index} is a {type(atoms).__name__}, expected ase.Atoms")
    if len(atoms) == 0:
        raise CoverageError(f"frame {index} has no atoms")
    if not (atoms.pbc.all() and atoms.cell.rank == 3):
        raise CoverageError(
            f"frame {index} ({atoms.get_chemical_formula()}) is not periodic in 3D "
            f"(pbc={atoms.pbc.tolist()}, cell rank {atoms.cell.rank}); the diagnostic compares "
            "crystals - put a molecule in a box first: atoms.center(vacuum=10); atoms.pbc = True"
        )


def _fractions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def _coarsen(counts: np.ndarray, factor: int, name: str) -> np.ndarray:
    if factor < 1 or counts.shape[1] % factor:
        raise CoverageError(f"{name}={factor} must divide the {counts.shape[1]} bins")
    return counts.reshape(len(counts), -1, factor).sum(axis=2)


def _compact_ints(counts: np.ndarray) -> np.ndarray:
    """The smallest unsigned dtype that holds the counts (files stay small)."""
    top = int(counts.max()) if counts.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return counts.astype(dtype)
    return counts.astype(np.uint64)


def _pair_label(key: int) -> str:
    return f"{chemical_symbols[key // N_Z]}-{chemical_symbols[key % N_Z]}"


def _triplet_label(key: int) -> str:
    centre, rest = divmod(int(key), N_Z * N_Z)
    return (
        f"{chemical_symbols[rest // N_Z]}-{chemical_symbols[centre]}-{chemical_symbols[rest % N_Z]}"
    )


def _whole_number(value: float, what: str) -> None:
    if abs(value - round(value)) > 1e-6 or round(value) < 1:
        raise CoverageError(f"{what} must be a whole number of bins, got {value:.6g}")


def _len_or_none(frames) -> int | None:
    try:
        return len(frames)
    except TypeError:
        return None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
