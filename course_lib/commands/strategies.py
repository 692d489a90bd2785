"""``course strategies``: fine-tuning strategies side by side (target, forgetting, wall, MD, cost)."""

from __future__ import annotations

STRATEGY_NAMES = (
    "naive",
    "frozen",
    "closed-form",
    "lora",
    "replay",
    "l2-pull",
)  # strategies.STRATEGIES


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "strategies",
        help="compare fine-tuning strategies: target errors, forgetting, repulsive wall, MD",
        description=(
            "Fine-tune a model on N structures of a dataset with each strategy (naive, frozen "
            "= mace --freeze 5, closed-form readouts, LoRA, replay of pre-training frames, L2 "
            "pull), the same split and budget, and report target errors, forgetting on the "
            "pre-training corpus's held-out frames, the repulsive-wall check, MD stability and "
            "CPU seconds."
        ),
    )
    parser.add_argument("--model", default="course-mini", help="registered model or MACE file")
    parser.add_argument("--dataset", required=True, help="bundled dataset name or .extxyz path")
    parser.add_argument("--n", type=int, required=True, help="training structures")
    parser.add_argument(
        "--strategies",
        type=lambda text: tuple(part.strip() for part in text.split(",") if part.strip()),
        default=STRATEGY_NAMES,
        help="comma-separated subset of: " + ", ".join(STRATEGY_NAMES),
    )
    parser.add_argument("--corpus", help="pre-training corpus (default: the model's)")
    parser.add_argument(
        "--wall", help="compressed-pair dataset for the wall check (default: li2o-pairs for Li2O)"
    )
    parser.add_argument("--epochs", type=int, default=30, help="epoch budget of every strategy")
    parser.add_argument(
        "--stage-two",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="the last EPOCHS of the budget are mace's stage two (energy weight 1000, forces 100)",
    )
    parser.add_argument("--md-steps", type=int, default=200, help="MD steps of the stability check")
    parser.add_argument("--md-temperature", type=float, default=1200.0, help="K")
    parser.add_argument("--seed", type=int, default=0)
    shipped = parser.add_mutually_exclusive_group()
    shipped.add_argument(
        "--shipped", action="store_true", help="show the shipped full-mode comparison (no training)"
    )
    shipped.add_argument(
        "--ship", action="store_true", help="run, then store the result as the shipped reference"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time

    from course_lib.cli import print_result
    from course_lib.shipped import command_provenance, print_shipped, ship, shipped
    from course_lib.strategies import comparison_key, run_strategies

    if args.n < 1 or args.epochs < 1 or args.md_steps < 1:
        raise ValueError("--n, --epochs and --md-steps must be at least 1")
    if not 0 <= args.stage_two < args.epochs:
        raise ValueError(f"--stage-two {args.stage_two} must lie between 0 and --epochs")
    key = comparison_key(args.model, args.dataset, args.n)
    if args.shipped:
        print_shipped(shipped("strategies", key), args)
        return 0
    began = time.process_time()
    result = run_strategies(
        args.model,
        args.dataset,
        n=args.n,
        names=args.strategies,
        corpus=args.corpus,
        wall_frames=_wall_frames(args.wall, args.dataset),
        md_temperature_K=args.md_temperature,
        md_steps=args.md_steps,
        seed=args.seed,
        progress=not args.json,
        max_epochs=args.epochs,
        patience=args.epochs,
        **stage_two_settings(args.stage_two),
    )
    if args.ship:
        prov = command_provenance(args, cpu_s=time.process_time() - began)
        payload = result.as_dict() | {"table": result.table()}
        print(f"shipped as {ship('strategies', key, payload, prov)}", file=sys.stderr)
    print_result(result, args)
    return 0


def stage_two_settings(epochs: int) -> dict:
    """``FineTuneSettings`` fields of mace's stage two over the last ``epochs`` (0: none)."""
    from course_lib.training import MACE_STAGE_TWO_ENERGY_WEIGHT

    if not epochs:
        return {}
    return {"stage_two_epochs": epochs, "stage_two_energy_weight": MACE_STAGE_TWO_ENERGY_WEIGHT}


def _wall_frames(wall: str | None, dataset: str):
    from course_lib import data as ds

    if wall is None and dataset != "li2o-md":
        return None
    name = wall or "li2o-pairs"
    try:
        return ds.read_dataset(name, require_pbc=False)
    except FileNotFoundError:
        if wall is not None:
            raise
        return None  # the DFT wall points are not made yet: no wall check
