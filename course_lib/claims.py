"""The chapter's claims as data, and chapter checks that judge them on the model in use.

A ``Claim`` says, in our words, what the chapter asserts: its section, its
number or range with unit, how the course measures it, which notebooks do, the
named quantities a measurement consists of, and the rule that turns those
numbers into a verdict. ``CLAIMS`` is the registry; its rules and their
thresholds are fixed here, before any notebook is run.

``check(claim_id, measured, model=..., reason=...)`` applies the rule to the
numbers a notebook computed and returns a ``ChapterCheck``: one of
``VERDICTS`` (reproduced / partly / contradicted / not testable here),
computed, never typed. The notebook's ``reason`` is a mapping verdict -> text
or a callable of the numbers, so its prose follows the verdict. A missing
measurement, or a precondition the model in use does not meet (a claim about
universal MLIPs on a 15-element model), gives "not testable here".

A ``ChapterCheck`` shows in Jupyter as a small box and carries a
machine-readable copy of itself under ``MIME_TYPE`` in its display bundle, so
``collect_report`` reads the checks back from executed notebooks (``course
run``, then ``course report``) with no global state and no side files.

A claim may carry an ``Erratum``: a chapter statement contradicted by a
primary source (or by the chapter's own arithmetic), shown wherever the claim
is checked. A statement we could not trace to any source is not an erratum;
the claim's ``note`` says so instead.

Three helpers compute measurements several notebooks share, so that they are
measured alike: ``judged_energy`` (which zero-shot energy error a claim is
judged on, given the model's DFT setup), ``coverage_numbers`` (the coverage
scores and flags of cold and hot frames, and whether their reference is the
model's training set) and ``snapshot_agreement`` (how often 20 snapshots
reach the decision that all of them reach).
"""

from __future__ import annotations

import html
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from course_lib.coverage import CoverageReport

REPRODUCED = "reproduced"
PARTLY = "partly"
CONTRADICTED = "contradicted"
NOT_TESTABLE = "not testable here"
#: The verdicts a check can reach, best first.
VERDICTS = (REPRODUCED, PARTLY, CONTRADICTED, NOT_TESTABLE)
#: In a report only: a registered claim that no executed notebook checked.
NOT_RUN = "not run"

#: The MIME type under which a ChapterCheck stores itself in a notebook output.
MIME_TYPE = "application/vnd.course.chapter-check+json"
SCHEMA_VERSION = 1

CHAPTER = "12.1 The Foundation-Model Paradigm"

# The chapter's headings (``Claim.section`` is one of these).
S_TRANSFER = "Why the paradigm transfers to materials"
S_UNIVERSAL = "From task-specific to universal MLIPs"
S_REGIMES = "Three regimes of use"
S_DATA = "How much data is enough?"
S_FORCES = "On the role of forces"
S_SOURCES = "The data sources"
S_DEGRADE = "Why universal MLIPs degrade on novel chemistries"
S_LI = "Empirical observation: MACE-MP-0 on lithium battery materials"
S_DIAGNOSTIC = "A concrete diagnostic"
S_FLOWCHART = "A decision flowchart for zero-shot vs fine-tuning"


# --------------------------------------------------------------------------- the data model


@dataclass(frozen=True)
class Erratum:
    """A chapter statement that a primary source contradicts: what is wrong, and the source.

    ``text`` is in our words; ``source`` cites authors, year, title, URL and
    the location in the source (section, table, file), or, for an internal
    inconsistency, the chapter passage whose own numbers contradict it.
    """

    text: str
    source: str

    def as_dict(self) -> dict:
        return {"text": self.text, "source": self.source}


@dataclass(frozen=True)
class Quantity:
    """One named number of a measurement: ``fmt`` is a format spec, or ``"yes/no"`` for a flag."""

    name: str
    label: str
    unit: str = ""
    fmt: str = ".3g"

    def format(self, value: float | None) -> str:
        if value is None:
            return f"{self.label} not measured"
        if self.fmt == "yes/no":
            return f"{self.label}: {'yes' if value else 'no'}"
        return f"{self.label} {value:{self.fmt}}{' ' + self.unit if self.unit else ''}"


@dataclass(frozen=True)
class Requires:
    """A precondition: the claim is testable only when ``quantity`` is at least ``at_least``."""

    quantity: str
    at_least: float
    why: str  # what the claim needs that a smaller value lacks


@dataclass(frozen=True)
class Band:
    """Verdict from one number: inside ``reproduced`` -> reproduced, inside ``partly`` -> partly.

    Bounds are inclusive; ``±inf`` leaves a side open. Anything else is
    contradicted.
    """

    quantity: str
    reproduced: tuple[float, float]
    partly: tuple[float, float]

    def __post_init__(self):
        (lo, hi), (plo, phi) = self.reproduced, self.partly
        if not (plo <= lo <= hi <= phi):
            raise ValueError(
                f"Band {self.quantity}: need partly {self.partly} to contain reproduced "
                f"{self.reproduced}"
            )

    @property
    def quantities(self) -> tuple[str, ...]:
        return (self.quantity,)

    def decide(self, values: Mapping[str, float]) -> str:
        value = values[self.quantity]
        if self.reproduced[0] <= value <= self.reproduced[1]:
            return REPRODUCED
        if self.partly[0] <= value <= self.partly[1]:
            return PARTLY
        return CONTRADICTED

    def describe(self, quantity: Quantity) -> str:
        unit = f" {quantity.unit}" if quantity.unit else ""
        percent = quantity.fmt.endswith("%")
        return (
            f"{quantity.label}: reproduced for {_interval(self.reproduced, percent)}{unit}, "
            f"partly for {_interval(self.partly, percent)}{unit}, contradicted otherwise"
        )


@dataclass(frozen=True)
class Rule:
    """Verdict from several numbers: ``decide(values)`` returns a verdict; ``text`` says how."""

    quantities: tuple[str, ...]
    decide: Callable[[Mapping[str, float]], str] = field(compare=False)
    text: str

    def describe(self, quantity: Quantity) -> str:
        return self.text


def about(quantity: str, value: float, *, within: float = 1.5, partly_within: float = 3.0) -> Band:
    """The chapter's "~value": reproduced within a factor ``within``, partly within ``partly_within``."""
    return Band(
        quantity,
        (value / within, value * within),
        (value / partly_within, value * partly_within),
    )


def between(quantity: str, low: float, high: float, *, partly_within: float = 1.5) -> Band:
    """The chapter's range "low-high": reproduced inside, partly within a factor ``partly_within``."""
    return Band(quantity, (low, high), (low / partly_within, high * partly_within))


@dataclass(frozen=True)
class Claim:
    """One claim of the chapter, in our words, with how the course measures and judges it."""

    id: str
    section: str  # a heading of the chapter
    claim: str  # paraphrased, never the chapter's sentence
    chapter: str  # the chapter's number or range, with unit
    how: str  # how the course measures it
    notebooks: tuple[str, ...]  # notebook stems that check it
    quantities: tuple[Quantity, ...]  # the first is the one a single number fills
    rule: Band | Rule
    requires: tuple[Requires, ...] = ()
    note: str = ""  # our remark on the claim (e.g. an internal inconsistency)
    erratum: Erratum | None = None

    def __post_init__(self):
        names = [q.name for q in self.quantities]
        needed = list(self.rule.quantities) + [r.quantity for r in self.requires]
        unknown = [name for name in needed if name not in names]
        if unknown:
            raise ValueError(f"claim {self.id}: rule uses undeclared quantities {unknown}")

    def quantity(self, name: str) -> Quantity:
        return next(q for q in self.quantities if q.name == name)

    @property
    def rule_text(self) -> str:
        text = self.rule.describe(self.quantity(self.rule.quantities[0]))
        for req in self.requires:
            quantity = self.quantity(req.quantity)
            condition = "" if quantity.fmt == "yes/no" else f" >= {req.at_least:g}"
            text += f"; testable only when {quantity.label}{condition}"
        return text

    def judge(self, values: Mapping[str, float | None]) -> tuple[str, str]:
        """(verdict, basis) from measured values; missing numbers or unmet preconditions: not testable."""
        needed = [r.quantity for r in self.requires] + list(self.rule.quantities)
        missing = [self.quantity(n).label for n in dict.fromkeys(needed) if values.get(n) is None]
        if missing:
            return NOT_TESTABLE, f"not measured here: {', '.join(missing)}"
        for req in self.requires:
            if values[req.quantity] < req.at_least:
                shown = self.quantity(req.quantity).format(values[req.quantity])
                needs = (
                    ""
                    if self.quantity(req.quantity).fmt == "yes/no"
                    else f"; needs >= {req.at_least:g}"
                )
                return NOT_TESTABLE, f"{req.why} ({shown}{needs})"
        return self.rule.decide(values), self.rule_text


