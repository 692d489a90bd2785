"""``course pretrain``: rebuild course-mini (or a rehearsal of it) from the mini-MPtrj corpus."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="train course-mini from scratch on the bundled mini-MPtrj corpus",
        description=(
            "Train the course's small foundation model from scratch (seeded, deterministic) "
            "and write it with its model card. The default output is the work directory; "
            "pass --out data/models/course-mini.model to replace the shipped file (then "
            "update its sha256 pin in course_lib/models.py)."
        ),
    )
    parser.add_argument(
        "--corpus",
        default="mini-mptrj",
        help="dataset name or .extxyz path; several joined by commas (mini-mptrj,mini-omat)",
    )
    parser.add_argument("--out", help="model file (default: <work dir>/pretrain/course-mini.model)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="training epochs")
    budget.add_argument(
        "--steps",
        type=int,
        help=(
            "training budget in gradient steps (default: course-mini's); the epochs follow from "
            "the corpus size, so models on different corpora get the same number of updates"
        ),
    )
    parser.add_argument("--limit", type=int, help="train on this many frames only (a rehearsal)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    parser.set_defaults(func=run)


def run(args) -> int:
    from course_lib.cli import print_result
    from course_lib.paths import work_dir
    from course_lib.pretrain import COURSE_MINI_STEPS, pretrain

    budget = {"steps": COURSE_MINI_STEPS if args.steps is None else args.steps}
    if args.epochs is not None:
        budget = {"max_epochs": args.epochs}
    if min(budget.values()) < 1:
        raise ValueError(f"--epochs and --steps must be at least 1, got {budget}")
    out = args.out or work_dir("pretrain") / "course-mini.model"
    result = pretrain(
        [part.strip() for part in args.corpus.split(",") if part.strip()],
        out=out,
        **budget,
        seed=args.seed,
        limit=args.limit,
        progress=not args.json,
    )
    print_result(result, args)
    return 0
