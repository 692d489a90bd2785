"""Fine-tuning strategies side by side: target accuracy against what the model forgets.

The chapter's fine-tuning regimes leave open *how* to fine-tune. mace-torch
offers several ways, and a 2026 benchmark of seven strategies (Tompa et al.,
arXiv 2606.12704) found naive fine-tuning best on the target alone, and only
replay of pre-training data keeping pre-training accuracy and the short-range
repulsive wall, at several times the compute. Here each strategy runs on the
same target split with the same budget, and is measured on four axes:

* **target**: test errors on the fine-tuning target;
* **forgetting**: errors on the pre-training corpus's held-out frames, before -> after;
* **repulsive wall**: energies of compressed atom pairs in the target crystal
  (``wall_check``), against DFT where the course has DFT points, and whether
  each pair's energy still rises as the pair is pushed together;
* **MD stability**: ``course_lib.md`` at a high temperature;
* and the **CPU cost** of the fit.

Strategies (``STRATEGIES``), each with its mace-torch counterpart:

=============  ======================================================  ===========================
naive          every parameter trains (full fine-tuning)                ``--foundation_model``
frozen         embedding and interactions frozen; products, readouts    ``--freeze 5``
closed-form    readouts' last layers solved in closed form (the course) (none)
lora           low-rank adapters on every linear layer, merged after    ``--lora --lora_rank 4``
replay         naive on target + corpus frames mixed in, weighted       ``--multiheads_finetuning``
l2-pull        naive + λ·|w - w_pretrained|² toward the start           (none)
=============  ======================================================  ===========================

Replay here mixes pre-training frames (``replay_n`` of the corpus's training
split, each with ``info["config_weight"] = replay_weight``, mace's per-config
weight) into one training set for one head; mace-torch's multihead
fine-tuning does the same with a separate head for the pre-training data,
which in-process training does not reproduce. Said plainly in the results.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

from course_lib import data as ds
from course_lib.finetune import FineTuneSettings, RegimeRunner, calculator_for
from course_lib.zero_shot import ErrorMetrics, predict

if TYPE_CHECKING:
    import torch


class StrategyInputError(ValueError):
    """A strategy comparison that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Strategy:
    """One way to fine-tune: settings over the shared ones, and its mace-torch flags."""

    name: str
    description: str
    settings: dict
    mace_flags: str
    replay: bool = False


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("naive", "every parameter trains", {"regime": "full"}, "--foundation_model M"),
        Strategy(
            "frozen",
            "embedding and interactions frozen; products and readouts train",
            {"regime": "few-shot", "trainable": "freeze-5", "lr": 1e-3},
            "--freeze 5",
        ),
        Strategy(
            "closed-form",
            "readouts' last linear layers solved in one least-squares pass",
            {"regime": "few-shot", "solver": "closed-form"},
            "(no mace-torch counterpart)",
        ),
        Strategy(
            "lora",
            "rank-4 adapters on every linear layer, base weights frozen, merged after",
            {"regime": "few-shot", "trainable": "lora", "lr": 5e-3},
            "--lora --lora_rank 4 --lora_alpha 1",
        ),
        Strategy(
            "replay",
            "naive, with pre-training frames mixed into the training set",
            {"regime": "full"},
            "--multiheads_finetuning True --pt_train_file CORPUS --weight_pt_head 1",
            replay=True,
        ),
        Strategy(
            "l2-pull",
            "naive, with an L2 pull toward the pre-trained weights",
            {"regime": "full", "l2_pull": 1.0},
            "(no direct flag; --weight_decay pulls toward zero, not toward the start)",
        ),
    )
}


# --------------------------------------------------------------------------- the wall


@dataclass(frozen=True)
class PairCurve:
    """Energies of one compressed pair against its distance (Å), relative to its widest point (eV).

    ``dft`` holds the reference where the frames carry DFT labels (else None).
    ``repulsive`` is True when the energy rises at every step the pair is
    pushed closer: the wall is there.
    """

    pair: str
    distances_A: tuple[float, ...]
    energies_eV: tuple[float, ...]
    dft_eV: tuple[float, ...] | None

    @property
    def repulsive(self) -> bool:
        return bool(np.all(np.diff(self.energies_eV) < 0))  # distances ascend

    @property
    def mae_vs_dft_eV(self) -> float | None:
        if self.dft_eV is None:
            return None
        return float(np.mean(np.abs(np.subtract(self.energies_eV, self.dft_eV))))


