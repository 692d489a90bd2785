"""The gradient training loop shared by every regime: loss, epochs, early stopping.

Loss (mace-torch's terms, energies per atom)::

    L = w_E * mean((dE / N)^2) + w_F * mean(dF^2) + w_S * mean(dS^2)   [eV^2, eV^2/Å^2, ...]

``LossWeights(forces=0)`` is the energy-only mode: one label per structure
instead of 1 + 3N, and forces are then not even computed while training.
``train`` runs Adam (AMSGrad) on whatever parameters require grad, halves
the learning rate on plateaus, stops early, and keeps the best validation
state; ``TrainingHistory`` is what it saw on the way.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import mace  # noqa: F401  (import mace before e3nn: e3nn alone fails on torch 2.13)
import numpy as np
import torch
from ase import Atoms
from mace.modules.loss import (
    mean_squared_error_forces,
    weighted_mean_squared_error_energy,
    weighted_mean_squared_stress,
)

from course_lib.graphs import graph_loader


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


#: mace-torch's stage-two (``--swa``) energy weight, with its forces weight of 100 kept.
MACE_STAGE_TWO_ENERGY_WEIGHT = 1000.0


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
    # The epoch whose weights the model ended with: best_epoch, or the last one (keep="last").
    kept_epoch: int | None = None
    # The first epoch trained with the stage-two loss weights; None without a stage two.
    stage_two_from: int | None = None

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
        names = [
            f.name for f in fields(cls) if f.name in record or f.default is dataclasses.MISSING
        ]
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
    min_epoch_frames: int = 0,
    keep: str = "best",
    stage_two: LossWeights | None = None,
    stage_two_epochs: int = 0,
    progress: bool = True,
) -> TrainingHistory:
    """Adam on the parameters that require grad; keeps the best validation state.

    The learning rate is halved (``lr_factor``) after ``lr_patience`` epochs
    without validation improvement, training stops after ``patience`` such
    epochs, and the model ends with the weights of its best validation epoch.
    Batches are shuffled by a generator seeded with ``seed``.

    ``min_epoch_frames``: an epoch passes over the training frames as many
    times as it takes to see at least this many, so that on 1 or 10
    structures an epoch still holds several gradient steps and the schedule,
    patience and validation cost per step stay those of a large set.

    ``keep="last"`` ends with the final weights instead of the best
    validation epoch's: for a fixed budget whose learning rate has decayed,
    where the validation loss (a mean of squares, led by a few large-force
    frames) no longer tells epochs apart but the energies still improve.

    ``stage_two``: mace-torch's second stage (``--swa``: energy weight 1000,
    forces 100). With the default weights (1 : 100) the loss hardly sees
    energies, so a force-led fit can leave them worse than it found them.
    Stage one ends after ``max_epochs - stage_two_epochs`` epochs or when early
    stopping fires; then, from its best weights, up to ``stage_two_epochs``
    epochs train on ``stage_two`` weights, with their own plateau schedule and
    early stopping, and the best epoch is chosen on the stage-two validation loss.
    """
    from tqdm.auto import tqdm

    if keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got {keep!r}")

    start = time.perf_counter()
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("no trainable parameters")
    optimizer = torch.optim.Adam(parameters, lr=lr, amsgrad=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=lr_factor, patience=lr_patience
    )
    pull = _l2_pull(parameters, l2_pull) if l2_pull > 0 else None
    repeats = max(1, -(-min_epoch_frames // max(1, len(train_frames))))
    train_loader = graph_loader(
        list(train_frames) * repeats, model, batch_size=batch_size, shuffle=True, seed=seed
    )
    valid_loader = graph_loader(valid_frames, model, batch_size=batch_size)

    rows = [(0, _EpochStats(), _run_epoch(model, valid_loader, weights), lr)]
    best_loss, best_epoch = rows[0][2].loss, 0
    best_state = copy.deepcopy(model.state_dict())
    stopped_early = False
    stage_two_from = None
    stages = [(weights, max_epochs - (stage_two_epochs if stage_two else 0))]
    if stage_two is not None and stage_two_epochs > 0:
        stages.append((stage_two, stage_two_epochs))
    bar = tqdm(total=sum(n for _, n in stages), desc="training", disable=not progress, leave=False)
    epoch = 0
    for stage, (stage_weights, n_epochs) in enumerate(stages):
        if stage == 1:  # restart from stage one's best weights, judged by the new loss
            model.load_state_dict(best_state)
            stage_two_from = epoch + 1
            best_loss, best_epoch = _run_epoch(model, valid_loader, stage_weights).loss, epoch
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=lr_factor, patience=lr_patience
            )
            stopped_early = False
        for _ in range(n_epochs):
            epoch += 1
            bar.update()
            train_stats = _run_epoch(
                model, train_loader, stage_weights, optimizer=optimizer, pull=pull
            )
            valid_stats = _run_epoch(model, valid_loader, stage_weights)
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
    if keep == "best":
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
        kept_epoch=best_epoch if keep == "best" else rows[-1][0],
        stage_two_from=stage_two_from,
    )
