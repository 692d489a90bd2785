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
# # 04 · Few-shot: retrain the readout, keep the features
#
# *Accompanies "Three regimes of use" (few-shot fine-tuning), the box "On the role of forces"
# and the fine-tuning boxes of "A decision flowchart for zero-shot vs fine-tuning".*
#
# **Learning objectives.** After this notebook you can
# 1. measure a foundation model zero-shot on a fixed held-out test set *before* training on
#    anything, so that every later number has a baseline;
# 2. fine-tune only the readout of a pre-trained MACE, the layers that map learned features to
#    energies, both in one least-squares solve and by gradient descent, and say what freezing
#    the earlier layers keeps;
# 3. explain why the per-element reference energies (E0) are re-estimated by least squares on
#    composition, and what that can and cannot pin down;
# 4. count the labels a structure offers (one energy, 3N force components) and compare
#    energy-only with energy-and-force training on the same structures;
# 5. measure *forgetting*: what fine-tuning does to the model on its own pre-training data.
#
# The premise of the chapter's few-shot regime: the early layers of a foundation model already
# describe local chemistry well, so only the last mapping from features to energy needs
# adjusting to the new system and its DFT setup, and a few hundred structures suffice.
#
# Sections that teach a claim of the chapter end with a **chapter check**: the claim, the
# number measured here on the model in use, and a verdict computed by a rule fixed in
# `course_lib/claims.py` before any run (`course report` collects them).

# %% [markdown]
# ## Settings
# **fast** (default) trains on a couple of dozen structures and runs only a few gradient epochs,
# so the notebook finishes in minutes on a laptop; **full** uses the whole training pool and
# trains until the validation error stops improving. Notebook 06 uses the same N, seed and test
# set, so the four regimes can be compared there. Fine-tuning here needs a MACE model; the
# cell stops with an explanation if the configured model is another kind.
# A large model (MACE-MP-0: millions of parameters, 89 elements) costs far more per
# structure on a laptop CPU, so fast mode gives it smaller budgets (`large_model=` below).

# %%
import numpy as np

from course_lib import claims, exercises, finetune, zero_shot
from course_lib import data as ds
from course_lib.models import pretraining_corpus
from course_lib.notebook import notebook_settings
from course_lib.paths import work_dir
from course_lib.plots import parity, training

settings = notebook_settings()
print(settings)
settings.require_mace("Few-shot fine-tuning")  # stops here, saying what to change

print(settings.budget_note())
n_train = settings.budget(fast=24, large_model=4, full=None)  # structures; None: the whole pool
max_epochs = settings.budget(fast=8, large_model=2, full=200)  # early stopping ends full runs
batch_size = settings.budget(fast=4, large_model=2, full=4)  # structures per gradient step
n_test = settings.budget(fast=None, large_model=5, full=None)  # test structures per T; None: all
dtype = settings.budget(fast="float64", large_model="float32", full="float64")  # of the fits
out = work_dir("finetune")  # fine-tuned models are written here, never into data/

# %% [markdown]
# ## A fixed test set, then N training structures
# The target dataset carries a fixed split: its test frames are never trained on, by any
# regime, at any N. Training structures are a seeded draw from the rest. We also keep the
# held-out relaxations of the model's own pre-training corpus, to measure forgetting later.

# %%
frames = finetune.regime_frames(
    settings.dataset("target"),
    n=n_train,
    seed=settings.seed,
    corpus=pretraining_corpus(settings.model),
    n_test=n_test,
)
print(frames)

# %% [markdown]
# ## Zero-shot first
# The baseline every fine-tuned number is compared with: the model as downloaded, on the same
# test frames. Energies are shown raw and aligned per element (notebook 02).

# %%
model = finetune.load_model(settings.model)
start = zero_shot.evaluate(settings.model, frames.test, dataset=f"{frames.dataset} (test split)")
print(start.table())

# %% [markdown]
# ## Few-shot in one solve: the readout by least squares
# A MACE model's energy is a sum of per-atom terms; the last layers of its readouts turn each
# atom's learned features into that term, *linearly* in their weights. With every earlier layer
# frozen, energies and forces are therefore linear in those weights, and the loss (squared
# energy errors per atom plus weighted squared force errors) is minimised by one ridge
# least-squares solve: `solver="closed-form"`. No learning rate, no epochs; the small ridge
# term pulls toward the pre-trained weights.
#
#
# Every fit below starts from the same model and uses the same training and test structures;
# `fit` is a `finetune.RegimeRunner` with those fixed: each call fits one regime, and what
# the fits share (the starting model's own errors, the closed form's design) is computed once.

