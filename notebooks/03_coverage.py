# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · How far from the training data? The coverage diagnostic
#
# *Accompanies "In-distribution and out-of-distribution: the central diagnostic", "A concrete
# diagnostic" and "The data sources".*
#
# **Learning objectives.** After this notebook you can
# 1. explain why a universal MLIP interpolates inside its training distribution and
#    extrapolates, without warning, outside it;
# 2. build pair-distance and bond-angle histograms of a target and of a training set and
#    overlay them;
# 3. read an extrapolation warning: a range where the target has density and the training
#    set has almost none;
# 4. name the public pre-training corpora and run the workflow "query, filter to your
#    chemistry, fine-tune set" on the course's own corpus.
#
# The reference here is **mini-MPtrj**, the pre-training corpus of the course's own model,
# `course-mini`, whole: the relaxations the model trained on and those held out from its
# training for validation (the cell below counts both). For MACE-MP-0 or CHGNet the reference
# is MPtrj; `course coverage-reference --source mptrj` samples it when a network is available.
# Offline, the course says so and uses mini-MPtrj instead: it never pretends to hold MPtrj.
#
# Sections that teach a claim of the chapter end with a **chapter check**: the claim, the
# number measured here on the model in use, and a verdict computed from it by a rule fixed in
# `course_lib/claims.py` before any run (`course report` collects them). Claims about a model's
# training data are testable only when the reference *is* that training data.

# %%
import numpy as np
from ase.neighborlist import neighbor_list

from course_lib import claims, coverage, datasources, exercises, models, zero_shot
from course_lib import data as ds
from course_lib.coverage_reference import reference_histograms
from course_lib.notebook import notebook_settings
from course_lib.plots import coverage as coverage_plots
from course_lib.widgets.coverage import coverage_explorer

settings = notebook_settings()
print(settings)

# %% [markdown]
# ## Histograms of the training set
# Distances up to 6 Å (the typical cutoff of a foundation MLIP) in 0.05 Å bins; angles between
# bonds shorter than 3 Å in 2° bins. Counts are kept raw, so a large reference can be built in
# chunks and merged.

# %%
histogram_settings = coverage.HistogramSettings(cutoff=6.0, bin_width=0.05, bond_cutoff=3.0)
reference = reference_histograms(
    settings.training_corpus,  # the model's own corpus when bundled, else a stand-in
    n_frames=2_000 if settings.fast else None,  # fast mode: a seeded subsample
    seed=settings.seed,
    settings=histogram_settings,
    progress=False,
)
print(reference)
corpus = settings.training_corpus
corpus_frames = ds.read_dataset(corpus)
is_training_set = models.pretraining_corpus(settings.model) == corpus
unit = "relaxations" if all("source_id" in a.info for a in corpus_frames) else "frames"
splits = {  # the corpus's own split: "test" was held out of pre-training for validation
    split: {
        a.info.get("source_id", i)
        for i, a in enumerate(corpus_frames)
        if a.info.get("split", "train") == split
    }
    for split in ("train", "test")
}
n_held_out = len(splits["test"])
print(
    f"{corpus} is {'the' if is_training_set else 'NOT the'} training corpus of {settings.model}: "
    f"{len(splits['train'])} {unit} in its training split, {n_held_out} "
    f"({n_held_out / (n_held_out + len(splits['train'])):.0%}) held out for validation "
    "(split = 'test'); the histograms above include both, as do the shares of close Li-Li "
    "pairs and of calm frames below"
)

# %% [markdown]
# ## The target: Li₂O at room temperature and at high temperature
# We histogram the two temperatures separately, as the chapter's Li case study suggests: hot
# MD pushes Li ions closer together than relaxations ever do.

# %%
frames = ds.read_dataset(settings.dataset("target"))
by_temperature = {}
for atoms in frames:
    by_temperature.setdefault(atoms.info["temperature_K"], []).append(atoms)
targets = {
    f"{temperature:.0f} K": coverage.compute_histograms(
        group, settings=histogram_settings, source=f"li2o-md {temperature:.0f} K"
    )
    for temperature, group in sorted(by_temperature.items())
}
reports = {name: coverage.compare_coverage(hist, reference) for name, hist in targets.items()}
for report in reports.values():
    print(report, end="\n\n")

# %%
coverage_plots.coverage_scores(reports)

# %% [markdown]
# **Chapter check.** The chapter's diagnostic should single out the hot frames: a lower score
# and more flagged ranges than at room temperature.

