"""The chapter's second and third regimes: few-shot, full fine-tuning, and from scratch.

* **few-shot**: start from the pre-trained weights, freeze the early layers
  and train only the readouts (``trainable="readouts"``) or the readouts plus
  the last interaction and product blocks (``trainable="last-layer"``),
  optionally pulled toward the pre-trained weights by an L2 penalty
  ``l2_pull * sum (w - w_pretrained)^2``. The readout of a frozen MACE is
  linear in the weights of its last linear layers, so ``solver="closed-form"``
  fits them in one pass by ridge (Bayesian) least squares, which also gives
  a posterior covariance of those weights. Its cost is one backward pass per
  readout weight (~48 for the small default MACE), about 4-7 gradient
  epochs, and it lands on the optimum that gradient training approaches
  only slowly (``bench/bench_finetune.py``).
* **full**: every parameter trainable, starting from the pre-trained weights.
* **scratch**: the same architecture (the foundation model's hyper-parameters
  when one is given, else ``MaceArchitecture``) freshly initialised, for the
  elements of the training data, so it can learn elements the foundation
  model never saw.

Reference energies. A model's energy is ``sum_i E0[Z_i]`` plus learned
per-atom terms. Data from another DFT setup (code, pseudopotentials) differ
from the pre-training labels by a per-element constant, which no amount of
readout training should have to absorb. ``e0s="refit"`` (default)
re-estimates the E0s from the fine-tuning data by least squares on
composition, as a correction to the pre-trained E0s that makes the model's
mean energy right for these data (scratch: a plain fit). ``e0s="keep"``
keeps the model's E0s (data from the same DFT setup); a dict sets them (eV).

Loss (mace-torch's terms, energies per atom)::

    L = w_E * mean((dE / N)^2) + w_F * mean(dF^2) + w_S * mean(dS^2)   [eV^2, eV^2/Å^2, ...]

``forces_weight=0`` is the energy-only mode: one label per structure instead
of 1 + 3N, and forces are then not even computed while training.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import mace  # noqa: F401  (import mace before e3nn: e3nn alone fails on torch 2.13)
import numpy as np
import torch
from ase import Atoms
from mace.modules.loss import (
    mean_squared_error_forces,
    weighted_mean_squared_error_energy,
    weighted_mean_squared_stress,
)
from mace.tools.scatter import scatter_sum

from course_lib import data as ds
from course_lib import mace_models
from course_lib.graphs import graph_loader
from course_lib.models import resolve_device
from course_lib.zero_shot import (
    ErrorMetrics,
    Predictions,
    composition_matrix,
    error_metrics,
    predict,
)

logger = logging.getLogger(__name__)

REGIMES = ("few-shot", "full", "scratch")
SOLVERS = ("gradient", "closed-form")
DEFAULT_LR = {"few-shot": 5e-3, "full": 1e-3, "scratch": 1e-2}


class UnknownElementsError(ValueError):
    """The data contain elements the pre-trained model has no embedding for."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LossWeights:
    """Weights of the per-atom energy (1/eV²), force (Å²/eV²) and stress terms of the loss."""

    energy: float = 1.0
    forces: float = 100.0
    stress: float = 0.0

    def __post_init__(self):
        for name in ("energy", "forces", "stress"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name}_weight must be finite and >= 0, got {value}")
        if self.energy == self.forces == self.stress == 0:
            raise ValueError("all loss weights are zero; nothing to fit")


@dataclass(frozen=True)
class TrainingHistory:
    """Per-epoch losses and errors; epoch 0 is the starting model (validation only).

    Losses are in the loss's units; MAEs in meV/atom (energy) and meV/Å
    (force components). Training-set MAEs are accumulated over each epoch's
    batches while the weights move; NaN where not computed.
    """

    epoch: tuple[int, ...]
    train_loss: tuple[float, ...]
    valid_loss: tuple[float, ...]
    train_energy_mae: tuple[float, ...]
    valid_energy_mae: tuple[float, ...]
    train_force_mae: tuple[float, ...]
    valid_force_mae: tuple[float, ...]
    lr: tuple[float, ...]
    best_epoch: int
    stopped_early: bool
    wall_time_s: float

    def rows(self) -> list[dict]:
        names = (
            "epoch",
            "train_loss",
            "valid_loss",
            "train_energy_mae",
            "valid_energy_mae",
            "train_force_mae",
            "valid_force_mae",
            "lr",
        )
        return [dict(zip(names, values)) for values in zip(*(getattr(self, n) for n in names))]

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, record: Mapping) -> TrainingHistory:
        """The inverse of ``as_dict``, e.g. for the history stored in a model card."""
        names = [f.name for f in fields(cls)]
        missing = sorted(set(names) - set(record))
        if missing:
            raise KeyError(f"a training history needs {missing}; got keys {sorted(record)}")
        return cls(
            **{n: tuple(record[n]) if isinstance(record[n], list) else record[n] for n in names}
        )

    def table(self) -> str:
        lines = [
            f"{'epoch':>5} {'train loss':>11} {'valid loss':>11} {'E MAE':>8} {'F MAE':>8} {'lr':>8}",
            f"{'':>5} {'':>11} {'':>11} {'meV/at':>8} {'meV/Å':>8}",
        ]
        for row in self.rows():
            marker = " *" if row["epoch"] == self.best_epoch else ""
            lines.append(
                f"{row['epoch']:>5} {row['train_loss']:>11.4g} {row['valid_loss']:>11.4g} "
                f"{row['valid_energy_mae']:>8.2f} {row['valid_force_mae']:>8.1f} "
                f"{row['lr']:>8.1e}{marker}"
            )
        lines.append(
            f"best epoch {self.best_epoch} (*), {'stopped early' if self.stopped_early else 'ran all epochs'}, "
            f"{self.wall_time_s:.1f} s"
        )
        return "\n".join(lines)

    __str__ = table