# --------------------------------------------------------------------------- verdict rules with several numbers


def _both_or_one(first: bool, second: bool) -> str:
    return REPRODUCED if first and second else PARTLY if first or second else CONTRADICTED


def _hot_frames_flagged(v: Mapping[str, float]) -> str:
    return _both_or_one(
        v["hot_score"] < v["cold_score"] - COVERAGE_SCORE_MARGIN,
        v["hot_flags"] > v["cold_flags"],
    )


def _close_li_pairs(v: Mapping[str, float]) -> str:
    if v["hot_share"] <= v["corpus_share"]:
        return CONTRADICTED
    if v["corpus_share"] <= RARE_SHARE:
        return REPRODUCED
    return PARTLY if v["corpus_share"] <= UNCOMMON_SHARE else CONTRADICTED


def _floor_resolved(v: Mapping[str, float]) -> str:
    if v["floor"] <= FLOOR_AT_BOUND_MEV_PER_A:
        return CONTRADICTED
    return REPRODUCED if v["floor"] > 2 * v["floor_std"] else PARTLY


def _thresholds_met(v: Mapping[str, float]) -> str:
    return _both_or_one(
        v["energy_mae"] < TUNED_ENERGY_MEV_PER_ATOM, v["force_mae"] < TUNED_FORCE_MEV_PER_A
    )


#: coverage-flags-hot: the hot frames' score must be lower by more than this.
COVERAGE_SCORE_MARGIN = 0.01
#: li-li-close-pairs: shares of the training set's Li frames that count as rare / uncommon.
RARE_SHARE, UNCOMMON_SHARE = 0.05, 0.20
#: learning-curve-floor: a fitted B below this sits at the fit's bound B = 0.
FLOOR_AT_BOUND_MEV_PER_A = 1e-3
#: The chapter's flowchart thresholds (course.toml holds the ones a run locks).
ZERO_SHOT_FORCE_MEV_PER_A, TUNED_ENERGY_MEV_PER_ATOM, TUNED_FORCE_MEV_PER_A = 100.0, 20.0, 50.0

_TRAINING_SET = Requires(
    "reference_is_training_set",
    1,
    "the reference is not this model's own training set, so it cannot speak for that set",
)
_IS_TRAINING_SET = Quantity(
    "reference_is_training_set", "reference is the model's training set", fmt="yes/no"
)


def _energy_quantities() -> tuple[Quantity, ...]:
    return (
        Quantity("energy_mae", "energy MAE judged", "meV/atom", ".1f"),
        Quantity("raw_energy_mae", "raw", "meV/atom", ".1f"),
        Quantity("aligned_energy_mae", "aligned", "meV/atom", ".1f"),
        Quantity("same_dft_setup", "model trained on our DFT setup", fmt="yes/no"),
    )


_LI_ENERGY_HOW = (
    "Zero-shot energy MAE on the {T} Li2O MD snapshots against our PBE labels: the raw error "
    "when the model was trained on labels with our DFT settings (course-mini), else the error "
    "after fitting one reference energy per element (MPtrj models carry VASP PBE(+U) "
    "references), which also removes any constant bias of the model and so flatters it."
)

# --------------------------------------------------------------------------- errata and notes
# Sources as verified in course-work/errata-research.md; the texts are ours.

_VOCABULARY_ERRATUM = Erratum(
    text=(
        "The element alphabet is not four orders of magnitude smaller than a tokenised "
        "language's vocabulary. GPT-2 and GPT-3 use 50,257 tokens, about 520 times the ~96 "
        "elements in practical use: 2.7 orders of magnitude (3.3 even for a 200,000-token "
        "vocabulary)."
    ),
    source=(
        "Radford, Wu, Child, Luan, Amodei, Sutskever (2019), 'Language Models are Unsupervised "
        "Multitask Learners', https://cdn.openai.com/better-language-models/"
        "language_models_are_unsupervised_multitask_learners.pdf, Sec. 2.3 (vocabulary of "
        "50,257); GPT-3 keeps that tokenisation: Brown et al. (2020), 'Language Models are "
        "Few-Shot Learners', https://arxiv.org/abs/2005.14165, Sec. 2.1"
    ),
)

_M3GNET_ERRATUM = Erratum(
    text=(
        "M3GNet was trained neither on MPtrj nor on ~190,000 relaxations: its training set, "
        "MPF.2021.2.8, holds 187,687 structures (ionic steps) taken from the relaxations of "
        "62,783 compounds, an earlier and smaller Materials Project set. MPtrj is the training "
        "set of CHGNet and MACE-MP-0."
    ),
    source=(
        "Chen, Ong (2022), 'A universal graph deep learning interatomic potential for the "
        "periodic table', Nat. Comput. Sci. 2, 718-728, "
        "https://doi.org/10.1038/s43588-022-00349-3 (arXiv:2202.02450), section 'Universal IAP "
        "for the periodic table'"
    ),
)

_LABEL_COUNT_ERRATUM = Erratum(
    text=(
        "'Roughly triples' contradicts the chapter's own count in the same sentence: one energy "
        "and 3N force components are 3N + 1 labels per structure of N atoms instead of one (37 "
        "for a 12-atom cell, 151 for 50 atoms). The components of one structure are correlated, "
        "so the gain in information is smaller than 3N + 1; a factor of three fits only a count "
        "per atom: three force components for each atom's share of the one energy."
    ),
    source=(
        "internal: the chapter, box 'On the role of forces' (one energy and 3N force labels "
        "per structure of N atoms); arithmetic, no external source needed"
    ),
)

_OMAT_MODELS_ERRATUM = Erratum(
    text=(
        "MACE-MP-0b was not trained on OMat24: MACE-MP-0b, -0b2 and -0b3 are trained on MPtrj "
        "only, with a pair repulsion, corrected isolated-atom energies and high-pressure fixes. "
        "The MACE model trained on OMat24 is MACE-OMAT-0; MACE-MPA-0 adds sAlex (a subsample of "
        "Alexandria) to MPtrj. The EquiformerV2 models of the OMat24 paper were trained on "
        "OMat24 and then fine-tuned on MPtrj and Alexandria."
    ),
    source=(
        "ACEsuit, mace-foundations README, model table (MACE-MP-0b/0b2/0b3: MPTrj; MACE-MPA-0: "
        "MPTrj + sAlex; MACE-OMAT-0: OMAT), https://github.com/ACEsuit/mace-foundations; "
        "Barroso-Luque et al. (2024), 'Open Materials 2024 (OMat24) Inorganic Materials Dataset "
        "and Models', arXiv:2410.12771, https://arxiv.org/abs/2410.12771, abstract"
    ),
)

_UNCERTAINTY_ERRATUM = Erratum(
    text=(
        "Neither built-in estimator is what the chapter names. Orb (v3) ships a confidence "
        "head, a classifier that predicts each atom's force error in 50 bins, not a deep "
        "ensemble. A MACE committee is a set of separately trained models whose spread "
        "mace-torch reports (energy_var, forces_var): ensemble variance, nothing gradient-based; "
        "the MACE foundation models are released as single models, so the members are the "
        "user's to train."
    ),
    source=(
        "Orbital Materials, orb-models README, section 'Confidence head (Orb-v3 Models Only)', "
        "https://github.com/orbital-materials/orb-models, and Rhodes et al. (2025), 'Orb-v3: "
        "atomistic simulation at scale', arXiv:2504.06231, https://arxiv.org/abs/2504.06231; "
        "ACEsuit, mace-torch, mace/calculators/mace.py (MACECalculator: model_paths for a "
        "committee; energy_var, forces_var), https://github.com/ACEsuit/mace"
    ),
)

