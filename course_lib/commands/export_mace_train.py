"""``course export-mace-train``: the files and command of a real ``mace_run_train`` fine-tune."""

from __future__ import annotations

STRATEGIES = ("replay", "naive", "frozen", "lora")  # course_lib.mace_export.STRATEGY_FLAGS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-mace-train",
        help="write train/valid/test/pre-training files and a ready mace_run_train command",
        description=(
            "Export a fine-tuning run for mace-torch's own trainer: the dataset's training "
            "split (validation held out) and test split, the pre-training corpus for replay "
            "(multihead fine-tuning), and train.sh with the foundation model, REF_* keys, "
            "estimated E0s, the strategy's flags, the seed and a torchrun form for GPU nodes."
        ),
    )
    parser.add_argument("--model", default="course-mini", help="registered model or MACE file")
    parser.add_argument("--dataset", required=True, help="bundled dataset name or .extxyz path")
    parser.add_argument("--out", required=True, help="a new (or empty) folder")
    parser.add_argument("--strategy", choices=STRATEGIES, default="replay")
    parser.add_argument("--n", type=int, default=None, help="training structures (default: all)")
    parser.add_argument("--corpus", help="pre-training corpus (default: the model's)")
    parser.add_argument("--num-samples-pt", type=int, default=None, help="replayed frames cap")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from course_lib.cli import print_result
    from course_lib.mace_export import export_mace_train

    export = export_mace_train(
        args.model,
        args.dataset,
        args.out,
        strategy=args.strategy,
        n=args.n,
        corpus=args.corpus,
        num_samples_pt=args.num_samples_pt,
        max_epochs=args.epochs,
        seed=args.seed,
        device=args.device,
    )
    print_result(export, args)
    return 0