# %%
cold_report, hot_report = reports[list(reports)[0]], reports[list(reports)[-1]]
not_training_set = (
    f"{corpus} is not {settings.model}'s training set; with a network, `course "
    "coverage-reference --source mptrj` samples MPtrj, the training set of MACE-MP-0 and CHGNet."
)
claims.check(
    "coverage-flags-hot",
    claims.coverage_numbers(cold_report, hot_report, model=settings.model),
    model=settings.model,
    reason={
        "reproduced": "Before any DFT is run, the hot frames stand out as further from the "
        "training data, as the chapter expects.",
        "partly": lambda m: (
            f"Only one signal separates the hot frames (score {m['hot_score']:.3f} vs "
            f"{m['cold_score']:.3f}, {m['hot_flags']:.0f} vs {m['cold_flags']:.0f} ranges)."
        ),
        "contradicted": "The diagnostic does not tell the hot frames from the cold ones here.",
        "not testable here": not_training_set,
    },
)

# %% [markdown]
# ## Overlay: Li-Li distances
# Shaded ranges are extrapolation warnings. The log scale shows the thin tails of the reference
# that decide what counts as covered. The dashed lines mark the chapter's figure for MPtrj and
# the shortest Li-Li the reference itself holds.

# %%
hottest = list(targets)[-1]
markers = {"chapter's figure: typical shortest Li-Li in MPtrj": 2.6}  # Å
shortest_li_li = reference.shortest_distance("Li-Li")  # Å, lower edge of its first bin
if np.isfinite(shortest_li_li):
    markers[f"shortest Li-Li in {reference.source}"] = shortest_li_li
coverage_plots.coverage_overlay(
    targets[hottest], reference, "Li-Li", report=reports[hottest], log_y=True, markers=markers
)

# %% [markdown]
# **Chapter check: short Li-Li pairs.** The chapter says hot MD pushes Li ions closer than
# about 2.6 Å, which the training data seldom show. Count the frames that hold such a pair: in
# the training corpus (its Li-containing frames) and in our MD at each temperature.


# %%
def has_close_pair(atoms, a="Li", b="Li", r=2.6):
    """Whether any a-b pair of the periodic crystal is closer than r (Å)."""
    i, j = neighbor_list("ij", atoms, r)
    symbols = np.array(atoms.get_chemical_symbols())
    return bool(np.any((symbols[i] == a) & (symbols[j] == b)))


li_frames = [a for a in corpus_frames if "Li" in a.get_chemical_symbols()]
cold_frames, hot_frames = by_temperature[min(by_temperature)], by_temperature[max(by_temperature)]
close_share = {
    name: np.mean([has_close_pair(a) for a in group])
    for name, group in {"corpus": li_frames, "cold": cold_frames, "hot": hot_frames}.items()
}
nearest_li_li = cold_frames[0].cell.cellpar()[0] / 2  # Å: a/2 in the cubic antifluorite cell
print(
    f"Li-Li < 2.6 Å in {close_share['corpus']:.0%} of {corpus}'s {len(li_frames)} Li frames, "
    f"{close_share['cold']:.0%} of the {min(by_temperature):.0f} K and {close_share['hot']:.0%} "
    f"of the {max(by_temperature):.0f} K frames; in ideal Li₂O the nearest Li-Li is a/2 = "
    f"{nearest_li_li:.2f} Å"
)

# %%
claims.check(
    "li-li-close-pairs",
    {
        "corpus_share": close_share["corpus"],
        "hot_share": close_share["hot"],
        "cold_share": close_share["cold"],
        "reference_is_training_set": is_training_set,
    },
    model=settings.model,
    reason={
        "reproduced": "Li-Li pairs under 2.6 Å are rare in the training data and common in hot MD.",
        "partly": lambda m: (
            f"{m['corpus_share']:.0%} of the training set's Li frames already hold such a pair: "
            "uncommon rather than rare."
        ),
        "contradicted": lambda m: (
            f"{m['corpus_share']:.0%} of the training set's Li frames hold a Li-Li pair under "
            f"2.6 Å, and ideal Li₂O has one at a/2 = {nearest_li_li:.2f} Å, so 2.6 Å is no "
            "boundary of the training data for this chemistry"
            + ("." if m["hot_share"] > m["corpus_share"] else ", nor rarer there than in hot MD.")
        ),
        "not testable here": not_training_set,
    },
)

