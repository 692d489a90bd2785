"""``course coverage`` and ``course coverage-reference``: the chapter's coverage diagnostic.

course coverage --target li2o-md --reference mini-mptrj --json
course coverage-reference --source mptrj --frames 10000 --seed 0 --out mptrj-10k.npz
course coverage --target li2o-md --reference mptrj-10k.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

BINNING = (
    ("--cutoff", "pair-distance cutoff, Å (default 6.0)"),
    ("--bin-width", "distance bin width, Å (default 0.05)"),
    ("--bond-cutoff", "bond length for angles, Å (default 3.0)"),
    ("--angle-bin-width", "angle bin width, degrees (default 2.0)"),
)


def add_parser(subparsers) -> None:
    check = subparsers.add_parser(
        "coverage",
        help="flag target distances/angles the reference (training set) never shows",
        description="Compare pair-distance and bond-angle histograms of a target with a reference.",
    )
    check.add_argument("--target", required=True, help="dataset name, structure file or .npz")
    check.add_argument(
        "--reference",
        default="mini-mptrj",
        help="dataset name, extxyz, .npz from coverage-reference, or 'mptrj' (default mini-mptrj)",
    )
    check.add_argument(
        "--min-target-share",
        type=float,
        default=1e-3,
        help="flag ranges holding at least this share of the target's distances/angles",
    )
    check.add_argument(
        "--max-reference-fraction",
        type=float,
        default=1e-4,
        help="a bin is uncovered where the reference has at most this fraction of the channel",
    )
    _add_sampling(check)
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check.set_defaults(func=run_coverage)

    build = subparsers.add_parser(
        "coverage-reference",
        help="build reference histograms (.npz) from mini-mptrj, real MPtrj or a dataset",
    )
    build.add_argument("--source", default="mini-mptrj", help="mini-mptrj, mptrj, or a dataset")
    build.add_argument("--out", help="output .npz (default: course-work/coverage/...)")
    _add_sampling(build)
    build.add_argument("--json", action="store_true", help="print JSON instead of a table")
    build.set_defaults(func=run_reference)


def _add_sampling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=10_000, help="reference frames to sample")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    for flag, text in BINNING:
        parser.add_argument(flag, type=float, default=None, help=text)


def run_coverage(args) -> int:
    from course_lib.cli import print_json
    from course_lib.coverage import compare_coverage
    from course_lib.data import read_structures

    # Read the target first: a bad target file fails before minutes of reference histograms.
    target_frames = None if args.target.endswith(".npz") else read_structures(args.target)
    reference = _histograms(args.reference, args, role="reference")
    target = _histograms(
        args.target, args, role="target", settings=reference.settings, frames=target_frames
    )
    report = compare_coverage(
        target,
        reference,
        min_target_share=args.min_target_share,
        max_reference_fraction=args.max_reference_fraction,
    )
    if args.json:
        print_json(report.as_dict(), args)
    else:
        print(report)
    return 0


def run_reference(args) -> int:
    from course_lib.cli import print_json
    from course_lib.paths import work_dir

    hist = _histograms(args.source, args, role="reference")
    name = Path(args.source).stem
    if hist.metadata.get("fallback_for"):
        name = f"{name}-offline-fallback"
    out = args.out or work_dir("coverage") / f"reference-{name}-n{args.frames}-seed{args.seed}.npz"
    path = hist.save(out)
    summary = {"path": str(path), "source": hist.source, "n_frames": hist.n_frames, **hist.metadata}
    if args.json:
        print_json(summary, args)
    else:
        print(f"wrote {path}\n{hist}")
    return 0


def _histograms(spec: str, args, *, role: str, settings=None, frames=None):
    """Histograms of a .npz, 'mptrj', a bundled dataset or a structure file (or its ``frames``)."""
    from course_lib.coverage import CoverageHistograms, HistogramSettings, compute_histograms

    flags = {
        name: getattr(args, name)
        for name in ("cutoff", "bin_width", "bond_cutoff", "angle_bin_width")
        if getattr(args, name) is not None
    }
    if spec.endswith(".npz"):
        hist = CoverageHistograms.load(spec)
        if flags:
            raise ValueError(f"the {role} {spec} fixes the binning; drop {sorted(flags)}")
        return hist
    settings = settings or HistogramSettings(**flags)
    if role == "reference":
        from course_lib.coverage_reference import reference_histograms

        return reference_histograms(
            spec, n_frames=args.frames, seed=args.seed, settings=settings, progress=spec == "mptrj"
        )
    from course_lib.data import read_structures

    frames = read_structures(spec) if frames is None else frames
    return compute_histograms(frames, settings=settings, source=spec)
