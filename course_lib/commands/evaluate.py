"""``course evaluate``: zero-shot errors of a model on a dataset."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="zero-shot errors of a model on a dataset")
    parser.add_argument("--model", default="auto", help="registered name, 'auto' or a MACE file")
    parser.add_argument("--dataset", required=True, help="bundled dataset name or .extxyz path")
    parser.add_argument(
        "--split",
        choices=("all", "train", "test"),
        default="all",
        help="evaluate on this fixed split only (frames with info['split'])",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N frames only")
    parser.add_argument(
        "--by",
        metavar="KEY",
        help="also report aligned errors per value of info[KEY], e.g. temperature_K",
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args) -> int:
    from course_lib.cli import print_json
    from course_lib.data import read_dataset
    from course_lib.zero_shot import evaluate

    frames = read_dataset(args.dataset)
    if args.split != "all":
        frames = [atoms for atoms in frames if atoms.info.get("split") == args.split]
    frames = frames[: args.limit] if args.limit else frames
    result = evaluate(args.model, frames, dataset=str(args.dataset), progress=not args.json)
    groups = result.metrics_by(args.by) if args.by else {}
    if args.json:
        payload = result.as_dict()
        if args.by:
            payload["aligned_by"] = {
                "key": args.by,
                "groups": {str(value): m.as_dict() for value, m in groups.items()},
            }
        print_json(payload, args)
        return 0
    print(result.table())
    for value, metrics in groups.items():
        print(f"\n{args.by} = {value} (aligned)\n{metrics.table()}")
    return 0