# %% [markdown]
# ## Explore it yourself
# Pick any pair or triplet channel, change the bin widths and the two thresholds, and watch the
# flagged ranges and the warning table change. The thresholds are stated in every report: a
# bin is *uncovered* when the reference puts less than `max_reference_fraction` of that
# channel's counts in it, and a range is *flagged* when it holds at least `min_target_share`
# of the target's distances (or angles).

# %%
coverage_explorer(targets[hottest], reference, channel="Li-Li")

# %% [markdown]
# ## Shared local physics: does the corpus know Li₂O without Li₂O?
# The chapter's second reason why one model can serve all of chemistry: local motifs recur
# across crystals. Remove every Li₂O frame from the corpus and ask how much of the 300 K
# frames' local picture the other crystals still cover.

# %%
other_crystals = [a for a in corpus_frames if a.get_chemical_formula(empirical=True) != "Li2O"]
cold_name = list(targets)[0]
score_with = coverage.compare_coverage(
    targets[cold_name], coverage.compute_histograms(corpus_frames, settings=histogram_settings)
).score
score_without = coverage.compare_coverage(
    targets[cold_name], coverage.compute_histograms(other_crystals, settings=histogram_settings)
).score
print(
    f"{len(corpus_frames) - len(other_crystals)} Li2O frames removed: coverage of {cold_name} "
    f"{score_with:.3f} with them, {score_without:.3f} without"
)

# %%
claims.check(
    "shared-local-physics",
    {
        "retained": score_without / score_with,
        "score_without": score_without,
        "score_with": score_with,
    },
    model=settings.model,
    reason={
        "reproduced": "Other crystals of the corpus already show almost every distance and "
        "angle of Li₂O.",
        "partly": "Other crystals cover much of Li₂O's local picture, but not all of it.",
        "contradicted": "Without Li₂O itself the corpus misses much of Li₂O's local picture.",
    },
)

# %% [markdown]
# ## The data sources
# The chapter's public corpora, and how one would load each from Python:

# %%
print(datasources.catalogue())

# %% [markdown]
# The practical workflow is *query the dataset, filter to your chemistry, fine-tune*. Here it is
# on the course corpus, for the Li-O chemistry of our target:

# %%
li_o = datasources.fine_tuning_set(
    ("Li", "O"), corpus=settings.dataset("corpus"), seed=settings.seed
)
print(li_o)

# %% [markdown]
# **Chapter check: relaxations sit near minima.** The chapter says MPtrj over-represents
# near-equilibrium geometries. Compare the forces in the training corpus with those of
# room-temperature MD: what share of training frames is calmer than a typical 300 K frame?


# %%
def mean_force(frames):
    """Mean |F| per frame from the DFT labels, eV/Å."""
    return np.array([np.linalg.norm(f, axis=1).mean() for f in ds.forces(frames)])


corpus_force, md_force = mean_force(corpus_frames), np.median(mean_force(cold_frames))
share_calmer = np.mean(corpus_force < md_force)
print(
    f"median mean |F|: {corpus} {np.median(corpus_force):.2f} eV/Å, {min(by_temperature):.0f} K "
    f"MD {md_force:.2f} eV/Å; {share_calmer:.0%} of {corpus}'s frames are calmer"
)

# %%
claims.check(
    "training-set-near-equilibrium",
    {
        "share_calmer": share_calmer,
        "corpus_median_force": np.median(corpus_force),
        "md_median_force": md_force,
        "reference_is_training_set": is_training_set,
    },
    model=settings.model,
    reason={
        "reproduced": lambda m: (
            f"{m['share_calmer']:.0%} of the training frames carry less force than a typical "
            "300 K MD frame, though every relaxation here starts from a rattled, strained cell "
            "(see its provenance)."
        ),
        "partly": "Most training frames are calmer than room-temperature MD, but not by far.",
        "contradicted": "The training frames are as far from equilibrium as room-temperature MD.",
        "not testable here": not_training_set,
    },
)

# %% [markdown]
# ## Rare elements, larger errors?
# The chapter: elements with few training configurations get larger errors, roughly linearly
# in log N_train. With the training corpus at hand this can be tested on the model it trained:
# count the training frames holding each element, and measure the model's force error per
# element on the corpus's held-out relaxations, which it never trained on.