@dataclass(frozen=True)
class ReadoutPosterior:
    """Closed-form fit of the readouts' last linear layers (ridge = Gaussian prior).

    ``mean`` holds the fitted weights, concatenated in ``parameter_names``
    order; ``covariance`` their posterior covariance ``s2 * (A'A + ridge*I)^-1``
    with ``s2`` (``noise_variance``) the residual variance of the loss-weighted
    label rows.
    """

    parameter_names: tuple[str, ...]
    parameter_sizes: tuple[int, ...]
    mean: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)
    noise_variance: float
    ridge: float
    n_energy_labels: int
    n_force_labels: int


@dataclass(frozen=True)
class FitOutcome:
    """What ``fine_tune`` returns: the trained model and what was learned on the way."""

    model: torch.nn.Module = field(repr=False)
    history: TrainingHistory | None
    e0s: dict[str, float]
    e0_shift: dict[str, float]
    trainable: tuple[str, ...]
    posterior: ReadoutPosterior | None = None


# --------------------------------------------------------------------------- set-up


def trainable_parameter_names(
    model: torch.nn.Module, *, regime: str, trainable: str = "readouts"
) -> tuple[str, ...]:
    """Names of the parameters a regime trains.

    few-shot ``"readouts"``: ``readouts.*``; ``"last-layer"``: also the last
    ``interactions.*`` and ``products.*`` block. full and scratch: all.
    """
    names = [name for name, _ in model.named_parameters()]
    if regime in ("full", "scratch"):
        return tuple(names)
    last = len(model.interactions) - 1
    prefixes = {
        "readouts": ("readouts.",),
        "last-layer": ("readouts.", f"interactions.{last}.", f"products.{last}."),
    }
    if trainable not in prefixes:
        raise ValueError(f"trainable must be one of {list(prefixes)}, got {trainable!r}")
    return tuple(n for n in names if n.startswith(prefixes[trainable]))


def freeze_all_but(model: torch.nn.Module, names: Sequence[str]) -> None:
    """Set ``requires_grad`` on exactly the named parameters."""
    keep = set(names)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in keep)


def check_elements(model: torch.nn.Module, frames: Sequence[Atoms], *, regime: str) -> None:
    """Raise ``UnknownElementsError`` if fine-tuning would meet elements the model lacks."""
    if regime == "scratch":
        return
    known = set(mace_models.model_elements(model))
    unknown = sorted(set(mace_models.frame_elements(frames)) - known)
    if unknown:
        raise UnknownElementsError(
            f"elements {unknown} are not among the {len(known)} elements the model was "
            f"trained on; regime={regime!r} keeps the model's element embeddings and cannot "
            "learn new elements. Use regime='scratch', which builds a model for the "
            "elements of your data."
        )


def split_validation(
    frames: Sequence[Atoms], *, valid_fraction: float, seed: int
) -> tuple[list[Atoms], list[Atoms]]:
    """Seeded train/validation split; at least one frame in each."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must lie in (0, 1), got {valid_fraction}")
    if len(frames) < 2:
        raise ds.DatasetError(
            f"need at least 2 training frames to hold one out for validation, got {len(frames)}; "
            "pass more frames or valid_frames explicitly"
        )
    n_valid = min(len(frames) - 1, max(1, round(valid_fraction * len(frames))))
    order = np.random.default_rng(seed).permutation(len(frames))
    return [frames[i] for i in order[n_valid:]], [frames[i] for i in order[:n_valid]]


def refit_e0s(model: torch.nn.Module, frames: Sequence[Atoms], *, batch_size: int) -> dict:
    """E0s (eV) that correct the model's mean energy on ``frames``; writes them into the model."""
    predicted = predict(model, frames, batch_size=batch_size, compute_stress=False).energies
    e0s = mace_models.fit_e0s(
        frames, predicted_energies=predicted, baseline=mace_models.model_e0s(model)
    )
    mace_models.set_model_e0s(model, e0s)
    return e0s


# --------------------------------------------------------------------------- training


@dataclass
class _EpochStats:
    loss: float = float("nan")
    energy_mae: float = float("nan")
    force_mae: float = float("nan")


def batch_loss(batch, output: dict, weights: LossWeights) -> torch.Tensor:
    """Weighted loss of one batch (mace-torch's per-atom energy, force and stress terms)."""
    loss = weights.energy * weighted_mean_squared_error_energy(batch, output, ddp=False)
    if weights.forces:
        loss = loss + weights.forces * mean_squared_error_forces(batch, output, ddp=False)
    if weights.stress:
        loss = loss + weights.stress * weighted_mean_squared_stress(batch, output, ddp=False)
    return loss


