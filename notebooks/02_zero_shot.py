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
# # 02 · Zero-shot: a foundation model on a system it was never tuned for
#
# *Accompanies the sections "Three regimes of use" (zero-shot) and the first two boxes of
# "A decision flowchart for zero-shot vs fine-tuning".*
#
# **Learning objectives.** After this notebook you can
# 1. run a pre-trained universal MLIP on DFT-labelled snapshots of a new system, in batches;
# 2. compute the parity check the chapter asks for: energy (meV/atom) and force (meV/Å) errors;
# 3. explain why energies from two different DFT setups must be *aligned* per element before
#    they are compared, and why forces need no such step;
# 4. read a force parity plot element by element and connect it to the flowchart's first
#    threshold (100 meV/Å).
#
# The target is the course's Li case study: snapshots of Li₂O from molecular dynamics at
# room temperature and at high temperature, each labelled by a real DFT single point
# (GPAW, PBE; see `data/datasets/li2o-md.json` for how they were made).
#
# Sections that teach a claim of the chapter end with a **chapter check**: the claim, the
# number measured here on the model in use, and a verdict computed from it by a rule fixed in
# `course_lib/claims.py` before any run (`course report` collects them).

# %% [markdown]
# ## Settings
# `mode` is the classroom switch: **fast** (default) evaluates ~20 snapshots, as the
# chapter's protocol does; **full** evaluates every labelled frame. Change it in
# `course.toml` or with the environment variable `COURSE_MODE`. The model line says which
# model produced every number below: `auto` means MACE-MP-0 small when its weights are on
# this machine, else an offline model bundled with the course.

# %%
import numpy as np

from course_lib import claims, flowchart, models, zero_shot
from course_lib import data as ds
from course_lib.notebook import notebook_settings, show_structure
from course_lib.plots import parity

settings = notebook_settings()
print(settings)

# %% [markdown]
# ## Fix the thresholds first
# The chapter's protocol fixes its pass/fail numbers *before* any error is seen: 100 meV/Å for
# zero-shot forces, then 20 meV/atom and 50 meV/Å after fine-tuning. A threshold chosen after
# the error is known can always be chosen to pass. They live in `course.toml`
# (`[thresholds]`); the next cell locks them: it records a sha256 fingerprint of the values
# and the time, here, before the first parity number. Notebooks 05, 07 and 08 read this lock
# back, and if a value in `course.toml` was changed since, they say "changed after lock".

# %%
thresholds = flowchart.lock_thresholds()
print(thresholds)

# %% [markdown]
# ## The target: DFT-labelled snapshots
# Zero-shot means no training on the target at all, so every labelled frame is unseen data
# for the model. We draw ~20 of them, as the chapter's protocol suggests.

# %%
target = settings.dataset("target")
frames = ds.read_dataset(target)
n_snapshots = min(
    20 if settings.fast else len(frames), len(frames)
)  # the chapter's "~20 snapshots"
snapshots = ds.subset(frames, n_snapshots, seed=settings.seed)
temperatures = sorted({float(a.info["temperature_K"]) for a in snapshots})
print(
    f"{target}: {len(frames)} frames; evaluating {len(snapshots)} snapshots at T = {temperatures} K"
)
print(ds.read_provenance(ds.dataset_path(target)).get("method", ""))

# %%
show_structure(snapshots[-1], supercell=(2, 2, 2))

# %% [markdown]
# ## Zero-shot prediction and the parity check
# `zero_shot.evaluate` predicts energies, forces and stresses in batches and compares them
# with the DFT labels. It reports two energy errors:
#
# * **raw**: model energy minus DFT energy, as they come;
# * **aligned**: after fitting one constant per element by least squares on composition.
#
# When the model was trained on another DFT setup than our labels (MACE-MP-0 and CHGNet:
# VASP, PBE(+U), Materials Project; ours: GPAW, PBE), total energies differ by a per-element
# constant that has nothing to do with the model's quality, and the alignment removes it.
# `course-mini` was trained on our own GPAW setup, so for it there is no such difference: its
# per-element offsets measure the model's own composition bias on this system. Forces are
# energy *derivatives*, so a per-element constant drops out of them either way.

