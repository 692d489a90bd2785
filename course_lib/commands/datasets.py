"""``course datasets``: the bundled datasets and their provenance."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("datasets", help="list the bundled datasets")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from course_lib.cli import print_json
    from course_lib.data import list_datasets

    infos = list_datasets()
    if args.json:
        print_json([info.as_dict() for info in infos], args)
        return 0
    if not infos:
        print("no bundled datasets in data/datasets/")
    for info in infos:
        print(
            f"{info.name:<16} {info.n_frames:>6} frames  {'-'.join(info.elements):<40} {info.provenance.get('method', '')}"
        )
    return 0
