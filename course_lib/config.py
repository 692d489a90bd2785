"""The course configuration: ``course.toml`` at the repository root.

Instructors edit that one file (model, mode, datasets, thresholds); single
keys can be overridden by ``COURSE_MODE`` and ``COURSE_MODEL``, and
``COURSE_CONFIG`` points at a different file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from course_lib.paths import REPO_ROOT

MODES = ("fast", "full")

#: The roles of ``[datasets]`` and their defaults (bundled dataset names). ``course.toml`` may
#: point any role at another dataset; a role it leaves out keeps its default, and a role this
#: table does not know is an error (a misspelt key would otherwise be ignored).
DATASET_ROLES = {
    "target": "li2o-md",  # the Li case study: Li2O MD snapshots at two temperatures
    "target_own_md": "li2o-model-md",  # the same, from the course model's own MD
    "in_distribution": "mgo-rattled",  # notebook 08's in-distribution target
    "in_distribution_phases": "mgo-phases",  # its competing phases, for the hull check
    "corpus": "mini-mptrj",  # course-mini's pre-training corpus
    "phases": "li-o-phases",  # the target's competing phases, for the hull check
}


@dataclass(frozen=True)
class CourseConfig:
    model: str = "auto"
    mode: str = "fast"
    seed: int = 0
    datasets: dict = field(default_factory=lambda: dict(DATASET_ROLES))
    thresholds: dict = field(default_factory=dict)
    # [models.sha256]: checksums an instructor pinned for model files (name -> sha256)
    model_pins: dict = field(default_factory=dict)
    source: Path | None = None

    @property
    def fast(self) -> bool:
        return self.mode == "fast"


def config_path() -> Path:
    return Path(os.environ.get("COURSE_CONFIG", REPO_ROOT / "course.toml"))


def load_config(path: str | os.PathLike | None = None) -> CourseConfig:
    """Read the course configuration, applying environment overrides."""
    path = Path(path) if path is not None else config_path()
    raw = tomllib.loads(path.read_text()) if path.exists() else {}
    course = raw.get("course", {})
    mode = os.environ.get("COURSE_MODE", course.get("mode", "fast"))
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r} (from {path} or COURSE_MODE)")
    datasets = dict(raw.get("datasets", {}))
    unknown = sorted(set(datasets) - set(DATASET_ROLES))
    if unknown:
        raise ValueError(
            f"[datasets] in {path}: unknown role(s) {unknown}; the roles are "
            f"{', '.join(DATASET_ROLES)}"
        )
    return CourseConfig(
        model=os.environ.get("COURSE_MODEL", course.get("model", "auto")),
        mode=mode,
        seed=int(course.get("seed", 0)),
        datasets=DATASET_ROLES | datasets,
        thresholds=dict(raw.get("thresholds", {})),
        model_pins=dict(raw.get("models", {}).get("sha256", {})),
        source=path if path.exists() else None,
    )
