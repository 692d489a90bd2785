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
    "course_lib.commands.flowchart",
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


_json_stream = None  # the real stdout while a --json command runs (see json_stdout)


def print_json(payload) -> None:
    """Print ``payload`` as indented JSON on stdout (the ``--json`` output of every command)."""
    stream = _json_stream or sys.stdout
    json.dump(payload, stream, indent=2, default=str)
    stream.write("\n")


def print_result(result, *, as_json: bool) -> None:
    """A command's result: ``result.as_dict()`` as JSON, or ``result.table()`` for people."""
    if as_json:
        print_json(result.as_dict())
    else:
        print(result.table())


@contextlib.contextmanager
def json_stdout():
    """Keep stdout for ``print_json`` alone: anything else printed meanwhile goes to stderr.

    Libraries print on stdout (mace-torch announces missing cuequivariance when
    imported, CHGNet prints banners), which would break ``course ... --json | jq``.
    """
    global _json_stream
    _json_stream = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _json_stream = None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    quiet = json_stdout() if getattr(args, "json", False) else contextlib.nullcontext()
    try:
        with quiet:
            return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"course {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
