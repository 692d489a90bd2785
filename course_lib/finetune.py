"""The chapter's second and third regimes: few-shot, full fine-tuning, and from scratch.

* **few-shot**: start from the pre-trained weights, freeze the early layers
  and train only the readouts (``trainable="readouts"``) or the readouts plus
  the last interaction and product blocks (``trainable="last-layer"``),
  optionally pulled toward the pre-trained weights by an L2 penalty
  ``l2_pull * sum (w - w_pretrained)^2``. The readout of a frozen MACE is
  linear in the weights of its last linear layers, so ``solver="closed-form"``
  fits them in one pass by ridge (Bayesian) least squares
  (``course_lib.closed_form``), which also gives a posterior covariance of
  those weights. Its cost is one backward pass per readout weight (~48 for
  the small default MACE), about 4-7 gradient epochs, and it lands on the
  optimum that gradient training approaches only slowly
  (``bench/bench_finetune.py``).
* **full**: every parameter trainable, starting from the pre-trained weights.
* **scratch**: the same architecture (the foundation model's hyper-parameters
  when one is given, else ``MaceArchitecture``) freshly initialised, for the
  elements of the training data, so it can learn elements the foundation
  model never saw.

Every setting lives in one frozen ``FineTuneSettings``, validated when it is
made; ``fine_tune``, ``FineTuner``, ``run_regime`` and the learning-curve
runner all take it (or its fields as keywords).

Reference energies. A model's energy is ``sum_i E0[Z_i]`` plus learned
per-atom terms. ``e0s="refit"`` (default) re-estimates the E0s from the
fine-tuning data by least squares on composition, as a correction to the
pre-trained E0s that makes the model's mean energy right for these data
(scratch: a plain fit). Data from another DFT setup differ from the
pre-training labels by a per-element constant, which the refit absorbs; but
even on the same setup the refit also absorbs the model's own composition
bias on the new system. ``e0s="keep"`` keeps the model's E0s; a dict sets
them (eV). The loss is ``course_lib.training``'s.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import mace  # noqa: F401  (import mace before e3nn: e3nn alone fails on torch 2.13)
import numpy as np
import torch
from ase import Atoms

from course_lib import data as ds
from course_lib import mace_models
from course_lib.closed_form import DesignCache, ReadoutPosterior, fit_readouts_closed_form
from course_lib.mace_models import calculator_for, load_model, save_model
from course_lib.models import resolve_device
from course_lib.training import LossWeights, TrainingHistory, train
from course_lib.zero_shot import ErrorMetrics, Predictions, ZeroShotResult, error_metrics, predict

logger = logging.getLogger(__name__)

REGIMES = ("few-shot", "full", "scratch")
SOLVERS = ("gradient", "closed-form")
TRAINABLE = ("readouts", "last-layer", "freeze-5", "lora")
DEFAULT_LR = {"few-shot": 5e-3, "full": 1e-3, "scratch": 1e-2}


class UnknownElementsError(ValueError):
    """The data contain elements the pre-trained model has no embedding for."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FineTuneSettings:
    """Every setting of a fine-tuning run; checked when made (an error says what to change).

    ``lr=None`` takes the regime's ``DEFAULT_LR``. Loss weights default to
    ``LossWeights``'s (per-atom energy 1, forces 100, stress 0);
    ``forces_weight=0`` is energy-only training. ``patience`` epochs without
    validation improvement stop training, ``lr_patience`` halve (``lr_factor``)
    the learning rate. ``valid_fraction`` of the training frames are held
    out for validation when no validation frames are given. ``ridge`` is the
    closed form's L2 pull (relative to the mean diagonal of its normal matrix).
    ``min_epoch_frames`` makes each epoch of a small training set repeat it
    (``training.train``); ``keep`` which weights it ends with ("best"
    validation epoch or "last"). ``lora_rank`` and ``lora_alpha`` shape the low-rank adapters of
    ``trainable="lora"`` (mace-torch's ``--lora_rank``, ``--lora_alpha``).
    ``stage_two_energy_weight`` and ``stage_two_epochs``: mace-torch's second stage (``--swa``:
    energy weight 1000 with forces 100) for at most the last epochs (``training.train``).
    """

    regime: str = "few-shot"
    trainable: str = "readouts"
    solver: str = "gradient"
    e0s: str | Mapping[str, float] = "refit"
    energy_weight: float = LossWeights.energy
    forces_weight: float = LossWeights.forces
    stress_weight: float = LossWeights.stress
    l2_pull: float = 0.0
    ridge: float = 1e-6
    architecture: mace_models.MaceArchitecture | None = None
    max_epochs: int = 50
    batch_size: int = 8
    lr: float | None = None
    patience: int = 10
    lr_patience: int = 3
    lr_factor: float = 0.5
    valid_fraction: float = 0.1
    min_epoch_frames: int = 0
    keep: str = "best"
    stage_two_energy_weight: float | None = None
    stage_two_epochs: int = 0
    lora_rank: int = 4
    lora_alpha: float = 1.0
    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"
    progress: bool = True

    def __post_init__(self):
        if self.regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, got {self.regime!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {TRAINABLE}, got {self.trainable!r}")
        if self.solver == "closed-form" and (
            self.regime != "few-shot" or self.trainable != "readouts"
        ):
            raise ValueError(
                "solver='closed-form' fits the readouts of a frozen model: it needs "
                "regime='few-shot' and trainable='readouts'"
            )
        if not (isinstance(self.e0s, Mapping) or self.e0s in ("refit", "keep")):
            raise ValueError(
                f"e0s must be 'refit', 'keep' or a dict of eV per element, got {self.e0s!r}"
            )
        if self.dtype not in mace_models.DTYPES:
            raise ValueError(f"dtype must be one of {list(mace_models.DTYPES)}, got {self.dtype!r}")
        if self.l2_pull < 0 or (self.l2_pull > 0 and self.regime == "scratch"):
            raise ValueError(
                "l2_pull must be >= 0 and pulls toward pre-trained weights (not scratch)"
            )
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must lie in (0, 1), got {self.valid_fraction}")
        if self.max_epochs < 1 or self.batch_size < 1 or self.lora_rank < 1:
            raise ValueError("max_epochs, batch_size and lora_rank must be >= 1")
        if self.keep not in ("best", "last"):
            raise ValueError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.min_epoch_frames < 0:
            raise ValueError(f"min_epoch_frames must be >= 0, got {self.min_epoch_frames}")
        if self.stage_two_energy_weight is not None and not (
            0 < self.stage_two_epochs < self.max_epochs and self.stage_two_energy_weight > 0
        ):
            raise ValueError(
                "a stage two needs stage_two_energy_weight > 0 and 0 < stage_two_epochs < "
                f"max_epochs, got {self.stage_two_energy_weight}, {self.stage_two_epochs}, "
                f"{self.max_epochs}"
            )
        self.weights  # noqa: B018  (LossWeights checks the three weights)

    @property
    def weights(self) -> LossWeights:
        return LossWeights(
            energy=self.energy_weight, forces=self.forces_weight, stress=self.stress_weight
        )

    @property
    def shares_design(self) -> bool:
        """Few-shot closed-form readouts with E0s refitted: fits that can share one design pass."""
        return (
            self.regime == "few-shot"
            and self.solver == "closed-form"
            and self.trainable == "readouts"
            and self.e0s == "refit"
        )

    @property
    def learning_rate(self) -> float:
        return self.lr or DEFAULT_LR[self.regime]

    def as_dict(self) -> dict:
        """Field by field (the architecture stays a ``MaceArchitecture``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
    ``interactions.*`` and ``products.*`` block; ``"freeze-5"``: mace-torch's
    ``--freeze 5`` (embedding and every interaction frozen: ``products.*``
    and ``readouts.*`` train); ``"lora"``: the low-rank adapters
    (``lora_A``/``lora_B``) that ``mace.modules.lora.inject_LoRAs`` added.
    full and scratch: all.
    """
    names = [name for name, _ in model.named_parameters()]
    if regime in ("full", "scratch"):
        return tuple(names)
    if trainable == "lora":
        return tuple(n for n in names if ".lora_A." in n or ".lora_B." in n)
    last = len(model.interactions) - 1
    prefixes = {
        "readouts": ("readouts.",),
        "last-layer": ("readouts.", f"interactions.{last}.", f"products.{last}."),
        "freeze-5": ("readouts.", "products."),
    }
    if trainable not in prefixes:
        raise ValueError(f"trainable must be one of {TRAINABLE}, got {trainable!r}")
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


def shared_closed_form(
    model: torch.nn.Module,
    train_sets: Sequence[Sequence[Atoms]],
    settings: FineTuneSettings,
    test_frames: Sequence[Atoms] | None = None,
):
    """``closed_form.SharedClosedForm`` for many closed-form fits with ``settings``.

    Checks the elements first, as ``fine_tune`` would for each fit.
    """
    from course_lib.closed_form import SharedClosedForm

    frames = [atoms for train in train_sets for atoms in train]
    check_elements(model, [*frames, *(test_frames or [])], regime="few-shot")
    return SharedClosedForm(
        model,
        train_sets,
        test_frames,
        weights=settings.weights,
        ridge=settings.ridge,
        dtype=settings.dtype,
        device=resolve_device(settings.device),
    )


def split_validation(
    frames: Sequence[Atoms], *, valid_fraction: float, seed: int
) -> tuple[list[Atoms], list[Atoms]]:
    """Seeded train/validation split; at least one frame in each."""
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


# --------------------------------------------------------------------------- the entry point


def fine_tune(
    model: torch.nn.Module | None,
    train_frames: Sequence[Atoms],
    settings: FineTuneSettings = FineTuneSettings(),
    *,
    valid_frames: Sequence[Atoms] | None = None,
    design_cache: DesignCache | None = None,
) -> FitOutcome:
    """Train a copy of ``model`` in one of the three regimes (see the module docstring).

    Every input is checked before any training starts: the settings (when
    made), labels (finite, right shapes), elements the model does not know,
    and that training and validation sets are non-empty. ``model`` is never
    modified; ``None`` is allowed for ``regime="scratch"``. ``design_cache``
    lets closed-form fits reuse a readout design computed for the same
    starting model and frames (``closed_form.DesignCache``).
    """
    s = settings
    if model is None and s.regime != "scratch":
        raise ValueError(f"regime={s.regime!r} starts from a pre-trained model; pass model=...")
    if model is None and s.e0s == "keep":
        raise ValueError("e0s='keep' keeps a model's E0s; there is no model")
    train_frames, valid_frames = _checked_frames(
        train_frames,
        valid_frames,
        split=s.solver == "gradient",
        valid_fraction=s.valid_fraction,
        seed=s.seed,
        require_stress=s.stress_weight > 0,
    )
    if model is not None:
        check_elements(model, train_frames + (valid_frames or []), regime=s.regime)
    working = _starting_model(model, train_frames, s)
    working = working.to(torch.device(resolve_device(s.device)))
    lora = s.regime == "few-shot" and s.trainable == "lora"
    if lora:
        from mace.modules.lora import inject_LoRAs

        with warnings.catch_warnings():  # e3nn compiling each adapter: noise, not news
            warnings.filterwarnings("ignore", "The TorchScript type system", UserWarning)
            inject_LoRAs(working, rank=s.lora_rank, alpha=s.lora_alpha)

    names = trainable_parameter_names(working, regime=s.regime, trainable=s.trainable)
    freeze_all_but(working, names)
    if s.regime != "scratch":
        if isinstance(s.e0s, Mapping):
            mace_models.set_model_e0s(working, s.e0s)
        elif s.e0s == "refit" and s.solver == "gradient":
            refit_e0s(working, train_frames, batch_size=s.batch_size)

    history = posterior = None
    if s.solver == "closed-form":
        posterior, _ = fit_readouts_closed_form(
            working,
            train_frames,
            weights=s.weights,
            ridge=s.ridge,
            refit_e0s=s.e0s == "refit",
            batch_size=s.batch_size,
            design_cache=design_cache,
        )
        names = posterior.parameter_names
    else:
        history = train(
            working,
            train_frames,
            valid_frames,
            weights=s.weights,
            max_epochs=s.max_epochs,
            batch_size=s.batch_size,
            lr=s.learning_rate,
            l2_pull=s.l2_pull,
            patience=s.patience,
            lr_patience=s.lr_patience,
            lr_factor=s.lr_factor,
            seed=s.seed,
            min_epoch_frames=s.min_epoch_frames,
            keep=s.keep,
            stage_two=(
                replace(s.weights, energy=s.stage_two_energy_weight)
                if s.stage_two_energy_weight
                else None
            ),
            stage_two_epochs=s.stage_two_epochs,
            progress=s.progress,
        )
    if lora:  # fold the adapters into the weights: a plain MACE again, as mace-torch saves it
        from mace.modules.lora import merge_lora_weights

        merge_lora_weights(working)
    freeze_all_but(working, [])
    present = set(mace_models.frame_elements(train_frames))
    learned_e0s = {k: v for k, v in mace_models.model_e0s(working).items() if k in present}
    shift = {}
    if s.regime != "scratch":
        start_e0s = mace_models.model_e0s(model)
        shift = {k: v - start_e0s[k] for k, v in learned_e0s.items()}
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


def _starting_model(model, train_frames, settings: FineTuneSettings):
    """A copy of the pre-trained model, or for scratch a fresh one of its (or a given) architecture."""
    if settings.regime != "scratch":
        return copy.deepcopy(model).to(mace_models.DTYPES[settings.dtype])
    architecture = settings.architecture
    if architecture is None and model is not None:
        architecture = mace_models.architecture_of(model)
    fixed = dict(settings.e0s) if isinstance(settings.e0s, Mapping) else None
    if settings.e0s == "keep":
        fixed = mace_models.model_e0s(model)
    return mace_models.build_mace(
        train_frames, architecture=architecture, e0s=fixed, seed=settings.seed, dtype=settings.dtype
    )


# --------------------------------------------------------------------------- the estimator


class FineTuner:
    """scikit-learn-style estimator over ``fine_tune``.

    >>> tuner = FineTuner(regime="few-shot", model="course-mini", max_epochs=20)
    >>> tuner.fit(train_frames)                    # doctest: +SKIP
    >>> tuner.evaluate(test_frames).table()        # doctest: +SKIP

    Settings are ``FineTuneSettings`` fields as keywords (or ``settings=``
    with keywords overriding it), checked here; ``fit`` does the work and
    sets ``model_`` (the trained ``torch.nn.Module``), ``history_``
    (``TrainingHistory``, None for the closed form), ``e0s_`` (eV per element
    of the training data), ``e0_shift_`` (``e0s_`` minus the pre-trained
    E0s, empty for scratch), ``trainable_`` (parameter names trained) and
    ``posterior_`` (closed form). ``model`` is a module, a registered name or
    a MACE file path.
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module | str | os.PathLike | None = None,
        settings: FineTuneSettings | None = None,
        **overrides,
    ):
        self.model = model
        self.settings = replace(settings or FineTuneSettings(), **overrides)

    def get_params(self) -> dict:
        """The model and every setting, by name (as scikit-learn's estimators)."""
        return {"model": self.model, **self.settings.as_dict()}

    def fit(
        self,
        train_frames: Sequence[Atoms],
        valid_frames: Sequence[Atoms] | None = None,
        *,
        design_cache: DesignCache | None = None,
    ):
        """Train on ``train_frames`` (validation split off them unless given); returns self.

        ``design_cache``: see ``fine_tune``.
        """
        model = self.model
        start = load_model(model, dtype=self.settings.dtype) if model is not None else None
        outcome = fine_tune(
            start, train_frames, self.settings, valid_frames=valid_frames, design_cache=design_cache
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


# --------------------------------------------------------------------------- one regime, measured


@dataclass(frozen=True)
class RegimeResult:
    """One regime run on one dataset: test errors, cost, and what it did elsewhere.

    ``zero_shot`` is the starting model on the same test frames (raw and
    E0-aligned; None for scratch). ``fit_time_s`` and ``fit_cpu_s`` are the
    wall and CPU (this process) seconds of the fit alone. ``forgetting`` and ``forgetting_before``
    are the fine-tuned and the starting model on the pre-training corpus's
    held-out frames, when given: the cost of fine-tuning elsewhere. Their
    energy errors include the E0 refit (a per-element shift toward the new
    DFT setup); force errors are the clean measure of forgetting.
    """

    regime: str
    n_train: int
    n_labels: int
    test: ErrorMetrics
    zero_shot: ZeroShotResult | None
    forgetting: ErrorMetrics | None
    forgetting_before: ErrorMetrics | None
    e0s: dict[str, float]
    history: TrainingHistory | None
    model_path: Path | None
    fit_time_s: float
    test_predictions: Predictions = field(repr=False)
    tuner: FineTuner = field(repr=False)
    fit_cpu_s: float = 0.0

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
            "fit_cpu_s": round(self.fit_cpu_s, 2),
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


class RegimeRunner:
    """Regimes fitted from one starting model on one test set, what they share computed once.

    >>> fit = RegimeRunner("course-mini", train, test, seed=0)   # doctest: +SKIP
    >>> closed = fit(regime="few-shot", solver="closed-form")      # doctest: +SKIP
    >>> full = fit(regime="full", max_epochs=40)                  # doctest: +SKIP

    Each call is ``run_regime`` (``FineTuneSettings`` fields as keywords,
    over the defaults given here); the starting model (per dtype), its
    predictions on the test and pre-training frames (zero-shot, forgetting
    before) and closed-form readout designs are computed on first use and
    kept, so a notebook comparing regimes pays for them once. On
    MACE-MP-0 small a readout design of four twelve-atom structures costs
    one backward pass per readout weight (144), about as much as a
    hundred predictions of the test set.
    """

    def __init__(
        self,
        model: torch.nn.Module | str | os.PathLike | None,
        train_frames: Sequence[Atoms],
        test_frames: Sequence[Atoms],
        *,
        pretraining_frames: Sequence[Atoms] | None = None,
        settings: FineTuneSettings | None = None,
        **overrides,
    ):
        ds.validate_frames(test_frames, source="test_frames", require_pbc=False)
        self.model = model
        self.train_frames = list(train_frames)
        self.test_frames = list(test_frames)
        self.pretraining_frames = None if pretraining_frames is None else list(pretraining_frames)
        self.settings = replace(settings or FineTuneSettings(), **overrides)
        self.design_cache = DesignCache()
        self._start: dict[str, torch.nn.Module] = {}
        self._zero_shot: dict[str, ZeroShotResult] = {}
        self._before: dict[str, ErrorMetrics] = {}

    def start_model(self, dtype: str) -> torch.nn.Module | None:
        """The starting model in ``dtype`` (loaded once; None without a model)."""
        if self.model is None:
            return None
        if dtype not in self._start:
            self._start[dtype] = load_model(self.model, dtype=dtype)
        return self._start[dtype]

    def zero_shot(self, dtype: str) -> ZeroShotResult:
        """The starting model on the test frames (raw and E0-aligned)."""
        from course_lib.zero_shot import evaluate

        if dtype not in self._zero_shot:
            self._zero_shot[dtype] = evaluate(
                self.start_model(dtype), self.test_frames, dataset="test_frames"
            )
        return self._zero_shot[dtype]

    def forgetting_before(self, dtype: str) -> ErrorMetrics:
        """The starting model on the pre-training corpus's held-out frames."""
        if dtype not in self._before:
            frames = self.pretraining_frames
            self._before[dtype] = error_metrics(frames, predict(self.start_model(dtype), frames))
        return self._before[dtype]

    def __call__(
        self,
        *,
        train_frames: Sequence[Atoms] | None = None,
        valid_frames: Sequence[Atoms] | None = None,
        out: str | os.PathLike | None = None,
        settings: FineTuneSettings | None = None,
        **overrides,
    ) -> RegimeResult:
        """Fit one regime (the runner's settings, then ``settings``, then keywords) and measure it.

        ``train_frames`` replaces the runner's training frames for this fit
        (e.g. with replayed corpus frames added); ``valid_frames`` are the
        early-stopping frames (None: split off the training frames).
        ``out``: see ``run_regime``.
        """
        from course_lib.paths import work_dir

        train_frames = self.train_frames if train_frames is None else list(train_frames)
        out = ds.check_output_file(out) if out is not None else None
        tuner = FineTuner(settings=settings or self.settings, **overrides)
        regime, dtype = tuner.settings.regime, tuner.settings.dtype
        start = self.start_model(dtype)
        tuner.model = start
        began, began_cpu = time.perf_counter(), time.process_time()
        tuner.fit(train_frames, valid_frames, design_cache=self.design_cache)
        fit_time, fit_cpu = time.perf_counter() - began, time.process_time() - began_cpu
        path = None
        if out is not None:
            try:
                path = tuner.save(out)
            except OSError as err:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                rescue = work_dir("finetune", "unsaved") / f"{regime}-{stamp}.model"
                path = tuner.save(rescue)
                logger.warning(
                    "could not write %s (%s); the trained model is at %s", out, err, path
                )
        unknown = sorted(
            set(mace_models.frame_elements(self.test_frames))
            - set(mace_models.model_elements(tuner.model_))
        )
        if unknown:
            raise UnknownElementsError(
                f"test frames contain {unknown}, which the training frames lack; the model "
                "cannot predict them"
            )
        predictions = tuner.predict(self.test_frames)
        forgetting = forgetting_before = zero_shot = None
        if start is not None and regime != "scratch":
            zero_shot = self.zero_shot(dtype)
            if self.pretraining_frames is not None:
                forgetting_before = self.forgetting_before(dtype)
                forgetting = tuner.evaluate(self.pretraining_frames)
        with_forces = tuner.settings.forces_weight > 0
        return RegimeResult(
            regime=regime,
            n_train=len(train_frames),
            n_labels=ds.n_labels(train_frames, with_forces=with_forces),
            test=error_metrics(self.test_frames, predictions),
            zero_shot=zero_shot,
            forgetting=forgetting,
            forgetting_before=forgetting_before,
            e0s=tuner.e0s_,
            history=tuner.history_,
            model_path=path,
            fit_time_s=fit_time,
            test_predictions=predictions,
            fit_cpu_s=fit_cpu,
            tuner=tuner,
        )


def run_regime(
    model: torch.nn.Module | str | os.PathLike | None,
    train_frames: Sequence[Atoms],
    test_frames: Sequence[Atoms],
    *,
    out: str | os.PathLike | None = None,
    pretraining_frames: Sequence[Atoms] | None = None,
    valid_frames: Sequence[Atoms] | None = None,
    settings: FineTuneSettings | None = None,
    **overrides,
) -> RegimeResult:
    """Fit one regime (``settings``, fields overridden by keywords), save it, and measure it.

    Test frames must only hold elements the trained model knows. ``out`` is
    checked before training (``OutputPathError`` for a directory or an
    unwritable folder) and written atomically right after training, before
    the model is measured, so an interrupted run leaves a previous file there
    intact and a failing measurement loses nothing. If writing ``out`` still
    fails, the model goes to the work directory instead (a warning says where).
    Several regimes on the same frames: ``RegimeRunner`` shares their common work.
    """
    runner = RegimeRunner(model, train_frames, test_frames, pretraining_frames=pretraining_frames)
    return runner(valid_frames=valid_frames, out=out, settings=settings, **overrides)


# --------------------------------------------------------------------------- regimes compared


@dataclass(frozen=True)
class RegimeFrames:
    """The frames regimes are compared on: N training structures and one fixed test set.

    ``train`` is a seeded subset of the dataset's training split (``pool_size``
    structures), ``test`` its held-out split (or a seeded subset of its
    ``test_split_size`` structures), the same for every regime and N.
    ``pretraining`` is the held-out split of the model's pre-training corpus
    (to measure forgetting), None without a corpus.
    """

    dataset: str
    train: list[Atoms] = field(repr=False)
    test: list[Atoms] = field(repr=False)
    pool_size: int
    corpus: str | None
    pretraining: list[Atoms] | None = field(repr=False)
    test_split_size: int | None = None

    def table(self) -> str:
        split = self.test_split_size or len(self.test)
        subset = "" if split == len(self.test) else f" (a seeded subset of the {split})"
        lines = [
            f"{self.dataset}: {len(self.train)} training structures (of a pool of "
            f"{self.pool_size}), {len(self.test)} held-out test structures{subset}",
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
    n_test: int | None = None,
    n_pretraining: int | None = None,
) -> RegimeFrames:
    """Split ``dataset`` (fixed splits kept), draw ``n`` training structures (None: all).

    ``corpus`` names the pre-training corpus whose held-out split measures
    forgetting (``course_lib.models.pretraining_corpus(model)``). A budget for
    a large model: ``n_test`` test structures per ``info["temperature_K"]``
    group (one group without it) and ``n_pretraining`` corpus frames, seeded
    subsets of the held-out splits (None: all of them).
    """
    frames = ds.read_dataset(dataset, require_pbc=False)
    pool, test_split = ds.train_test_split(frames, seed=seed)
    train = ds.subset(pool, len(pool) if n is None else n, seed=seed)
    test = ds.subset_by(test_split, "temperature_K", n_test, seed=seed)
    pretraining = None
    if corpus is not None:
        held_out = ds.train_test_split(ds.read_dataset(corpus), seed=0)[1]
        pretraining = held_out
        if n_pretraining is not None:
            pretraining = ds.subset(held_out, min(n_pretraining, len(held_out)), seed=seed)
    return RegimeFrames(
        dataset=Path(dataset).stem,
        train=train,
        test=test,
        pool_size=len(pool),
        corpus=None if corpus is None else Path(corpus).stem,
        pretraining=pretraining,
        test_split_size=len(test_split),
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
        before = start.forgetting_before
        row = _comparison_row("zero-shot (E aligned)", 0, 0, None, start.zero_shot.aligned)
        lines.append(row + _corpus_column(before, None))
    for label, r in results.items():
        row = _comparison_row(label, r.n_train, r.n_labels, r.fit_time_s, r.test)
        lines.append(row + _corpus_column(r.forgetting_before, r.forgetting))
    return "\n".join(lines)


def _comparison_row(label, n, labels, fit_s, test) -> str:
    fit = "-" if fit_s is None else f"{fit_s:.1f}"
    return (
        f"{label:<26} {n:>4} {labels:>7} {fit:>6} {test.energy_mae_meV_per_atom:>11.2f} "
        f"{test.force_mae_meV_per_A:>8.1f}"
    )


def _corpus_column(before, after) -> str:
    if before is None:
        corpus = "-"
    elif after is None:
        corpus = f"{before.force_mae_meV_per_A:.1f}"
    else:
        corpus = f"{before.force_mae_meV_per_A:.1f} -> {after.force_mae_meV_per_A:.1f}"
    return f"  {corpus:>16}"
