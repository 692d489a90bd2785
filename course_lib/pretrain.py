"""Pre-training in miniature: how ``course-mini`` is made from the mini-MPtrj corpus.

The chapter's foundation models are trained once, on broad data, and then
adapted. ``course-mini`` is the same recipe at classroom scale: a small MACE
trained *from scratch* (the "scratch" regime of ``course_lib.finetune``) on
the relaxation trajectories of the bundled ``mini-mptrj`` corpus, validated on
the corpus's held-out relaxations, and shipped with a model card.

``course-mini-omat`` is the controlled experiment beside it: the same
architecture, seed and number of gradient steps, on ``mini-mptrj`` plus the
off-equilibrium ``mini-omat`` (rattled, strained, hot-MD frames, as OMat24).

``pretrain`` is deterministic for a given corpus, architecture, step budget
and seed (no wall-clock budget decides when it stops), so
``course pretrain --out data/models/course-mini.model`` rebuilds the shipped
file (``--corpus mini-mptrj,mini-omat`` the other). Whole structural families
(``HELD_OUT_PROTOTYPES``) never train, so each card reports an honest error on
materials unlike any in the corpus beside the optimistic one on held-out frames.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from course_lib import data as ds
from course_lib.finetune import FineTuneSettings, fine_tune, save_model, split_validation
from course_lib.mace_models import MaceArchitecture, model_elements
from course_lib.training import TrainingHistory
from course_lib.zero_shot import ErrorMetrics, Predictions, error_metrics, predict

#: The shipped models' architecture: invariant features like MACE-MP-0 small (128x0e, l <= 3,
#: r_max 6 Å) at half its width, spherical harmonics to l = 1 and a 5 Å cutoff. Chosen by
#: trials of 40 epochs on mini-mptrj, judged on its held-out relaxations and on whole held-out
#: families (wurtzite, half-heusler); see the model card. 64x0e with l = 1 matched 64x0e with
#: l = 2 on both (forces 25 vs 29 meV/Å seen, 197 vs 217 unseen) at half the cost of a
#: fine-tuning step on 12-atom Li2O, and beat 32x0e (course-mini's first version).
COURSE_MINI_ARCHITECTURE = MaceArchitecture(
    r_max=5.0, hidden_irreps="64x0e", mlp_irreps="16x0e", num_interactions=2, max_ell=1
)
#: The training budget in gradient steps (batches of 8), the same for every course model
#: whatever its corpus, so that course-mini and course-mini-omat differ in their data only.
#: About 150 epochs of mini-mptrj (118 steps each).
COURSE_MINI_STEPS = 18_000
#: How the course models are trained. Loss: per-atom energy, force and stress terms 1 : 10 : 1
#: (stress taught the equations of state: stress MAE 18 vs 31 meV/Å³, energies of unseen
#: families 148 vs 153 meV/atom in the trials); float32 (about twice as fast on a CPU), the
#: file saved in float64; every step run and the last weights kept (``keep="last"``; the
#: learning rate halves on validation plateaus).
COURSE_MINI_SETTINGS = FineTuneSettings(
    regime="scratch",
    architecture=COURSE_MINI_ARCHITECTURE,
    energy_weight=1.0,
    forces_weight=10.0,
    stress_weight=1.0,
    max_epochs=150,
    patience=150,
    lr_patience=5,
    batch_size=8,
    lr=1e-2,
    keep="last",
    seed=0,
    dtype="float32",
    device="cpu",
)
LICENCE = "CC-BY-4.0"
#: Whole material families kept out of training (from every corpus): their frames measure how
#: the model does on structures unlike any it saw, which frames of seen prototypes cannot.
HELD_OUT_PROTOTYPES = ("wurtzite", "half-heusler")


def prototype_of(atoms: Atoms) -> str | None:
    """A corpus frame's structural family: info ``prototype`` (mini-omat) or ``config_type`` (mini-mptrj)."""
    return atoms.info.get("prototype", atoms.info.get("config_type"))


