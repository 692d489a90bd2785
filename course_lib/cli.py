"""The ``course`` command line: one subcommand per task of the course.

Each subcommand lives next to the code it drives: a module listed in
``COMMAND_MODULES`` defines ``add_parser(subparsers)`` which registers its
subcommand(s) with ``set_defaults(func=...)``. Modules are imported only
here, so ``course models`` does not pay for importing torch unless it must.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import math
import sys

COMMAND_MODULES = (
    "course_lib.commands.models",
    "course_lib.commands.datasets",
    "course_lib.commands.evaluate",
    "course_lib.commands.notebooks",
    "course_lib.commands.instructor",
    "course_lib.commands.finetune",
    "course_lib.commands.pretrain",
    "course_lib.commands.make_data",
    "course_lib.commands.coverage",
    "course_lib.commands.learning_curve",
    "course_lib.commands.regime_table",
    "course_lib.commands.flowchart",
    "course_lib.commands.md",
    "course_lib.commands.strategies",
    "course_lib.commands.export_mace_train",
    "course_lib.commands.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="Foundation-model MLIP course: run the notebooks, inspect models and data.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def print_json(payload, args: argparse.Namespace | None = None) -> None:
    """Print ``payload`` as indented JSON: the ``--json`` output of every command.

    Non-finite numbers become null (strict JSON, which ``jq`` and browsers
    parse). It goes to ``args.json_out``, the real stdout that ``main`` kept aside
    before sending everything else printed meanwhile to stderr (mace-torch
    announces missing cuequivariance when imported, CHGNet prints banners,
    which would break ``course ... --json | jq``); without ``args``, to stdout.
    """
    stream = getattr(args, "json_out", None) or sys.stdout
    json.dump(strict_json(payload), stream, indent=2, default=str, allow_nan=False)
    stream.write("\n")


def strict_json(value):
    """``value`` with every non-finite float (NaN, ±inf) as None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy scalars and arrays
        return strict_json(value.tolist())
    return value


def print_result(result, args: argparse.Namespace) -> None:
    """A command's result: ``result.as_dict()`` as JSON with ``--json``, else ``result.table()``."""
    if getattr(args, "json", False):
        print_json(result.as_dict(), args)
    else:
        print(result.table())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    quiet = contextlib.nullcontext()
    if getattr(args, "json", False):
        args.json_out = sys.stdout
        quiet = contextlib.redirect_stdout(sys.stderr)
    try:
        with quiet:
            return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"course {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
