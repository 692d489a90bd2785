"""The numbers of the off-equilibrium experiment (issue #13): course-mini, its twin
course-mini-omat and CHGNet, each where it is available.

1. Zero-shot on the fixed test split of li2o-md and on li2o-model-md (course-mini's own MD),
   by temperature: force MAE, judged and aligned energy MAE, DFT |F|, hot/cold ratios.
2. Held out by prototype: both course models on the *same* frames (the corpus's held-out
   frames of seen families, whole unseen families, mini-omat's test split), beside each card.
3. MD at 1200 K, 3 ps: the shipped runs (``course md ... --ship``).
4. DFT CPU hours of the datasets the experiment made.

Usage: .venv/bin/python scripts/off_equilibrium_report.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json

from course_lib import data as ds
from course_lib import md, models, shipped
from course_lib.off_equilibrium import compare_corpora
from course_lib.pretrain import HELD_OUT_PROTOTYPES, prototype_of, read_model_card
from course_lib.zero_shot import error_metrics, predict

CANDIDATES = ("course-mini", "course-mini-omat", "chgnet-0.3.0")
HOT_K, MD_STEPS = 1200.0, 3000


def zero_shot_tables(names: list[str]) -> dict:
    out = {}
    test = ds.train_test_split(ds.read_dataset("li2o-md"))[1]
    for dataset, frames in (("li2o-md", test), ("li2o-model-md", ds.read_dataset("li2o-model-md"))):
        comparison = compare_corpora(names, frames, dataset=dataset)
        print(comparison.table(), end="\n\n")
        out[dataset] = comparison.as_dict()
        if "course-mini-omat" in names:
            gain = comparison.improvement("course-mini", "course-mini-omat", HOT_K)
            print(f"{dataset}, {HOT_K:g} K: course-mini / course-mini-omat error: {gain}\n")
            out[dataset]["improvement_hot"] = gain
    return out


def prototype_tables(names: list[str]) -> dict:
    families = set(HELD_OUT_PROTOTYPES)
    corpus = ds.read_dataset("mini-mptrj")
    held_out = ds.train_test_split(corpus)[1]
    sets = {
        "mini-mptrj held out, seen families": [
            a for a in held_out if prototype_of(a) not in families
        ],
        "mini-mptrj unseen families": [a for a in corpus if prototype_of(a) in families],
    }
    try:
        omat = ds.read_dataset("mini-omat")
        omat_test = ds.train_test_split(omat)[1]
        sets["mini-omat test, seen families"] = [
            a for a in omat_test if prototype_of(a) not in families
        ]
        sets["mini-omat unseen families"] = [a for a in omat if prototype_of(a) in families]
    except FileNotFoundError:
        print("mini-omat is not assembled yet: its rows are left out")
    out = {}
    for name in names:
        out[name] = {}
        for label, frames in sets.items():
            m = error_metrics(frames, predict(name, frames, compute_stress=False))
            out[name][label] = m.as_dict()
            print(
                f"{name:>17} | {label:<36} | {m.n_frames:>4} frames | energy "
                f"{m.energy_mae_meV_per_atom:6.1f} meV/atom | force {m.force_mae_meV_per_A:6.1f} meV/Å"
            )
        card = read_model_card(name).result
        print(
            f"{name:>17} | card: held out {card.validation.force_mae_meV_per_A:.1f} meV/Å on "
            f"{card.corpus}; unseen families {card.prototype_validation.force_mae_meV_per_A:.1f} "
            f"meV/Å ({card.n_prototype_frames} frames); {card.wall_time_s / 60:.1f} min"
        )
    return out


def md_runs(names: list[str]) -> dict:
    out = {}
    for name in names:
        key = md.md_key(name, "li2o", temperature_K=HOT_K, steps=MD_STEPS)
        try:
            record = shipped.shipped("md", key)
        except shipped.NotShippedError:
            print(
                f"{name}: not shipped; run: course md --model {name} --structure li2o "
                f"--temperature {HOT_K:g} --steps {MD_STEPS} --ship"
            )
            continue
        run = md.MDResult.from_dict(record.payload)
        out[name] = {k: record.payload[k] for k in ("verdict", "reason", "closest_approach_A")}
        print(run.table(), end="\n\n")
    return out


def dft_hours() -> dict:
    out = {}
    for name in ("mini-omat", "li2o-md", "li2o-model-md"):
        try:
            provenance = ds.read_provenance(ds.dataset_path(name))
        except FileNotFoundError:
            continue
        out[name] = {
            "n_frames": provenance.get("n_frames"),
            "cpu_hours": round(provenance.get("cpu_seconds", 0) / 3600, 2),
            "failed": provenance.get("structures_failed"),
        }
    print(json.dumps(out, indent=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args()
    names = [n for n in CANDIDATES if n in models.REGISTRY and models.is_available(n)]
    print(f"models: {', '.join(names)}\n")
    report = {
        "zero_shot": zero_shot_tables(names),
        "prototypes": prototype_tables([n for n in names if n.startswith("course-")]),
        "md_1200K": md_runs(names),
        "dft": dft_hours(),
    }
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