@dataclass(frozen=True)
class WallCheck:
    """A model's pair curves: does it keep its repulsive walls, and how close to DFT?"""

    curves: tuple[PairCurve, ...]

    @property
    def holds(self) -> bool:
        return all(curve.repulsive for curve in self.curves)

    @property
    def mae_vs_dft_eV(self) -> float | None:
        values = [c.mae_vs_dft_eV for c in self.curves if c.mae_vs_dft_eV is not None]
        return float(np.mean(values)) if values else None

    def as_dict(self) -> dict:
        return {
            "holds": self.holds,
            "mae_vs_dft_eV": self.mae_vs_dft_eV,
            "curves": [dataclasses.asdict(c) | {"repulsive": c.repulsive} for c in self.curves],
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> WallCheck:
        """The check back from ``as_dict`` (a shipped comparison)."""

        def curve(c):
            dft = None if c["dft_eV"] is None else tuple(c["dft_eV"])
            return PairCurve(c["pair"], tuple(c["distances_A"]), tuple(c["energies_eV"]), dft)

        return cls(curves=tuple(curve(c) for c in record["curves"]))


def wall_check(model, frames: Sequence[Atoms]) -> WallCheck:
    """Pair curves of ``model`` on compressed-pair ``frames`` (info ``pair``, ``pair_distance_A``).

    Such frames are the ``li2o-pairs`` dataset (with DFT labels) or any made
    by ``structures.compressed_pair``. Energies are relative to the widest
    distance of each pair, so per-element reference energies cancel.
    """
    predicted = predict(model, frames, compute_stress=False).energies
    labelled = all(ds.ENERGY_KEY in atoms.info for atoms in frames)
    curves = []
    for pair in sorted({atoms.info["pair"] for atoms in frames}):
        index = [i for i, atoms in enumerate(frames) if atoms.info["pair"] == pair]
        index.sort(key=lambda i: frames[i].info["pair_distance_A"])
        model_e = predicted[index] - predicted[index[-1]]
        dft = None
        if labelled:
            reference = np.array([frames[i].info[ds.ENERGY_KEY] for i in index])
            dft = tuple(float(v) for v in reference - reference[-1])
        curves.append(
            PairCurve(
                pair=pair,
                distances_A=tuple(float(frames[i].info["pair_distance_A"]) for i in index),
                energies_eV=tuple(float(v) for v in model_e),
                dft_eV=dft,
            )
        )
    return WallCheck(curves=tuple(curves))


# --------------------------------------------------------------------------- one comparison


@dataclass(frozen=True)
class StrategyResult:
    """One strategy measured on the four axes (errors meV/atom, meV/Å; CPU seconds)."""

    name: str
    description: str
    mace_flags: str
    n_train: int
    n_replay: int
    target: ErrorMetrics
    forgetting_before: ErrorMetrics
    forgetting: ErrorMetrics
    wall: WallCheck | None
    md_verdict: str
    md_reason: str
    cpu_s: float
    model: torch.nn.Module | None = field(repr=False, default=None)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "mace_flags": self.mace_flags,
            "n_train": self.n_train,
            "n_replay": self.n_replay,
            "target": self.target.as_dict(),
            "forgetting": {
                "before": self.forgetting_before.as_dict(),
                "after": self.forgetting.as_dict(),
                "force_mae_ratio": self.forgetting_ratio,
            },
            "wall": self.wall.as_dict() if self.wall else None,
            "md": {"verdict": self.md_verdict, "reason": self.md_reason},
            "cpu_s": round(self.cpu_s, 2),
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> StrategyResult:
        """The result back from ``as_dict`` (a shipped comparison; no model)."""
        forgetting = record["forgetting"]
        return cls(
            name=record["name"],
            description=record["description"],
            mace_flags=record["mace_flags"],
            n_train=record["n_train"],
            n_replay=record["n_replay"],
            target=ErrorMetrics(**record["target"]),
            forgetting_before=ErrorMetrics(**forgetting["before"]),
            forgetting=ErrorMetrics(**forgetting["after"]),
            wall=None if record["wall"] is None else WallCheck.from_dict(record["wall"]),
            md_verdict=record["md"]["verdict"],
            md_reason=record["md"]["reason"],
            cpu_s=record["cpu_s"],
        )

    @property
    def forgetting_ratio(self) -> float:
        """Corpus force MAE after / before: 1 means nothing forgotten."""
        return self.forgetting.force_mae_meV_per_A / self.forgetting_before.force_mae_meV_per_A


@dataclass(frozen=True)
class StrategyComparison:
    """Every strategy on one target: the table, the settings shared, the starting model."""

    model: str
    dataset: str
    corpus: str
    shared: dict
    start: StrategyResult
    results: tuple[StrategyResult, ...]

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "corpus": self.corpus,
            "shared_settings": self.shared,
            "start": self.start.as_dict(),
            "strategies": [r.as_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> StrategyComparison:
        """The comparison back from ``as_dict``: a shipped one, for its table and plots."""
        return cls(
            model=record["model"],
            dataset=record["dataset"],
            corpus=record["corpus"],
            shared=dict(record["shared_settings"]),
            start=StrategyResult.from_dict(record["start"]),
            results=tuple(StrategyResult.from_dict(r) for r in record["strategies"]),
        )

    def table(self) -> str:
        head = (
            f"{'strategy':<12} {'E meV/at':>9} {'F meV/Å':>8} {'corpus F before->after':>23} "
            f"{'wall':>5} {'MD':>9} {'CPU s':>7}"
        )
        lines = [
            f"{self.model} on {self.dataset}: {self.start.n_train} structures; forgetting on "
            f"{self.start.forgetting_before.n_frames} held-out frames of {self.corpus}",
            head,
        ]
        for r in (self.start, *self.results):
            wall = "-" if r.wall is None else ("yes" if r.wall.holds else "NO")
            corpus = (
                f"{r.forgetting_before.force_mae_meV_per_A:.0f} -> "
                f"{r.forgetting.force_mae_meV_per_A:.0f}"
            )
            lines.append(
                f"{r.name:<12} {r.target.energy_mae_meV_per_atom:>9.1f} "
                f"{r.target.force_mae_meV_per_A:>8.1f} {corpus:>23} {wall:>5} "
                f"{r.md_verdict:>9} {r.cpu_s:>7.1f}"
            )
        return "\n".join(lines)

    __str__ = table


def run_strategies(
    model,
    dataset: str,
    *,
    n: int,
    names: Sequence[str] = tuple(STRATEGIES),
    corpus: str | None = None,
    wall_frames: Sequence[Atoms] | None = None,
    replay_n: int | None = None,
    replay_weight: float = 1.0,
    md_temperature_K: float = 1200.0,
    md_steps: int = 200,
    seed: int = 0,
    progress: bool = True,
    n_test: int | None = None,
    n_held_out: int | None = None,
    **shared,
) -> StrategyComparison:
    """Fine-tune ``model`` on ``n`` structures of ``dataset`` with each strategy in ``names``.

    ``shared`` are ``FineTuneSettings`` fields every strategy gets (the
    budget: ``max_epochs``, ``patience``, ...); a strategy's own settings
    override them. ``corpus`` is the pre-training corpus (default: the
    model's, from the registry) whose held-out frames measure forgetting and
    whose training frames are replayed (``replay_n``, default ``n``).
    ``wall_frames`` are compressed-pair frames for ``wall_check`` (None:
    no wall check). MD starts from the first test frame. A budget for a
    large model: ``n_test`` test structures per temperature and
    ``n_held_out`` corpus frames for forgetting (seeded subsets; None: all).
    """
    from course_lib.finetune import regime_frames
    from course_lib.md import run_md
    from course_lib.models import pretraining_corpus

    unknown = [name for name in names if name not in STRATEGIES]
    if unknown:
        raise StrategyInputError(
            f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}"
        )
    corpus = corpus or (pretraining_corpus(model) if isinstance(model, str) else None)
    if corpus is None:
        raise StrategyInputError(
            "forgetting needs the pre-training corpus: pass corpus=... (--corpus)"
        )
    corpus_frames = ds.read_dataset(corpus)
    if not any(atoms.info.get("split") == "test" for atoms in corpus_frames):
        raise StrategyInputError(
            f"{corpus} has no held-out frames (info split='test') to measure forgetting on"
        )
    corpus_pool, held_out = ds.train_test_split(corpus_frames, seed=0)
    if n_held_out is not None:
        held_out = ds.subset(held_out, min(n_held_out, len(held_out)), seed=seed)
    frames = regime_frames(dataset, n=n, seed=seed, n_test=n_test)
    runner = RegimeRunner(model, frames.train, frames.test, pretraining_frames=held_out)
    dtype = shared.get("dtype", "float64")
    start = runner.start_model(dtype)
    replay = _replay_frames(corpus_pool, replay_n or n, replay_weight, seed)
    md_start = frames.test[0]

    def measure(name, strategy, fitted, target, forgetting, cpu_s, n_replay) -> StrategyResult:
        md = run_md(
            calculator_for(fitted),
            md_start,
            temperature_K=md_temperature_K,
            steps=md_steps,
            seed=seed,
        )
        return StrategyResult(
            name=name,
            description=strategy.description if strategy else "the pre-trained model, E aligned",
            mace_flags=strategy.mace_flags if strategy else "",
            n_train=len(frames.train),
            n_replay=n_replay,
            target=target,
            forgetting_before=before,
            forgetting=forgetting,
            wall=wall_check(fitted, wall_frames) if wall_frames else None,
            md_verdict=md.verdict,
            md_reason=md.reason,
            cpu_s=cpu_s,
            model=fitted,
        )

    before = runner.forgetting_before(dtype)
    zero_shot = runner.zero_shot(dtype).aligned
    start_result = measure("zero-shot", None, start, zero_shot, before, 0.0, 0)
    results = []
    for name in names:
        strategy = STRATEGIES[name]
        train = [*frames.train, *replay] if strategy.replay else frames.train
        settings = FineTuneSettings(
            **{"seed": seed, "progress": progress, **shared, **strategy.settings}
        )
        result = runner(train_frames=train, settings=settings)
        n_replay = len(replay) if strategy.replay else 0
        results.append(
            measure(
                name,
                strategy,
                result.tuner.model_,
                result.test,
                result.forgetting,
                result.fit_cpu_s,
                n_replay,
            )
        )
    return StrategyComparison(
        model=str(model),
        dataset=frames.dataset,
        corpus=str(corpus),
        shared=shared,
        start=start_result,
        results=tuple(results),
    )


def comparison_key(model, dataset: str | os.PathLike, n: int) -> dict:
    """The key a shipped comparison is stored under (``course strategies --ship``)."""
    return {"model": str(model), "dataset": Path(str(dataset)).stem, "n": n}


def shipped_comparison(model, dataset: str | os.PathLike, n: int):
    """The shipped full-mode ``StrategyComparison`` for this key, and how it was made.

    Returns (comparison, provenance: command, commit, sha256s, CPU s);
    ``shipped.NotShippedError`` lists what is shipped when this is not.
    """
    from course_lib.shipped import shipped

    record = shipped("strategies", comparison_key(model, dataset, n))
    return StrategyComparison.from_dict(record.payload), record.provenance


def _replay_frames(pool: Sequence[Atoms], n: int, weight: float, seed: int) -> list[Atoms]:
    """``n`` frames of the corpus's training ``pool``, each weighted ``weight`` (mace's config_weight)."""
    chosen = ds.subset(pool, min(n, len(pool)), seed=seed)
    frames = []
    for atoms in chosen:
        atoms = atoms.copy()
        atoms.info["config_weight"] = float(weight)
        frames.append(atoms)
    return frames


def replay_frames(
    corpus: str | os.PathLike, n: int, *, weight: float = 1.0, seed: int = 0
) -> list[Atoms]:
    """What the "replay" strategy mixes in: ``n`` frames of ``corpus``'s training split, weighted.

    The same split as ``run_strategies`` (seed 0, fixed splits kept), a
    seeded subset of it, each frame with ``info["config_weight"] = weight``.
    """
    pool = ds.train_test_split(ds.read_dataset(corpus), seed=0)[0]
    return _replay_frames(pool, n, weight, seed)


def pareto_front(results: Sequence[StrategyResult]) -> list[str]:
    """Names of the strategies no other beats on both target force MAE and forgetting."""
    front = []
    for r in results:
        dominated = any(
            o.target.force_mae_meV_per_A <= r.target.force_mae_meV_per_A
            and o.forgetting.force_mae_meV_per_A <= r.forgetting.force_mae_meV_per_A
            and (o.target.force_mae_meV_per_A, o.forgetting.force_mae_meV_per_A)
            != (r.target.force_mae_meV_per_A, r.forgetting.force_mae_meV_per_A)
            for o in results
        )
        if not dominated:
            front.append(r.name)
    return front


def winners(comparison: StrategyComparison) -> Mapping[str, str]:
    """Which strategy wins on which axis (lowest target force MAE, least forgetting, cheapest)."""
    results = comparison.results
    return {
        "target force": min(results, key=lambda r: r.target.force_mae_meV_per_A).name,
        "target energy": min(results, key=lambda r: r.target.energy_mae_meV_per_atom).name,
        "least forgetting": min(results, key=lambda r: r.forgetting.force_mae_meV_per_A).name,
        "cheapest": min(results, key=lambda r: r.cpu_s).name,
    }


#: Corpus force MAE after / before up to which a strategy "keeps" pre-training accuracy.
KEEPS_PRETRAINING_RATIO = 1.5


@dataclass(frozen=True)
class Finding:
    """One finding of the 2026 strategies benchmark, checked against a comparison."""

    claim: str
    holds: bool
    measured: str

    def __str__(self) -> str:
        return f"{'holds' if self.holds else 'does not hold'}: {self.claim} ({self.measured})"


def benchmark_findings(comparison: StrategyComparison) -> list[Finding]:
    """The benchmark's findings (Tompa et al., arXiv 2606.12704), each checked on ``comparison``.

    Naive fine-tuning best on the target alone; only replay keeps
    pre-training accuracy (corpus force MAE within ``KEEPS_PRETRAINING_RATIO``
    of its value before) and the repulsive wall; replay costs 3-15x the
    compute. Findings whose strategies are missing are left out.
    """
    by_name = {r.name: r for r in comparison.results}
    findings = []
    if "naive" in by_name:
        alone = [r for r in comparison.results if r.name != "replay"]
        best = min(alone, key=lambda r: r.target.force_mae_meV_per_A)
        findings.append(
            Finding(
                "naive fine-tuning is best on the target alone (replay aside)",
                best.name == "naive",
                f"lowest target force MAE without replay: {best.name}, "
                f"{best.target.force_mae_meV_per_A:.1f} meV/Å",
            )
        )
    if "replay" in by_name:
        keep = [r.name for r in comparison.results if r.forgetting_ratio <= KEEPS_PRETRAINING_RATIO]
        ratios = ", ".join(f"{r.name} {r.forgetting_ratio:.2f}" for r in comparison.results)
        findings.append(
            Finding(
                "only replay keeps pre-training accuracy "
                f"(corpus force MAE after/before <= {KEEPS_PRETRAINING_RATIO})",
                keep == ["replay"],
                f"after/before: {ratios}",
            )
        )
        checked = [r for r in comparison.results if r.wall is not None]
        if checked:
            holding = [r.name for r in checked if r.wall.holds]
            findings.append(
                Finding(
                    "only replay keeps the repulsive wall",
                    holding == ["replay"],
                    f"walls that hold: {', '.join(holding) or 'none'}",
                )
            )
        if "naive" in by_name and by_name["naive"].cpu_s > 0:
            ratio = by_name["replay"].cpu_s / by_name["naive"].cpu_s
            findings.append(
                Finding(
                    "replay costs 3-15x the compute of naive fine-tuning",
                    3.0 <= ratio <= 15.0,
                    f"{ratio:.1f}x ({by_name['replay'].n_replay} corpus frames replayed)",
                )
            )
    return findings
