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
    parser.add_argument("--epochs", type=int, help="training epochs (default: course-mini's)")
    parser.add_argument("--limit", type=int, help="train on this many frames only (a rehearsal)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    parser.set_defaults(func=run)


def run(args) -> int:
    from course_lib.cli import print_result
    from course_lib.paths import work_dir
    from course_lib.pretrain import COURSE_MINI_EPOCHS, pretrain

    epochs = COURSE_MINI_EPOCHS if args.epochs is None else args.epochs
    if epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    out = args.out or work_dir("pretrain") / "course-mini.model"
    result = pretrain(
        [part.strip() for part in args.corpus.split(",") if part.strip()],
        out=out,
        max_epochs=epochs,
        seed=args.seed,
        limit=args.limit,
        progress=not args.json,
    )
    print_result(result, args)
    return 0
