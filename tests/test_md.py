"""MD with a model: conservation, planted collapses, seeds, analysis, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from course_lib import cli
from course_lib import md as mdm


def copper(repeat: int = 2):
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)


class PullTogether(Calculator):
    """EMT plus a constant attraction ``k`` (eV/Å) between atoms 0 and 1: a fall through the wall.

    E = E_EMT + k·|r_1 - r_0|, forces its exact negative gradient.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, k: float = 50.0):
        super().__init__()
        self.k = k
        self.emt = EMT()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        base = atoms.copy()
        base.calc = self.emt
        d = atoms.get_distance(0, 1, mic=True, vector=True)
        r = np.linalg.norm(d)
        forces = base.get_forces()
        forces[0] += self.k * d / r
        forces[1] -= self.k * d / r
        self.results = {"energy": base.get_potential_energy() + self.k * r, "forces": forces}


class TurnsNaN(Calculator):
    """EMT until the ``after``-th call, NaN from then on."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls = after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        base = atoms.copy()
        base.calc = EMT()
        energy, forces = base.get_potential_energy(), base.get_forces()
        if self.calls > self.after:
            energy, forces = float("nan"), forces * np.nan
        self.results = {"energy": energy, "forces": forces}


def test_nve_conserves_the_total_energy_and_reports_the_drift():
    result = mdm.run_md(EMT(), copper(), temperature_K=300, steps=200, ensemble="nve", seed=1)
    assert result.stable and result.steps_run == 200 and result.failed_step is None
    assert abs(result.energy_drift_meV_per_atom_per_ps) < 1.0
    fluctuation = np.ptp(result.total_energies_eV) / len(copper())
    assert fluctuation < 2e-3  # eV/atom over 200 fs at 1 fs: velocity Verlet keeps E
    assert np.ptp(result.energies_eV) / len(copper()) > 5 * fluctuation  # while E_pot moves


def test_energy_drift_recovers_a_planted_slope():
    times = np.arange(0.0, 1000.0, 10.0)  # fs
    total = -100.0 + 0.004 * times / 1000.0 * 8  # 4 meV/atom/ps for 8 atoms
    assert mdm.energy_drift(times, total, 8) == pytest.approx(4.0)


def test_a_collapse_is_caught_at_its_step_and_the_run_stops_there():
    result = mdm.run_md(PullTogether(), copper(1), temperature_K=100, steps=500, seed=0)
    assert not result.stable and result.verdict == "unstable"
    assert "Cu-Cu" in result.reason and "below the limit" in result.reason
    assert result.failed_step == result.steps_run < 500
    limit = result.limits_A["Cu-Cu"]
    assert result.shortest_A["Cu-Cu"][-1] < limit <= result.shortest_A["Cu-Cu"][-2]
    assert result.times_fs[-1] == pytest.approx(result.failed_step * result.timestep_fs)


def test_non_finite_energies_stop_the_run_at_once():
    result = mdm.run_md(TurnsNaN(after=6), copper(1), temperature_K=300, steps=100, seed=0)
    assert not result.stable and "non-finite" in result.reason
    assert result.failed_step is not None and result.failed_step <= 6
    assert all(np.isfinite(result.energies_eV))  # no NaN was ever recorded as a sample


def test_langevin_is_seeded_and_thermalises():
    runs = [
        mdm.run_md(EMT(), copper(), temperature_K=600, steps=300, seed=s, friction_per_fs=0.05)
        for s in (3, 3, 4)
    ]
    assert runs[0].shortest_A == runs[1].shortest_A
    assert runs[0].shortest_A != runs[2].shortest_A
    late = np.mean(runs[0].temperatures_K[len(runs[0].temperatures_K) // 2 :])
    assert 350 < late < 850  # 32 atoms: a wide but centred distribution around 600 K


def test_shortest_distances_agree_with_all_pair_distances():
    atoms = bulk("NaCl", "rocksalt", a=5.6, cubic=True)
    atoms.rattle(0.2, seed=2)
    found = mdm.shortest_distances(atoms, ["Na-Na", "Na-Cl", "Cl-Cl"])
    d = atoms.get_all_distances(mic=True)
    symbols = np.array(atoms.get_chemical_symbols())
    for pair, (a, b) in {
        "Na-Na": ("Na", "Na"),
        "Na-Cl": ("Na", "Cl"),
        "Cl-Cl": ("Cl", "Cl"),
    }.items():
        block = d[np.ix_(symbols == a, symbols == b)]
        expected = block[block > 0].min()
        assert found[pair] == pytest.approx(expected)


def test_rdf_counts_six_neighbours_in_simple_cubic():
    a = 2.5
    atoms = bulk("Po", "sc", a=a).repeat(4)
    r, g = mdm.pair_rdf([atoms], "Po-Po", r_max=4.0, bins=400)
    dr = r[1] - r[0]
    density = len(atoms) / atoms.get_volume()
    first_shell = r < 0.5 * (a + a * np.sqrt(2))
    assert np.sum(4 * np.pi * r[first_shell] ** 2 * density * g[first_shell] * dr) == pytest.approx(
        6, rel=1e-4
    )
    assert r[np.argmax(g > 0)] == pytest.approx(a, abs=dr)  # nothing closer than a


def test_distance_limits_are_half_the_covalent_bond():
    limits = mdm.distance_limits(["O", "Li", "Li"])
    assert set(limits) == {"Li-Li", "Li-O", "O-O"}
    assert limits["Li-Li"] == pytest.approx(1.28)
    assert limits["O-O"] == pytest.approx(0.66)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--temperature", "0", "--steps", "10"], "temperature must be > 0 K"),
        (["--temperature", "300", "--steps", "0"], "steps must be a positive"),
        (["--temperature", "300", "--steps", "5", "--structure", "nacl"], "unknown structure"),
    ],
)
def test_cli_bad_input_is_one_line(capsys, argv, message):
    code = cli.main(["md", "--model", "chgnet-0.3.0", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert f"course md: error: {message}" in err and "Traceback" not in err


def test_cli_refuses_elements_the_model_lacks(capsys, tiny_mace_file):
    code = cli.main(["md", "--model", str(tiny_mace_file), "--temperature", "300", "--steps", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "has no parameters for ['Li', 'O']" in err


def test_cli_runs_and_reports_json(capsys, tiny_mace_file, tmp_path):
    out = tmp_path / "traj.extxyz"
    argv = ["md", "--model", str(tiny_mace_file), "--structure", "mgo"]
    code = cli.main([*argv, "--temperature", "300", "--steps", "5", "--json"])
    assert code == 2  # MgO is not Al/Cu either
    capsys.readouterr()
    code = cli.main(
        ["md", "--model", "chgnet-0.3.0", "--structure", "mgo", "--temperature", "300"]
        + ["--steps", "4", "--sample-every", "2", "--out", str(out), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["verdict"] == "stable" and report["steps_run"] == 4
    assert report["times_fs"] == [0.0, 2.0, 4.0]
    import ase.io

    assert len(ase.io.read(out, index=":")) == 3


def test_a_shipped_run_reads_back_as_the_run_it_was(capsys, monkeypatch, tmp_path):
    from course_lib import shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    argv = ["md", "--model", "course-mini", "--structure", "mgo", "--temperature", "900"]
    argv += ["--steps", "6", "--sample-every", "2", "--json"]
    assert cli.main([*argv, "--ship"]) == 0
    live = json.loads(capsys.readouterr().out)
    assert cli.main([*argv, "--shipped"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["shortest_A"] == live["shortest_A"] and back["verdict"] == live["verdict"]
    from course_lib.models import REGISTRY

    assert back["shipped"]["model_sha256"] == REGISTRY["course-mini"].sha256  # stale if retrained
    key = mdm.md_key("course-mini", "mgo", temperature_K=900, steps=6, sample_every=2)
    record = shipped.shipped("md", key)
    run = mdm.MDResult.from_dict(record.payload)
    assert run.closest_approach() == pytest.approx(live["closest_approach_A"])
    assert run.times_fs == (0.0, 2.0, 4.0, 6.0) and run.frames == []
    # another seed is another run: not shipped, one line
    assert cli.main([*argv, "--seed", "1", "--shipped"]) == 2
    assert "no shipped md" in capsys.readouterr().err