# %%
result = zero_shot.evaluate(settings.model, snapshots, dataset=target)
print(result.table())

# %%
parity.energy_parity(result, color_by="temperature_K")

# %%
parity.force_parity(result)

# %%
parity.error_histograms(result)

# %% [markdown]
# **Chapter check.** The chapter quotes MACE-MP-0's zero-shot force error on systems outside
# its training data. Which model is this, and what was it trained on?

# %%
corpus = models.pretraining_corpus(settings.model)  # None: not trained on the course's data
about_model = (
    f"{settings.model} is the course's small model, pre-trained on {corpus}"
    if corpus
    else f"{settings.model} was pre-trained outside the course (MPtrj for MACE-MP-0 and CHGNet)"
)
n_hot = sum(a.info["temperature_K"] == max(temperatures) for a in snapshots)
print(f"{about_model}; {n_hot} of {len(snapshots)} snapshots from {max(temperatures):.0f} K MD")

# %%
claims.check(
    "zero-shot-force-mae",
    {"force_mae": result.raw.force_mae_meV_per_A, "n_frames": result.raw.n_frames},
    model=settings.model,
    reason={
        "reproduced": f"{about_model}. On Li₂O MD its zero-shot forces match the chapter's figure.",
        "partly": lambda m: (
            f"{about_model}. Its force MAE is {m['force_mae'] / 100:.1f}x the chapter's figure, "
            f"on one system with {n_hot} of {len(snapshots)} snapshots from hot MD rather than "
            "a median over test sets."
        ),
        "contradicted": lambda m: (
            f"{about_model}. Its force MAE is {m['force_mae'] / 100:.1f}x the chapter's figure "
            f"for MACE-MP-0, on one system with {n_hot} of {len(snapshots)} snapshots from hot MD."
        ),
    },
)

# %% [markdown]
# ## Does temperature matter?
# The chapter's case study reports that foundation models degrade on high-temperature
# frames, where Li-Li distances shorten into regions the pre-training data rarely sampled.
# Here is what our data show, split by MD temperature:

# %%
for temperature, metrics in result.metrics_by("temperature_K").items():
    print(
        f"T = {temperature} K: {metrics.n_frames} frames, "
        f"energy MAE {metrics.energy_mae_meV_per_atom:.1f} meV/atom, "
        f"force MAE {metrics.force_mae_meV_per_A:.0f} meV/Å"
    )

# %% [markdown]
# **Chapter check: the Li case study.** The chapter reports ~30 meV/atom near equilibrium and
# 50-80 meV/atom on hot MD frames (MACE-MP-0 on Li-rich cathodes; ours is Li₂O). Which energy
# error compares depends on the model. One trained on labels made with our own DFT settings
# has no setup difference to remove: its raw error counts, per-element offsets included, since
# those are its own composition bias. For one trained on another setup (MACE-MP-0, CHGNet:
# VASP) only the aligned error compares, and it flatters the model a little, because the
# fitted offsets also absorb any constant bias of the model.

# %%
fingerprint = {
    name: ds.read_provenance(ds.dataset_path(name)).get("settings_fingerprint")
    for name in filter(None, [corpus, target])
}
same_setup = corpus is not None and fingerprint[corpus] == fingerprint[target]
raw_by_t = zero_shot.errors_by(result.frames, result.predictions, "temperature_K").metrics
aligned_by_t = result.metrics_by("temperature_K")
judged = raw_by_t if same_setup else aligned_by_t
cold, hot = min(temperatures), max(temperatures)
print(
    f"{settings.model} trained on our DFT settings: "
    + ("yes, raw errors judged" if same_setup else "no, aligned errors judged")
)
for t in (cold, hot):
    print(
        f"T = {t:.0f} K: energy MAE raw {raw_by_t[t].energy_mae_meV_per_atom:.1f}, "
        f"aligned {aligned_by_t[t].energy_mae_meV_per_atom:.1f} meV/atom"
    )