@dataclass(frozen=True)
class PretrainResult:
    """A pre-trained model, its training history and its held-out errors."""

    model_path: Path
    card_path: Path
    sha256: str
    corpus: str
    corpus_sha256: str
    n_train_frames: int
    n_validation_frames: int
    n_parameters: int
    architecture: dict
    elements: tuple[str, ...]
    seed: int
    epochs_run: int
    best_epoch: int
    wall_time_s: float
    validation: ErrorMetrics
    energy_mae_by_element_meV_per_atom: dict[str, float]
    history: TrainingHistory = field(repr=False)
    # Errors on whole families held out of training (None: no family held out).
    held_out_prototypes: tuple[str, ...] = ()
    n_prototype_frames: int = 0
    prototype_validation: ErrorMetrics | None = None
    # The run's own settings (loss weights, dtype, learning rate, ...), JSON-able; empty
    # in cards written before they were recorded.
    training: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        payload = {k: v for k, v in self.__dict__.items() if k != "history"}
        payload["validation"] = self.validation.as_dict()
        if self.prototype_validation is not None:
            payload["prototype_validation"] = self.prototype_validation.as_dict()
        payload["model_path"] = _shown_path(self.model_path)
        payload["card_path"] = _shown_path(self.card_path)
        return payload

    def table(self) -> str:
        v = self.validation
        return "\n".join(
            [
                f"{self.model_path.name}: {self.n_parameters} parameters, "
                f"{len(self.elements)} elements, trained on {self.n_train_frames} frames "
                f"of {self.corpus} in {self.wall_time_s / 60:.1f} min "
                f"({self.epochs_run} epochs, {_kept_text(self)})",
                f"held-out frames of seen families ({v.n_frames}): energy MAE "
                f"{v.energy_mae_meV_per_atom:.1f} meV/atom, force MAE {v.force_mae_meV_per_A:.1f} meV/Å",
                *self._prototype_line(),
                f"model card: {self.card_path}",
            ]
        )

    def _prototype_line(self) -> list[str]:
        p = self.prototype_validation
        if p is None:
            return []
        return [
            f"unseen families {', '.join(self.held_out_prototypes)} ({p.n_frames} frames): energy "
            f"MAE {p.energy_mae_meV_per_atom:.1f} meV/atom, force MAE {p.force_mae_meV_per_A:.1f} meV/Å"
        ]

    __str__ = table


@dataclass(frozen=True)
class ModelCard:
    """A model card read back: the numbers (``result``), the text, and what the card declares.

    ``result`` is the ``PretrainResult`` the card was written from, its paths
    those of the files found here; ``rehearsal`` is True for a model trained
    on a subset of its corpus. In a notebook the card displays as its Markdown.
    """

    result: PretrainResult
    rehearsal: bool
    licence: str
    intended_use: str
    markdown: str = field(repr=False)

    @property
    def history(self) -> TrainingHistory:
        return self.result.history

    def element_table(self) -> str:
        """Held-out errors per element: energy MAE over frames containing it, force MAE on its atoms."""
        forces = self.result.validation.force_mae_by_element_meV_per_A
        lines = [f"{'element':<8} {'E meV/atom':>10} {'F meV/Å':>8}"]
        for element, energy in self.result.energy_mae_by_element_meV_per_atom.items():
            lines.append(f"{element:<8} {energy:>10.1f} {forces.get(element, np.nan):>8.1f}")
        return "\n".join(lines)

    def table(self) -> str:
        lines = [self.result.table(), f"licence {self.licence}; intended use: {self.intended_use}"]
        if self.rehearsal:
            lines.append("rehearsal model: trained on a subset of its corpus")
        return "\n".join(lines)

    __str__ = table

    def _repr_markdown_(self) -> str:
        return self.markdown