def _run_epoch(model, loader, weights: LossWeights, *, optimizer=None, pull=None, clip=10.0):
    """One pass over ``loader``: trains when ``optimizer`` is given, else evaluates."""
    device = next(model.parameters()).device
    training = optimizer is not None
    need_forces = weights.forces > 0 or not training
    sums = np.zeros(5)  # loss*graphs, |dE|/N, graphs, |dF|, force components
    for batch in loader:
        batch = batch.to(device)
        output = model(
            batch.to_dict(),
            training=training,
            compute_force=need_forces,
            compute_stress=weights.stress > 0,
        )
        loss = batch_loss(batch, output, weights)
        if training:
            optimizer.zero_grad(set_to_none=True)
            total = loss + pull() if pull is not None else loss
            total.backward()
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
        n_atoms = batch.ptr[1:] - batch.ptr[:-1]
        with torch.no_grad():
            energy_error = ((output["energy"] - batch.energy) / n_atoms).abs()
            sums[:3] += (float(loss) * len(n_atoms), float(energy_error.sum()), len(n_atoms))
            if need_forces:
                force_error = (output["forces"] - batch.forces).abs()
                sums[3:] += (float(force_error.sum()), force_error.numel())
    return _EpochStats(
        loss=sums[0] / sums[2],
        energy_mae=1e3 * sums[1] / sums[2],
        force_mae=1e3 * sums[3] / sums[4] if sums[4] else float("nan"),
    )


def _l2_pull(parameters: Sequence[torch.nn.Parameter], strength: float):
    """``strength * sum (w - w0)^2`` toward the current (pre-trained) values."""
    reference = [p.detach().clone() for p in parameters]

    def penalty() -> torch.Tensor:
        return strength * sum(((p - r) ** 2).sum() for p, r in zip(parameters, reference))

    return penalty