# %%
fit = finetune.RegimeRunner(
    model,
    frames.train,
    frames.test,
    pretraining_frames=frames.pretraining,  # to measure forgetting
    seed=settings.seed,
    dtype=dtype,
)
closed = fit(regime="few-shot", solver="closed-form", out=out / "04-few-shot-closed-form.model")
print(closed.table())

# %% [markdown]
# **Chapter check.** The chapter: a few-shot fit on 10² to 10³ structures cuts the force error
# three- to tenfold. Here: the zero-shot force MAE over the few-shot one, same test frames.

# %%
claims.check(
    "few-shot-reduction",
    {
        "reduction": closed.zero_shot.raw.force_mae_meV_per_A / closed.test.force_mae_meV_per_A,
        "n_train": closed.n_train,
    },
    model=settings.model,
    reason={
        "reproduced": lambda m: (
            f"{m['n_train']:.0f} structures, fewer than the chapter's 10²-10³, already cut the "
            f"force error {m['reduction']:.1f}-fold with every feature layer frozen."
        ),
        "partly": lambda m: (
            f"A {m['reduction']:.1f}-fold cut with {m['n_train']:.0f} structures, near the "
            "chapter's range; notebook 05 shows how it grows with N."
        ),
        "contradicted": lambda m: (
            f"A {m['reduction']:.1f}-fold cut with {m['n_train']:.0f} structures"
            + (
                ", below the chapter's range at this N; notebook 05 shows how it grows with N."
                if m["reduction"] < 3
                else ", more than the chapter's range: the zero-shot error was large."
            )
        ),
    },
)

# %% [markdown]
# ## Reference energies: re-estimated, never averaged
# A model's energy is `Σ E0[element]` plus the learned per-atom terms. When the fine-tuning
# labels come from another DFT setup than the pre-training data (MACE-MP-0: VASP; our labels:
# GPAW), total energies differ by a constant per element, which the readout should not have
# to learn. MACE's guidance is to *estimate* the E0s by least squares on composition, never to
# average energies: an average per atom lumps all elements into one number. `e0s="refit"` (the
# default) solves for a correction to the pre-trained E0s in the same least-squares problem as
# the readout; `e0s="keep"` keeps them. Keeping them looks right for a model pre-trained on our
# own DFT setup, as `course-mini` was; but a refit E0 takes up *any* energy offset per
# composition, not only a setup difference. The cells below measure what it takes up here, and
# what keeping the E0s costs.
#
# Least squares can only separate elements whose amounts vary between structures. Count the
# compositions in our training set: if there is one, only their combination is determined
# (the library warns and takes the smallest correction that fits).

# %%
compositions = {atoms.get_chemical_formula() for atoms in frames.train}
print(f"compositions in training: {sorted(compositions)}")
for element, shift in closed.tuner.e0_shift_.items():
    print(f"E0 shift {element}: {shift:+.4f} eV  (refit E0 {closed.e0s[element]:.4f} eV)")

# %%
kept = fit(regime="few-shot", solver="closed-form", e0s="keep")
for label, result in {"refit": closed, "keep": kept}.items():
    print(
        f"e0s={label!r}: test energy MAE {result.test.energy_mae_meV_per_atom:.1f} meV/atom, "
        f"force MAE {result.test.force_mae_meV_per_A:.1f} meV/Å"
    )

# %% [markdown]
# Where does the E0 shift come from? Split the refit model's energy change on the test frames
# (per atom, against the zero-shot model) into the part its E0s make and the part its readouts
# make, and set both beside the zero-shot model's own mean error (model - DFT):

