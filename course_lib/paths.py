"""Where the course keeps its bundled files and where it writes its outputs."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("COURSE_DATA_DIR", REPO_ROOT / "data"))
DATASETS_DIR = DATA_DIR / "datasets"
MODELS_DIR = DATA_DIR / "models"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def work_dir(*parts: str) -> Path:
    """Return (and create) a folder under the course's work directory.

    Everything the course computes goes here, never into ``data/`` or the
    notebooks: ``$COURSE_WORK_DIR`` if set, else ``course-work/`` at the
    repository root (git-ignored).
    """
    root = Path(os.environ.get("COURSE_WORK_DIR", REPO_ROOT / "course-work"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