_MATBENCH_ERRATUM = Erratum(
    text=(
        "Matbench Discovery does not hold out chemical systems. Its test set, WBM, consists of "
        "257,487 structures made by up to five rounds of single-element substitution on "
        "Materials Project structures, then relaxed: a prospective test of crystal stability "
        "whose compositions may share chemical systems with the training data, and whose "
        "difficulty grows with the number of substitution rounds."
    ),
    source=(
        "Riebesell et al. (2023; v3 2025), 'Matbench Discovery - A framework to evaluate machine "
        "learning crystal stability predictions', arXiv:2308.14920, "
        "https://arxiv.org/abs/2308.14920, abstract; matbench-discovery repository, "
        "data/wbm/readme.md, https://github.com/janosh/matbench-discovery; Wang et al. (2021), "
        "'Predicting stable crystalline compounds using chemical similarity', npj Comput. "
        "Mater. 7, 12, https://www.nature.com/articles/s41524-020-00481-6"
    ),
)

_MATBENCH_NUMBERS_NOTE = (
    "We could not trace this number to Matbench Discovery's paper or repository; for scale, "
    "the OMat24 paper reports about 20 meV/atom on formation energies of WBM for its "
    "EquiformerV2 models (arXiv:2410.12771, abstract)."
)
_CASE_STUDY_NOTE = (
    "We found no publication matching the chapter's case study (MACE-MP-0 medium on Li-rich "
    "cathodes, attributed to the Cheng group, 2024), so its numbers are unsourced here; the "
    "closest documented result is a systematic softening of the energy surface of M3GNet, "
    "CHGNet and MACE-MP-0 (Deng et al., 2024-2025; notebook 02)."
)

# --------------------------------------------------------------------------- the registry

