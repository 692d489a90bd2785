"""Binder builds: the rules repo2docker's order of work imposes on ``binder/``, checked statically.

repo2docker installs ``binder/environment.yml`` (or ``binder/requirements.txt``) *before* it
copies the repository into the image, then runs ``binder/postBuild`` from the repository root.
So the dependency files may not install the repository itself (``-e ..`` fails the build:
"Directory cannot be installed in editable mode"), and postBuild must do it.
"""

import os
import re
import shutil
import stat
import subprocess

import pytest
import yaml

from course_lib.paths import REPO_ROOT

BINDER = REPO_ROOT / "binder"
POSTBUILD = BINDER / "postBuild"


def binder_environment() -> dict:
    return yaml.safe_load((BINDER / "environment.yml").read_text())


def conda_and_pip_lines(environment: dict) -> tuple[list[str], list[str]]:
    conda = [dep for dep in environment["dependencies"] if isinstance(dep, str)]
    pip = [
        line for dep in environment["dependencies"] if isinstance(dep, dict) for line in dep["pip"]
    ]
    return conda, pip


def installs_a_local_path(line: str) -> bool:
    """A requirement line that installs a directory or file (editable or not) instead of a package."""
    line = line.strip()
    if re.match(r"(-e|--editable)(\s|=|$)", line):
        return True
    target = line.split()[0] if line else ""
    return target.startswith((".", "/", "~", "file:")) or "@ file:" in line


def postbuild_commands() -> list[str]:
    """postBuild's lines without comments and blank lines."""
    lines = [line.split("#", 1)[0].strip() for line in POSTBUILD.read_text().splitlines()[1:]]
    return [line for line in lines if line]


def constraints() -> dict[str, str]:
    return {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }


@pytest.mark.parametrize(
    "line, local",
    [
        ("-e ..", True),
        ("--editable=.", True),
        (".", True),
        ("./", True),
        ("file:///home/jovyan", True),
        ("course @ file:///srv/repo", True),
        ("torch==2.13.0", False),
        ("--extra-index-url https://download.pytorch.org/whl/cpu", False),
        ("nglview>=3.1.4,<4", False),
    ],
)
def test_the_local_install_detector_itself(line, local):
    assert installs_a_local_path(line) is local


def test_binder_dependency_files_do_not_install_the_repository():
    _, pip = conda_and_pip_lines(binder_environment())
    offending = [line for line in pip if installs_a_local_path(line)]
    requirements = BINDER / "requirements.txt"
    if requirements.exists():
        offending += [
            line
            for line in requirements.read_text().splitlines()
            if line.strip() and not line.startswith("#") and installs_a_local_path(line)
        ]
    assert not offending, f"repo2docker installs these before the repository is copied: {offending}"


def test_binder_uses_environment_yml_alone():
    """repo2docker ignores a requirements.txt next to an environment.yml: one of them, not both."""
    assert (BINDER / "environment.yml").exists()
    assert not (BINDER / "requirements.txt").exists()


def test_binder_gets_gpaw_from_conda_forge_and_cpu_torch_from_pip():
    environment = binder_environment()
    conda, pip = conda_and_pip_lines(environment)
    assert "conda-forge" in environment["channels"]
    assert f"gpaw={constraints()['gpaw']}" in conda
    index = next(i for i, line in enumerate(pip) if "download.pytorch.org/whl/cpu" in line)
    torch = next(i for i, line in enumerate(pip) if line.startswith("torch=="))
    assert index < torch


def test_binder_pins_agree_with_constraints_and_python_with_pyproject():
    import tomllib

    pinned = constraints()
    conda, pip = conda_and_pip_lines(binder_environment())
    for line in pip:
        if "==" in line:
            name, version = line.split("==")
            assert pinned[name.lower().replace("_", "-")] == version, line
    for line in conda:
        name, _, version = line.partition("=")
        if name not in ("python", "pip") and version:
            assert pinned[name.lower()] == version, line
    python = next(line.partition("=")[2] for line in conda if line.startswith("python="))
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    minimum = re.search(r">=\s*([\d.]+)", requires["requires-python"]).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, minimum.split(".")))


def test_conda_users_environment_lists_the_same_dependencies_and_installs_the_checkout():
    """The top-level environment.yml is run from the repository root: it may keep `-e .`."""
    binder = conda_and_pip_lines(binder_environment())
    conda_users = conda_and_pip_lines(yaml.safe_load((REPO_ROOT / "environment.yml").read_text()))
    assert conda_users[0] == binder[0]
    assert [line for line in conda_users[1] if not installs_a_local_path(line)] == binder[1]
    assert "-e ." in conda_users[1]


def test_postbuild_is_an_executable_bash_script_that_stops_on_errors():
    text = POSTBUILD.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") or text.startswith("#!/bin/bash\n")
    assert POSTBUILD.stat().st_mode & stat.S_IXUSR
    assert re.match(r"set -[a-z]*e", postbuild_commands()[0]), "postBuild must start with set -e"
    if shutil.which("git") and (REPO_ROOT / ".git").exists():
        staged = subprocess.run(
            ["git", "ls-files", "--stage", "binder/postBuild"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout
        assert not staged or staged.startswith("100755"), "git must record postBuild as executable"
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(POSTBUILD)], check=True)


def test_postbuild_installs_the_course_and_registers_the_runners_kernel():
    commands = postbuild_commands()
    install = [c for c in commands if re.search(r"pip install .*(-e|--editable) \.$", c)]
    assert install, "postBuild must install the repository (editable: course_lib finds data/)"
    assert "--no-deps" in install[0], "dependencies come from binder/environment.yml, pinned"
    kernel = next(c for c in commands if "ipykernel install" in c)
    assert "--sys-prefix" in kernel
    kernel_name = re.search(r"--name[ =](\S+)", kernel).group(1)
    runner = (REPO_ROOT / "course_lib" / "runner.py").read_text()
    assert f'kernel_name="{kernel_name}"' in runner
    assert commands.index(install[0]) < commands.index(kernel)


def test_postbuild_prefetches_mace_mp_small_without_failing_the_build_offline():
    text = POSTBUILD.read_text()
    fetch = [line for line in text.splitlines() if "course fetch mace-mp-0-small" in line]
    assert len(fetch) == 1
    guarded = re.search(r"if ! course fetch mace-mp-0-small; then", text) or "||" in fetch[0]
    assert guarded, "under set -e an unguarded failed download would fail the whole build"


def test_postbuild_runs_offline_as_far_as_its_fallback(tmp_path):
    """Run postBuild with stand-ins for python and course: each step runs, a failed fetch is fine."""
    if not shutil.which("bash"):
        pytest.skip("needs bash")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name, code in (("python", 0), ("course", 1)):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit {code}\n')
        stub.chmod(0o755)
    result = subprocess.run(
        ["bash", str(POSTBUILD)],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("python -m pip install") and calls[0].endswith("-e .")
    assert calls[1].startswith("python -m ipykernel install")
    assert calls[2] == "course fetch mace-mp-0-small"
    assert "not fetched" in result.stderr