def train(
    model: torch.nn.Module,
    train_frames: Sequence[Atoms],
    valid_frames: Sequence[Atoms],
    *,
    weights: LossWeights = LossWeights(),
    max_epochs: int = 50,
    batch_size: int = 8,
    lr: float = 1e-3,
    l2_pull: float = 0.0,
    patience: int = 10,
    lr_patience: int = 3,
    lr_factor: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> TrainingHistory:
    """Adam on the parameters that require grad; keeps the best validation state.

    The learning rate is halved (``lr_factor``) after ``lr_patience`` epochs
    without validation improvement, training stops after ``patience`` such
    epochs, and the model ends with the weights of its best validation epoch.
    Batches are shuffled by a generator seeded with ``seed``.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("no trainable parameters")
    optimizer = torch.optim.Adam(parameters, lr=lr, amsgrad=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=lr_factor, patience=lr_patience
    )
    pull = _l2_pull(parameters, l2_pull) if l2_pull > 0 else None
    train_loader = graph_loader(train_frames, model, batch_size=batch_size, shuffle=True, seed=seed)
    valid_loader = graph_loader(valid_frames, model, batch_size=batch_size)

    rows = [(0, _EpochStats(), _run_epoch(model, valid_loader, weights), lr)]
    best_loss, best_epoch = rows[0][2].loss, 0
    best_state = copy.deepcopy(model.state_dict())
    stopped_early = False
    bar = tqdm(range(1, max_epochs + 1), desc="training", disable=not progress, leave=False)
    for epoch in bar:
        train_stats = _run_epoch(model, train_loader, weights, optimizer=optimizer, pull=pull)
        valid_stats = _run_epoch(model, valid_loader, weights)
        rows.append((epoch, train_stats, valid_stats, optimizer.param_groups[0]["lr"]))
        scheduler.step(valid_stats.loss)
        bar.set_postfix(
            E=f"{valid_stats.energy_mae:.1f} meV/at", F=f"{valid_stats.force_mae:.0f} meV/Å"
        )
        if valid_stats.loss < best_loss:
            best_loss, best_epoch = valid_stats.loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= patience:
            stopped_early = True
            break
    bar.close()
    model.load_state_dict(best_state)
    return TrainingHistory(
        epoch=tuple(r[0] for r in rows),
        train_loss=tuple(r[1].loss for r in rows),
        valid_loss=tuple(r[2].loss for r in rows),
        train_energy_mae=tuple(r[1].energy_mae for r in rows),
        valid_energy_mae=tuple(r[2].energy_mae for r in rows),
        train_force_mae=tuple(r[1].force_mae for r in rows),
        valid_force_mae=tuple(r[2].force_mae for r in rows),
        lr=tuple(r[3] for r in rows),
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        wall_time_s=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- closed form


def readout_linears(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The last linear layer of each readout, by parameter-name prefix.

    The readout output (and so the energy and forces) is linear in their weights.
    """
    layers = {}
    for i, block in enumerate(model.readouts):
        name = "linear" if hasattr(block, "linear") else "linear_2"
        layer = getattr(block, name)
        extra = [n for n, _ in layer.named_parameters() if n != "weight"]
        if extra:
            raise ValueError(
                f"readouts.{i}.{name} has parameters {extra}; closed form needs bias-free readouts"
            )
        layers[f"readouts.{i}.{name}"] = layer
    return layers


def readout_design_rows(model, batch, layers, *, with_forces: bool):
    """Energy and force design matrices of one batch: d(E, F)/d(readout weights).

    Returns (energy rows [n_graphs, P], force rows [3 n_atoms, P] or None,
    predicted energies, predicted forces).
    """
    captured = {}
    hooks = [
        layer.register_forward_hook(
            lambda mod, args, out, key=key: captured.__setitem__(key, args[0])
        )
        for key, layer in layers.items()
    ]
    try:
        output = model(batch.to_dict(), training=False, compute_force=False)
    finally:
        for hook in hooks:
            hook.remove()
    positions = batch["positions"]
    energy = output["energy"]
    scale = torch.atleast_1d(model.scale_shift.scale)[0]
    columns = []
    for key, layer in layers.items():
        x = captured[key]
        basis = torch.eye(layer.weight.numel(), dtype=x.dtype, device=x.device)
        for row in basis:  # the layer's output for a one-hot weight: one feature per atom
            per_atom = torch.func.functional_call(layer, {"weight": row}, (x,))[:, 0]
            columns.append(scatter_sum(scale * per_atom, batch.batch, dim=0, dim_size=len(energy)))
    energy_rows = torch.stack(columns, dim=1)
    if not with_forces:
        return energy_rows.detach(), None, energy.detach(), None
    grads = [
        torch.autograd.grad(column.sum(), positions, retain_graph=True)[0] for column in columns
    ]
    forces = -torch.autograd.grad(energy.sum(), positions)[0]
    force_rows = -torch.stack([g.reshape(-1) for g in grads], dim=1)
    return energy_rows.detach(), force_rows.detach(), energy.detach(), forces.detach()


def _accumulate(normal, rhs, rows, target, weight) -> float:
    """Add weighted rows to the normal equations in place; return their weighted target sum of squares."""
    normal += weight * rows.T @ rows
    rhs += weight * rows.T @ target
    return weight * float(target @ target)


def fit_readouts_closed_form(
    model: torch.nn.Module,
    frames: Sequence[Atoms],
    *,
    weights: LossWeights = LossWeights(),
    ridge: float = 1e-6,
    refit_e0s: bool = True,
    batch_size: int = 8,
) -> tuple[ReadoutPosterior, dict[str, float]]:
    """Fit the readouts' last linear layers (and E0 shifts) by one ridge least-squares solve.

    Minimises the same loss as gradient training (energy per atom and force
    components, weighted, averaged over their label counts) over those weights
    only, plus ``ridge * mean(diag A'A) * |w - w_pretrained|^2``, which is the
    L2 pull toward the pre-trained weights. Updates ``model`` in place and
    returns the posterior and the E0s (eV).
    """
    layers = readout_linears(model)
    if refit_e0s:
        mace_models.warn_if_compositions_collinear(frames)
    elements = list(mace_models.model_elements(model))
    n_weights = sum(layer.weight.numel() for layer in layers.values())
    n_columns = n_weights + (len(elements) if refit_e0s else 0)
    normal = np.zeros((n_columns, n_columns))
    rhs = np.zeros(n_columns)
    residual_ss = 0.0
    with_forces = weights.forces > 0
    device = next(model.parameters()).device
    n_graphs, n_components = len(frames), 3 * sum(len(a) for a in frames)
    first = 0
    for batch in graph_loader(frames, model, batch_size=batch_size):
        energy_rows, force_rows, energy, forces = (
            None if t is None else t.double().cpu().numpy()
            for t in readout_design_rows(model, batch.to(device), layers, with_forces=with_forces)
        )
        n_atoms = np.diff(batch.ptr.numpy())[:, None]
        last = first + len(n_atoms)
        rows = energy_rows / n_atoms
        if refit_e0s:
            rows = np.hstack([rows, composition_matrix(frames[first:last], elements) / n_atoms])
        target = (batch.energy.double().numpy() - energy) / n_atoms[:, 0]
        residual_ss += _accumulate(normal, rhs, rows, target, weights.energy / n_graphs)
        if force_rows is not None:
            rows = np.pad(force_rows, ((0, 0), (0, n_columns - n_weights)))
            target = batch.forces.double().numpy().ravel() - forces.ravel()
            residual_ss += _accumulate(normal, rhs, rows, target, weights.forces / n_components)
        first = last
    penalty = np.zeros(n_columns)
    penalty[:n_weights] = ridge * np.mean(np.diag(normal)[:n_weights])
    precision = normal + np.diag(penalty)
    delta = np.linalg.lstsq(precision, rhs, rcond=None)[0]
    # weighted residual after the fit: r'Wr - 2 d'A'Wr + d'A'WA d
    fitted_ss = residual_ss - 2 * delta @ rhs + delta @ normal @ delta
    n_labels = n_graphs + (n_components if with_forces else 0)
    noise = max(fitted_ss, 0.0) / max(n_labels - n_columns, 1)
    covariance = noise * np.linalg.pinv(precision)

    offset = 0
    means = []
    with torch.no_grad():
        for layer in layers.values():
            size = layer.weight.numel()
            layer.weight += torch.as_tensor(
                delta[offset : offset + size], dtype=layer.weight.dtype, device=layer.weight.device
            )
            means.append(layer.weight.detach().cpu().double().numpy().copy())
            offset += size
    e0s = mace_models.model_e0s(model)
    if refit_e0s:
        present = set(mace_models.frame_elements(frames))
        e0s = {s: e0s[s] + float(d) for s, d in zip(elements, delta[n_weights:]) if s in present}
        mace_models.set_model_e0s(model, e0s)
    posterior = ReadoutPosterior(
        parameter_names=tuple(f"{key}.weight" for key in layers),
        parameter_sizes=tuple(layer.weight.numel() for layer in layers.values()),
        mean=np.concatenate(means),
        covariance=covariance[:n_weights, :n_weights],
        noise_variance=float(noise),
        ridge=ridge,
        n_energy_labels=n_graphs,
        n_force_labels=n_components if with_forces else 0,
    )
    return posterior, e0s


def readout_energy_std(
    model: torch.nn.Module,
    posterior: ReadoutPosterior,
    frames: Sequence[Atoms],
    *,
    batch_size: int = 16,
) -> np.ndarray:
    """Posterior standard deviation of each frame's energy (eV) from the readout fit.

    ``sqrt(a' C a)`` with ``a`` the frame's energy design row (derivative of
    its energy with respect to the fitted readout weights) and ``C`` the
    posterior covariance: large where the frozen features of a structure
    lie outside those the readouts were fitted on. Needs no force passes.
    """
    layers = readout_linears(model)
    device = next(model.parameters()).device
    variances = []
    for batch in graph_loader(frames, model, batch_size=batch_size):
        rows = readout_design_rows(model, batch.to(device), layers, with_forces=False)[0]
        rows = rows.double().cpu().numpy()
        variances.append(np.einsum("ij,jk,ik->i", rows, posterior.covariance, rows))
    return np.sqrt(np.clip(np.concatenate(variances), 0.0, None))


# --------------------------------------------------------------------------- the entry point


def fine_tune(
    model: torch.nn.Module | None,
    train_frames: Sequence[Atoms],
    *,
    valid_frames: Sequence[Atoms] | None = None,
    regime: str = "few-shot",
    trainable: str = "readouts",
    solver: str = "gradient",
    e0s: str | Mapping[str, float] = "refit",
    weights: LossWeights = LossWeights(),
    l2_pull: float = 0.0,
    ridge: float = 1e-6,
    architecture: mace_models.MaceArchitecture | None = None,
    max_epochs: int = 50,
    batch_size: int = 8,
    lr: float | None = None,
    patience: int = 10,
    lr_patience: int = 3,
    lr_factor: float = 0.5,
    valid_fraction: float = 0.1,
    seed: int = 0,
    dtype: str = "float64",
    device: str = "auto",
    progress: bool = True,
) -> FitOutcome:
    """Train a copy of ``model`` in one of the three regimes (see the module docstring).

    Every input is checked before any training starts: the regime and its
    options, labels (finite, right shapes), elements the model does not
    know, and that training and validation sets are non-empty. ``model`` is
    never modified; ``None`` is allowed for ``regime="scratch"``.
    """
    _check_settings(
        model,
        regime=regime,
        solver=solver,
        trainable=trainable,
        e0s=e0s,
        l2_pull=l2_pull,
        dtype=dtype,
    )
    train_frames, valid_frames = _checked_frames(
        train_frames,
        valid_frames,
        split=solver == "gradient",
        valid_fraction=valid_fraction,
        seed=seed,
        require_stress=weights.stress > 0,
    )
    if model is not None:
        check_elements(model, train_frames + (valid_frames or []), regime=regime)
    working = _starting_model(
        model, train_frames, regime=regime, architecture=architecture, e0s=e0s, seed=seed,
        dtype=dtype,
    ).to(torch.device(resolve_device(device)))  # fmt: skip

    names = trainable_parameter_names(working, regime=regime, trainable=trainable)
    freeze_all_but(working, names)
    if regime != "scratch":
        if isinstance(e0s, Mapping):
            mace_models.set_model_e0s(working, e0s)
        elif e0s == "refit" and solver == "gradient":
            refit_e0s(working, train_frames, batch_size=batch_size)

    history = posterior = None
    if solver == "closed-form":
        posterior, _ = fit_readouts_closed_form(
            working,
            train_frames,
            weights=weights,
            ridge=ridge,
            refit_e0s=e0s == "refit",
            batch_size=batch_size,
        )
        names = posterior.parameter_names
    else:
        history = train(
            working,
            train_frames,
            valid_frames,
            weights=weights,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr or DEFAULT_LR[regime],
            l2_pull=l2_pull,
            patience=patience,
            lr_patience=lr_patience,
            lr_factor=lr_factor,
            seed=seed,
            progress=progress,
        )
    freeze_all_but(working, [])
    present = set(mace_models.frame_elements(train_frames))
    learned_e0s = {s: v for s, v in mace_models.model_e0s(working).items() if s in present}
    shift = {}
    if regime != "scratch":
        start_e0s = mace_models.model_e0s(model)
        shift = {s: v - start_e0s[s] for s, v in learned_e0s.items()}
    return FitOutcome(
        model=working.eval(),
        history=history,
        e0s=learned_e0s,
        e0_shift=shift,
        trainable=tuple(names),
        posterior=posterior,
    )


def _checked_frames(train_frames, valid_frames, *, split, valid_fraction, seed, require_stress):
    """Validated training and validation frames; validation split off training when not given."""
    train_frames = list(train_frames)
    if not train_frames:
        raise ds.DatasetError("train_frames is empty; need labelled frames to fine-tune on")
    checks = dict(require_pbc=False, require_stress=require_stress)
    ds.validate_frames(train_frames, source="train_frames", **checks)
    if valid_frames is None:
        if not split:
            return train_frames, None
        return split_validation(train_frames, valid_fraction=valid_fraction, seed=seed)
    valid_frames = list(valid_frames)
    if not valid_frames:
        raise ds.DatasetError("valid_frames is empty; pass None to split it off train_frames")
    ds.validate_frames(valid_frames, source="valid_frames", **checks)
    return train_frames, valid_frames


def _starting_model(model, train_frames, *, regime, architecture, e0s, seed, dtype):
    """A copy of the pre-trained model, or for scratch a fresh one of its (or a given) architecture."""
    if regime != "scratch":
        return copy.deepcopy(model).to(mace_models.DTYPES[dtype])
    if architecture is None and model is not None:
        architecture = mace_models.architecture_of(model)
    fixed = dict(e0s) if isinstance(e0s, Mapping) else None
    if e0s == "keep":
        fixed = mace_models.model_e0s(model)
    return mace_models.build_mace(
        train_frames, architecture=architecture, e0s=fixed, seed=seed, dtype=dtype
    )


def _check_settings(model, *, regime, solver, trainable, e0s, l2_pull, dtype) -> None:
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "closed-form" and (regime != "few-shot" or trainable != "readouts"):
        raise ValueError(
            "solver='closed-form' fits the readouts of a frozen model: it needs "
            "regime='few-shot' and trainable='readouts'"
        )
    if trainable not in ("readouts", "last-layer"):
        raise ValueError(f"trainable must be 'readouts' or 'last-layer', got {trainable!r}")
    if not (isinstance(e0s, Mapping) or e0s in ("refit", "keep")):
        raise ValueError(f"e0s must be 'refit', 'keep' or a dict of eV per element, got {e0s!r}")
    if dtype not in mace_models.DTYPES:
        raise ValueError(f"dtype must be one of {list(mace_models.DTYPES)}, got {dtype!r}")
    if model is None and regime != "scratch":
        raise ValueError(f"regime={regime!r} starts from a pre-trained model; pass model=...")
    if model is None and e0s == "keep":
        raise ValueError("e0s='keep' keeps a model's E0s; there is no model")
    if l2_pull < 0 or (l2_pull > 0 and regime == "scratch"):
        raise ValueError("l2_pull must be >= 0 and pulls toward pre-trained weights (not scratch)")


# --------------------------------------------------------------------------- the estimator


class FineTuner:
    """scikit-learn-style estimator over ``fine_tune``.

    >>> tuner = FineTuner(regime="few-shot", model="course-mini", max_epochs=20)
    >>> tuner.fit(train_frames)                    # doctest: +SKIP
    >>> tuner.evaluate(test_frames).table()        # doctest: +SKIP

    Settings are stored as given; ``fit`` does the work and sets ``model_``
    (the trained ``torch.nn.Module``), ``history_`` (``TrainingHistory``, None
    for the closed form), ``e0s_`` (eV per element of the training data),
    ``e0_shift_`` (``e0s_`` minus the pre-trained E0s: the per-element offset
    between the two DFT setups, empty for scratch),
    ``trainable_`` (parameter names trained) and ``posterior_`` (closed form).
    ``model`` is a module, a registered name or a MACE file path.
    """

    def __init__(
        self,
        *,
        regime: str = "few-shot",
        model: torch.nn.Module | str | os.PathLike | None = None,
        trainable: str = "readouts",
        solver: str = "gradient",
        e0s: str | Mapping[str, float] = "refit",
        energy_weight: float = 1.0,
        forces_weight: float = 100.0,
        stress_weight: float = 0.0,
        l2_pull: float = 0.0,
        ridge: float = 1e-6,
        architecture: mace_models.MaceArchitecture | None = None,
        max_epochs: int = 50,
        batch_size: int = 8,
        lr: float | None = None,
        patience: int = 10,
        lr_patience: int = 3,
        lr_factor: float = 0.5,
        valid_fraction: float = 0.1,
        seed: int = 0,
        dtype: str = "float64",
        device: str = "auto",
        progress: bool = True,
    ):
        self.regime = regime
        self.model = model
        self.trainable = trainable
        self.solver = solver
        self.e0s = e0s
        self.energy_weight = energy_weight
        self.forces_weight = forces_weight
        self.stress_weight = stress_weight
        self.l2_pull = l2_pull
        self.ridge = ridge
        self.architecture = architecture
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.lr_patience = lr_patience
        self.lr_factor = lr_factor
        self.valid_fraction = valid_fraction
        self.seed = seed
        self.dtype = dtype
        self.device = device
        self.progress = progress

    def get_params(self) -> dict:
        """The settings given to ``__init__``, by name (as scikit-learn's estimators)."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in names if name != "self"}

    def fit(self, train_frames: Sequence[Atoms], valid_frames: Sequence[Atoms] | None = None):
        """Train on ``train_frames`` (validation split off them unless given); returns self."""
        settings = self.get_params()
        model = settings.pop("model")
        weights = LossWeights(
            energy=settings.pop("energy_weight"),
            forces=settings.pop("forces_weight"),
            stress=settings.pop("stress_weight"),
        )
        outcome = fine_tune(
            load_model(model, dtype=self.dtype) if model is not None else None,
            train_frames,
            valid_frames=valid_frames,
            weights=weights,
            **settings,
        )
        self.model_ = outcome.model
        self.history_ = outcome.history
        self.e0s_ = outcome.e0s
        self.e0_shift_ = outcome.e0_shift
        self.trainable_ = outcome.trainable
        self.posterior_ = outcome.posterior
        return self

    def predict(self, frames: Sequence[Atoms], *, batch_size: int = 16) -> Predictions:
        """Energies (eV), forces (eV/Å) and stresses of the fitted model, batched."""
        compute_stress = all(a.pbc.all() for a in frames)
        return predict(self._fitted(), frames, batch_size=batch_size, compute_stress=compute_stress)

    def evaluate(self, frames: Sequence[Atoms], *, batch_size: int = 16) -> ErrorMetrics:
        """Errors of the fitted model on labelled ``frames`` (meV/atom, meV/Å)."""
        return error_metrics(frames, self.predict(frames, batch_size=batch_size))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model atomically; ``MACECalculator(model_paths=path)`` loads it."""
        return save_model(self._fitted(), path)

    def calculator(self, *, device: str = "cpu"):
        """An ASE calculator (mace-torch's ``MACECalculator``) on a copy of the fitted model."""
        return calculator_for(self._fitted(), device=device)

    def _fitted(self) -> torch.nn.Module:
        if not hasattr(self, "model_"):
            raise RuntimeError("this FineTuner is not fitted yet; call fit(train_frames) first")
        return self.model_


# --------------------------------------------------------------------------- files


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


# --------------------------------------------------------------------------- one regime, measured


@dataclass(frozen=True)
class RegimeResult:
    """One regime run on one dataset: test errors, cost, and what it did elsewhere.

    ``zero_shot`` is the starting model on the same test frames (raw and
    E0-aligned; None for scratch). ``forgetting`` and ``forgetting_before``
    are the fine-tuned and the starting model on the pre-training corpus's
    held-out frames, when given: the cost of fine-tuning elsewhere. Their
    energy errors include the E0 refit (a per-element shift toward the new
    DFT setup); force errors are the clean measure of forgetting.
    """

    regime: str
    n_train: int
    n_labels: int
    test: ErrorMetrics
    zero_shot: object | None  # course_lib.zero_shot.ZeroShotResult
    forgetting: ErrorMetrics | None
    forgetting_before: ErrorMetrics | None
    e0s: dict[str, float]
    history: TrainingHistory | None
    model_path: Path | None
    fit_time_s: float
    test_predictions: Predictions = field(repr=False)
    tuner: FineTuner = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "regime": self.regime,
            "n_train": self.n_train,
            "n_labels": self.n_labels,
            "test": self.test.as_dict(),
            "zero_shot": self.zero_shot.as_dict() if self.zero_shot is not None else None,
            "forgetting": self.forgetting.as_dict() if self.forgetting else None,
            "forgetting_before": (
                self.forgetting_before.as_dict() if self.forgetting_before else None
            ),
            "e0s_eV": self.e0s,
            "best_epoch": self.history.best_epoch if self.history else None,
            "epochs_run": self.history.epoch[-1] if self.history else 0,
            "model_path": str(self.model_path) if self.model_path else None,
            "fit_time_s": round(self.fit_time_s, 2),
        }

    def table(self) -> str:
        def row(name, metrics):
            if metrics is None:
                return None
            return (
                f"{name:<28} {metrics.energy_mae_meV_per_atom:>10.2f} "
                f"{metrics.force_mae_meV_per_A:>10.1f}"
            )

        lines = [
            f"{self.regime}: {self.n_train} structures, {self.n_labels} labels, "
            f"{self.fit_time_s:.1f} s",
            f"{'':<28} {'E meV/atom':>10} {'F meV/Å':>10}",
        ]
        if self.zero_shot is not None:
            lines.append(row("test, before (E aligned)", self.zero_shot.aligned))
        lines.append(row("test, after", self.test))
        lines.append(row("pre-training set, before", self.forgetting_before))
        lines.append(row("pre-training set, after", self.forgetting))
        if self.model_path:
            lines.append(f"model: {self.model_path}")
        return "\n".join(line for line in lines if line is not None)

    __str__ = table


