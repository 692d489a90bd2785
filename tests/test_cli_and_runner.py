import json
import os

import pytest
from conftest import emt_frames

from course_lib import cli, runner
from course_lib.data import write_dataset


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr()


def test_models_json_lists_the_registry_with_availability(capsys):
    code, out = run_cli(capsys, "models", "--json")
    assert code == 0
    listed = {m["name"]: m for m in json.loads(out.out)}
    assert listed["chgnet-0.3.0"]["available"] is True
    assert listed["mace-mp-0-small"]["available"] is False  # no weights on a fresh machine


def test_evaluate_json_reports_raw_and_aligned_errors(capsys, tmp_path, frames, tiny_mace_file):
    path = write_dataset(tmp_path / "emt.extxyz", frames, {"method": "EMT test oracle"})
    code, out = run_cli(
        capsys, "evaluate", "--model", str(tiny_mace_file), "--dataset", str(path), "--json"
    )
    assert code == 0
    report = json.loads(out.out)
    assert report["raw"]["n_frames"] == len(frames)
    assert report["aligned"]["energy_mae_meV_per_atom"] <= report["raw"]["energy_mae_meV_per_atom"]
    assert set(report["offsets_eV"]) == {"Al", "Cu"}


def test_evaluate_by_key_splits_frames_into_groups_that_add_up(capsys, tmp_path, tiny_mace_file):
    frames = emt_frames(6)
    for index, atoms in enumerate(frames):
        atoms.info["temperature_K"] = 300.0 if index < 4 else 1200.0
    path = write_dataset(tmp_path / "emt.extxyz", frames, {"method": "EMT test oracle"})
    argv = ["--model", str(tiny_mace_file), "--dataset", str(path), "--by", "temperature_K"]
    code, out = run_cli(capsys, "evaluate", *argv, "--json")
    assert code == 0
    groups = json.loads(out.out)["aligned_by"]["groups"]
    assert {k: g["n_frames"] for k, g in groups.items()} == {"300.0": 4, "1200.0": 2}
    code, out = run_cli(capsys, "evaluate", *argv)
    assert "temperature_K = 1200.0 (aligned)" in out.out


def test_bad_input_is_an_error_message_not_a_traceback(capsys):
    code, out = run_cli(capsys, "evaluate", "--dataset", "no-such-dataset")
    assert code == 2
    assert "course evaluate: error: no dataset called 'no-such-dataset'" in out.err


NOTEBOOK = """# %%
import os
import numpy as np
block = np.ones(40 * 2**20 // 8)  # 40 MB
print(os.environ["COURSE_MODE"])
"""


def test_run_writes_executed_copies_and_a_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "fast")
    good = tmp_path / "01_good.py"
    good.write_text(NOTEBOOK)
    bad = tmp_path / "02_bad.py"
    bad.write_text("# %%\nraise ValueError('planted failure')\n")
    out = tmp_path / "runs"
    runs = runner.run_notebooks([good, bad], mode="full", out_dir=out, timeout_s=120)
    assert [r.ok for r in runs] == [True, False]
    assert "planted failure" in runs[1].error
    assert runs[0].peak_memory_mb > 40
    assert json.loads((out / "summary.json").read_text())[0]["notebook"] == "01_good"
    executed = (out / "01_good.ipynb").read_text()
    assert '"full\\n"' in executed  # the kernel saw the requested mode
    assert os.environ["COURSE_MODE"] == "fast"  # ... and this process kept its own
    assert "FAIL" in runner.summary_table(runs)


def test_find_notebook_by_number_and_unknown_name():
    notebooks = runner.course_notebooks()
    assert len(notebooks) >= 8, "the course's notebooks are missing"
    for notebook in notebooks:
        assert runner.find_notebook(notebook.stem[:2]) == notebook
    with pytest.raises(FileNotFoundError, match="notebooks:"):
        runner.find_notebook("99")


