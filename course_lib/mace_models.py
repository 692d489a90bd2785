"""Building MACE models and feeding them data, with mace-torch's own tools.

A MACE energy is a sum of per-atom terms on top of fixed per-element
reference energies (E0s)::

    E = sum_i E0[Z_i] + sum_i (scale * readout_i + shift)      [eV]

Everything here is small and explicit so that the training regimes of
``course_lib.finetune`` can share it:

* ``MaceArchitecture``: the hyper-parameters of a from-scratch MACE
  (a small default that trains on a laptop CPU);
* ``build_mace``: a ``mace.modules.ScaleShiftMACE`` from an architecture,
  E0s and data statistics, or with the hyper-parameters of another model
  (``architecture_of``), which is how the "scratch" regime gets "the same
  architecture, freshly initialised";
* ``fit_e0s``: per-element reference energies by least squares on
  composition (MACE's guidance: estimated, never averaged);

* ``load_model``, ``save_model``, ``calculator_for``: model files (checksummed,
  written atomically) and mace-torch's ASE calculator on a module.

Frames become batched graphs through ``course_lib.graphs``.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mace  # noqa: F401  (import mace before e3nn: e3nn alone fails on torch 2.13)
import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers as ATOMIC_NUMBERS
from ase.data import chemical_symbols
from e3nn import o3
from mace import modules
from mace.data.neighborhood import get_neighborhood
from mace.tools.scripts_utils import extract_config_mace_model
from mace.tools.torch_tools import default_dtype

from course_lib import data as ds
from course_lib.composition import (
    fit_reference_offsets,
    warn_if_compositions_collinear,
)
from course_lib.data import ENERGY_KEY, forces

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class MaceArchitecture:
    """Hyper-parameters of a from-scratch MACE (defaults: small, CPU-friendly).

    ``hidden_irreps="32x0e"`` keeps invariant features only; MACE-MP-0 small
    uses ``"128x0e"``. ``r_max`` is the cutoff in Å.
    """

    r_max: float = 5.0
    num_bessel: int = 8
    num_polynomial_cutoff: int = 5
    max_ell: int = 2
    num_interactions: int = 2
    hidden_irreps: str = "32x0e"
    mlp_irreps: str = "16x0e"
    correlation: int = 3
    radial_mlp: tuple[int, ...] = (32, 32, 32)
    # MACE-MP-0's first interaction block is residual too; course-mini's is not.
    residual_first: bool = False

    def mace_kwargs(self) -> dict:
        """Keyword arguments of ``mace.modules.MACE`` that do not depend on the data."""
        return {
            "r_max": self.r_max,
            "num_bessel": self.num_bessel,
            "num_polynomial_cutoff": self.num_polynomial_cutoff,
            "max_ell": self.max_ell,
            "interaction_cls": modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            "interaction_cls_first": modules.interaction_classes[
                "RealAgnosticResidualInteractionBlock"
                if self.residual_first
                else "RealAgnosticInteractionBlock"
            ],
            "num_interactions": self.num_interactions,
            "hidden_irreps": o3.Irreps(self.hidden_irreps),
            "MLP_irreps": o3.Irreps(self.mlp_irreps),
            "correlation": self.correlation,
            "gate": torch.nn.functional.silu,
            "radial_MLP": list(self.radial_mlp),
        }


#: The hyper-parameters of MACE-MP-0 small (Batatia et al., 2023): invariant 128-channel
#: features, spherical harmonics to l = 3, r_max 6 Å. Benchmarks and tests build random
#: stand-ins of this size when the real weights are not at hand.
MACE_MP_0_SMALL = MaceArchitecture(
    r_max=6.0,
    num_bessel=10,
    max_ell=3,
    hidden_irreps="128x0e",
    mlp_irreps="16x0e",
    correlation=3,
    radial_mlp=(64, 64, 64),
    residual_first=True,
)


def model_elements(model: torch.nn.Module) -> tuple[str, ...]:
    """Chemical symbols a MACE model has embeddings for, in its own order."""
    return tuple(chemical_symbols[int(z)] for z in model.atomic_numbers)


def frame_elements(frames: Sequence[Atoms]) -> tuple[str, ...]:
    """Elements present in ``frames``, sorted by atomic number."""
    symbols = {s for atoms in frames for s in atoms.get_chemical_symbols()}
    return tuple(sorted(symbols, key=ATOMIC_NUMBERS.__getitem__))


def model_e0s(model: torch.nn.Module) -> dict[str, float]:
    """The model's per-element reference energies, eV (first head)."""
    values = torch.atleast_2d(model.atomic_energies_fn.atomic_energies)[0]
    return {s: float(v) for s, v in zip(model_elements(model), values, strict=True)}


def set_model_e0s(model: torch.nn.Module, e0s: Mapping[str, float]) -> None:
    """Overwrite the model's reference energies (eV) for the elements in ``e0s`` (every head)."""
    buffer = model.atomic_energies_fn.atomic_energies
    index = {s: i for i, s in enumerate(model_elements(model))}
    with torch.no_grad():
        for symbol, value in e0s.items():
            buffer[..., index[symbol]] = float(value)


