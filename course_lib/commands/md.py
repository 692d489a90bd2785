"""``course md``: MD with a model and its stability report."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from course_lib.md import ENSEMBLES, md_structures

    parser = subparsers.add_parser(
        "md",
        help="run MD with a model and report whether it stays physical",
        description=(
            "Seeded MD of a built-in structure with a registered model (or a MACE file); "
            "reports the shortest distance per species pair against a limit, the temperature, "
            "the NVE energy drift, and a stable/unstable verdict with the step where it failed. "
            f"Structures: {'; '.join(f'{k}: {v}' for k, v in md_structures().items())}."
        ),
    )
    parser.add_argument("--model", default="auto", help="registered name, 'auto' or a MACE file")
    parser.add_argument("--structure", default="li2o", help="one of: " + ", ".join(md_structures()))
    parser.add_argument("--temperature", type=float, required=True, help="K")
    parser.add_argument("--steps", type=int, required=True, help="MD steps")
    parser.add_argument("--ensemble", choices=ENSEMBLES, default="langevin")
    parser.add_argument("--timestep", type=float, default=1.0, help="fs (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-every", type=int, default=10, help="steps between samples")
    parser.add_argument("--out", help="write the sampled frames to this .extxyz file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    shipped = parser.add_mutually_exclusive_group()
    shipped.add_argument(
        "--shipped", action="store_true", help="show the shipped run of these settings (no MD)"
    )
    shipped.add_argument(
        "--ship", action="store_true", help="run, then store the result as the shipped reference"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys
    import time
    from pathlib import Path

    from course_lib.cli import print_result
    from course_lib.md import MDInputError, md_key, md_structure, run_md
    from course_lib.shipped import command_provenance, print_shipped, ship, shipped

    if args.out and Path(args.out).is_dir():
        raise MDInputError(f"--out {args.out} is a directory; give a file name ending in .extxyz")
    settings = {  # what identifies the run: the shipped record's key and the run itself
        "temperature_K": args.temperature,
        "steps": args.steps,
        "ensemble": args.ensemble,
        "timestep_fs": args.timestep,
        "seed": args.seed,
        "sample_every": args.sample_every,
    }
    key = md_key(args.model, args.structure, **settings)
    if args.shipped:
        print_shipped(shipped("md", key), args)
        return 0
    began = time.process_time()
    atoms = md_structure(args.structure, temperature_K=args.temperature)
    result = run_md(
        args.model,
        atoms,
        **settings,
        structure=args.structure,
        progress=not args.json,
    )
    if args.out:
        import ase.io

        from course_lib.data import atomic_output

        with atomic_output(args.out) as tmp:
            ase.io.write(tmp, result.frames, format="extxyz")
    if args.ship:
        prov = command_provenance(args, cpu_s=time.process_time() - began)
        payload = result.as_dict() | {"table": result.table()}
        print(f"shipped as {ship('md', key, payload, prov)}", file=sys.stderr)
    print_result(result, args)
    return 0