def run_regime(
    model: torch.nn.Module | str | os.PathLike | None,
    train_frames: Sequence[Atoms],
    test_frames: Sequence[Atoms],
    *,
    regime: str,
    out: str | os.PathLike | None = None,
    pretraining_frames: Sequence[Atoms] | None = None,
    **settings,
) -> RegimeResult:
    """Fit one regime (``FineTuner`` settings as keywords), save it, and measure it.

    Test frames must only hold elements the trained model knows. ``out``
    is written atomically after training, so an interrupted run leaves a
    previous file there intact.
    """
    from course_lib.zero_shot import evaluate

    ds.validate_frames(test_frames, source="test_frames", require_pbc=False)
    start = load_model(model, dtype=settings.get("dtype", "float64")) if model is not None else None
    tuner = FineTuner(regime=regime, model=start, **settings)
    began = time.perf_counter()
    tuner.fit(train_frames)
    fit_time = time.perf_counter() - began
    unknown = sorted(
        set(mace_models.frame_elements(test_frames)) - set(mace_models.model_elements(tuner.model_))
    )
    if unknown:
        raise UnknownElementsError(
            f"test frames contain {unknown}, which the training frames lack; the model cannot "
            "predict them"
        )
    predictions = tuner.predict(test_frames)
    forgetting = forgetting_before = zero_shot = None
    if start is not None and regime != "scratch":
        zero_shot = evaluate(start, test_frames, dataset="test_frames")
        if pretraining_frames is not None:
            forgetting_before = error_metrics(
                pretraining_frames, predict(start, pretraining_frames)
            )
            forgetting = tuner.evaluate(pretraining_frames)
    path = tuner.save(out) if out is not None else None
    with_forces = tuner.forces_weight > 0
    return RegimeResult(
        regime=regime,
        n_train=len(train_frames),
        n_labels=ds.n_labels(train_frames, with_forces=with_forces),
        test=error_metrics(test_frames, predictions),
        zero_shot=zero_shot,
        forgetting=forgetting,
        forgetting_before=forgetting_before,
        e0s=tuner.e0s_,
        history=tuner.history_,
        model_path=path,
        fit_time_s=fit_time,
        test_predictions=predictions,
        tuner=tuner,
    )