_REGISTRY: tuple[Claim, ...] = (
    Claim(
        id="finite-alphabet",
        section=S_TRANSFER,
        claim=(
            "About a hundred elements make up all of chemistry, so one learned vector per "
            "element, each costing a few thousand weights, lets a single model span the "
            "periodic table without a separate model per chemistry."
        ),
        chapter="a few thousand learnable parameters per embedding, one embedding per element",
        how=(
            "Count the weights that belong to a single element and divide by the number of "
            "elements the model knows. In MACE these are the element embedding, the "
            "element-dependent self-connection of each interaction and the per-element weights "
            "of the product basis; radial functions and readouts are shared."
        ),
        notebooks=("01_paradigm",),
        quantities=(
            Quantity("parameters_per_element", "weights per element", "", ",.0f"),
            Quantity("embedding_size", "embedding vector length", "", ",.0f"),
            Quantity("elements", "elements known", "", ".0f"),
        ),
        rule=Band("parameters_per_element", (1e3, 1e4), (3e2, 3e4)),
        erratum=_VOCABULARY_ERRATUM,
    ),
    Claim(
        id="shared-local-physics",
        section=S_TRANSFER,
        claim=(
            "Bonding motifs recur from one crystal to the next, so the neighbourhoods a model "
            "meets in some compounds already describe most of those in another."
        ),
        chapter="no number: local environments are largely shared across crystals",
        how=(
            "Coverage score (notebook 03's diagnostic) of the 300 K Li2O frames by the "
            "pre-training corpus with every Li2O frame removed, divided by the score with the "
            "full corpus: how much of Li2O's local picture other crystals already show."
        ),
        notebooks=("03_coverage",),
        quantities=(
            Quantity("retained", "coverage kept without Li2O", "", ".1%"),
            Quantity("score_without", "score without Li2O", "", ".3f"),
            Quantity("score_with", "score with Li2O", "", ".3f"),
        ),
        rule=Band("retained", (0.95, math.inf), (0.8, math.inf)),
        note=(
            "Our reading of a qualitative claim, at the level of distances and angles: it does "
            "not test that energies transfer."
        ),
    ),
    Claim(
        id="task-specific-size",
        section=S_UNIVERSAL,
        claim=(
            "A potential fitted to one system in the 2010s style held of order a hundred "
            "thousand parameters."
        ),
        chapter="~1e5 parameters",
        how="Parameters of the model trained from scratch on Li2O alone (notebook 06).",
        notebooks=("06_full_finetune_and_scratch",),
        quantities=(Quantity("parameters", "parameters", "", ",.0f"),),
        rule=Band("parameters", (3e4, 3e5), (1e4, 1e6)),
        note=(
            "The course chooses this model's size itself, so the check shows the scale rather "
            "than testing the historical figure."
        ),
    ),
    Claim(
        id="universal-size",
        section=S_UNIVERSAL,
        claim="Universal MLIPs such as M3GNet, CHGNet and MACE-MP-0 carry millions of weights.",
        chapter="millions of parameters",
        how=(
            "Count the parameters of the model in use; only a model covering most of the "
            "periodic table (at least 80 elements) is a universal MLIP in the chapter's sense."
        ),
        notebooks=("01_paradigm",),
        quantities=(
            Quantity("parameters", "parameters", "", ",.0f"),
            Quantity("elements", "elements known", "", ".0f"),
        ),
        rule=Band("parameters", (1e6, 1e8), (3e5, 3e8)),
        requires=(
            Requires("elements", 80, "the claim is about universal MLIPs; this model is not one"),
        ),
        erratum=_M3GNET_ERRATUM,
    ),
    Claim(
        id="zero-shot-force-mae",
        section=S_REGIMES,
        claim=(
            "Applied with no retraining to test systems outside its training data, MACE-MP-0's "
            "typical force error is around 100 meV/Å."
        ),
        chapter="~100 meV/Å (median over out-of-distribution test sets, MACE-MP-0)",
        how=(
            "Zero-shot force MAE of the model in use on ~20 DFT-labelled Li2O MD snapshots: one "
            "system, where the chapter quotes a median over test sets."
        ),
        notebooks=("02_zero_shot",),
        quantities=(
            Quantity("force_mae", "force MAE", "meV/Å", ".1f"),
            Quantity("n_frames", "snapshots", "", ".0f"),
        ),
        rule=about("force_mae", 100.0),
        note=(
            "We could not trace this median to the MACE-MP-0 paper's abstract or to the official "
            "model README (Batatia et al., arXiv:2401.00096); treat the figure as unsourced."
        ),
    ),
    Claim(
        id="zero-shot-equilibrium",
        section=S_REGIMES,
        claim=(
            "Without any fine-tuning a universal MLIP is already a reasonable tool for "
            "equilibrium structures and rough relaxations."
        ),
        chapter="no number: zero-shot suffices for rough relaxations (the data-size table's first row)",
        how=(
            "Lattice constant of Li2O from the model's zero-shot equation of state against our "
            "PBE relaxation of the same crystal (li-o-phases). Our reading of 'rough': within "
            "2 % of the functional the model imitates."
        ),
        notebooks=("01_paradigm",),
        quantities=(
            Quantity("error_percent", "|a0 error|", "%", ".2f"),
            Quantity("a_model", "a0 model", "Å", ".3f"),
            Quantity("a_pbe", "a0 PBE", "Å", ".3f"),
        ),
        rule=Band("error_percent", (0.0, 2.0), (0.0, 4.0)),
    ),
    Claim(
        id="few-shot-reduction",
        section=S_REGIMES,
        claim=(
            "Retraining only the final readout of a pre-trained model on a few hundred DFT "
            "structures lowers its force error three- to tenfold."
        ),
        chapter="force error divided by 3-10, with 1e2-1e3 structures",
        how=(
            "Zero-shot force MAE divided by the few-shot force MAE on the same held-out Li2O "
            "test frames (notebook 04: closed-form readout fit; notebook 05: the learning "
            "curve at its largest N)."
        ),
        notebooks=("04_few_shot", "05_learning_curves"),
        quantities=(
            Quantity("reduction", "force error reduction", "x", ".1f"),
            Quantity("n_train", "training structures", "", ".0f"),
        ),
        rule=between("reduction", 3.0, 10.0),
    ),
    Claim(
        id="checkpoint-converges-faster",
        section=S_REGIMES,
        claim=(
            "When a full retraining is needed, starting from the pre-trained weights gets to a "
            "given accuracy sooner than starting from random ones."
        ),
        chapter="no number: a pre-trained starting point speeds up convergence",
        how=(
            "Test force MAE after the same training budget on the same Li2O structures: from "
            "scratch divided by full fine-tuning (notebook 06). Our reading: at least 1.5x "
            "better from the checkpoint."
        ),
        notebooks=("06_full_finetune_and_scratch",),
        quantities=(
            Quantity("ratio", "scratch / fine-tuned force MAE", "x", ".2f"),
            Quantity("epochs", "epochs", "", ".0f"),
        ),
        rule=Band("ratio", (1.5, math.inf), (1.1, math.inf)),
    ),
    Claim(
        id="learning-curve-exponent",
        section=S_DATA,
        claim=(
            "Force error decays as a power of the number of fine-tuning structures, with an "
            "exponent between 0.3 and 0.5."
        ),
        chapter="α = 0.3-0.5 in MAE(F) = A·N^-α + B",
        how=(
            "Weighted fit of A·N^-α + B to the few-shot learning curve (notebook 05), judged "
            "only when the curve pins α (scaling_law.alpha_verdict: sizes spanning a decade, "
            "bootstrap spread small)."
        ),
        notebooks=("05_learning_curves",),
        quantities=(
            Quantity("alpha", "α", "", ".2f"),
            Quantity("alpha_pinned", "α pinned by the curve", fmt="yes/no"),
            Quantity("alpha_std", "bootstrap σ(α)", "", ".2f"),
        ),
        rule=between("alpha", 0.3, 0.5),
        requires=(Requires("alpha_pinned", 1, "the measured curve does not pin α"),),
    ),
    Claim(
        id="learning-curve-floor",
        section=S_DATA,
        claim=(
            "The learning curve flattens onto a floor that more data of the same kind cannot "
            "remove, set by what the pre-trained representation can express."
        ),
        chapter="a floor B > 0",
        how="Floor B of the same fit and its bootstrap spread (notebook 05).",
        notebooks=("05_learning_curves",),
        quantities=(
            Quantity("floor", "floor B", "meV/Å", ".1f"),
            Quantity("floor_std", "bootstrap σ(B)", "meV/Å", ".1f"),
        ),
        rule=Rule(
            ("floor", "floor_std"),
            _floor_resolved,
            "reproduced when B exceeds twice its bootstrap spread, partly when B > 0 but within "
            "it, contradicted when the fit puts B at its bound 0",
        ),
    ),
    Claim(
        id="equilibrium-geometry-50",
        section=S_DATA,
        claim=(
            "Of order fifty fine-tuning structures are enough to get one compound's "
            "equilibrium geometry right."
        ),
        chapter="~50 structures for an equilibrium geometry",
        how=(
            "Smallest N of the few-shot series whose fine-tuned model gives the Li2O lattice "
            "constant within 0.5 % of our PBE relaxation (li-o-phases); 0 when zero-shot "
            "already does."
        ),
        notebooks=("05_learning_curves",),
        quantities=(Quantity("n_needed", "structures needed", "", ".0f"),),
        rule=Band("n_needed", (0.0, 100.0), (0.0, 250.0)),
    ),
    Claim(
        id="forces-triple",
        section=S_FORCES,
        claim=(
            "Training on forces as well as energies is worth about three times as much data as "
            "training on energies alone."
        ),
        chapter="roughly 3x the effective dataset size",
        how=(
            "From the energy-only and energy+forces learning curves (notebook 05): the number "
            "of energy-only structures the fitted law needs to match the energy error that "
            "energy+forces training reaches with N, divided by N."
        ),
        notebooks=("05_learning_curves", "04_few_shot"),
        quantities=(
            Quantity("multiplier", "effective data multiplier", "x", ".1f"),
            Quantity("labels_per_structure", "labels per structure with forces", "", ".0f"),
        ),
        rule=between("multiplier", 2.0, 4.5),
        erratum=_LABEL_COUNT_ERRATUM,
    ),
    Claim(
        id="training-set-near-equilibrium",
        section=S_SOURCES,
        claim=(
            "Corpora built from relaxations, MPtrj first of all, consist mostly of geometries "
            "near a minimum and under-sample the distorted ones that MD visits."
        ),
        chapter="no number: MPtrj over-represents near-equilibrium geometries",
        how=(
            "Share of the model's training frames whose mean DFT |F| is below the median of "
            "the 300 K Li2O MD frames; judged only against the model's own training set. Our "
            "reading: an unbiased corpus would give about a half, over-representation 75 % or more."
        ),
        notebooks=("03_coverage",),
        quantities=(
            Quantity("share_calmer", "training frames calmer than 300 K MD", "", ".0%"),
            Quantity("corpus_median_force", "median mean |F| training", "eV/Å", ".2f"),
            Quantity("md_median_force", "300 K MD", "eV/Å", ".2f"),
            _IS_TRAINING_SET,
        ),
        rule=Band("share_calmer", (0.75, 1.0), (0.6, 1.0)),
        requires=(_TRAINING_SET,),
    ),
    Claim(
        id="in-distribution-energy",
        section=S_DEGRADE,
        claim=(
            "On test structures resembling their training data, foundation MLIPs reach energy "
            "errors near 30 meV/atom."
        ),
        chapter="~30 meV/atom in distribution (Matbench Discovery)",
        how=(
            "Zero-shot energy MAE on rattled MgO (mgo-rattled), a chemistry well inside the "
            "training data of every model here (notebook 08)."
        ),
        notebooks=("08_decision_flowchart",),
        quantities=(Quantity("energy_mae", "energy MAE", "meV/atom", ".1f"),),
        rule=about("energy_mae", 30.0),
        note=_MATBENCH_NUMBERS_NOTE,
    ),
    Claim(
        id="out-of-distribution-factor",
        section=S_DEGRADE,
        claim=(
            "The same models do two to four times worse on chemical systems that were left out "
            "of their training data."
        ),
        chapter="2-4x the in-distribution error",
        how=(
            "Zero-shot energy MAE on the Li2O MD frames divided by that on rattled MgO "
            "(notebook 08), both treated alike for reference energies."
        ),
        notebooks=("08_decision_flowchart",),
        quantities=(
            Quantity("ratio", "Li2O / MgO energy MAE", "x", ".2f"),
            Quantity("ood_energy_mae", "Li2O", "meV/atom", ".1f"),
            Quantity("id_energy_mae", "MgO", "meV/atom", ".1f"),
        ),
        rule=between("ratio", 2.0, 4.0),
        note=_MATBENCH_NUMBERS_NOTE,
        erratum=_MATBENCH_ERRATUM,
    ),
    Claim(
        id="rare-element-log-n",
        section=S_DEGRADE,
        claim=(
            "Elements with few training configurations get larger errors, and the error falls "
            "roughly linearly in the logarithm of how many configurations contain the element."
        ),
        chapter="error roughly linear in log N_train of the element",
        how=(
            "Per-element force MAE on the held-out relaxations of the model's own training "
            "corpus against log10 of the number of training frames containing the element: "
            "Pearson correlation over at least 5 elements."
        ),
        notebooks=("03_coverage",),
        quantities=(
            Quantity("correlation", "Pearson r(force MAE, log10 frames)", "", ".2f"),
            Quantity("elements", "elements", "", ".0f"),
            _IS_TRAINING_SET,
        ),
        rule=Band("correlation", (-1.0, -0.7), (-1.0, -0.3)),
        requires=(
            _TRAINING_SET,
            Requires("elements", 5, "too few elements to see a trend"),
        ),
        note=(
            "We could not trace this trend to Matbench Discovery's paper or repository, the "
            "benchmark the chapter's paragraph cites; treat it as unsourced."
        ),
    ),
    Claim(
        id="li-near-equilibrium-energy",
        section=S_LI,
        claim=(
            "On near-equilibrium configurations of Li-rich cathodes, zero-shot MACE-MP-0 is "
            "within about 30 meV/atom of DFT, as good as a bespoke potential."
        ),
        chapter="~30 meV/atom",
        how=_LI_ENERGY_HOW.format(T="300 K"),
        notebooks=("02_zero_shot", "07_li_case_study"),
        quantities=_energy_quantities(),
        rule=about("energy_mae", 30.0),
        note=_CASE_STUDY_NOTE,
    ),
    Claim(
        id="li-hot-md-energy",
        section=S_LI,
        claim=(
            "On configurations from hot production MD of the same materials the energy error "
            "grows to 50-80 meV/atom."
        ),
        chapter="~50-80 meV/atom",
        how=_LI_ENERGY_HOW.format(T="1200 K"),
        notebooks=("02_zero_shot", "07_li_case_study"),
        quantities=_energy_quantities(),
        rule=between("energy_mae", 50.0, 80.0),
        note=_CASE_STUDY_NOTE,
    ),
    Claim(
        id="li-hot-vs-cold",
        section=S_LI,
        claim=(
            "So hot-MD frames are roughly twice as hard for the model as near-equilibrium ones."
        ),
        chapter="50-80 against ~30 meV/atom: a factor 1.7-2.7 (our arithmetic)",
        how=(
            "The 1200 K energy MAE divided by the 300 K one, each as in the two claims above; a "
            "ratio depends less on the system than either number."
        ),
        notebooks=("02_zero_shot", "07_li_case_study"),
        quantities=(Quantity("ratio", "hot / cold energy MAE", "x", ".2f"),),
        rule=Band("ratio", (5 / 3, 8 / 3), (1.2, 4.0)),
        note=_CASE_STUDY_NOTE,
    ),
    Claim(
        id="li-li-close-pairs",
        section=S_LI,
        claim=(
            "In hot MD, Li ions approach each other closer than about 2.6 Å, a separation the "
            "training data seldom contain."
        ),
        chapter="Li-Li < 2.6 Å, below what MPtrj typically shows",
        how=(
            "Share of the Li-containing frames of the model's training set that hold a Li-Li "
            "pair closer than 2.6 Å, against the same share among the hot Li2O MD frames; "
            "judged only against the model's own training set."
        ),
        notebooks=("03_coverage",),
        quantities=(
            Quantity("corpus_share", "training Li frames with Li-Li < 2.6 Å", "", ".0%"),
            Quantity("hot_share", "hot MD frames", "", ".0%"),
            Quantity("cold_share", "300 K MD frames", "", ".0%"),
            _IS_TRAINING_SET,
        ),
        rule=Rule(
            ("corpus_share", "hot_share"),
            _close_li_pairs,
            f"reproduced when at most {RARE_SHARE:.0%} of the training set's Li frames hold such "
            f"a pair and hot MD does more often; partly up to {UNCOMMON_SHARE:.0%}; "
            "contradicted otherwise",
        ),
        requires=(_TRAINING_SET,),
        note=_CASE_STUDY_NOTE,
    ),
    Claim(
        id="off-equilibrium-data-halves",
        section=S_LI,
        claim=(
            "Adding deliberately rattled and strained training data (the OMat24 recipe) cuts "
            "the energy error on the hard Li configurations roughly in half."
        ),
        chapter="energy MAE about halved (MACE-MP-0b, EquiformerV2-OMat)",
        how=(
            "Zero-shot energy MAE on the 1200 K frames of li2o-md's fixed test split of "
            "course-mini divided by that of "
            "course-mini-omat, its twin pre-trained by the same recipe and number of steps on "
            "the corpus plus the course's off-equilibrium set (mini-omat: rattled, strained and "
            "MD frames, Li2O left out), on the same frames (notebook 07). Both models share our "
            "DFT settings, so raw errors are compared. Shown beside the ratio, not judged: the "
            "force ratio, and the ratio of the errors of the mean 1200 K-minus-300 K energy "
            "difference, in which a constant energy offset cancels."
        ),
        notebooks=("07_li_case_study",),
        quantities=(
            Quantity("ratio", "without / with off-equilibrium data", "x", ".2f"),
            Quantity("without_mae", "without", "meV/atom", ".1f"),
            Quantity("with_mae", "with", "meV/atom", ".1f"),
            # shown beside the rule's ratio, not judged: what else the same frames say
            Quantity("force_ratio", "forces without / with", "x", ".2f"),
            Quantity(
                "difference_ratio", "hot-minus-cold energy difference without / with", "x", ".2f"
            ),
        ),
        rule=Band("ratio", (1.5, 3.0), (1.2, 4.5)),
        note=(
            "We found no published source for the halving on Li cathodes (it belongs to the case "
            "study we could not trace)."
        ),
        erratum=_OMAT_MODELS_ERRATUM,
    ),
    Claim(
        id="coverage-flags-hot",
        section=S_DIAGNOSTIC,
        claim=(
            "Overlaying distance and angle histograms of target and training set is a cheap "
            "test that already catches the clearest failure, here the hot MD frames."
        ),
        chapter="no number: the overlay flags the clearest failure modes",
        how=(
            "Coverage score and number of flagged ranges of the 300 K and 1200 K Li2O frames "
            "against the model's training set (notebook 03): the hot frames must score lower "
            "and raise more warnings."
        ),
        notebooks=("03_coverage", "07_li_case_study"),
        quantities=(
            Quantity("hot_score", "hot score", "", ".3f"),
            Quantity("cold_score", "cold score", "", ".3f"),
            Quantity("hot_flags", "hot flagged ranges", "", ".0f"),
            Quantity("cold_flags", "cold flagged ranges", "", ".0f"),
            _IS_TRAINING_SET,
        ),
        rule=Rule(
            ("hot_score", "cold_score", "hot_flags", "cold_flags"),
            _hot_frames_flagged,
            f"reproduced when the hot frames score lower by more than {COVERAGE_SCORE_MARGIN} "
            "and raise more flagged ranges, partly when only one holds",
        ),
        requires=(_TRAINING_SET,),
    ),
    Claim(
        id="committee-like-coverage",
        section=S_DIAGNOSTIC,
        claim=(
            "The spread of a committee of models works as a learned form of the coverage test: "
            "it is large where the errors are."
        ),
        chapter="no number: committee variance acts as a learned coverage diagnostic",
        how=(
            "Spearman rank correlation between committee force spread and force error over "
            "held-out frames (notebook 07). Our reading: 0.5 or more reproduces it."
        ),
        notebooks=("07_li_case_study",),
        quantities=(Quantity("spearman", "Spearman ρ(spread, error)", "", ".2f"),),
        rule=Band("spearman", (0.5, 1.0), (0.2, 1.0)),
        erratum=_UNCERTAINTY_ERRATUM,
    ),
    Claim(
        id="twenty-snapshots",
        section=S_FLOWCHART,
        claim=(
            "Some twenty DFT single points are enough to decide whether a foundation model can "
            "be trusted for a production run."
        ),
        chapter="~20 snapshots",
        how=(
            "Draw 20 of the evaluated snapshots with replacement, 2000 times (seeded): the share "
            "of draws whose force MAE lands on the same side of the zero-shot threshold as the "
            "estimate from all of them. MD snapshots are correlated, so this is optimistic."
        ),
        notebooks=("02_zero_shot", "08_decision_flowchart"),
        quantities=(
            Quantity("agreement", "20-snapshot draws with the same decision", "", ".1%"),
            Quantity("force_mae", "force MAE, all evaluated", "meV/Å", ".1f"),
            Quantity("threshold", "threshold", "meV/Å", ".0f"),
            Quantity("n_evaluated", "snapshots evaluated", "", ".0f"),
        ),
        rule=Band("agreement", (0.95, 1.0), (0.8, 1.0)),
    ),
    Claim(
        id="flowchart-thresholds-reachable",
        section=S_FLOWCHART,
        claim=(
            "A model that misses 100 meV/Å zero-shot gets under 20 meV/atom and 50 meV/Å after a "
            "few-shot fine-tune on 100-500 configurations."
        ),
        chapter="100 meV/Å before; 20 meV/atom and 50 meV/Å after few-shot tuning",
        how=(
            "Held-out energy and force MAE of the few-shot model in the flowchart run on Li2O "
            "(notebook 08), for a model whose zero-shot force MAE misses 100 meV/Å."
        ),
        notebooks=("08_decision_flowchart",),
        quantities=(
            Quantity("energy_mae", "tuned energy MAE", "meV/atom", ".1f"),
            Quantity("force_mae", "tuned force MAE", "meV/Å", ".1f"),
            Quantity("zero_shot_force_mae", "zero-shot force MAE", "meV/Å", ".0f"),
            Quantity("n_train", "training structures", "", ".0f"),
        ),
        rule=Rule(
            ("energy_mae", "force_mae"),
            _thresholds_met,
            f"reproduced when both tuned errors are below {TUNED_ENERGY_MEV_PER_ATOM:g} meV/atom "
            f"and {TUNED_FORCE_MEV_PER_A:g} meV/Å, partly when one is",
        ),
        requires=(
            Requires(
                "zero_shot_force_mae",
                ZERO_SHOT_FORCE_MEV_PER_A,
                "the model passes the zero-shot check, so the flowchart never fine-tunes it",
            ),
        ),
    ),
)