def test_student_copies_carry_no_solutions_and_no_outputs(tmp_path):
    import nbformat

    from course_lib.instructor import PLACEHOLDER, write_student_notebooks

    source = tmp_path / "05_demo.py"
    source.write_text(
        '# %%\nprint("shown")\n\n# %% tags=["solution"]\nanswer = 42\nprint(answer)\n'
    )
    executed = runner.run_notebook(source, tmp_path, mode="fast", timeout_s=120)
    assert executed.ok
    (student,) = write_student_notebooks([source], tmp_path / "student")
    notebook = nbformat.read(student, as_version=4)
    assert [cell.source for cell in notebook.cells] == ['print("shown")', PLACEHOLDER]
    assert all(not cell.outputs for cell in notebook.cells)
    assert "answer = 42" not in student.read_text()


def test_doctor_reports_versions_and_models(capsys):
    code, out = run_cli(capsys, "doctor", "--json")
    checks = {check["name"]: check for check in json.loads(out.out)}
    assert checks["torch"]["detail"].startswith("2.13.0")
    assert checks["model chgnet-0.3.0"]["ok"]
    assert code == (0 if all(check["ok"] for check in checks.values()) else 1)


def test_doctor_exits_non_zero_when_a_check_fails(capsys, monkeypatch):
    from course_lib import instructor

    failing = instructor.Check(name="planted", ok=False, detail="planted failure")
    original = instructor.environment_checks
    monkeypatch.setattr(instructor, "environment_checks", lambda: [*original(), failing])
    code, out = run_cli(capsys, "doctor")
    assert code != 0
    assert "planted failure" in out.out + out.err


def test_evaluate_json_stays_parseable_with_chatty_models(capsys, tmp_path):
    from ase.build import bulk

    from course_lib.data import ENERGY_KEY, FORCES_KEY

    cell = bulk("Li2O", "fluorite", a=4.62)
    cell.info[ENERGY_KEY] = -14.3
    cell.arrays[FORCES_KEY] = cell.positions * 0
    path = write_dataset(tmp_path / "li2o.extxyz", [cell], {})
    code, out = run_cli(
        capsys, "evaluate", "--model", "chgnet-0.3.0", "--dataset", str(path), "--json"
    )
    assert code == 0
    assert json.loads(out.out)["model"] == "chgnet-0.3.0"


def test_building_the_command_line_imports_neither_torch_nor_mace():
    import subprocess
    import sys

    code = "import sys, course_lib.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_json_output_stays_parseable_when_libraries_print_on_import(tmp_path, tiny_mace_file):
    import subprocess
    import sys

    path = write_dataset(tmp_path / "emt.extxyz", emt_frames(3), {"method": "EMT test oracle"})
    argv = ["evaluate", "--model", str(tiny_mace_file), "--dataset", str(path), "--json"]
    code = f"import sys; from course_lib.cli import main; sys.exit(main({argv!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["raw"]["n_frames"] == 3


def test_channel_waits_return_as_soon_as_a_message_is_there_and_keep_their_timeout():
    """``poll_in_steps``: a wake-up missed by one poll is found by the next (nbclient#312)."""
    import asyncio
    import time
    from queue import Empty

    from course_lib.runner import poll_in_steps

    class Channel:
        def __init__(self, ready_after_s):
            self.ready_at = time.monotonic() + ready_after_s
            self.waits = []

        async def get_msg(self, timeout=None):
            self.waits.append(timeout)
            # a poll that misses the wake-up: it sleeps its whole timeout, then looks once
            await asyncio.sleep(timeout if timeout is not None else 3600)
            if time.monotonic() >= self.ready_at:
                return {"msg_id": "reply"}
            raise Empty

    channel = Channel(ready_after_s=0.05)
    poll_in_steps(channel, step_s=0.02)
    began = time.monotonic()
    assert asyncio.run(channel.get_msg(timeout=None)) == {"msg_id": "reply"}
    assert time.monotonic() - began < 1.0 and max(channel.waits) <= 0.02
    never = Channel(ready_after_s=3600)
    poll_in_steps(never, step_s=0.02)
    began = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(never.get_msg(timeout=0.1))
    assert 0.1 <= time.monotonic() - began < 0.5  # the overall timeout still holds
