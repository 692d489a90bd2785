"""Where the DFT data generation stands: per dataset, structures finished of planned,
frames, CPU time, splits; the corpus's element coverage and li2o-md's temperature split.

Usage: .venv/bin/python scripts/dft_report.py
"""

from __future__ import annotations

import json
from collections import Counter

from course_lib.data import read_dataset, read_provenance
from course_lib.paths import DATASETS_DIR

NAMES = ("li2o-md", "li2o-model-md", "mgo-rattled", "li-o-phases", "mini-mptrj", "mini-omat")


def main() -> None:
    total_cpu = 0.0
    for name in NAMES:
        path = DATASETS_DIR / f"{name}.extxyz"
        if not path.exists():
            print(f"{name:<12} not assembled yet")
            continue
        provenance = read_provenance(path)
        frames = read_dataset(path)
        total_cpu += provenance["cpu_seconds"]
        print(
            f"{name:<12} {provenance['structures_finished']:>4}/{provenance['structures_planned']}"
            f" structures, {len(frames):>5} frames, {provenance['structures_failed']} failed,"
            f" {provenance['cpu_seconds'] / 3600:.2f} CPU h"
        )
        print(f"{'':<12} {json.dumps(provenance.get('frames_by_group', {}))}")
        if name == "mini-mptrj":
            elements = sorted({s for atoms in frames for s in atoms.get_chemical_symbols()})
            relaxations = Counter(atoms.info["source_id"] for atoms in frames)
            print(f"{'':<12} {len(elements)} elements: {' '.join(elements)}")
            print(f"{'':<12} {len(relaxations)} relaxations")
        if name == "li2o-md":
            split = Counter(
                (float(atoms.info["temperature_K"]), atoms.info["split"]) for atoms in frames
            )
            print(f"{'':<12} temperature/split: {dict(sorted(split.items()))}")
    print(f"total DFT CPU time so far: {total_cpu / 3600:.2f} h")


if __name__ == "__main__":
    main()