#: The registry: claim id -> Claim, in the chapter's order.
CLAIMS: dict[str, Claim] = {c.id: c for c in _REGISTRY}


def get_claim(claim_id: str) -> Claim:
    try:
        return CLAIMS[claim_id]
    except KeyError:
        raise ValueError(f"unknown claim {claim_id!r}; registered: {', '.join(CLAIMS)}") from None


# --------------------------------------------------------------------------- chapter checks

Reason = Mapping[str, "str | Callable[[dict], str]"] | Callable[[dict], str]


@dataclass(frozen=True)
class ChapterCheck:
    """A claim judged on the numbers of one notebook run; displays as a box in Jupyter."""

    claim_id: str
    section: str
    claim: str
    chapter: str
    how: str  # how the course measures it
    measured: dict  # quantity name -> value (None: not measured)
    measured_text: str
    verdict: str
    basis: str  # the rule applied, or why it could not be
    reason: str  # the notebook's explanation, chosen by the verdict
    model: str
    notebook: str = ""
    note: str = ""
    erratum: Erratum | None = None

    def as_dict(self) -> dict:
        from course_lib.cli import strict_json

        return strict_json(
            {
                "version": SCHEMA_VERSION,
                "id": self.claim_id,
                "section": self.section,
                "claim": self.claim,
                "chapter": self.chapter,
                "how": self.how,
                "measured": dict(self.measured),
                "measured_text": self.measured_text,
                "verdict": self.verdict,
                "basis": self.basis,
                "reason": self.reason,
                "model": self.model,
                "notebook": self.notebook,
                "note": self.note,
                "erratum": self.erratum.as_dict() if self.erratum else None,
            }
        )

    @classmethod
    def from_dict(cls, record: Mapping) -> ChapterCheck:
        erratum = record.get("erratum")
        return cls(
            claim_id=record["id"],
            section=record.get("section", ""),
            claim=record.get("claim", ""),
            chapter=record.get("chapter", ""),
            how=record.get("how", ""),
            measured=dict(record.get("measured") or {}),
            measured_text=record.get("measured_text", ""),
            verdict=record["verdict"],
            basis=record.get("basis", ""),
            reason=record.get("reason", ""),
            model=record.get("model", ""),
            notebook=record.get("notebook", ""),
            note=record.get("note", ""),
            erratum=Erratum(erratum["text"], erratum["source"]) if erratum else None,
        )

    def table(self) -> str:
        lines = [
            f"Chapter check [{self.verdict}] {self.claim_id}: {self.claim}",
            f"  chapter: {self.chapter}",
            f"  measured on {self.model}: {self.measured_text}",
            f"  rule: {self.basis}",
        ]
        if self.reason:
            lines.append(f"  why: {self.reason}")
        if self.note:
            lines.append(f"  note: {self.note}")
        if self.erratum:
            lines.append(f"  erratum: {self.erratum.text} ({self.erratum.source})")
        return "\n".join(lines)

    __str__ = table

    def _repr_html_(self) -> str:
        e = html.escape
        colour = VERDICT_COLOURS.get(self.verdict, "#888")
        rows = [
            ("Chapter", f"{e(self.claim)} <b>({e(self.chapter)})</b>"),
            (f"Measured on {e(self.model)}", e(self.measured_text)),
            ("Rule", e(self.basis)),
        ]
        if self.reason:
            rows.append(("Why", e(self.reason)))
        if self.note:
            rows.append(("Note", e(self.note)))
        if self.erratum:
            rows.append(
                ("Erratum", f"{e(self.erratum.text)} <i>Source: {e(self.erratum.source)}</i>")
            )
        body = "".join(
            f"<div><span style='color:#555'>{name}:</span> {value}</div>" for name, value in rows
        )
        return (
            f"<div class='course-chapter-check' style='border-left:4px solid {colour};"
            "padding:4px 10px;margin:6px 0;font-size:0.92em;line-height:1.45'>"
            f"<div><b>Chapter check</b> · <code>{e(self.claim_id)}</code> · {e(self.section)} "
            f"{_badge(self.verdict)}</div>{body}<details><summary style='color:#555'>how it is "
            f"measured</summary>{e(self.how)}</details></div>"
        )

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {
            "text/plain": self.table(),
            "text/html": self._repr_html_(),
            MIME_TYPE: self.as_dict(),
        }


