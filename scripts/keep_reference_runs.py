"""Track the finished runs behind the shipped reference curves, so the work resumes anywhere.

``course learning-curve`` caches each (N, seed) run and each learning rate of a sweep in the
git-ignored work directory. The reference runs take CPU hours, so they are copied into
``data/reference-results/runs/`` (committed with the records) and copied back into a fresh
work directory before ``scripts/ship_reference_results.sh`` starts: an interrupted curve then
resumes on any clone. Only runs of the reference protocol are kept: those scored with a fixed
validation set (``--valid``), and every lr-sweep run.

Usage: python scripts/keep_reference_runs.py [--restore]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from course_lib.paths import DATA_DIR, work_dir

TRACKED = DATA_DIR / "reference-results" / "runs"
FOLDERS = ("learning-curves", "lr-sweeps")


def is_reference_run(path: Path, folder: str) -> bool:
    if folder == "lr-sweeps":
        return True
    try:
        return "valid_sha256" in json.loads(path.read_text())["key"]
    except (OSError, ValueError, KeyError):
        return False  # a partial or foreign file: not a finished run


def keep() -> int:
    copied = 0
    for folder in FOLDERS:
        target = TRACKED / folder
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(work_dir(folder).glob("*.json")):
            if is_reference_run(path, folder) and not (target / path.name).exists():
                shutil.copyfile(path, target / path.name)
                copied += 1
    return copied


def restore() -> int:
    copied = 0
    for folder in FOLDERS:
        for path in sorted((TRACKED / folder).glob("*.json")):
            destination = work_dir(folder) / path.name
            if not destination.exists():
                shutil.copyfile(path, destination)
                copied += 1
    return copied


if __name__ == "__main__":
    restoring = sys.argv[1:] == ["--restore"]
    count = restore() if restoring else keep()
    print(f"{'restored' if restoring else 'kept'} {count} run files ({TRACKED})")
