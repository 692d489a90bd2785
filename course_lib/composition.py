"""Compositions of frames, and per-element energies fitted on them.

A structure's energy has a part that depends only on how many atoms of
each element it holds. Two modules need that part: zero-shot evaluation
(aligning a model's energies to another DFT setup) and model building
(E0s of a MACE). It lives here, below both.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from course_lib.data import energies


class RankDeficientCompositionWarning(UserWarning):
    """The compositions of the frames do not determine every per-element energy separately."""


def composition_matrix(frames: Sequence[Atoms], elements: Sequence[str]) -> np.ndarray:
    """Counts of each element per frame, shape (n_frames, n_elements)."""
    index = {el: i for i, el in enumerate(elements)}
    counts = np.zeros((len(frames), len(elements)))
    for row, atoms in enumerate(frames):
        for symbol in atoms.get_chemical_symbols():
            counts[row, index[symbol]] += 1
    return counts


def fit_reference_offsets(
    frames: Sequence[Atoms], predicted_energies: np.ndarray
) -> dict[str, float]:
    """Per-element energies δ (eV) minimising Σ (E_DFT - E_model - Σ_Z n_Z δ_Z)².

    When every frame has the same composition only the combination Σ n_Z δ_Z
    is determined; lstsq then returns the minimum-norm δ, and the aligned
    energies are still unique.
    """
    elements = sorted({s for atoms in frames for s in atoms.get_chemical_symbols()})
    counts = composition_matrix(frames, elements)
    residual = energies(frames) - np.asarray(predicted_energies)
    offsets, *_ = np.linalg.lstsq(counts, residual, rcond=None)
    return dict(zip(elements, offsets.tolist()))


def warn_if_compositions_collinear(frames: Sequence[Atoms]) -> None:
    """Warn when the frames' compositions cannot separate per-element E0s (e.g. all Li2O)."""
    elements = sorted({s for atoms in frames for s in atoms.get_chemical_symbols()})
    rank = np.linalg.matrix_rank(composition_matrix(frames, elements))
    if rank < len(elements):
        warnings.warn(
            f"the {len(frames)} frames span only {rank} independent compositions of the "
            f"{len(elements)} elements {elements}: per-element E0s are not separately "
            "determined, so the minimum-norm solution is used (energies of these "
            "compositions are unaffected). Frames of other compositions would pin each element.",
            RankDeficientCompositionWarning,
            stacklevel=3,
        )