VERDICT_COLOURS = {
    REPRODUCED: "#2e7d32",
    PARTLY: "#b26a00",
    CONTRADICTED: "#c62828",
    NOT_TESTABLE: "#6d6d6d",
    NOT_RUN: "#a0a0a0",
}


def _badge(verdict: str) -> str:
    return (
        f"<span style='background:{VERDICT_COLOURS.get(verdict, '#888')};color:white;"
        f"border-radius:3px;padding:0 6px;white-space:nowrap'>{html.escape(verdict)}</span>"
    )


def check(
    claim_id: str,
    measured: float | Mapping[str, float | bool | None] | None,
    *,
    model: str,
    reason: Reason | None = None,
    notebook: str = "",
) -> ChapterCheck:
    """Judge a registered claim on the numbers a notebook measured.

    ``measured`` maps the claim's quantity names to numbers (a bare number
    fills its first quantity; None or NaN: not measured). The verdict comes
    from the claim's rule only. ``reason`` explains it for the model in use:
    a mapping verdict -> text (or -> callable of the measured values), or a
    callable of the measured values; a verdict the mapping leaves out gets
    no reason beyond the rule. ``notebook`` names the notebook (``course
    report`` fills it in from the file the check was found in).
    """
    claim = get_claim(claim_id)
    values = _measured_values(claim, measured)
    verdict, basis = claim.judge(values)
    if notebook and notebook not in claim.notebooks:
        warnings.warn(
            f"claim {claim_id} is registered for {', '.join(claim.notebooks)}, not {notebook}",
            stacklevel=2,
        )
    shown = [q.format(values[q.name]) for q in claim.quantities if values.get(q.name) is not None]
    return ChapterCheck(
        claim_id=claim.id,
        section=claim.section,
        claim=claim.claim,
        chapter=claim.chapter,
        how=claim.how,
        measured=values,
        measured_text="; ".join(shown) or "not measured",
        verdict=verdict,
        basis=basis,
        reason=_reason_text(reason, verdict, values),
        model=str(model),
        notebook=notebook,
        note=claim.note,
        erratum=claim.erratum,
    )


