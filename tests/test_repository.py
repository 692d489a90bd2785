"""The repository's promises to its users: two README commands, CI running the same tests."""

import re
import subprocess
import sys
import tomllib

import pytest

from course_lib.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def fenced_commands() -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S)]


def test_readme_gives_the_setup_and_test_commands_and_ci_runs_the_test_one():
    commands = fenced_commands()
    run_course, run_tests = commands[0], commands[1]
    assert run_course == "bash scripts/setup.sh && .venv/bin/course run"
    assert run_tests == "bash scripts/setup.sh && .venv/bin/python -m pytest"
    assert run_tests in (REPO_ROOT / ".ci" / "run").read_text().splitlines()


def test_torch_is_pinned_to_the_cpu_build_everywhere():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
    constraints = (REPO_ROOT / "constraints.txt").read_text().splitlines()
    assert "torch==2.13.0" in constraints
    assert "pip install -q torch==2.13.0" in (REPO_ROOT / "scripts" / "setup.sh").read_text()


def test_every_dependency_is_pinned_in_constraints():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [
        dep for extra in project["optional-dependencies"].values() for dep in extra
    ]
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    names = {re.split(r"[<>=\[ ]", dep)[0].lower().replace("_", "-") for dep in requirements}
    assert names <= pinned, f"not pinned in constraints.txt: {sorted(names - pinned)}"


def conda_pip_pins(path) -> dict:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"\s+- ([A-Za-z0-9_.-]+)==(\S+)$", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_conda_and_binder_environments_match_pyproject_and_constraints():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", dep)[0].lower() for dep in project["dependencies"]}
    constraints = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for path in (REPO_ROOT / "environment.yml", REPO_ROOT / "binder" / "environment.yml"):
        pins = conda_pip_pins(path)
        assert set(pins) == names, f"{path.name}: {sorted(set(pins) ^ names)}"
        assert all(constraints[name] == version for name, version in pins.items())


@pytest.mark.parametrize(
    "command", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"]
)
def test_ruff_finds_nothing(command):
    """The code style is enforced where CI looks: lint and format, notebooks included."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
