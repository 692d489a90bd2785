"""A fine-tuned model of the target system, shipped with a card (``course-mini-li2o``).

The learning curves say which regime and how much data; this module turns that answer into
a file a student can load: the regime chosen from the shipped converged curves by a rule
fixed before they were computed (``choose_regime``), retrained on exactly the structures of
the curve's run (``curve_frames`` and the run's seed), checked against that run's test
errors, measured per temperature and run as Langevin MD at the temperatures the case study
asks about. The card (``.md`` for people, ``.json`` for code) sits next to the model file,
as ``course_lib.pretrain`` does for the pre-trained models.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from course_lib import data as ds
from course_lib.learning_curve import LearningCurve

#: The case study's temperatures (K) and MD length: 3 ps of 1 fs steps, twice the
#: equilibration plus sampling of the li2o-model-md recipe.
MD_TEMPERATURES_K = (300.0, 1200.0)
MD_STEPS = 3000


@dataclass(frozen=True)
class RegimeChoice:
    """The regime a target model is trained with, and why.

    The rule (fixed before the curves were computed): the shipped energy + forces curve with
    the lowest mean test force MAE over seeds at ``n_train``; ties go to the cheaper regime
    (the order of ``curves``).
    """

    label: str
    n_train: int
    force_mae_meV_per_A: dict[str, float]

    @property
    def reason(self) -> str:
        ranked = sorted(self.force_mae_meV_per_A.items(), key=lambda item: item[1])
        listed = ", ".join(f"{label} {mae:.1f}" for label, mae in ranked)
        return (
            f"lowest mean test force MAE at N = {self.n_train} on the shipped curves "
            f"(meV/Å: {listed})"
        )


def choose_regime(curves: Mapping[str, LearningCurve], n_train: int) -> RegimeChoice:
    """The curve with the lowest mean test force MAE at ``n_train`` (see ``RegimeChoice``)."""
    at_n = {}
    for label, curve in curves.items():
        rows = [row for row in curve.summary("force") if row.n_train == n_train]
        if rows:
            at_n[label] = rows[0].mean
    if not at_n:
        raise ValueError(
            f"no curve was run at N = {n_train}; sizes: "
            + "; ".join(f"{label} {list(c.sizes)}" for label, c in curves.items())
        )
    best = min(at_n, key=at_n.get)  # min keeps the first of equal values: the cheaper regime
    return RegimeChoice(label=best, n_train=n_train, force_mae_meV_per_A=at_n)


@dataclass(frozen=True)
class TargetModelCard:
    """What a fine-tuned target model is, how it was made and how it behaves.

    Errors are on the dataset's held-out test split: ``test`` overall and
    ``test_by_temperature`` per ``info["temperature_K"]`` (energy MAE meV/atom, force MAE
    meV/Å, and the mean |F| of the DFT force components, meV/Å, as the yardstick).
    ``reproduces`` compares the test force MAE with the curve's run it retrains (same frames,
    seed and settings). ``md`` holds one stability summary per MD run.
    """

    name: str
    base_model: str
    base_sha256: str | None
    dataset: str
    dataset_sha256: str
    regime: str
    choice: str
    n_train: int
    n_valid: int
    seed: int
    settings: dict
    test: dict
    test_by_temperature: dict
    reproduces: dict
    md: list
    sha256: str
    n_parameters: int
    size_bytes: int
    command: str
    cpu_s: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping) -> TargetModelCard:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    @property
    def md_stable(self) -> bool:
        return all(run["stable"] for run in self.md)

    def markdown(self) -> str:
        lines = [
            f"# Model card: {self.name}",
            "",
            (
                f"Trained from scratch with `{self.base_model}`'s hyper-parameters (for the "
                f"target's elements only) on {self.n_train} structures of `{self.dataset}`"
                if self.regime == "scratch"
                else f"`{self.base_model}` fine-tuned ({self.regime}) on {self.n_train} "
                f"structures of `{self.dataset}`"
            )
            + ": the course's answer to 'which regime, how much data' for its Li₂O case study, "
            "as a file. **For teaching only**, like its base model.",
            "",
            "## How it was made",
            f"Regime: {self.regime}, chosen by a rule fixed before the curves were computed: "
            f"{self.choice}.",
            f"Training structures: {self.n_train} of the dataset's training pool (seed "
            f"{self.seed}), early stopping on {self.n_valid} fixed validation frames; settings "
            f"{json.dumps(self.settings, sort_keys=True)}.",
            f"Base model sha256 `{self.base_sha256}`; dataset sha256 `{self.dataset_sha256}`.",
            f"Made by `{self.command}` ({self.cpu_s / 60:.0f} CPU min).",
            f"File sha256 `{self.sha256}`, {self.size_bytes / 1e6:.1f} MB, "
            f"{self.n_parameters} parameters.",
            "",
            "## Errors on the held-out test split",
            f"All {self.test['n_frames']} frames: energy MAE "
            f"{self.test['energy_mae_meV_per_atom']:.1f} meV/atom, force MAE "
            f"{self.test['force_mae_meV_per_A']:.1f} meV/Å"
            + (
                f", force slope s = {self.test['force_slope']:.3f} (F_model ≈ s · F_DFT)."
                if self.test.get("force_slope") is not None
                else "."
            ),
            "",
            "| T (K) | frames | E MAE (meV/atom) | F MAE (meV/Å) | DFT mean abs F (meV/Å) |",
            "|---|---|---|---|---|",
        ]
        for temperature, row in self.test_by_temperature.items():
            lines.append(
                f"| {temperature} | {row['n_frames']} | {row['energy_mae_meV_per_atom']:.1f} | "
                f"{row['force_mae_meV_per_A']:.1f} | {row['dft_force_meV_per_A']:.0f} |"
            )
        lines += [
            "",
            f"Reproduction: the learning-curve run it comes from scored "
            f"{self.reproduces['curve_force_mae_meV_per_A']:.2f} meV/Å on the test split, this "
            f"file scores {self.reproduces['force_mae_meV_per_A']:.2f} meV/Å.",
            "",
            "## Molecular dynamics (Langevin, 12-atom Li₂O cell, `course_lib.md.run_md`)",
        ]
        for run in self.md:
            lines.append(
                f"- {run['temperature_K']:.0f} K, seed {run['seed']}: {run['verdict']} after "
                f"{run['steps_run']}/{run['steps_requested']} steps of {run['timestep_fs']:g} fs"
                + (f" ({run['reason']})" if run["reason"] else "")
                + "; closest approach "
                + ", ".join(f"{pair} {r:.2f} Å" for pair, r in run["closest_approach_A"].items())
            )
        return "\n".join(lines) + "\n"


def card_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def write_card(card: TargetModelCard, model_path: str | os.PathLike) -> Path:
    """The card next to the model file: ``.json`` (read back by ``read_card``) and ``.md``."""
    path = card_path(model_path)
    ds.atomic_write_text(path, json.dumps(card.as_dict(), indent=2, default=float) + "\n")
    ds.atomic_write_text(path.with_suffix(".md"), card.markdown())
    return path


def read_card(model: str | os.PathLike) -> TargetModelCard:
    """The card of a registered target model or of a model file."""
    from course_lib.models import model_file

    path = card_path(model_file(model))
    if not path.is_file():
        raise FileNotFoundError(f"{model} has no target-model card at {path}")
    return TargetModelCard.from_dict(json.loads(path.read_text()))


def errors_by_temperature(model, frames: Sequence[Atoms]) -> dict:
    """Per ``info["temperature_K"]`` (as ``"300"``): frames, energy and force MAE, DFT |F|."""
    from course_lib.zero_shot import error_metrics, predict

    out = {}
    for temperature in sorted({float(a.info["temperature_K"]) for a in frames}):
        group = [a for a in frames if float(a.info["temperature_K"]) == temperature]
        metrics = error_metrics(group, predict(model, group, compute_stress=False))
        dft = np.concatenate([a.arrays[ds.FORCES_KEY] for a in group])
        out[f"{temperature:g}"] = {
            "n_frames": len(group),
            "energy_mae_meV_per_atom": metrics.energy_mae_meV_per_atom,
            "force_mae_meV_per_A": metrics.force_mae_meV_per_A,
            "dft_force_meV_per_A": float(np.abs(dft).mean() * 1e3),
        }
    return out


def md_summary(result) -> dict:
    """The fields of an ``MDResult`` a card keeps (no trajectory)."""
    full = result.as_dict()
    keep = (
        "temperature_K", "timestep_fs", "steps_requested", "steps_run", "seed", "stable",
        "reason", "failed_step", "verdict", "closest_approach_A", "limits_A",
    )  # fmt: skip
    return {k: full[k] for k in keep}