setup_note = (
    "its per-element offsets are its own bias on Li₂O, so they count"
    if same_setup
    else "aligned error: the offsets remove the VASP-vs-GPAW difference and any constant bias "
    "of the model with it"
)


def li_energy(t):
    """The measured numbers at temperature t, named as the claims name them."""
    return {
        "energy_mae": judged[t].energy_mae_meV_per_atom,
        "raw_energy_mae": raw_by_t[t].energy_mae_meV_per_atom,
        "aligned_energy_mae": aligned_by_t[t].energy_mae_meV_per_atom,
        "same_dft_setup": same_setup,
    }


def li_reason(where):
    """Reasons for the two Li energy claims, one per verdict."""
    return {
        "reproduced": f"On {where} Li₂O, {settings.model} is as close to DFT as the chapter "
        f"reports for MACE-MP-0 on cathodes ({setup_note}).",
        "partly": lambda m: (
            f"On {where} Li₂O, {settings.model} is near but outside the "
            f"chapter's figure ({m['energy_mae']:.0f} meV/atom; {setup_note}); Li₂O is not a "
            "Li-rich cathode."
        ),
        "contradicted": lambda m: (
            f"On {where} Li₂O, {settings.model} is far from the chapter's "
            f"figure ({m['energy_mae']:.0f} meV/atom; {setup_note})."
        ),
    }


# %%
claims.check(
    "li-near-equilibrium-energy", li_energy(cold), model=settings.model, reason=li_reason("300 K")
)

# %%
claims.check("li-hot-md-energy", li_energy(hot), model=settings.model, reason=li_reason("1200 K"))

# %%
claims.check(
    "li-hot-vs-cold",
    judged[hot].energy_mae_meV_per_atom / judged[cold].energy_mae_meV_per_atom,
    model=settings.model,
    reason={
        "reproduced": "The hot frames are about twice as hard, as in the chapter's case study.",
        "partly": lambda m: (
            f"The hot frames are {m['ratio']:.1f}x as hard: the chapter's direction, not its size."
        ),
        "contradicted": lambda m: (
            f"The hot frames are {m['ratio']:.1f}x as hard: "
            + ("not clearly harder." if m["ratio"] < 1.2 else "far harder than the chapter says.")
        ),
    },
)

# %% [markdown]
# ## Too soft? The slope of the force parity
# Deng et al. (npj Comput. Mater. 2025) found that foundation models systematically
# *under-predict* forces: fit `F_model ≈ s · F_DFT` through the origin and s comes out below 1,
# the potential energy surface is too flat ("softened"), and a few fine-tuning frames restore
# it. The parity titles carry s; here it is overall and per temperature, measured on this
# model (notebook 04 shows s after few-shot fine-tuning).

# %%
print(f"force slope s = {result.raw.force_slope:.2f} over all {result.raw.n_frames} snapshots")
for temperature, metrics in result.metrics_by("temperature_K").items():
    print(f"T = {temperature} K: s = {metrics.force_slope:.2f}")
softness = "softer than DFT" if result.raw.force_slope < 1 else "not softer than DFT"
print(f"this model's forces are {softness} on these frames")

# %% [markdown]
# ## The first box of the flowchart
# The chapter's first threshold, locked at the top of this notebook before looking at the
# data, is a zero-shot force MAE below 100 meV/Å.

# %%
threshold = thresholds.zero_shot_force_mae_meV_per_A
passed = result.raw.force_mae_meV_per_A < threshold
print(
    f"force MAE {result.raw.force_mae_meV_per_A:.0f} meV/Å vs threshold {threshold:.0f} meV/Å: "
    + ("passes, go on to the convex-hull question" if passed else "fails, fine-tune (notebook 04)")
)

# %% [markdown]
# **Chapter check: are ~20 snapshots enough?** Draw 20 of the evaluated snapshots at random
# (with replacement), 2000 times, and see how often such a draw reaches the same decision.
# Consecutive MD snapshots are correlated, so real sets of 20 vary more than these draws.