# %%
atoms_per_frame = np.array([len(atoms) for atoms in frames.test])
bias = 1e3 * np.mean((start.predictions.energies - ds.energies(frames.test)) / atoms_per_frame)
change = 1e3 * np.mean(
    (closed.test_predictions.energies - start.predictions.energies) / atoms_per_frame
)
e0_part = 1e3 * np.mean(
    [sum(closed.tuner.e0_shift_.get(s, 0.0) for s in a.symbols) / len(a) for a in frames.test]
)
readout_part = change - e0_part  # meV/atom
readouts_offset = abs(readout_part) > abs(bias)  # the E0s mostly take back the readouts' offset
same_setup = claims.same_dft_setup(settings.model, frames.dataset)
cost = kept.test.energy_mae_meV_per_atom - closed.test.energy_mae_meV_per_atom
print(f"{settings.model} pre-trained on our DFT settings: {'yes' if same_setup else 'no'}")
print(f"zero-shot mean energy error (model - DFT): {bias:+.0f} meV/atom")
print(f"refit: E0 shift {e0_part:+.0f} meV/atom, readouts {readout_part:+.0f} meV/atom")
print(
    "so the E0 shift is mostly "
    + (
        "the readouts' own offset, taken back: fitted mostly to forces, they moved the energy "
        "baseline further than the model's zero-shot bias"
        if readouts_offset
        else "the model's zero-shot bias" + ("" if same_setup else " and the DFT-setup difference")
    )
)
print(
    f"keeping the E0s costs {cost:+.0f} meV/atom of test energy MAE"
    + (
        (" although the model shares our DFT settings" if same_setup else "")
        + ": the readouts must then carry the energy offset themselves"
        if cost > 1.0
        else ": the E0s have little to absorb here"
    )
)

# %% [markdown]
# This is a trade-off between readout and E0s. Forces are derivatives, so the E0s cannot change
# them directly; with the E0s free, one number per element carries the energy offset and the
# readout weights can serve the forces. Kept E0s make the readout carry both, so any change of
# the force error between the two fits (above) comes from the readout spending weights on the
# energy offset. With one composition in the training set, the fit cannot tell a setup
# difference from a bias of the model, nor from an offset the readouts themselves introduce.

# %% [markdown]
# ## Few-shot by gradient descent: readouts only, or the last layer too
# The same problem, trained by Adam the way mace-torch fine-tunes: `trainable="readouts"` frees
# the same readout layers (and the hidden layer of the last readout); `"last-layer"` also frees
# the last interaction and product blocks. A tenth of the training structures is held back for
# validation, which picks the epoch whose weights are kept (the star): the one with the lowest
# validation *loss*, the weighted sum of squared energy and force errors that training
# minimises, not necessarily the lowest of the MAEs plotted.

# %%
gradient = {
    trainable: fit(
        regime="few-shot",
        trainable=trainable,
        max_epochs=max_epochs,
        batch_size=batch_size,  # small: more steps per epoch on a small set, less memory
    )
    for trainable in ("readouts", "last-layer")
}
training.training_curves({f"few-shot, {k}": r.history for k, r in gradient.items()})

# %%
for trainable, result in gradient.items():
    history = result.history
    still = []  # signs that training had not finished at the last epoch
    if history.train_force_mae[-1] < history.train_force_mae[-2]:  # NaN before epoch 1
        still.append("the training force MAE still falls")
    if history.best_epoch == history.epoch[-1]:
        still.append("the validation loss is lowest")
    print(
        f"{trainable}: {history.epoch[-1]} epochs, {result.fit_time_s:.0f} s, test force "
        f"MAE {result.test.force_mae_meV_per_A:.1f} meV/Å; closed form "
        f"{closed.test.force_mae_meV_per_A:.1f} meV/Å in {closed.fit_time_s:.0f} s; "
        + (
            "stopped early: the validation loss no longer improved"
            if history.stopped_early
            else f"{' and '.join(still)} at the last epoch: the budget of {max_epochs} epochs "
            "stopped an unconverged run"
            if still
            else "neither the training force MAE nor the validation loss improves at the last epoch"
        )
    )

# %% [markdown]
# The closed form lands on the minimum of the readout-only loss; a gradient run approaches it
# over many epochs (the lines above say whether these runs got there). Freeing the last layer
# adds capacity that the closed form cannot use, at the price of a learning rate, epochs and
# more overfitting risk.

# %% [markdown]
# ## Forces multiply the labels
# The chapter's most important single design decision: put forces in the loss. A structure of
# N atoms gives one energy and 3N force components. Same structures, same solver, forces left
# out (`forces_weight=0`):

# %%
energy_only = fit(regime="few-shot", solver="closed-form", forces_weight=0.0)  # energy-only loss
n_readout_weights = sum(closed.tuner.posterior_.parameter_sizes)
print(f"readout weights fitted: {n_readout_weights}")
for label, result in {"energy + forces": closed, "energy only": energy_only}.items():
    print(
        f"{label:<16} {result.n_train} structures, {result.n_labels:>5} labels: test "
        f"{result.test.energy_mae_meV_per_atom:.1f} meV/atom, {result.test.force_mae_meV_per_A:.1f} meV/Å"
    )