def fit_e0s(
    frames: Sequence[Atoms],
    *,
    predicted_energies: np.ndarray | None = None,
    baseline: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Per-element reference energies (eV) by least squares on composition.

    Without ``predicted_energies``: solve ``counts @ E0 ≈ E_ref`` (a model
    trained from scratch). With a pre-trained model's energies for the same
    frames and its ``baseline`` E0s: solve ``counts @ dE0 ≈ E_ref - E_pred``
    and return ``baseline + dE0``, the per-element shift between the model's
    DFT setup and the data's (MACE's ``estimate_e0s_from_foundation``).

    When the compositions do not separate the elements (every frame Li2O),
    the minimum-norm solution is taken: the energies of those compositions
    are fitted exactly, the undetermined combination stays at the baseline,
    and a ``RankDeficientCompositionWarning`` says so.
    """
    warn_if_compositions_collinear(frames)
    if predicted_energies is None:
        predicted_energies = np.zeros(len(frames))
    base = baseline or {}
    offsets = fit_reference_offsets(frames, predicted_energies)
    return {s: base.get(s, 0.0) + value for s, value in offsets.items()}


def average_num_neighbors(frames: Sequence[Atoms], r_max: float) -> float:
    """Mean number of neighbours within ``r_max`` (Å), MACE's message normalisation."""
    edges = sum(
        get_neighborhood(a.positions, r_max, tuple(bool(p) for p in a.pbc), np.array(a.cell))[
            0
        ].shape[1]
        for a in frames
    )
    return edges / sum(len(a) for a in frames)


def interaction_scale_shift(
    frames: Sequence[Atoms], e0s: Mapping[str, float]
) -> tuple[float, float]:
    """``(scale, shift)``: RMS force (eV/Å) and mean per-atom energy above the E0s (eV).

    MACE's ``rms_forces_scaling``: the readout then predicts numbers of order one.
    """
    per_atom = [
        (float(a.info[ENERGY_KEY]) - sum(e0s[s] for s in a.get_chemical_symbols())) / len(a)
        for a in frames
    ]
    all_forces = np.concatenate([f.ravel() for f in forces(frames)])
    scale = float(np.sqrt(np.mean(all_forces**2)))
    if not np.isfinite(scale) or scale < 1e-8:
        scale = 1.0
    return scale, float(np.mean(per_atom))


def architecture_of(model: torch.nn.Module) -> dict:
    """Constructor keyword arguments of a ``ScaleShiftMACE`` with ``model``'s hyper-parameters."""
    config = extract_config_mace_model(model)
    if "error" in config:
        raise TypeError(f"cannot read hyper-parameters: {config['error']}")
    return config


def build_mace(
    frames: Sequence[Atoms],
    *,
    architecture: MaceArchitecture | Mapping | None = None,
    e0s: Mapping[str, float] | None = None,
    seed: int = 0,
    dtype: str = "float64",
) -> torch.nn.Module:
    """A freshly initialised ``ScaleShiftMACE`` for the elements of ``frames``.

    ``architecture`` is a ``MaceArchitecture`` (default: the small one) or the
    keyword arguments of another model (``architecture_of(model)``), whose
    hyper-parameters are kept while its elements, E0s, neighbour count and
    scale/shift are replaced by those of ``frames``. E0s default to
    ``fit_e0s(frames)``. Initialisation is seeded and leaves torch's global
    random state and default dtype as they were.
    """
    elements = frame_elements(frames)
    if e0s is None:
        e0s = fit_e0s(frames)
    missing = sorted(set(elements) - set(e0s))
    if missing:
        raise ValueError(f"e0s has no value for elements {missing}")
    if architecture is None:
        architecture = MaceArchitecture()
    if isinstance(architecture, MaceArchitecture):
        kwargs = architecture.mace_kwargs()
    else:
        kwargs = dict(architecture)
    scale, shift = interaction_scale_shift(frames, e0s)
    kwargs.update(
        num_elements=len(elements),
        atomic_numbers=[ATOMIC_NUMBERS[s] for s in elements],
        atomic_energies=np.array([e0s[s] for s in elements]),
        avg_num_neighbors=average_num_neighbors(frames, float(kwargs["r_max"])),
        atomic_inter_scale=scale,
        atomic_inter_shift=shift,
    )
    with torch.random.fork_rng(devices=[]), default_dtype(DTYPES[dtype]), warnings.catch_warnings():
        # e3nn compiles each layer with TorchScript, which warns about e3nn's own annotations
        warnings.filterwarnings("ignore", "The TorchScript type system", UserWarning)
        torch.manual_seed(seed)
        model = modules.ScaleShiftMACE(**kwargs)
    return model.to(DTYPES[dtype])


# --------------------------------------------------------------------------- model files


def load_model(model: torch.nn.Module | str | os.PathLike, *, dtype: str = "float64"):
    """A MACE module from a module (returned as is), registered name or file, checksum first."""
    if isinstance(model, torch.nn.Module):
        return model
    from course_lib.models import load_mace_model

    return load_mace_model(model, device="cpu", dtype=dtype)


def save_model(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """``torch.save`` the whole module (as mace-torch does), atomically, on the CPU.

    The file appears only once completely written, so an interrupted run
    leaves any previous file at ``path`` intact. Its sha256 is recorded for
    ``course_lib.models``, which checks it before every later load.
    """
    from course_lib import models

    path = Path(path)
    with ds.atomic_output(path) as tmp:
        torch.save(copy.deepcopy(model).cpu(), tmp)
    models.record_sha256(path)
    return path


def calculator_for(model: torch.nn.Module, *, device: str = "cpu"):
    """mace-torch's ``MACECalculator`` on a copy of ``model`` (it freezes what it is given)."""
    from mace.calculators import MACECalculator

    dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
    return MACECalculator(models=[copy.deepcopy(model)], device=device, default_dtype=dtype)
