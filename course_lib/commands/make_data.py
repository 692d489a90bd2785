"""``course make-data DATASET``: regenerate a bundled dataset with GPAW (resumable)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-data",
        help="label a bundled dataset with DFT (GPAW) and assemble it (hours; resumable)",
        description=(
            "Label the structures of a bundled dataset with GPAW, one result file per structure "
            "under data/dft-runs/DATASET/ (finished ones are skipped on restart), then assemble "
            "data/datasets/DATASET.extxyz with its provenance."
        ),
    )
    from course_lib.dft_recipes import RECIPES

    parser.add_argument("dataset", choices=sorted(RECIPES), help="which dataset to (re)make")
    parallel = parser.add_mutually_exclusive_group()
    parallel.add_argument(
        "--workers", type=int, default=1, help="parallel GPAW processes (1 core each)"
    )
    parallel.add_argument(
        "--scheduler",
        metavar="ADDRESS|local",
        default=None,
        help=(
            "label on a Dask cluster: 'local' (one worker process per core here) or a Dask "
            "scheduler address tcp://HOST:8786 (data/dft-runs must be shared with its workers)"
        ),
    )
    parser.add_argument("--limit", type=int, default=None, help="label only the first K structures")
    parser.add_argument(
        "--assemble-only", action="store_true", help="only gather finished results into the dataset"
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="run again the structures logged as failed"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    import os

    from course_lib.cli import print_json
    from course_lib.dft_recipes import make_dataset

    # This process owns its threads: one core per GPAW worker (the workers inherit it).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    summary = make_dataset(
        args.dataset,
        workers=args.workers,
        limit=args.limit,
        assemble_only=args.assemble_only,
        retry_failed=args.retry_failed,
        scheduler=args.scheduler,
    )
    if args.json:
        print_json(summary, args)
    else:
        for key, value in summary.items():
            print(f"{key:<16} {value}")
    return 0
