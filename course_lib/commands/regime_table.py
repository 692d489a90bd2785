"""``course regime-table``: the shipped converged curves of every regime side by side."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "regime-table",
        help="regime x N errors of the shipped curves, α, and the first N below the thresholds",
        description=(
            "Read the shipped full-mode learning curves of MODEL on DATASET (few-shot closed "
            "form and freeze-5, full, scratch; no training) and print their test errors at the "
            "chapter's sizes, the fitted force α of each, and the smallest measured N whose mean "
            "error is below course.toml's post-tuning thresholds, or why none is."
        ),
    )
    parser.add_argument("--model", default="course-mini", help="registered model or MACE file")
    parser.add_argument("--dataset", default="li2o-md", help="bundled dataset name")
    parser.add_argument("--energy-only", action="store_true", help="the energy-only curves")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from course_lib import learning_curve as lc
    from course_lib.cli import print_json
    from course_lib.flowchart import Thresholds

    found = lc.shipped_curves(args.model, args.dataset, energy_only=args.energy_only)
    if not found.curves:
        raise ValueError(
            f"no shipped curves of {args.model} on {args.dataset}: "
            + "; ".join(f"{label}: {why}" for label, why in found.missing.items())
        )
    thresholds = Thresholds.from_config()
    table = lc.regime_table(
        found.curves,
        force_target_meV_per_A=thresholds.tuned_force_mae_meV_per_A,
        energy_target_meV_per_atom=thresholds.tuned_energy_mae_meV_per_atom,
        max_epochs=found.max_epochs,
    )
    if args.json:
        print_json(
            table.as_dict()
            | {"commands": {k: v["command"] for k, v in found.provenance.items()}}
            | {"missing": found.missing},
            args,
        )
        return 0
    print(found.summary())
    print(table.table())
    return 0