# %%
if is_training_set:
    train = [a for a in corpus_frames if a.info.get("split") != "test"]
    held_out = [a for a in corpus_frames if a.info.get("split") == "test"]
    counts = datasources.element_frame_counts(train)
    by_element = zero_shot.evaluate(settings.model, held_out, dataset=corpus)
    errors = by_element.raw.force_mae_by_element_meV_per_A
    shared = sorted((el for el in errors if el in counts), key=counts.get)
    for el in shared:
        print(f"{el:<3} {counts[el]:>5} training frames   force MAE {errors[el]:6.1f} meV/Å")
    correlation = np.corrcoef(
        np.log10([counts[el] for el in shared]), [errors[el] for el in shared]
    )
    rare_r = float(correlation[0, 1])
    print(f"Pearson r(force MAE, log10 frames) = {rare_r:.2f} over {len(shared)} elements")
else:
    shared, rare_r = [], None
    print(f"{corpus} is not {settings.model}'s training set: no element counts to compare")

# %%
claims.check(
    "rare-element-log-n",
    {
        "correlation": rare_r,
        "elements": len(shared),
        "reference_is_training_set": is_training_set,
    },
    model=settings.model,
    reason={
        "reproduced": "Errors fall steadily with the log of each element's training frames.",
        "partly": "Errors tend to fall with more training frames, but loosely: other "
        "differences between elements matter too.",
        "contradicted": "Here the per-element error does not fall with the element's training "
        "frames: other differences between elements dominate.",
        "not testable here": not_training_set,
    },
)

# %% [markdown]
# ## What the diagnostic does not see
# Distances and angles are two- and three-body summaries; a deep message-passing network
# uses higher-body correlations too. Full coverage here is necessary, not sufficient.
# Committees of models (notebook 07) give a learned version of the same warning.
#
# ## Pause and recall
# * Why do relaxation trajectories (MPtrj) under-sample the configurations that hot MD visits?
# * What two thresholds turn an overlay into a warning, and why must both be stated?
# * Why is a missing *element* a more serious warning than a missing distance range?

# %% [markdown]
# ## Exercise
# A target containing an element the corpus lacks: the chapter's battery cathodes contain
# transition metals, which mini-MPtrj leaves out. Replace one Li of a snapshot (atom 0 of
# `frames[0]`) by Co, histogram it against the reference and read the first lines of the
# report. Define `co_score`, the coverage score of the substituted snapshot.

# %% tags=["solution"]
import warnings

substituted = frames[0].copy()
substituted.symbols[0] = "Co"  # atom 0 is a Li
with warnings.catch_warnings(record=True):
    warnings.simplefilter("always")
    report = coverage.compare_coverage(
        coverage.compute_histograms([substituted], settings=histogram_settings), reference
    )
print(report)
co_score = report.score
plain_score = coverage.compare_coverage(
    coverage.compute_histograms([frames[0]], settings=histogram_settings), reference
).score
known = models.model_elements(settings.model)  # None: not a fixed list
model_knows = [el for el in report.missing_elements if known is None or el in known]
co_channels = [c for c in report.missing_channels if "Co" in c.split("-")]
print(
    exercises.conclusion(
        f"One Co among {len(substituted)} atoms lowers the snapshot's coverage score from "
        f"{plain_score:.3f} to {co_score:.3f}, and the report's first line names "
        f"{', '.join(report.missing_elements) or 'no element'} as absent from {reference.source}: "
        f"every distance and angle with Co ({len(co_channels)} channels) lies where the "
        "reference has nothing.",
        "A missing range is a warning about part of a chemistry the model has seen; a missing "
        "element leaves the model without a learned description of that atom at all.",
        f"{settings.model} was itself trained on {reference.source}"
        + (
            " and knows no Co: it cannot even predict this frame."
            if is_training_set and not model_knows
            else "."
        )
        if is_training_set
        else f"{reference.source} is not {settings.model}'s training set"
        + (
            f", and {settings.model} does know Co from its own: the warning is about this "
            "reference, not the model."
            if model_knows
            else "."
        ),
        section=claims.S_DIAGNOSTIC,
    )
)

# %% tags=["self-check"]
exercises.check(
    "co_score",
    globals(),
    reference=lambda: exercises.substituted_coverage_reference(
        frames[0], index=0, symbol="Co", reference=reference, settings=histogram_settings
    ),
    abs_tol=0.001,
    define="the coverage score (CoverageReport.score) of frames[0] with atom 0 replaced by Co",
    hint="copy frames[0], set its symbols[0] = 'Co', then coverage.compute_histograms([...], "
    "settings=histogram_settings) and coverage.compare_coverage(..., reference).",
)
