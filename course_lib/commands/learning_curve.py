"""``course learning-curve``: test MAE against training-set size, and the fit A·N^-α + B."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "learning-curve",
        help="train a regime at growing N x seeds and fit MAE(N) = A·N^-α + B",
        description=(
            "Train on N structures of the dataset's training split for each N and seed, test "
            "every run on the same held-out split, and fit MAE(N) = A·N^-α + B (meV/Å for "
            "forces, meV/atom for energies). Finished runs are cached in the work directory, "
            "so a repeated or interrupted command resumes."
        ),
    )
    parser.add_argument(
        "--model", default=None, help="registered model or MACE file (optional for scratch)"
    )
    parser.add_argument("--dataset", required=True, help="bundled dataset name or .extxyz path")
    parser.add_argument("--regime", choices=("few-shot", "full", "scratch"), required=True)
    parser.add_argument(
        "--sizes",
        type=comma_separated(int, "--sizes"),
        default=None,
        help="comma-separated training sizes (default 10,20,50,100,200,500, capped by the pool)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per size (default 3)")
    parser.add_argument("--energy-only", action="store_true", help="leave forces out of the loss")
    parser.add_argument("--solver", choices=("gradient", "closed-form"), default="gradient")
    parser.add_argument(
        "--trainable",
        choices=("readouts", "last-layer", "freeze-5"),
        default="readouts",
        help="few-shot gradient: what trains (freeze-5: mace-torch's --freeze 5, products+readouts)",
    )
    parser.add_argument("--epochs", type=int, default=50, help="most epochs per run")
    parser.add_argument(
        "--patience", type=int, help="epochs without validation gain that stop a run"
    )
    parser.add_argument(
        "--valid",
        type=int,
        default=0,
        metavar="N",
        help=(
            "hold N frames of the training pool out as one fixed early-stopping set for every "
            "run (default 0: each run splits a tenth off its own N)"
        ),
    )
    parser.add_argument(
        "--min-epoch-frames",
        type=int,
        default=0,
        metavar="M",
        help="small training sets are repeated so that an epoch sees at least M frames",
    )
    parser.add_argument("--lr", type=float, help="learning rate (default: the regime's)")
    parser.add_argument(
        "--stage-two",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="end with up to EPOCHS epochs of mace's stage two (energy weight 1000, forces 100)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="precision of training (float32: about twice as fast on a CPU)",
    )
    parser.add_argument(
        "--lrs",
        type=comma_separated(float, "--lrs"),
        help="sweep these learning rates first (needs --valid) and use the best on validation",
    )
    parser.add_argument(
        "--sweep-n", type=int, default=50, help="training structures of the lr sweep (default 50)"
    )
    parser.add_argument("--target", type=float, help="target MAE: how many structures reach it")
    parser.add_argument("--metric", choices=("force", "energy"), default="force")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits")
    parser.add_argument("--no-cache", action="store_true", help="retrain runs already stored")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS|local",
        default=None,
        help=(
            "train the (N, seed) runs on a Dask cluster: 'local' (one worker process per core "
            "here) or a Dask scheduler address tcp://HOST:8786 (the work directory must be "
            "shared with its workers)"
        ),
    )
    parser.add_argument(
        "--save-models",
        metavar="DIR",
        help="save each gradient run's trained model in DIR (named after its cached result)",
    )
    shipped = parser.add_mutually_exclusive_group()
    shipped.add_argument(
        "--shipped",
        action="store_true",
        help="show the converged full-mode curve shipped with the course (no training)",
    )
    shipped.add_argument(
        "--ship",
        action="store_true",
        help="run, then store the curve as the course's shipped reference (with provenance)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time

    from course_lib import learning_curve as lc
    from course_lib.cli import print_json
    from course_lib.commands.strategies import stage_two_settings
    from course_lib.scaling_law import LearningCurveInputError
    from course_lib.shipped import command_provenance, ship, shipped

    if args.model is None and args.regime != "scratch":
        raise ValueError(f"--regime {args.regime} starts from a pre-trained model; pass --model")
    if args.lrs and not args.valid:
        raise ValueError("--lrs chooses the rate on validation frames: give --valid N (e.g. 20)")
    if args.valid < 0 or args.min_epoch_frames < 0 or args.sweep_n < 1:
        raise ValueError("--valid and --min-epoch-frames must be >= 0, --sweep-n >= 1")
    settings = {"max_epochs": args.epochs, "solver": args.solver}
    if args.regime == "few-shot":
        settings["trainable"] = args.trainable
    if args.patience is not None:
        settings["patience"] = args.patience
    if args.min_epoch_frames:
        settings["min_epoch_frames"] = args.min_epoch_frames
    if args.stage_two:
        if not 0 < args.stage_two < args.epochs:
            raise ValueError(f"--stage-two {args.stage_two} must lie between 0 and --epochs")
        settings |= stage_two_settings(args.stage_two)
    if args.lr is not None:
        settings["lr"] = args.lr
    if args.dtype != "float64":
        settings["dtype"] = args.dtype
    key = lc.shipped_key(
        args.model,
        args.dataset,
        regime=args.regime,
        energy_only=args.energy_only,
        solver=args.solver,
        trainable=settings.get("trainable"),
    )
    provenance = None
    if args.shipped:
        record = shipped("learning-curve", key)
        curve = lc.LearningCurve.from_dict(record.payload["curve"])
        provenance = record.provenance
    else:
        pool, valid, test = lc.curve_frames(args.dataset, n_valid=args.valid)
        began = time.process_time()
        sweep = None
        if args.lrs:
            sweep = lc.sweep_learning_rate(
                args.model,
                pool,
                valid,
                regime=args.regime,
                lrs=args.lrs,
                n_train=args.sweep_n,
                energy_only=args.energy_only,
                progress=not args.json,
                **{k: v for k, v in settings.items() if k != "lr"},
            )
            settings["lr"] = sweep.best_lr
            if not args.json:
                print(sweep.table())
        curve = lc.run_learning_curve(
            args.model,
            pool,
            test,
            regime=args.regime,
            sizes=args.sizes or lc.DEFAULT_SIZES,
            seeds=args.seeds,
            energy_only=args.energy_only,
            valid_frames=valid,
            cache=not args.no_cache,
            progress=not args.json,
            scheduler=args.scheduler,
            models_dir=args.save_models,
            **settings,
        )
        if args.ship:
            provenance = command_provenance(args, cpu_s=time.process_time() - began) | {
                "training_time_s": round(curve.wall_time_s, 1),
                "settings": settings,
                "n_valid": len(valid) if valid else 0,
                "lr_sweep": sweep.as_dict() if sweep else None,
            }
            path = ship("learning-curve", key, {"curve": curve.as_dict()}, provenance)
            print(f"shipped as {path}", file=sys.stderr)
    fit = fit_error = estimate = None
    try:
        fit = curve.fit(args.metric, n_bootstrap=args.bootstrap)
    except LearningCurveInputError as err:
        fit_error = str(err)
    if fit is not None and args.target is not None:
        estimate = fit.n_for(args.target)
    if args.json:
        print_json(
            {
                "dataset": str(args.dataset),
                "curve": curve.as_dict(),
                "fit": fit.as_dict() if fit else None,
                "fit_error": fit_error,
                "target": estimate.as_dict() if estimate else None,
                "shipped": provenance,
            },
            args,
        )
        return 0
    if provenance is not None:
        print(f"shipped reference result, made by: {provenance['command']}")
    print(curve.table())
    print(fit.table() if fit else f"no fit: {fit_error}")
    if estimate is not None:
        print(estimate.message())
    return 0


def comma_separated(kind: type, option: str):
    """An argparse ``type`` for ``option``: comma-separated values of ``kind`` as a tuple."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            import argparse

            noun = "integers" if kind is int else "numbers"
            raise argparse.ArgumentTypeError(
                f"{option} takes comma-separated {noun}, got {text!r}"
            ) from None

    return parse
