"""Pre-training in miniature as a controlled experiment: does off-equilibrium data help?

The chapter credits OMat24's rattled, strained and hot-MD frames with roughly halving the
error of foundation models on hot Li configurations. The course can run that experiment in
miniature because it makes its own corpora and models: ``course-mini`` is pre-trained on
``mini-mptrj`` (relaxations, MPtrj-like) and its twin ``course-mini-omat`` by the same recipe,
seed and number of gradient steps on ``mini-mptrj`` + ``mini-omat`` (off-equilibrium frames
of the same prototypes, Li2O left out). Both share our DFT setup, so their raw errors are
compared; a model of another setup (CHGNet: MPtrj's VASP PBE(+U)) is compared after per-element
alignment (``ZeroShotResult.judged_errors_by``).

This module pairs the twins and puts their errors on one table; MD and coverage are the
general tools of ``course_lib.md`` and ``course_lib.coverage``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ase import Atoms

from course_lib.zero_shot import GroupedErrors, group_text

#: Each course model and its off-equilibrium twin (same recipe and steps, mini-omat added).
TWINS: dict[str, str] = {"course-mini": "course-mini-omat"}


def twin_of(model: str) -> str | None:
    """The off-equilibrium twin of a course model (``TWINS``), None if it has none."""
    from course_lib.models import resolve_model_name

    return TWINS.get(resolve_model_name(model))


def twin_unavailable(model: str) -> str:
    """Why the twin experiment cannot run with ``model`` on this machine ("" when it can)."""
    from course_lib import data as ds
    from course_lib.models import REGISTRY, is_available, pretraining_corpus

    twin = twin_of(model)
    if twin is None:
        return (
            f"{model} has no off-equilibrium twin in the course (MACE-MP-0's would be "
            f"MACE-OMAT-0, a model of another corpus and size); run with one of {sorted(TWINS)}"
        )
    if twin not in REGISTRY:
        return (
            f"the off-equilibrium twin {twin} is not registered yet: its DFT data (mini-omat) "
            "are still being computed"
        )
    if not is_available(twin):
        return f"the off-equilibrium twin {twin} is registered, but its file is not on this machine"
    try:  # its energies are judged raw only if its corpus's files say it shares our DFT setup
        ds.dataset_paths(pretraining_corpus(twin))
    except FileNotFoundError as err:
        return f"the corpus of the off-equilibrium twin {twin} is not here ({err})"
    return ""


@dataclass(frozen=True)
class CorpusComparison:
    """Zero-shot errors of several models on the same frames, per ``info[key]`` group.

    ``errors[model]`` holds the energies a chapter check judges (raw for our DFT
    setup, aligned otherwise; ``GroupedErrors.judged_energies`` says which) and
    forces with each group's DFT force scale; ``corpora[model]`` is the model's
    bundled pre-training corpus (None: not bundled, e.g. CHGNet's MPtrj);
    ``aligned_energy_mae_meV_per_atom[model][group]`` the energy MAE after per-element
    alignment (meV/atom), for every model alike.
    """

    dataset: str
    key: str
    errors: dict[str, GroupedErrors]
    corpora: dict[str, str | None]
    aligned_energy_mae_meV_per_atom: dict[str, dict] = field(default_factory=dict)

    @property
    def groups(self) -> list:
        """The ``info[key]`` values, ascending (e.g. 300.0, 1200.0 K)."""
        return list(next(iter(self.errors.values())).metrics)

    def energy_mae(self, model: str, group) -> float:
        """Judged energy MAE of ``model`` on ``group`` (meV/atom)."""
        return self.errors[model].energy_mae_meV_per_atom(group)

    def force_mae(self, model: str, group) -> float:
        """Force MAE of ``model`` on ``group`` (meV/Å)."""
        return self.errors[model].metrics[group].force_mae_meV_per_A

    def relative_force_error(self, model: str, group) -> float:
        """Force MAE over the group's mean DFT |F| component (1: no better than zero force)."""
        return self.errors[model].relative_force_error(group)

    def improvement(self, without: str, with_: str, group) -> dict[str, float]:
        """How many times smaller ``with_``'s errors are than ``without``'s on ``group``.

        ``energy``: ratio of judged energy MAEs; ``force``: ratio of force MAEs
        (the frames are the same, so the DFT force scale cancels); ``energy_difference``:
        ratio of the errors of the mean energy difference from the first group to
        ``group`` (``difference_miss``), which a constant energy offset cannot change.
        Above 1: ``with_`` is better.
        Raises ``ValueError`` if one model's energies are judged raw and the other's aligned:
        their ratio would compare two different quantities.
        """
        bases = {self.errors[m].judged_energies for m in (without, with_)}
        if len(bases) > 1:
            raise ValueError(
                f"{without} and {with_} are judged on different energies ({sorted(bases)}): "
                "compare models of one DFT setup, or compare their forces only"
            )
        misses = [abs(self.difference_miss(m, group) or 0.0) for m in (without, with_)]
        return {
            "energy": self.energy_mae(without, group) / self.energy_mae(with_, group),
            "force": self.force_mae(without, group) / self.force_mae(with_, group),
            # the mean energy difference from the first group to ``group``: no constant offset in it
            "energy_difference": misses[0] / misses[1] if misses[1] > 0 else float("nan"),
        }

    def energy_bias(self, model: str, group) -> float:
        """Mean signed judged energy error of ``model`` on ``group`` (meV/atom; + : too high)."""
        return self.errors[model].metrics[group].energy_bias_meV_per_atom

    def difference_miss(self, model: str, group) -> float | None:
        """Error of ``model``'s mean energy difference from the first group to ``group`` (meV/atom)."""
        return self.errors[model].difference_miss_meV_per_atom(self.groups[0], group)

    def hot_over_cold(self, model: str) -> dict[str, float]:
        """``model``'s error on the last group over the first: judged energy, relative force."""
        ratios = self.errors[model].ratios(self.groups[0], self.groups[-1])
        return {"energy": ratios["energy_mae"], "relative_force": ratios["relative_force_error"]}

    def rows(self) -> list[dict]:
        """One row per model and group: frames, energies (judged and aligned), forces, ratios."""
        out = []
        for model, errors in self.errors.items():
            for group in self.groups:
                metrics = errors.metrics[group]
                out.append(
                    {
                        "model": model,
                        "corpus": self.corpora.get(model),
                        self.key: group,
                        "n_frames": metrics.n_frames,
                        "energy_judged": errors.judged_energies,
                        "energy_mae_meV_per_atom": self.energy_mae(model, group),
                        "aligned_energy_mae_meV_per_atom": (
                            self.aligned_energy_mae_meV_per_atom.get(model, {}).get(group)
                        ),
                        "force_mae_meV_per_A": metrics.force_mae_meV_per_A,
                        "dft_force_meV_per_A": errors.force_scale_meV_per_A[group],
                        "relative_force_error": self.relative_force_error(model, group),
                    }
                )
        return out

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "key": self.key,
            "rows": self.rows(),
            "hot_over_cold": {model: self.hot_over_cold(model) for model in self.errors},
        }

    def group_text(self, group) -> str:
        """A group's value with its unit when the key names one (``temperature_K``: "300 K")."""
        return group_text(self.key, group)

    def table(self) -> str:
        """Markdown: one row per model and group, then each model's hot/cold ratios."""
        lines = [
            f"Zero-shot on {self.dataset}, per {self.key.removesuffix('_K').replace('_', ' ')}",
            "",
            "| model | corpus | group | frames | E MAE judged (meV/atom) | E MAE aligned "
            "| F MAE (meV/Å) | DFT \\|F\\| (meV/Å) | F MAE / \\|F\\| |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows():
            corpus = row["corpus"] or "not bundled"
            aligned = row["aligned_energy_mae_meV_per_atom"]
            lines.append(
                f"| {row['model']} | {corpus} | {self.group_text(row[self.key])} | {row['n_frames']} "
                f"| {row['energy_mae_meV_per_atom']:.1f} ({row['energy_judged']}) "
                f"| {'-' if aligned is None else f'{aligned:.1f}'} "
                f"| {row['force_mae_meV_per_A']:.0f} | {row['dft_force_meV_per_A']:.0f} "
                f"| {row['relative_force_error']:.0%} |"
            )
        first, last = (self.group_text(g) for g in (self.groups[0], self.groups[-1]))
        lines += ["", f"{last} over {first}: " + "; ".join(
            f"{model} energy x{r['energy']:.2f}, relative force x{r['relative_force']:.2f}"
            for model, r in ((m, self.hot_over_cold(m)) for m in self.errors)
        )]  # fmt: skip
        for model, errors in self.errors.items():
            shared = errors.shared_offset(self.groups[0], self.groups[-1]).strip()
            if shared:
                lines += ["", f"{model}: {shared}"]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.table()

    __str__ = table


def compare_corpora(
    models: Sequence[str],
    frames: Sequence[Atoms],
    *,
    dataset: str,
    key: str = "temperature_K",
    batch_size: int = 16,
) -> CorpusComparison:
    """Evaluate every model zero-shot on the same labelled ``frames``, grouped by ``info[key]``.

    ``dataset`` names the bundled dataset the frames come from: it decides,
    per model, whether raw or aligned energies are judged (same DFT setup or not).
    """
    from course_lib.models import pretraining_corpus, resolve_model_name
    from course_lib.zero_shot import evaluate

    if not models:
        raise ValueError("compare_corpora needs at least one model")
    errors, corpora, aligned = {}, {}, {}
    for model in models:
        name = resolve_model_name(model)
        result = evaluate(name, frames, dataset=dataset, batch_size=batch_size)
        aligned_groups = result.errors_by(key)  # grouped once; judged too for another setup
        errors[name] = (
            result.judged_errors_by(key) if aligned_groups.same_dft_setup else aligned_groups
        )
        corpora[name] = pretraining_corpus(name)
        aligned[name] = {g: m.energy_mae_meV_per_atom for g, m in aligned_groups.metrics.items()}
    return CorpusComparison(
        dataset=dataset,
        key=key,
        errors=errors,
        corpora=corpora,
        aligned_energy_mae_meV_per_atom=aligned,
    )