# %% [markdown]
# **Chapter check.** The chapter: forces in the loss make the data worth about three times as
# much. That is a statement about how the error falls with N, and this notebook fits one N
# only, so the multiplier is measured in notebook 05; the labels per structure are counted here.

# %%
claims.check(
    "forces-triple",
    {"multiplier": None, "labels_per_structure": closed.n_labels / closed.n_train},
    model=settings.model,
    reason={
        "not testable here": lambda m: (
            "One training size here; the multiplier needs the energy-only and energy + forces "
            "learning curves of notebook 05. Each structure here gives "
            f"{m['labels_per_structure']:.0f} labels with forces, 1 without."
        )
    },
)

# %%
few_shot = {
    "closed form, E+F": closed,
    "closed form, E only": energy_only,
    "gradient, readouts": gradient["readouts"],
    "gradient, last layer": gradient["last-layer"],
}
training.regime_errors(few_shot)

# %% [markdown]
# ## Parity on the held-out test set
# Zero-shot first, then each few-shot fit, on the same test frames; each panel has its own
# axes, so compare the spread around the diagonal and the MAE in the titles.

# %%
parity.regime_parity(few_shot, frames.test, quantity="forces")

# %% [markdown]
# Each panel's title also gives the force slope s (`F_model ≈ s · F_DFT`; notebook 02): below
# 1 the model's forces are too soft. Side by side:

# %%
print(f"zero-shot: s = {start.raw.force_slope:.2f}")
for label, result in few_shot.items():
    print(f"{label}: s = {result.test.force_slope:.2f}")

# %%
parity.regime_parity(few_shot, frames.test, quantity="energy")

# %% [markdown]
# ## Forgetting: the pre-training corpus after fine-tuning
# The readouts are shared by every element the model knows. Fitting them to Li and O moves
# predictions for Si, Mg or F as well. The last column is the force MAE on the corpus's
# held-out relaxations before and after each fit; force errors are the clean measure here,
# since the energies there also carry the refit E0s (below: what they hold for this model).

# %%
print(finetune.compare_regimes(few_shot))
if closed.forgetting is not None:  # a bundled pre-training corpus
    print(
        f"The corpus's energies also carry the refit E0s of {', '.join(closed.tuner.e0_shift_)}: "
        + (
            f"for {settings.model}, pre-trained on our DFT settings, no setup correction but "
            + (
                "mostly the readouts' own offset taken back (above)."
                if readouts_offset
                else "its own zero-shot bias on the target (above)."
            )
            if same_setup
            else "a shift toward the target's DFT setup, which the corpus's labels do not share."
        )
    )

# %% [markdown]
# ## What this shows, and what it does not

# %%
print(
    f"These are fits on {len(frames.train)} structures of {len(frames.train[0])} atoms, tested on "
    f"{len(frames.test)} held-out ones: enough to show the mechanics and the trade-offs (labels, "
    "solvers, E0s, forgetting), not to quote production accuracy."
)

# %% [markdown]
# The chapter's few-shot regime uses 10² to 10³ structures; notebook 05 shows how the error
# falls with N, and notebook 06 adds full fine-tuning and training from scratch at this same N.
#
# ## Pause and recall
# * What stays frozen in few-shot fine-tuning, and why is it plausible that it need not change?
# * Why is the readout problem solvable in one least-squares step, and what would break that?
# * Why must the E0s be estimated by least squares on composition rather than averaged, and
#   what can a training set with a single composition not tell you?
# * How many labels does a structure of N atoms offer with forces, and how many without?
# * Why does fine-tuning a shared readout change the model's predictions on chemistry it was
#   never shown?

# %% [markdown]
# ## Exercise 1
# The chapter says forces matter most for structures of 50 atoms or more. Build 2×2×2
# supercells of the training structures and count their labels, with and without forces. Then
# count the *distinct* ones: in a replica of a periodic cell every copy of an atom feels the
# same force, and the energy is eight times the cell's. Do the supercells tell the fit anything
# the cells did not? What kind of large cell would? Define `distinct_labels`: the number of
# distinct labels (one energy per supercell, plus the force components of atoms whose forces
# differ) over all the supercells.

