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
# # 01 · The foundation-model paradigm
#
# *Accompanies the sections "Where the term comes from", "Why the paradigm transfers to
# materials" and "From task-specific to universal MLIPs".*
#
# **Learning objectives.** After this notebook you can
# 1. say what makes a model a *foundation* model: trained once on broad data, then adapted;
# 2. name the three features of materials that make one universal potential plausible
#    (a finite alphabet of elements, local physics shared across crystals, labels that DFT
#    gives for free);
# 3. run a first zero-shot calculation, an equation of state, with a universal MLIP and judge
#    it against experiment.
#
# A task-specific potential of the 2010s was fitted to one system and knew nothing outside it.
# A universal MLIP is trained once on relaxation trajectories spanning most of the periodic
# table and then used, unchanged or lightly adapted, on any of it.

# %%
from ase.build import bulk

from course_lib import models, zero_shot
from course_lib.notebook import notebook_settings, show_structure
from course_lib.plots import eos as eos_plots

settings = notebook_settings()
print(settings)

# %% [markdown]
# ## The models on this machine
# The course knows a few foundation models by name. Which ones work here *offline* depends on
# what has been downloaded; the bundled ones always do.

# %%
for status in models.list_models():
    print(
        f"{status.name:<18} {status.kind:<7} offline: {'yes' if status.available else 'no '}  {status.description}"
    )

# %% [markdown]
# ## A finite alphabet
# One learned embedding per element covers a chemistry: the model below knows this many
# elements, with the same weights for all of them.

# %%
elements = models.model_elements(settings.model)
print(
    f"{settings.model} covers {len(elements)} elements: {' '.join(elements[:40])}{' ...' if len(elements) > 40 else ''}"
)

# %% [markdown]
# ## A first zero-shot calculation: the equation of state of Li₂O
# Li₂O (antifluorite) is the course's case study. We scale its cell, let the model predict the
# energy of each volume (no training, no DFT), and fit a Birch-Murnaghan equation of state.

# %%
li2o = bulk("Li2O", "fluorite", a=4.61)  # primitive cell: 2 Li + 1 O
show_structure(li2o, supercell=(3, 3, 3))

# %%
eos = zero_shot.equation_of_state(settings.model, li2o)
print(
    f"{eos.model}: a0 = {eos.lattice_constant_A(atoms_per_cell_ratio=4):.3f} Å "
    f"(experiment 4.61 Å at room temperature), B = {eos.bulk_modulus_GPa:.0f} GPa (experiment ~80-90 GPa)"
)
eos_plots.energy_volume(eos)

# %% [markdown]
# PBE, the functional behind MPtrj, tends to overestimate lattice constants by ~1 %, so a
# model trained on PBE data inherits that bias: the model can only be as right as its labels.

# %% [markdown]
# ## Pause and recall
# * What does "foundation model" mean, and which features of the paradigm carry over from
#   language models to interatomic potentials?
# * What distinguishes a universal MLIP from a task-specific MLIP?
# * Why is "how far is my system from the training data?" the central question before trusting
#   one? (Notebook 03 turns it into a diagnostic.)

# %% [markdown]
# ## Exercise
# Compute the equation of state of MgO (rocksalt, experiment a = 4.21 Å) with the same model
# and with CHGNet. Which is closer to experiment?

# %% tags=["solution"]
mgo = bulk("MgO", "rocksalt", a=4.21)
mgo_curves = [
    zero_shot.equation_of_state(m, mgo) for m in dict.fromkeys([settings.model, "chgnet-0.3.0"])
]
for curve in mgo_curves:
    print(f"{curve.model}: a0 = {curve.lattice_constant_A(atoms_per_cell_ratio=4):.3f} Å")
eos_plots.energy_volume(mgo_curves)