# --------------------------------------------------------------------------- regimes compared


@dataclass(frozen=True)
class RegimeFrames:
    """The frames regimes are compared on: N training structures and one fixed test set.

    ``train`` is a seeded subset of the dataset's training split (``pool_size``
    structures), ``test`` its held-out split, the same for every regime and N.
    ``pretraining`` is the held-out split of the model's pre-training corpus
    (to measure forgetting), None without a corpus.
    """

    dataset: str
    train: list[Atoms] = field(repr=False)
    test: list[Atoms] = field(repr=False)
    pool_size: int
    corpus: str | None
    pretraining: list[Atoms] | None = field(repr=False)

    def table(self) -> str:
        lines = [
            f"{self.dataset}: {len(self.train)} training structures (of a pool of "
            f"{self.pool_size}), {len(self.test)} held-out test structures",
            f"labels in training: {ds.n_labels(self.train, with_forces=False)} energy-only, "
            f"{ds.n_labels(self.train)} with forces (1 + 3 x atoms per structure)",
        ]
        if self.pretraining is not None:
            lines.append(
                f"forgetting measured on {len(self.pretraining)} held-out frames of {self.corpus}"
            )
        return "\n".join(lines)

    __str__ = table


def regime_frames(
    dataset: str | os.PathLike,
    *,
    n: int | None = None,
    seed: int = 0,
    corpus: str | os.PathLike | None = None,
) -> RegimeFrames:
    """Split ``dataset`` (fixed splits kept), draw ``n`` training structures (None: all).

    ``corpus`` names the pre-training corpus whose held-out split measures
    forgetting (``course_lib.models.pretraining_corpus(model)``).
    """
    frames = ds.read_dataset(dataset, require_pbc=False)
    pool, test = ds.train_test_split(frames, seed=seed)
    train = ds.subset(pool, len(pool) if n is None else n, seed=seed)
    pretraining = None
    if corpus is not None:
        pretraining = ds.train_test_split(ds.read_dataset(corpus), seed=0)[1]
    return RegimeFrames(
        dataset=Path(dataset).stem,
        train=train,
        test=test,
        pool_size=len(pool),
        corpus=None if corpus is None else Path(corpus).stem,
        pretraining=pretraining,
    )


