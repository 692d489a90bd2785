"""``course flowchart``: the chapter's zero-shot-or-fine-tune protocol on a dataset."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "flowchart",
        help="run the zero-shot vs fine-tuning decision protocol on a dataset",
        description=(
            "Lock the thresholds (course.toml unless given here), measure zero-shot parity on "
            "~20 snapshots, check the convex hull on a phases dataset when given, run "
            "the fine-tune the graph asks for and re-check it on the held-out test set. Prints "
            "the path through the chapter's graph and the numbers behind each decision."
        ),
    )
    parser.add_argument("--model", default="auto", help="registered model or MACE file")
    parser.add_argument("--dataset", required=True, help="bundled dataset name or .extxyz path")
    parser.add_argument("--phases", help="competing phases (info['phase']) for the hull check")
    parser.add_argument("--n-parity", type=int, default=20, help="zero-shot parity snapshots")
    parser.add_argument("--n-train", type=int, default=200, help="few-shot training structures")
    parser.add_argument(
        "--solver", choices=("closed-form", "gradient"), default="closed-form", help="few-shot"
    )
    for name, unit in (
        ("zero-shot-force-mae", "meV/Å"),
        ("tuned-energy-mae", "meV/atom"),
        ("tuned-force-mae", "meV/Å"),
    ):
        parser.add_argument(
            f"--{name}", type=float, help=f"threshold ({unit}); course.toml's if unset"
        )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def thresholds_from_args(args):
    """course.toml's thresholds with the ones given on the command line replaced."""
    from dataclasses import replace

    from course_lib.flowchart import Thresholds

    given = {
        "zero_shot_force_mae_meV_per_A": args.zero_shot_force_mae,
        "tuned_energy_mae_meV_per_atom": args.tuned_energy_mae,
        "tuned_force_mae_meV_per_A": args.tuned_force_mae,
    }
    return replace(Thresholds.from_config(), **{k: v for k, v in given.items() if v is not None})


def run(args) -> int:
    from course_lib import data as ds
    from course_lib.cli import print_json
    from course_lib.flowchart import run_protocol
    from course_lib.models import resolve_model_name

    thresholds = thresholds_from_args(args).lock()  # fixed before any data are read
    frames = ds.read_dataset(args.dataset, require_pbc=False)
    phases = ds.read_dataset(args.phases, require_pbc=False) if args.phases else None
    report = run_protocol(
        resolve_model_name(args.model),
        frames,
        thresholds=thresholds,
        phases=phases,
        dataset=str(args.dataset),
        n_parity=args.n_parity,
        n_train=args.n_train,
        seed=args.seed,
        train_settings={"solver": args.solver},
    )
    if args.json:
        print_json(report.as_dict(), args)
    else:
        print(report.table())
    return 0
