"""Building a from-scratch MACE: quiet, seeded."""

from __future__ import annotations

import warnings

import torch
from conftest import emt_frames

from course_lib.mace_models import MaceArchitecture, build_mace


def test_build_mace_keeps_torchscripts_own_warnings_out_of_the_notebooks():
    architecture = MaceArchitecture(hidden_irreps="8x0e", mlp_irreps="8x0e", correlation=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_mace(emt_frames(), architecture=architecture, seed=0)
    assert not [w for w in caught if "TorchScript" in str(w.message)]


TINY = MaceArchitecture(hidden_irreps="8x0e", mlp_irreps="8x0e", correlation=2)


def parameters(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_build_mace_is_seeded_and_leaves_torchs_global_state_alone():
    torch.manual_seed(1234)
    rng_before = torch.random.get_rng_state()
    dtype_before = torch.get_default_dtype()
    first = parameters(build_mace(emt_frames(), architecture=TINY, seed=3, dtype="float32"))
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert torch.get_default_dtype() == dtype_before
    torch.manual_seed(99)  # another global state: the model must not depend on it
    again = parameters(build_mace(emt_frames(), architecture=TINY, seed=3, dtype="float32"))
    other = parameters(build_mace(emt_frames(), architecture=TINY, seed=4, dtype="float32"))
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert any(not torch.equal(first[name], other[name]) for name in first)
    assert all(p.dtype == torch.float32 for p in first.values())