# %% tags=["solution"]
supercells = [atoms.repeat(2) for atoms in frames.train]
distinct_labels = sum(  # one energy, plus the force components of atoms with different forces
    1 + 3 * len(np.unique(np.round(a.arrays[ds.FORCES_KEY], 8), axis=0)) for a in supercells
)
with_forces, cell_labels = ds.n_labels(supercells), ds.n_labels(frames.train)
print(
    f"{len(supercells)} supercells of {len(supercells[0])} atoms: "
    f"{ds.n_labels(supercells, with_forces=False)} energy labels, "
    f"{with_forces} with forces, of which {distinct_labels} distinct; "
    f"the cells themselves: {cell_labels}"
)
print(
    exercises.conclusion(
        f"The supercells have {len(supercells[0])} atoms, past the chapter's 50, and offer "
        f"{with_forces} labels with forces, {with_forces / cell_labels:.1f}x the cells' "
        f"{cell_labels}; yet only {distinct_labels} are distinct, "
        + (
            "exactly the cells' own: a replica copies labels and adds no information."
            if distinct_labels == cell_labels
            else f"against the cells' {cell_labels}."
        ),
        "The multiplier the chapter means is 3N independent force components, which a large "
        "cell offers only when its atoms move independently: a snapshot of MD in a supercell, "
        "a defect or a surface, each labelled by its own DFT calculation.",
        section=claims.S_FORCES,
    )
)

# %% tags=["self-check"]
exercises.check(
    "distinct_labels",
    globals(),
    reference=lambda: ds.n_labels(frames.train),  # replicas add nothing: the cells' own labels
    define="the number of distinct labels over all 2x2x2 supercells of frames.train",
    hint="count one energy per supercell, and 3 force components for each atom whose force "
    "differs from every other atom's (np.unique on the rounded force rows, axis=0).",
)

# %% [markdown]
# ## Exercise 2
# The ridge term of the closed form pulls the readout toward its pre-trained weights. Refit with
# a much stronger pull (`ridge=1.0`) and compare the test error and the forgetting with the
# default fit. Which would you choose if the model also had to keep working on the corpus?
# Define `pulled_force_mae`: the test force MAE (meV/Å) of the fit with `ridge=1.0`.

# %% tags=["solution"]
pulled = fit(regime="few-shot", solver="closed-form", ridge=1.0)  # relative to mean diag(A'A)
print(finetune.compare_regimes({"ridge 1e-6 (default)": closed, "ridge 1": pulled}))
pulled_force_mae = pulled.test.force_mae_meV_per_A
default_force_mae = closed.test.force_mae_meV_per_A
if pulled.forgetting is None:  # no pre-training corpus bundled with this model
    forgetting = "The corpus column is empty: this model's pre-training data are not bundled."
else:
    before = pulled.forgetting_before.force_mae_meV_per_A
    after = {"default": closed.forgetting.force_mae_meV_per_A}
    after["ridge 1"] = pulled.forgetting.force_mae_meV_per_A
    forgetting = (
        f"On the pre-training corpus the force MAE goes from {before:.0f} to "
        f"{after['default']:.0f} meV/Å with the default fit and to {after['ridge 1']:.0f} "
        "with the pull: "
        + (
            "the pull keeps the corpus, so for a model that must keep working there it is the "
            "choice, paid for in target accuracy."
            if after["ridge 1"] < after["default"] and pulled_force_mae > default_force_mae
            else "the pull keeps the corpus and costs nothing on the target: choose it."
            if after["ridge 1"] <= after["default"]
            else "the pull does not protect the corpus here."
        )
    )
print(
    exercises.conclusion(
        f"The pulled readout has a test force MAE of {pulled_force_mae:.0f} meV/Å against "
        f"{default_force_mae:.0f} with the default ridge"
        + (
            ", staying nearer the zero-shot model it is pulled toward."
            if pulled_force_mae > default_force_mae
            else "."
        ),
        forgetting,
        "The chapter's few-shot regime freezes 'or heavily regularises' what it does not "
        "retrain: the ridge is that regularisation, and its strength sets the trade-off between "
        "the new system and everything else the shared readout serves.",
        section=claims.S_REGIMES,
    )
)

# %% tags=["self-check"]
exercises.check(
    "pulled_force_mae",
    globals(),
    reference=lambda: (
        fit(regime="few-shot", solver="closed-form", ridge=1.0).test.force_mae_meV_per_A
    ),
    rel_tol=0.01,
    unit="meV/Å",
    define="the test force MAE (meV/Å) of the closed-form few-shot fit with ridge=1.0",
    hint="fit(...) returns a RegimeResult; its .test holds the errors on the held-out frames.",
)
