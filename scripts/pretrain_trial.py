"""One architecture/loss trial for the course models (how course-mini's design was chosen).

usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/pretrain_trial.py NAME EPOCHS [key=value ...]
keys: hidden (irreps, 32x0e), mlp (16x0e), ell (1), inter (2), rmax (5.0), stress (weight, 0),
lr, batch, forces (weight), corpus (comma-joined datasets, mini-mptrj)

Writes course-work/arch/NAME.model with its card and NAME.trial.json: CPU time, parameters, and
the errors on the corpus's held-out relaxations (families it trained on) and on the held-out
families (``pretrain.HELD_OUT_PROTOTYPES``). The trials behind course-mini are listed in
docs/model-architecture.md.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

from course_lib.pretrain import COURSE_MINI_SETTINGS, pretrain


def main(argv: list[str]) -> None:
    name, epochs = argv[0], int(argv[1])
    options = dict(item.split("=", 1) for item in argv[2:])
    architecture = replace(
        COURSE_MINI_SETTINGS.architecture,
        hidden_irreps=options.get("hidden", "32x0e"),
        mlp_irreps=options.get("mlp", "16x0e"),
        max_ell=int(options.get("ell", 1)),
        num_interactions=int(options.get("inter", 2)),
        r_max=float(options.get("rmax", 5.0)),
    )
    overrides = {
        "architecture": architecture,
        "max_epochs": epochs,
        "stress_weight": float(options.get("stress", 0.0)),
        "keep": "best",  # as the trials were run
    }
    for key, field, kind in (("lr", "lr", float), ("batch", "batch_size", int)):
        if key in options:
            overrides[field] = kind(options[key])
    if "forces" in options:
        overrides["forces_weight"] = float(options["forces"])
    folder = Path(__file__).resolve().parents[1] / "course-work" / "arch"
    folder.mkdir(parents=True, exist_ok=True)
    began = time.time()
    result = pretrain(
        options.get("corpus", "mini-mptrj").split(","), out=folder / f"{name}.model", **overrides
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {
        "name": name,
        "args": argv[1:],
        "epochs": epochs,
        "wall_s": time.time() - began,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "n_parameters": result.n_parameters,
        "best_epoch": result.best_epoch,
        "valid": result.validation.as_dict(),
        "unseen": result.prototype_validation.as_dict() if result.prototype_validation else None,
        "history": {
            key: list(getattr(result.history, key))
            for key in ("valid_loss", "valid_energy_mae", "valid_force_mae", "train_loss", "lr")
        },
    }
    (folder / f"{name}.trial.json").write_text(json.dumps(record, indent=1, default=float))
    print(name, result.table())


if __name__ == "__main__":
    main(sys.argv[1:])
