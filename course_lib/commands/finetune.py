"""``course finetune``: one training regime on a dataset, with test and forgetting errors."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="few-shot / full fine-tuning or training from scratch on a dataset",
        description=(
            "Train on N structures of the dataset's training split, test on its held-out "
            "split, save the model atomically, and report errors (meV/atom, meV/Å)."
        ),
    )
    parser.add_argument("--model", default="auto", help="registered model or MACE file")
    parser.add_argument("--dataset", required=True, help="bundled dataset name or .extxyz path")
    parser.add_argument("--regime", choices=("few-shot", "full", "scratch"), default="few-shot")
    parser.add_argument("--n", type=int, required=True, help="training structures")
    parser.add_argument(
        "--out",
        help="model file to write, or an existing folder to write it into "
        "(default: the work directory)",
    )
    parser.add_argument("--trainable", choices=("readouts", "last-layer"), default="readouts")
    parser.add_argument("--solver", choices=("gradient", "closed-form"), default="gradient")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--energy-only", action="store_true", help="leave forces out of the loss")
    parser.add_argument("--keep-e0s", action="store_true", help="keep the model's E0s")
    parser.add_argument("--forgetting-dataset", help="pre-training corpus to measure forgetting on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from course_lib.cli import print_result
    from course_lib.data import check_output_file
    from course_lib.finetune import regime_frames, run_regime
    from course_lib.models import pretraining_corpus, resolve_model_name
    from course_lib.paths import work_dir
    from course_lib.training import LossWeights

    model = resolve_model_name(args.model)
    default_name = f"{Path(model).stem}-{Path(args.dataset).stem}-{args.regime}-n{args.n}.model"
    out = Path(args.out) if args.out else work_dir("finetune") / default_name
    if out.is_dir():
        out = out / default_name
    check_output_file(out)  # before any work: a trained model must not be lost to a bad path
    start = _checked_start(model, args)
    corpus = args.forgetting_dataset or pretraining_corpus(model)
    frames = regime_frames(
        args.dataset,
        n=args.n,
        seed=args.seed,
        corpus=corpus if args.regime != "scratch" else None,
    )
    result = run_regime(
        start,
        frames.train,
        frames.test,
        regime=args.regime,
        out=out,
        pretraining_frames=frames.pretraining,
        trainable=args.trainable,
        solver=args.solver,
        e0s="keep" if args.keep_e0s else "refit",
        forces_weight=0.0 if args.energy_only else LossWeights.forces,
        max_epochs=args.epochs,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
        progress=not args.json,
    )
    print_result(result, args)
    return 0


def _checked_start(model: str, args):
    """The starting model, loaded once, after the dataset's own problems were reported.

    The whole file is read and validated first (labels, elements the model
    lacks), so a small or broken file reports what is wrong with it rather
    than an empty train/test split.
    """
    from course_lib.data import read_dataset
    from course_lib.finetune import check_elements, load_model

    frames = read_dataset(args.dataset, require_pbc=False)
    start = load_model(model, dtype=args.dtype)
    check_elements(start, frames, regime=args.regime)
    return start
