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
from course_lib import data as ds
from course_lib import finetune, zero_shot
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
# ## Reference energies: re-estimated, never averaged
# A model's energy is `Σ E0[element]` plus the learned per-atom terms. Our DFT setup (code,
# pseudopotentials) differs from that of the pre-training data by a constant per element, which
# the readout should not have to learn. MACE's guidance is to *estimate* the E0s by least
# squares on composition, never to average energies: an average per atom lumps all elements
# into one number. `e0s="refit"` (the default) solves for a correction to the pre-trained
# E0s; `e0s="keep"` keeps them, right only when the new data come from the same DFT setup.
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
# Forces are derivatives, so the E0s cannot change them directly. Any change of the force error
# between the two fits comes from the readout spending its weights on the energy offset.

# %% [markdown]
# ## Few-shot by gradient descent: readouts only, or the last layer too
# The same problem, trained by Adam the way mace-torch fine-tunes: `trainable="readouts"` frees
# the same readout layers (and the hidden layer of the last readout); `"last-layer"` also frees
# the last interaction and product blocks. A tenth of the training structures is held back for
# validation, which picks the epoch whose weights are kept (the star).

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
    print(
        f"{trainable}: {result.history.epoch[-1]} epochs, {result.fit_time_s:.0f} s, test force "
        f"MAE {result.test.force_mae_meV_per_A:.1f} meV/Å; closed form "
        f"{closed.test.force_mae_meV_per_A:.1f} meV/Å in {closed.fit_time_s:.0f} s"
    )

# %% [markdown]
# The closed form lands on the minimum of the readout-only loss; a gradient run approaches it
# over many epochs. If the curves above still fall at the last epoch, the run was stopped
# early by the fast-mode budget, not converged. Freeing the last layer adds capacity that the
# closed form cannot use, at the price of a learning rate, epochs and more overfitting risk.

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
# since the energies there also carry the E0 shift toward our DFT setup.

# %%
print(finetune.compare_regimes(few_shot))

# %% [markdown]
# ## What this shows, and what it does not
# These are fits on a few dozen small structures, tested on a held-out set of similar size (the
# counts are printed at the top): enough to show the mechanics and the trade-offs (labels,
# solvers, E0s, forgetting), not to quote production accuracy. The chapter's few-shot regime uses 10² to 10³ structures;
# notebook 05 shows how the error falls with N, and notebook 06 adds full fine-tuning and
# training from scratch at this same N.
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
# The chapter says forces matter most for structures of 50 atoms or more. How many labels would
# the same training structures give as 2×2×2 supercells, with and without forces?

# %% tags=["solution"]
supercells = [atoms.repeat(2) for atoms in frames.train]
print(
    f"{len(supercells)} supercells of {len(supercells[0])} atoms: "
    f"{ds.n_labels(supercells, with_forces=False)} energy labels, "
    f"{ds.n_labels(supercells)} with forces"
)

# %% [markdown]
# ## Exercise 2
# The ridge term of the closed form pulls the readout toward its pre-trained weights. Refit with
# a much stronger pull (`ridge=1.0`) and compare the test error and the forgetting with the
# default fit. Which would you choose if the model also had to keep working on the corpus?

# %% tags=["solution"]
pulled = fit(regime="few-shot", solver="closed-form", ridge=1.0)  # relative to mean diag(A'A)
print(finetune.compare_regimes({"ridge 1e-6 (default)": closed, "ridge 1": pulled}))
