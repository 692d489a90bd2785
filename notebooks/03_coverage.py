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
# The reference here is **mini-MPtrj**, the exact pre-training set of the course's own model,
# `course-mini`. For MACE-MP-0 or CHGNet the reference is MPtrj; `course coverage-reference
# --source mptrj` samples it when a network is available. Offline, the course says so and
# uses mini-MPtrj instead: it never pretends to hold MPtrj.

# %%
from course_lib import coverage, datasources
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
    settings.dataset("corpus"),
    n_frames=2_000 if settings.fast else None,  # fast mode: a seeded subsample
    seed=settings.seed,
    settings=histogram_settings,
    progress=False,
)
print(reference)

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
# ## Overlay: Li-Li distances
# Shaded ranges are extrapolation warnings. The log scale shows the thin tails of the reference
# that decide what counts as covered.

# %%
hottest = list(targets)[-1]
coverage_plots.coverage_overlay(
    targets[hottest],
    reference,
    "Li-Li",
    report=reports[hottest],
    log_y=True,
    markers={"typical shortest Li-Li in MPtrj": 2.6},
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
# transition metals, which mini-MPtrj leaves out. Replace one Li of a snapshot by Co, histogram
# it against the reference and read the first lines of the report.

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
