import numpy as np
import pytest

from course_lib import data as ds
from course_lib import off_equilibrium as oe
from course_lib import zero_shot as zs


@pytest.fixture(scope="module")
def hot_and_cold():
    """Two test frames of li2o-md at each temperature (12-atom DFT MD snapshots)."""
    _, test = ds.train_test_split(ds.read_dataset("li2o-md"))
    return ds.subset_by(test, "temperature_K", 2, seed=0)


def planted(frames, *, energy_meV_per_atom, force_meV_per_A):
    """Predictions off DFT by a set energy per atom and a set amount on every force component."""
    n = ds.n_atoms(frames)
    return zs.Predictions(
        model="planted",
        energies=ds.energies(frames) + 1e-3 * energy_meV_per_atom * n,
        forces=[f + 1e-3 * force_meV_per_A for f in ds.forces(frames)],
    )


def test_a_planted_halving_is_measured_as_two_on_energy_and_forces(hot_and_cold):
    errors = {
        name: zs.errors_by(
            hot_and_cold,
            planted(hot_and_cold, energy_meV_per_atom=e, force_meV_per_A=f),
            "temperature_K",
        )
        for name, e, f in (("without", 40.0, 300.0), ("with", 20.0, 150.0))
    }
    comparison = oe.CorpusComparison(
        dataset="li2o-md", key="temperature_K", errors=errors, corpora={"without": "a"}
    )
    assert comparison.groups == [300.0, 1200.0]
    for t in comparison.groups:
        gain = comparison.improvement("without", "with", t)
        assert {k: gain[k] for k in ("energy", "force")} == pytest.approx(
            {"energy": 2.0, "force": 2.0}
        )
        assert np.isnan(gain["energy_difference"])  # neither misses a difference: no ratio
    # the same absolute force error is a smaller share of the larger hot forces
    scale = errors["with"].force_scale_meV_per_A
    assert scale[1200.0] > scale[300.0]
    assert comparison.hot_over_cold("with") == pytest.approx(
        {"energy": 1.0, "relative_force": scale[300.0] / scale[1200.0]}
    )
    rows = comparison.rows()
    assert len(rows) == 4 and rows[0]["corpus"] == "a" and rows[-1]["corpus"] is None
    assert rows[0]["relative_force_error"] == pytest.approx(300.0 / scale[300.0])
    assert "| without | a | 300 K | 2 | 40.0 (raw) | - | 300 |" in comparison.table()


def test_an_offset_and_a_missed_hot_minus_cold_difference_are_told_apart(hot_and_cold):
    """Planted mean errors (meV/atom) by temperature: a model can be better on the difference
    between temperatures and still have a larger energy MAE, when its offset is larger."""
    planted_bias = {"without": {300.0: 26.0, 1200.0: 155.0}, "with": {300.0: 59.0, 1200.0: 134.0}}
    errors = {}
    for name, bias in planted_bias.items():
        shifts = np.array([bias[a.info["temperature_K"]] for a in hot_and_cold])
        predictions = zs.Predictions(
            model=name,
            energies=ds.energies(hot_and_cold) + 1e-3 * shifts * ds.n_atoms(hot_and_cold),
            forces=[f + 1e-3 * 50.0 for f in ds.forces(hot_and_cold)],
        )
        errors[name] = zs.errors_by(hot_and_cold, predictions, "temperature_K")
    comparison = oe.CorpusComparison(
        dataset="li2o-md", key="temperature_K", errors=errors, corpora={}
    )
    assert comparison.energy_bias("with", 300.0) == pytest.approx(59.0)
    assert comparison.difference_miss("without", 1200.0) == pytest.approx(129.0)
    assert comparison.difference_miss("with", 1200.0) == pytest.approx(75.0)
    gain = comparison.improvement("without", "with", 1200.0)
    assert gain["energy"] == pytest.approx(155.0 / 134.0)
    assert gain["energy_difference"] == pytest.approx(129.0 / 75.0)


def test_each_model_is_judged_on_its_own_setup_side_by_side(hot_and_cold):
    comparison = oe.compare_corpora(
        ["course-mini", "chgnet-0.3.0"], hot_and_cold, dataset="li2o-md"
    )
    assert comparison.corpora == {"course-mini": "mini-mptrj", "chgnet-0.3.0": None}
    assert comparison.errors["course-mini"].judged_energies == "raw"
    assert comparison.errors["chgnet-0.3.0"].judged_energies == "aligned"
    # course-mini's judged energies are its raw ones, CHGNet's those after alignment
    alone = zs.evaluate("course-mini", hot_and_cold, dataset="li2o-md")
    assert comparison.energy_mae("course-mini", 300.0) == pytest.approx(
        alone.judged_errors_by("temperature_K").metrics[300.0].energy_mae_meV_per_atom
    )
    cold_rows = {r["model"]: r for r in comparison.rows() if r["temperature_K"] == 300.0}
    chgnet, mini = cold_rows["chgnet-0.3.0"], cold_rows["course-mini"]
    assert chgnet["aligned_energy_mae_meV_per_atom"] == chgnet["energy_mae_meV_per_atom"]
    assert mini["aligned_energy_mae_meV_per_atom"] == pytest.approx(
        alone.metrics_by("temperature_K")[300.0].energy_mae_meV_per_atom
    )
    with pytest.raises(ValueError, match="judged on different energies"):
        comparison.improvement("chgnet-0.3.0", "course-mini", 1200.0)  # raw vs aligned
    assert np.isfinite(comparison.relative_force_error("chgnet-0.3.0", 1200.0))


def test_only_course_models_have_a_twin_and_a_missing_one_says_why():
    assert oe.twin_of("course-mini") == "course-mini-omat"
    assert oe.twin_of("chgnet-0.3.0") is None
    assert "no off-equilibrium twin" in oe.twin_unavailable("chgnet-0.3.0")
    from course_lib.models import REGISTRY, is_available

    reason = oe.twin_unavailable("course-mini")
    if "course-mini-omat" not in REGISTRY:
        assert "not registered yet" in reason
    else:
        assert (reason == "") == is_available("course-mini-omat")