# %%
dft_forces = ds.forces(result.frames)
abs_error = np.array([np.abs(p - f).sum() for p, f in zip(result.predictions.forces, dft_forces)])
n_components = np.array([f.size for f in dft_forces])
draws = np.random.default_rng(settings.seed).integers(len(dft_forces), size=(2000, 20))
draw_mae = 1e3 * abs_error[draws].sum(axis=1) / n_components[draws].sum(axis=1)  # meV/Å
agreement = np.mean((draw_mae < threshold) == passed)
print(
    f"20-snapshot draws: force MAE {np.percentile(draw_mae, 2.5):.0f}-"
    f"{np.percentile(draw_mae, 97.5):.0f} meV/Å (95 %); {agreement:.1%} reach the same decision"
)

# %%
claims.check(
    "twenty-snapshots",
    {
        "agreement": agreement,
        "force_mae": result.raw.force_mae_meV_per_A,
        "threshold": threshold,
        "n_evaluated": len(dft_forces),
    },
    model=settings.model,
    reason={
        "reproduced": lambda m: (
            f"The force MAE is {m['force_mae'] / m['threshold']:.1f}x the threshold, so 20 "
            "snapshots settle the decision; closer to the threshold more would be needed."
        ),
        "partly": "The force MAE lies near the threshold: 20 snapshots usually, not always, agree.",
        "contradicted": "The force MAE lies at the threshold: 20 snapshots do not settle it.",
    },
)

# %% [markdown]
# ## Optional: run the DFT single points yourself
# The chapter's point: validation is cheap. Twenty GPAW single points of a 12-atom cell take
# a few minutes on a laptop. Set `RUN_DFT = True` to relabel three snapshots with the course's
# DFT settings and compare with the shipped labels (needs GPAW, see the README).

# %%
RUN_DFT = False
if RUN_DFT:
    from course_lib import dft

    print(f"estimated time: {dft.estimate_time(snapshots[:3]):.0f} s")
    relabelled = dft.label(snapshots[:3])
    print(ds.energies(relabelled) - ds.energies(snapshots[:3]))

# %% [markdown]
# ## Pause and recall
# * Why would comparing *raw* total energies between a foundation model and your own DFT
#   be misleading, even for a perfect model?
# * Which of energy or force errors does the chapter's first threshold use, and why is that a
#   sensible first check for MD?
# * If the high-temperature frames are harder, what about them is different (think of the
#   descriptor-coverage argument of notebook 03)?

# %% [markdown]
# ## Exercise 1
# Evaluate CHGNet (`"chgnet-0.3.0"`, trained on MPtrj like MACE-MP-0) on the same snapshots
# and compare its force MAE per element with the model above. Which element is harder, and
# for which model?

# %% tags=["solution"]
chgnet = zero_shot.evaluate("chgnet-0.3.0", snapshots, dataset=target)
for element in chgnet.raw.force_mae_by_element_meV_per_A:
    print(
        f"{element}: {settings.model} {result.raw.force_mae_by_element_meV_per_A[element]:.0f} meV/Å,"
        f" CHGNet {chgnet.raw.force_mae_by_element_meV_per_A[element]:.0f} meV/Å"
    )

# %% [markdown]
# ## Exercise 2
# Fit the alignment on the 300 K frames only and apply it to the high-temperature frames.
# Does the energy error change? What does that tell you about what the offsets absorb?

# %% tags=["solution"]
cold = [i for i, a in enumerate(snapshots) if a.info.get("temperature_K") == min(temperatures)]
hot = [i for i in range(len(snapshots)) if i not in cold]
offsets = zero_shot.fit_reference_offsets(
    [snapshots[i] for i in cold], result.predictions.energies[cold]
)
hot_frames = [snapshots[i] for i in hot]
hot_raw = zero_shot.Predictions(
    model=result.model,
    energies=result.predictions.energies[hot],
    forces=[result.predictions.forces[i] for i in hot],
)
transferred = zero_shot.error_metrics(
    hot_frames, zero_shot.apply_offsets(hot_frames, hot_raw, offsets)
)
print(
    f"hot frames, offsets fitted on cold ones: {transferred.energy_mae_meV_per_atom:.1f} meV/atom"
)
