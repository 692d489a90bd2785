"""Building a from-scratch MACE: quiet, seeded."""

from __future__ import annotations

import warnings

from conftest import emt_frames

from course_lib.mace_models import MaceArchitecture, build_mace


def test_build_mace_keeps_torchscripts_own_warnings_out_of_the_notebooks():
    architecture = MaceArchitecture(hidden_irreps="8x0e", mlp_irreps="8x0e", correlation=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_mace(emt_frames(), architecture=architecture, seed=0)
    assert not [w for w in caught if "TorchScript" in str(w.message)]