def read_model_card(model: str | os.PathLike = "course-mini") -> ModelCard:
    """The card written next to a MACE model's file, wherever the registry finds that file.

    ``model`` is a registered name or a model file; the card is the
    ``.json`` (and ``.md``) beside it, as ``write_model_card`` leaves them.
    """
    from course_lib.models import model_file

    model_path = model_file(model)
    path = model_path.with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(
            f"{model} has no model card at {path}; `course pretrain --out {model_path}` "
            "writes a model together with its card"
        )
    record = json.loads(path.read_text())
    markdown = path.with_suffix(".md")
    fields_of_result = {f.name for f in fields(PretrainResult)}
    values = {k: v for k, v in record.items() if k in fields_of_result}
    result = PretrainResult(
        **values
        | {
            "model_path": model_path,
            "card_path": markdown,
            "elements": tuple(record["elements"]),
            "validation": ErrorMetrics(**record["validation"]),
            "held_out_prototypes": tuple(record.get("held_out_prototypes", ())),
            "prototype_validation": (
                ErrorMetrics(**record["prototype_validation"])
                if record.get("prototype_validation")
                else None
            ),
            "history": TrainingHistory.from_dict(record["history"]),
        }
    )
    return ModelCard(
        result=result,
        rehearsal=bool(record.get("rehearsal_on_a_subset", False)),
        licence=record.get("licence", ""),
        intended_use=record.get("intended_use", ""),
        markdown=markdown.read_text() if markdown.is_file() else f"```\n{result.table()}\n```",
    )


def energy_mae_by_element(frames: Sequence[Atoms], predictions: Predictions) -> dict[str, float]:
    """Energy MAE (meV/atom) over the frames that contain each element."""
    per_atom = np.abs(predictions.energies - ds.energies(frames)) / ds.n_atoms(frames) * 1e3
    elements = sorted({s for atoms in frames for s in atoms.get_chemical_symbols()})
    return {
        el: float(np.mean([e for e, a in zip(per_atom, frames) if el in a.symbols]))
        for el in elements
    }


def pretrain(
    corpus: str | os.PathLike | Sequence[str | os.PathLike] = "mini-mptrj",
    *,
    out: str | os.PathLike,
    settings: FineTuneSettings = COURSE_MINI_SETTINGS,
    limit: int | None = None,
    held_out_prototypes: Sequence[str] = HELD_OUT_PROTOTYPES,
    steps: int | None = None,
    **overrides,
) -> PretrainResult:
    """Train a MACE from scratch on the training split of one corpus or several; write it and its card.

    ``settings`` (fields overridden by keywords, e.g. ``max_epochs=3``) say
    how; every epoch runs (``patience`` is set to ``max_epochs``) and the
    weights kept are those ``settings.keep`` names (course-mini's: the last);
    a seeded tenth of the training frames is the validation set that drives
    the learning-rate schedule. Two held-out sets give the card's errors: the corpora's
    fixed held-out splits (frames of families the model also trained on),
    and every frame of the ``held_out_prototypes`` families (``prototype_of``),
    kept out of training altogether. ``limit`` trains on that many training
    frames only (a quick rehearsal; the card says so). ``steps`` sets the
    budget in gradient steps instead of epochs (``epochs_for_steps``): models
    trained on corpora of different sizes then get the same number of
    updates, so a comparison of corpora is not one of compute. The model is written
    atomically to ``out``, the card next to it (``.md`` and ``.json``), in
    float64, the precision every later use loads it in.
    """
    settings = replace(settings, regime="scratch", **overrides)
    settings = replace(settings, patience=settings.max_epochs)
    corpora = [corpus] if isinstance(corpus, str | os.PathLike) else list(corpus)
    paths = [path for c in corpora for path in ds.dataset_paths(c)]
    train_frames, held_out = [], []
    for path in paths:
        train, test = ds.train_test_split(ds.read_dataset(path), seed=settings.seed)
        train_frames += train
        held_out += test
    families = set(held_out_prototypes)
    unseen = [a for a in train_frames + held_out if prototype_of(a) in families]
    train_frames = [a for a in train_frames if prototype_of(a) not in families]
    held_out = [a for a in held_out if prototype_of(a) not in families]
    if limit is not None:
        train_frames = ds.subset(train_frames, limit, seed=settings.seed)
    if steps is not None:
        epochs = epochs_for_steps(steps, train_frames, settings)
        settings = replace(settings, max_epochs=epochs, patience=epochs)
    outcome = fine_tune(None, train_frames, settings)
    model = outcome.model.double()
    path = save_model(model, out)
    predictions = predict(model, held_out, batch_size=16)
    unseen_errors = error_metrics(unseen, predict(model, unseen, batch_size=16)) if unseen else None
    result = PretrainResult(
        model_path=path,
        card_path=path.with_suffix(".md"),
        sha256=ds.sha256_of(path),
        corpus="+".join(p.stem for p in paths),
        corpus_sha256="+".join(ds.sha256_of(p) for p in paths),
        n_train_frames=len(train_frames),
        n_validation_frames=len(held_out),
        n_parameters=sum(p.numel() for p in model.parameters()),
        architecture=asdict(settings.architecture),
        elements=model_elements(model),
        seed=settings.seed,
        epochs_run=outcome.history.epoch[-1],
        best_epoch=outcome.history.best_epoch,
        wall_time_s=outcome.history.wall_time_s,
        validation=error_metrics(held_out, predictions),
        energy_mae_by_element_meV_per_atom=energy_mae_by_element(held_out, predictions),
        history=outcome.history,
        held_out_prototypes=tuple(sorted(families)) if unseen else (),
        n_prototype_frames=len(unseen),
        prototype_validation=unseen_errors,
        training=training_record(settings)
        | {
            "torch_threads": torch.get_num_threads(),
            "steps_per_epoch": steps_per_epoch(train_frames, settings),
            "gradient_steps": steps_per_epoch(train_frames, settings) * outcome.history.epoch[-1],
        },
    )
    write_model_card(result, provenance=ds.read_provenance(paths[0]), limited=limit is not None)
    return result