def compare_regimes(results: Mapping[str, RegimeResult]) -> str:
    """One table of several regimes on the same test set, zero-shot (E aligned) first.

    Columns: training structures and labels, fit time (s), test energy
    (meV/atom) and force (meV/Å) MAE, and the force MAE on the pre-training
    corpus's held-out frames before -> after (forgetting; "-" if not measured).
    """
    header = (
        f"{'':<26} {'N':>4} {'labels':>7} {'fit s':>6} {'E meV/atom':>11} {'F meV/Å':>8}"
        f"  {'corpus F meV/Å':>16}"
    )
    lines = [header]
    start = next((r for r in results.values() if r.zero_shot is not None), None)
    if start is not None:
        lines.append(
            _comparison_row(
                "zero-shot (E aligned)", 0, 0, None, start.zero_shot.aligned,
                start.forgetting_before, None,
            )
        )  # fmt: skip
    for label, r in results.items():
        lines.append(
            _comparison_row(
                label, r.n_train, r.n_labels, r.fit_time_s, r.test, r.forgetting_before,
                r.forgetting,
            )
        )  # fmt: skip
    return "\n".join(lines)


def _comparison_row(label, n, labels, fit_s, test, before, after) -> str:
    fit = "-" if fit_s is None else f"{fit_s:.1f}"
    if before is None:
        corpus = "-"
    elif after is None:
        corpus = f"{before.force_mae_meV_per_A:.1f}"
    else:
        corpus = f"{before.force_mae_meV_per_A:.1f} -> {after.force_mae_meV_per_A:.1f}"
    return (
        f"{label:<26} {n:>4} {labels:>7} {fit:>6} {test.energy_mae_meV_per_atom:>11.2f} "
        f"{test.force_mae_meV_per_A:>8.1f}  {corpus:>16}"
    )
