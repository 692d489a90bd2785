"""Build a fine-tuned target model from the shipped learning curves (course-mini-li2o).

The regime is chosen from the shipped energy + forces curves (``target_model.choose_regime``,
a rule fixed before they existed); the model is the curve's own run at N and seed 0, as saved
by ``course learning-curve --save-models`` (retrained with its recorded settings on the same
frames where that file is missing), checked against that run's test error, measured per
temperature and run as Langevin MD at 300 and 1200 K. The card is written next to the model.
Register the file in ``course_lib/models.py`` with the sha256 it prints.

Usage: OMP_NUM_THREADS=1 .venv/bin/python scripts/make_target_model.py \
           [--model course-mini] [--dataset li2o-md] [--n 500] [--out data/models/course-mini-li2o.model]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

from course_lib import data as ds
from course_lib import learning_curve as lc
from course_lib import md
from course_lib import target_model as tm
from course_lib.finetune import FineTuneSettings, load_model, run_regime
from course_lib.models import model_file
from course_lib.training import LossWeights
from course_lib.zero_shot import evaluate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="course-mini")
parser.add_argument("--dataset", default="li2o-md")
parser.add_argument("--n", type=int, default=500)
parser.add_argument("--out", default="data/models/course-mini-li2o.model")
parser.add_argument("--models-dir", default="course-work/curve-models", help="--save-models DIR")
args = parser.parse_args()
began = time.process_time()
out = Path(args.out)

reference = lc.shipped_curves(args.model, args.dataset)
candidates = {
    label: reference.curves[label]
    for label in ("few-shot (closed form)", "full", "scratch")
    if label in reference.curves
}
choice = tm.choose_regime(candidates, args.n)
print(f"chosen: {choice.label}, {choice.reason}")
prov = reference.provenance[choice.label]
_, regime, solver, trainable = next(r for r in lc.SHIPPED_REGIMES if r[0] == choice.label)
recorded = dict(prov["settings"])
pool, valid, test = lc.curve_frames(args.dataset, n_valid=prov.get("n_valid", 0))
train = ds.subset(pool, args.n, seed=0)
curve_point = next(
    p for p in candidates[choice.label].points if p.n_train == args.n and p.seed == 0
)
saved = Path(args.models_dir) / curve_point.model_file if curve_point.model_file else None
if saved is not None and saved.is_file():
    shutil.copyfile(saved, out)
    print(f"the curve's own run: {saved}")
else:
    print(f"no saved model of the curve's run ({saved}): training it again")
    settings = FineTuneSettings(
        regime=regime, **recorded, forces_weight=LossWeights.forces, seed=0, progress=True
    )
    run_regime(args.model, train, test, valid_frames=valid, settings=settings, out=out)
model = load_model(out)
measured = evaluate(model, test).raw
reproduces = {
    "curve_force_mae_meV_per_A": curve_point.force_mae_meV_per_A,
    "force_mae_meV_per_A": measured.force_mae_meV_per_A,
    "curve_energy_mae_meV_per_atom": curve_point.energy_mae_meV_per_atom,
    "energy_mae_meV_per_atom": measured.energy_mae_meV_per_atom,
}
print(f"test errors of the file: {reproduces}")
by_temperature = tm.errors_by_temperature(model, test)
runs = []
for temperature in tm.MD_TEMPERATURES_K:
    run = md.run_md(
        out,
        md.md_structure("li2o", temperature_K=temperature),
        temperature_K=temperature,
        steps=tm.MD_STEPS,
        seed=0,
        sample_every=50,
        structure="li2o",
        progress=True,
    )
    print(run.table())
    runs.append(tm.md_summary(run))

card = tm.TargetModelCard(
    name=out.stem,
    base_model=args.model,
    base_sha256=ds.sha256_of(model_file(args.model)),
    dataset=args.dataset,
    dataset_sha256=ds.sha256_of(ds.dataset_path(args.dataset)),
    regime=choice.label,
    choice=choice.reason,
    n_train=len(train),
    n_valid=len(valid or []),
    seed=0,
    settings={**recorded, "regime": regime, "solver": solver, "trainable": trainable},
    test={
        "n_frames": len(test),
        "energy_mae_meV_per_atom": measured.energy_mae_meV_per_atom,
        "force_mae_meV_per_A": measured.force_mae_meV_per_A,
        "force_rmse_meV_per_A": measured.force_rmse_meV_per_A,
        "force_slope": measured.force_slope,
    },
    test_by_temperature=by_temperature,
    reproduces=reproduces,
    md=runs,
    sha256=ds.sha256_of(out),
    n_parameters=sum(p.numel() for p in model.parameters()),
    size_bytes=out.stat().st_size,
    command="python scripts/make_target_model.py " + shlex.join(sys.argv[1:]),
    cpu_s=time.process_time() - began,
)
print(f"card: {tm.write_card(card, out)}")
print(f"sha256 {card.sha256}")
