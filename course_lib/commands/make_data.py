"""``course make-data DATASET``: regenerate a bundled dataset with GPAW (resumable)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


DATASETS = ("li2o-md", "mgo-rattled", "mini-mptrj", "li-o-phases")  # course_lib.dft_recipes.RECIPES


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
    parser.add_argument("dataset", choices=DATASETS, help="which dataset to (re)make")
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel GPAW processes (1 core each)"
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
    from course_lib.cli import print_json

    summary = make_dataset(
        args.dataset,
        workers=args.workers,
        limit=args.limit,
        assemble_only=args.assemble_only,
        retry_failed=args.retry_failed,
    )
    if args.json:
        print_json(summary)
    else:
        for key, value in summary.items():
            print(f"{key:<16} {value}")
    return 0


def make_dataset(
    name: str,
    *,
    workers: int = 1,
    limit: int | None = None,
    assemble_only: bool = False,
    retry_failed: bool = False,
) -> dict:
    """Label (unless ``assemble_only``) and assemble one bundled dataset; return a summary."""
    import os

    from course_lib.dft import DEFAULT_SETTINGS, label_structures, read_failures, require_gpaw
    from course_lib.dft_recipes import assemble_recipe, get_recipe, load_jobs

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    recipe = get_recipe(name)
    jobs = load_jobs(name)
    summary = {"dataset": name, "jobs": len(jobs)}
    if not assemble_only:
        require_gpaw()
        selected = jobs if limit is None else jobs[:limit]
        report = label_structures(
            selected, recipe.run_dir, DEFAULT_SETTINGS, workers=workers, retry_failed=retry_failed
        )
        summary.update(computed=report.n_computed, skipped=report.n_skipped)
    path, frames = assemble_recipe(name, jobs=jobs)
    failures = read_failures(recipe.run_dir)
    summary.update(
        finished=sum((recipe.run_dir / f"{job.key}.extxyz").exists() for job in jobs),
        failed=len(failures),
        frames=len(frames),
        file=str(path),
    )
    return summary
