"""``course flowchart``: the chapter's zero-shot-or-fine-tune protocol on a dataset."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from course_lib.flowchart import FULL_EPOCHS

    parser = subparsers.add_parser(
        "flowchart",
        help="run the zero-shot vs fine-tuning decision protocol on a dataset",
        description=(
            "Lock the thresholds (course.toml unless given here), measure zero-shot parity on "
            "~20 snapshots, check the convex hull on a phases dataset when given (and say why "
            "it fails), run the few-shot fine-tune the graph asks for and re-check it on the "
            "held-out test set; where the path reaches 'Full', run a full fine-tune (replaying "
            "pre-training frames when the model has a corpus) and re-check that too. Prints the "
            "path through the graph and the numbers behind each decision."
        ),
    )
    parser.add_argument("--model", default="auto", help="registered model or MACE file")
    parser.add_argument("--dataset", required=True, help="bundled dataset name or .extxyz path")
    parser.add_argument("--phases", help="competing phases (info['phase']) for the hull check")
    parser.add_argument("--n-parity", type=int, default=20, help="zero-shot parity snapshots")
    parser.add_argument(
        "--n-train", type=int, default=200, help="training structures of the fine-tunes"
    )
    parser.add_argument(
        "--solver", choices=("closed-form", "gradient"), default="closed-form", help="few-shot"
    )
    parser.add_argument(
        "--full-epochs",
        type=int,
        default=FULL_EPOCHS,
        help=f"epochs of the full fine-tune, where the path reaches it (default {FULL_EPOCHS})",
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
    shipped = parser.add_mutually_exclusive_group()
    shipped.add_argument(
        "--shipped", action="store_true", help="show the shipped protocol report (no training)"
    )
    shipped.add_argument(
        "--ship", action="store_true", help="run, then store the report as the shipped reference"
    )
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


def check_budgets(args) -> None:
    """Raise ``ValueError`` naming the option when a count is below 1."""
    for option, value in (
        ("--n-parity", args.n_parity),
        ("--n-train", args.n_train),
        ("--full-epochs", args.full_epochs),
    ):
        if value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")


def run(args) -> int:
    import shlex
    import sys
    import time

    from course_lib import data as ds
    from course_lib.cli import print_json
    from course_lib.flowchart import protocol_key, run_protocol
    from course_lib.models import resolve_model_name
    from course_lib.shipped import print_shipped, provenance, ship, shipped

    check_budgets(args)
    thresholds = thresholds_from_args(args).lock()  # fixed before any data are read
    model = resolve_model_name(args.model)
    key = protocol_key(model, args.dataset, args.phases, args.n_train, args.full_epochs)
    if args.shipped:
        print_shipped(shipped("flowchart", key), args)
        return 0
    frames = ds.read_dataset(args.dataset, require_pbc=False)
    phases = ds.read_dataset(args.phases, require_pbc=False) if args.phases else None
    began = time.process_time()
    report = run_protocol(
        model,
        frames,
        thresholds=thresholds,
        phases=phases,
        dataset=str(args.dataset),
        n_parity=args.n_parity,
        n_train=args.n_train,
        seed=args.seed,
        train_settings={"solver": args.solver},
        full_settings={"max_epochs": args.full_epochs, "progress": not args.json},
    )
    payload = report.as_dict()
    if args.ship:
        made = provenance(
            command="course " + shlex.join(sys.argv[1:]),
            model=model,
            datasets=[args.dataset, *([args.phases] if args.phases else [])],
            cpu_s=time.process_time() - began,
        )
        path = ship("flowchart", key, payload | {"table": report.table()}, made)
        print(f"shipped as {path}", file=sys.stderr)
    if args.json:
        print_json(payload, args)
    else:
        print(report.table())
    return 0