def _measured_values(claim: Claim, measured) -> dict[str, float | None]:
    if measured is None:
        given = {}
    elif isinstance(measured, Mapping):
        given = dict(measured)
    else:
        given = {claim.quantities[0].name: measured}
    names = [q.name for q in claim.quantities]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(
            f"claim {claim.id} measures {', '.join(names)}; unknown quantities {unknown}"
        )
    return {name: _number(given.get(name), name) for name in names}


def _number(value, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # bools and numpy scalars too
    except (TypeError, ValueError):
        raise ValueError(f"measured {name} must be a number, got {value!r}") from None
    return number if math.isfinite(number) else None


def _reason_text(reason, verdict: str, values: dict) -> str:
    if reason is None:
        return ""
    if isinstance(reason, str):
        raise TypeError(
            "reason must be a mapping verdict -> text or a callable of the measured numbers, "
            "so that it cannot contradict the verdict; a plain string can"
        )
    if isinstance(reason, Mapping):
        unknown = set(reason) - set(VERDICTS)
        if unknown:
            raise ValueError(f"reason keys must be verdicts {VERDICTS}, got {sorted(unknown)}")
        reason = reason.get(verdict, "")
    return str(reason(values) if callable(reason) else reason)


# --------------------------------------------------------------------------- measurements shared by notebooks


def same_dft_setup(model, dataset: str) -> bool:
    """Whether ``model`` was pre-trained on bundled corpora labelled with ``dataset``'s DFT settings.

    Compares the settings fingerprints in the datasets' provenance; a corpus
    may be several datasets joined by commas (``course pretrain --corpus
    mini-mptrj,mini-omat``). False for a model whose corpus is not bundled
    (MACE-MP-0, CHGNet: VASP PBE(+U)).
    """
    from course_lib import data as ds
    from course_lib.models import pretraining_corpus

    corpus = pretraining_corpus(model)
    if corpus is None:
        return False
    names = [*ds.dataset_names(corpus), dataset]
    fingerprints = {
        ds.read_provenance(ds.dataset_path(name)).get("settings_fingerprint") for name in names
    }
    return len(fingerprints) == 1 and None not in fingerprints


def judged_energy(raw: float, aligned: float, *, same_setup: bool) -> dict[str, float | bool]:
    """The numbers of an energy claim: which zero-shot energy MAE (meV/atom) is judged, and both.

    A model trained on our DFT settings is judged on its raw error (its
    per-element offsets are its own composition bias); one trained on another
    setup on the error after per-element alignment, which removes the setup
    difference and, with it, any constant bias of the model.
    """
    return {
        "energy_mae": raw if same_setup else aligned,
        "raw_energy_mae": raw,
        "aligned_energy_mae": aligned,
        "same_dft_setup": same_setup,
    }


def coverage_numbers(
    cold: CoverageReport, hot: CoverageReport, *, model: str
) -> dict[str, float | bool]:
    """The numbers of the ``coverage-flags-hot`` claim, from two coverage reports.

    ``cold`` and ``hot``: the coverage of the room-temperature and the hot
    frames by one reference. The scores are shares of distances and angles
    in covered bins (0-1), the flags counts of flagged ranges. The reference
    speaks for ``model`` only when it is the bundled corpus ``model`` was
    pre-trained on (``models.pretraining_corpus``), compared by name.
    """
    from course_lib.models import pretraining_corpus

    if cold.reference != hot.reference:
        raise ValueError(
            f"cold and hot frames were compared with different references ({cold.reference!r} "
            f"vs {hot.reference!r}); compare both with the same reference histograms"
        )
    return {
        "hot_score": hot.score,
        "cold_score": cold.score,
        "hot_flags": len(hot.flagged),
        "cold_flags": len(cold.flagged),
        "reference_is_training_set": pretraining_corpus(model) == hot.reference,
    }


@dataclass(frozen=True)
class SnapshotDraws:
    """How often ``n_draw`` snapshots, drawn with replacement, reach the all-snapshot decision.

    The decision is force MAE < ``threshold_meV_per_A``; ``low``/``high``
    bound the middle 95 % of the drawn force MAEs (meV/Å).
    """

    agreement: float
    force_mae_meV_per_A: float
    threshold_meV_per_A: float
    n_evaluated: int
    n_draw: int
    n_draws: int
    low_meV_per_A: float
    high_meV_per_A: float

    def measured(self) -> dict[str, float]:
        """The numbers of the ``twenty-snapshots`` claim."""
        return {
            "agreement": self.agreement,
            "force_mae": self.force_mae_meV_per_A,
            "threshold": self.threshold_meV_per_A,
            "n_evaluated": self.n_evaluated,
        }

    def table(self) -> str:
        return (
            f"{self.n_draws} draws of {self.n_draw} from {self.n_evaluated} snapshots: "
            f"force MAE {self.low_meV_per_A:.0f}-{self.high_meV_per_A:.0f} meV/Å (95 %); "
            f"{self.agreement:.1%} reach the same decision as all of them "
            f"({self.force_mae_meV_per_A:.0f} meV/Å vs {self.threshold_meV_per_A:.0f} meV/Å)"
        )

    __str__ = table


def snapshot_agreement(
    frames,
    predicted_forces,
    threshold_meV_per_A: float,
    *,
    n_draw: int = 20,
    n_draws: int = 2000,
    seed: int = 0,
) -> SnapshotDraws:
    """Draw ``n_draw`` of the evaluated snapshots with replacement, ``n_draws`` times (seeded).

    Each draw's force MAE (meV/Å, over all its force components) is compared
    with the threshold; the agreement is the share of draws that decide as the
    MAE over all snapshots does. Consecutive MD snapshots are correlated, so
    real sets of ``n_draw`` vary more than these draws.
    """
    from course_lib import data as ds

    dft_forces = ds.forces(frames)
    abs_error = np.array([np.abs(p - f).sum() for p, f in zip(predicted_forces, dft_forces)])
    n_components = np.array([f.size for f in dft_forces])
    draws = np.random.default_rng(seed).integers(len(dft_forces), size=(n_draws, n_draw))
    draw_mae = 1e3 * abs_error[draws].sum(axis=1) / n_components[draws].sum(axis=1)
    force_mae = 1e3 * abs_error.sum() / n_components.sum()
    passed = force_mae < threshold_meV_per_A
    return SnapshotDraws(
        agreement=float(np.mean((draw_mae < threshold_meV_per_A) == passed)),
        force_mae_meV_per_A=float(force_mae),
        threshold_meV_per_A=float(threshold_meV_per_A),
        n_evaluated=len(dft_forces),
        n_draw=n_draw,
        n_draws=n_draws,
        low_meV_per_A=float(np.percentile(draw_mae, 2.5)),
        high_meV_per_A=float(np.percentile(draw_mae, 97.5)),
    )


# --------------------------------------------------------------------------- reading checks back


def checks_in_notebook(path: str | Path) -> list[ChapterCheck]:
    """The chapter checks displayed in an executed notebook, in cell order.

    ``notebook`` of each check is the notebook's file stem.
    """
    import nbformat

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            record = output.get("data", {}).get(MIME_TYPE)
            if output.get("output_type") in ("display_data", "execute_result") and record:
                if isinstance(record, str):  # some writers store JSON mime data as text
                    record = json.loads(record)
                check_ = ChapterCheck.from_dict(record)
                found.append(replace(check_, notebook=path.stem))
    return found


@dataclass(frozen=True)
class NotebookStatus:
    """One executed notebook of a run: whether it finished, and how many checks it showed."""

    name: str
    ok: bool | None  # None: the run's summary.json does not say
    checks: int
    error: str = ""


@dataclass(frozen=True)
class ClaimsReport:
    """Every chapter check of one ``course run``, with the registered claims nobody checked."""

    run: str
    model: str
    mode: str
    checks: tuple[ChapterCheck, ...]
    not_run: tuple[Claim, ...]
    notebooks: tuple[NotebookStatus, ...]
    created: str = ""

    def summary(self) -> dict[str, int]:
        counts = {verdict: 0 for verdict in (*VERDICTS, NOT_RUN)}
        for check_ in self.checks:
            counts[check_.verdict] = counts.get(check_.verdict, 0) + 1
        counts[NOT_RUN] = len(self.not_run)
        return counts

    def rows(self) -> list[dict]:
        """One row per check, then one per claim no notebook checked ("not run")."""
        rows = []
        for c in self.checks:
            record = c.as_dict()
            record.pop("version")
            rows.append(record)
        for claim in self.not_run:
            rows.append(
                {
                    "id": claim.id,
                    "section": claim.section,
                    "claim": claim.claim,
                    "chapter": claim.chapter,
                    "how": claim.how,
                    "measured": None,
                    "measured_text": "",
                    "verdict": NOT_RUN,
                    "basis": claim.rule_text,
                    "reason": f"no executed notebook checked it (registered for "
                    f"{', '.join(claim.notebooks)})",
                    "model": self.model,
                    "notebook": ", ".join(claim.notebooks),
                    "note": claim.note,
                    "erratum": claim.erratum.as_dict() if claim.erratum else None,
                }
            )
        return rows

    def as_dict(self) -> dict:
        from course_lib.cli import strict_json

        return strict_json(
            {
                "chapter": CHAPTER,
                "model": self.model,
                "mode": self.mode,
                "run": self.run,
                "created": self.created,
                "notebooks": [n.__dict__ for n in self.notebooks],
                "summary": self.summary(),
                "claims": self.rows(),
            }
        )

    def _header(self) -> list[str]:
        counts = ", ".join(f"{n} {verdict}" for verdict, n in self.summary().items() if n)
        ran = ", ".join(
            f"{n.name} ({'ok' if n.ok else 'FAILED' if n.ok is False else '?'}, {n.checks} checks)"
            for n in self.notebooks
        )
        return [
            f"Chapter checks: {CHAPTER}",
            f"model: {self.model}  |  mode: {self.mode}  |  run: {self.run}",
            f"notebooks: {ran}",
            f"verdicts: {counts}",
        ]

    def table(self) -> str:
        rows = self.rows()
        width = max([len(r["id"]) for r in rows] + [5])
        nb_width = max([len(r["notebook"]) for r in rows if r["verdict"] != NOT_RUN] + [8])
        lines = [*self._header(), ""]
        lines.append(f"{'claim':<{width}}  {'notebook':<{nb_width}}  {'verdict':<17}  measured")
        for r in rows:
            notebook = "" if r["verdict"] == NOT_RUN else r["notebook"]
            lines.append(
                f"{r['id']:<{width}}  {notebook:<{nb_width}}  {r['verdict']:<17}  "
                f"{r['measured_text'] or '-'}"
            )
            if r["reason"]:
                lines.append(f"{'':<{width}}  {r['reason']}")
        return "\n".join(lines)

    __str__ = table

    def markdown(self) -> str:
        header = self._header()
        lines = [f"# {header[0]}", "", *(f"{line}  " for line in header[1:]), ""]
        lines += [
            "| claim | section | chapter | measured | verdict | why | notebook |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.rows():
            cells = [
                f"**{r['id']}**: {r['claim']}",
                r["section"],
                r["chapter"],
                r["measured_text"] or "-",
                f"**{r['verdict']}**",
                " ".join(filter(None, [r["reason"], f"({r['basis']})"])),
                r["notebook"],
            ]
            lines.append("| " + " | ".join(_md_cell(cell) for cell in cells) + " |")
        lines += _errata_lines(self.rows(), markdown=True)
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        e = html.escape
        header = self._header()
        body = []
        for r in self.rows():
            body.append(
                "<tr>"
                f"<td><b>{e(r['id'])}</b><br>{e(r['claim'])}"
                + (f"<br><small>Note: {e(r['note'])}</small>" if r["note"] else "")
                + f"</td><td>{e(r['section'])}</td><td>{e(r['chapter'])}</td>"
                f"<td>{e(r['measured_text'] or '-')}<br><small>{e(r['how'])}</small></td>"
                f"<td>{_badge(r['verdict'])}</td>"
                f"<td>{e(r['reason'])}<br><small>{e(r['basis'])}</small></td>"
                f"<td>{e(r['notebook'])}</td></tr>"
            )
        errata = _errata_lines(self.rows(), markdown=False)
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{e(header[0])}</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:90em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 6px;"
            "vertical-align:top;font-size:0.9em}th{background:#f3f3f3;text-align:left}"
            "</style></head><body>"
            f"<h1>{e(header[0])}</h1>"
            + "".join(f"<p>{e(line)}</p>" for line in header[1:])
            + "<table><tr><th>claim</th><th>section</th><th>chapter</th><th>measured</th>"
            "<th>verdict</th><th>why (rule)</th><th>notebook</th></tr>"
            + "".join(body)
            + "</table>"
            + "".join(f"<p>{e(line)}</p>" for line in errata)
            + "</body></html>\n"
        )


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _errata_lines(rows: Sequence[dict], *, markdown: bool) -> list[str]:
    seen, lines = set(), []
    for r in rows:
        if r["erratum"] and r["id"] not in seen:
            seen.add(r["id"])
            lines.append(f"{r['id']}: {r['erratum']['text']} (source: {r['erratum']['source']})")
    if not lines:
        return []
    if markdown:
        return ["", "## Errata", "", *(f"* {line}" for line in lines)]
    return ["Errata:", *lines]


def collect_report(run_dir: str | Path) -> ClaimsReport:
    """The chapter checks of every executed notebook in ``run_dir`` (a ``course run`` folder).

    Raises ``FileNotFoundError`` when the folder is missing or holds no
    executed notebook. Checks are ordered as the registry orders claims;
    claims no notebook checked are listed as not run.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder {run_dir}: run `course run` first")
    paths = sorted(run_dir.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no executed notebooks in {run_dir}: run `course run` first")
    runs = _run_summary(run_dir)
    checks, statuses = [], []
    for path in paths:
        found = checks_in_notebook(path)
        checks += found
        run = runs.get(path.stem, {})
        statuses.append(NotebookStatus(path.stem, run.get("ok"), len(found), run.get("error", "")))
    order = {claim_id: i for i, claim_id in enumerate(CLAIMS)}
    checks.sort(key=lambda c: order.get(c.claim_id, len(order)))  # stable: notebook order kept
    checked = {c.claim_id for c in checks}
    models = list(dict.fromkeys(c.model for c in checks))
    modes = list(dict.fromkeys(r.get("mode") for r in runs.values() if r.get("mode")))
    return ClaimsReport(
        run=str(run_dir),
        model=", ".join(models) or "unknown (no chapter checks)",
        mode=", ".join(modes) or "unknown",
        checks=tuple(checks),
        not_run=tuple(c for c in CLAIMS.values() if c.id not in checked),
        notebooks=tuple(statuses),
        created=time.strftime("%Y-%m-%d %H:%M"),
    )


def _run_summary(run_dir: Path) -> dict[str, dict]:
    """``course run``'s summary.json by notebook name (empty when absent or unreadable)."""
    try:
        records = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return {r["notebook"]: r for r in records if isinstance(r, dict) and "notebook" in r}


def _interval(bounds: tuple[float, float], percent: bool = False) -> str:
    low, high = (_num(x, percent) for x in bounds)
    if math.isinf(bounds[1]):
        return f">= {low}"
    if math.isinf(bounds[0]) or bounds[0] == 0:
        return f"<= {high}"
    return f"{low} to {high}" if bounds[0] < 0 else f"{low}-{high}"


def _num(x: float, percent: bool = False) -> str:
    if percent:
        return f"{x:.0%}"
    if math.isfinite(x) and x == int(x) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"