def steps_per_epoch(train_frames: Sequence[Atoms], settings: FineTuneSettings) -> int:
    """Gradient steps in one epoch: batches of the frames left after the early-stopping split."""
    fit, _ = split_validation(
        list(train_frames), valid_fraction=settings.valid_fraction, seed=settings.seed
    )
    return -(-len(fit) // settings.batch_size)


def epochs_for_steps(steps: int, train_frames: Sequence[Atoms], settings: FineTuneSettings) -> int:
    """Whole epochs closest to ``steps`` gradient steps on ``train_frames`` (at least one)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return max(1, round(steps / steps_per_epoch(train_frames, settings)))


def training_record(settings: FineTuneSettings) -> dict:
    """What a card says of how the model was trained: the settings that shape the result."""
    names = ("energy_weight", "forces_weight", "stress_weight", "max_epochs", "batch_size")
    record = {name: getattr(settings, name) for name in names}
    return record | {
        "lr": settings.learning_rate,
        "lr_patience": settings.lr_patience,
        "lr_factor": settings.lr_factor,
        "valid_fraction": settings.valid_fraction,
        "keep": settings.keep,
        "dtype": settings.dtype,
    }


def write_model_card(result: PretrainResult, *, provenance: dict, limited: bool) -> Path:
    """The model card (Markdown for people, JSON for code) next to the model file."""
    card = result.as_dict() | {
        "licence": LICENCE,
        "intended_use": "teaching the foundation-model paradigm; not for production simulations",
        "corpus_provenance": {
            k: provenance.get(k)
            for k in ("method", "code", "code_version", "settings_fingerprint", "date")
        },
        "rehearsal_on_a_subset": limited,
        "trained_with": {"torch": torch.__version__, "python": platform.python_version()},
        "history": result.history.as_dict(),
    }
    ds.atomic_write_text(
        result.card_path.with_suffix(".json"), json.dumps(card, indent=2, default=str) + "\n"
    )
    ds.atomic_write_text(result.card_path, _card_markdown(result, provenance, limited))
    return result.card_path


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, as a user would type it."""
    from course_lib.paths import REPO_ROOT

    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _time_text(result: PretrainResult) -> str:
    """Wall time, and the torch threads and machine it ran on when the card recorded them."""
    wall = f"wall time {result.wall_time_s / 60:.1f} min"
    threads = result.training.get("torch_threads")
    if threads is None:
        return f"{wall} on {os.cpu_count()} CPU cores"
    return f"{wall} with {threads} torch thread(s) on a {os.cpu_count()}-core machine"


def _kept_text(result: PretrainResult) -> str:
    """Which weights the model file holds: the last epoch's or the best validation epoch's."""
    if result.training.get("keep") == "last":
        return f"the last epoch's weights; lowest validation loss at epoch {result.best_epoch}"
    return f"best validation at epoch {result.best_epoch}"


def _training_text(training: dict) -> str:
    if not training:
        return "training settings not recorded"
    steps = (
        f"{training['gradient_steps']} gradient steps ({training['steps_per_epoch']} per epoch); "
        if "gradient_steps" in training
        else ""
    )
    return (
        f"{steps}loss weights energy/forces/stress = {training['energy_weight']:g}/"
        f"{training['forces_weight']:g}/{training['stress_weight']:g} (per-atom energies); "
        f"Adam, lr {training['lr']:g}, batch {training['batch_size']}; "
        f"trained in {training['dtype']}, saved in float64"
    )


def rebuild_command(result: PretrainResult) -> str:
    """The ``course pretrain`` command that rebuilds ``result``'s model file."""
    corpus = result.corpus.replace("+", ",")
    parts = ["course pretrain"]
    if corpus != "mini-mptrj":
        parts.append(f"--corpus {corpus}")
    if result.seed != 0:
        parts.append(f"--seed {result.seed}")
    parts.append(f"--out {_shown_path(result.model_path)}")
    return " ".join(parts)


def _prototype_markdown(result: PretrainResult) -> str:
    p = result.prototype_validation
    if p is None:
        return "\nNo structural family was held out of training.\n"
    return f"""
## Errors on unseen families (held out by prototype)
Energy MAE {p.energy_mae_meV_per_atom:.1f} meV/atom, force MAE {p.force_mae_meV_per_A:.1f} meV/Å
({p.n_frames} frames of {", ".join(result.held_out_prototypes)}, none of them in training):
the honest number for materials unlike any in the corpus.
"""


def _card_markdown(result: PretrainResult, provenance: dict, limited: bool) -> str:
    v = result.validation
    arch = ", ".join(f"{k}={val}" for k, val in result.architecture.items())
    element_rows = "\n".join(
        f"| {el} | {result.energy_mae_by_element_meV_per_atom[el]:.1f} "
        f"| {v.force_mae_by_element_meV_per_A.get(el, float('nan')):.1f} |"
        for el in result.energy_mae_by_element_meV_per_atom
    )
    rehearsal = (
        "\n> **Rehearsal model**: trained on a subset of the corpus (`--limit`); "
        "not a shipped model.\n"
        if limited
        else ""
    )
    return f"""# Model card: {result.model_path.stem}
{rehearsal}
A small MACE trained from scratch on the course's own DFT corpus, so that the
course has a real foundation model offline whose training data students can inspect.

## Intended use
Teaching the foundation-model paradigm (zero-shot, fine-tuning, coverage, uncertainty)
on laptop CPUs. **Not for production simulations**: its corpus has
{result.n_train_frames + result.n_validation_frames} frames, MPtrj about 1.6 million. Licence: {LICENCE}.

## Architecture
MACE (`ScaleShiftMACE`), {arch}.
{result.n_parameters} parameters; elements: {" ".join(result.elements)}.
File: `{result.model_path.name}`, sha256 `{result.sha256}`.

## Training data
Corpus `{result.corpus}` (sha256 `{result.corpus_sha256}`): {result.n_train_frames} training
frames; {result.n_validation_frames} held-out frames for validation (each corpus's fixed test split).
{provenance.get("method", "")}

## Training
Seed {result.seed}; {result.epochs_run} epochs ({_kept_text(result)});
{_time_text(result)}; {_training_text(result.training)}. Rebuild with
`{rebuild_command(result)}` (see `course pretrain --help`).

## Errors on held-out frames of families it trained on
Energy MAE {v.energy_mae_meV_per_atom:.1f} meV/atom, force MAE {v.force_mae_meV_per_A:.1f} meV/Å
({v.n_frames} frames, {v.n_atoms} atoms): the corpus's own held-out split, frames of
prototypes the model has seen, so this is the optimistic number.
{_prototype_markdown(result)}
| element | energy MAE, frames containing it (meV/atom) | force MAE on its atoms (meV/Å) |
|---|---|---|
{element_rows}

Elements without held-out frames are not listed.
"""
