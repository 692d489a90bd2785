"""``course models`` and ``course fetch``: the model registry."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    listing = subparsers.add_parser("models", help="list the registered foundation models")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_list)

    fetch = subparsers.add_parser("fetch", help="download a model's weights into the cache")
    fetch.add_argument("model", help="registered model name, e.g. mace-mp-0-small")
    fetch.add_argument("--timeout", type=float, default=30.0, help="network timeout, s")
    fetch.set_defaults(func=run_fetch)


def run_list(args) -> int:
    from course_lib.cli import print_json
    from course_lib.models import list_models, resolve_model_name

    statuses = list_models()
    if args.json:
        print_json([status.as_dict() for status in statuses], args)
        return 0
    for status in statuses:
        size = f"{status.size_mb:.1f} MB" if status.size_mb else "-"
        flag = "offline: yes" if status.available else "offline: no "
        print(f"{status.name:<18} {status.kind:<7} {flag}  {size:>9}  {status.location}")
    try:
        print(f"\nmodel = 'auto' resolves to: {resolve_model_name('auto')}")
    except RuntimeError as err:
        print(f"\nmodel = 'auto': {err}")
    return 0


def run_fetch(args) -> int:
    from course_lib.models import fetch, sha256_of

    path = fetch(args.model, timeout=args.timeout)
    print(f"{args.model}: {path} (sha256 {sha256_of(path)})")
    return 0
