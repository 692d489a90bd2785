"""``course report``: the chapter checks of the executed notebooks, in one table."""

from __future__ import annotations

from pathlib import Path

PAGE_SUFFIXES = (".md", ".html", ".htm")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="collect the chapter checks of executed notebooks into one table",
        description=(
            "Read every notebook that `course run` executed, collect its chapter checks (each "
            "claim of the chapter, the value measured on the model in use and the computed "
            "verdict), list the registered claims that no notebook checked, and write a page "
            "for instructors."
        ),
    )
    parser.add_argument(
        "--run", default=None, help="folder of executed notebooks (default: the latest course run)"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="page to write, .md or .html (default: chapter-checks.html in the run folder)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def latest_run(runs_root: Path | None = None) -> Path:
    """The most recent folder under the work directory's ``runs/`` that holds executed notebooks."""
    from course_lib.paths import work_dir

    runs_root = runs_root or work_dir() / "runs"
    candidates = [p for p in runs_root.glob("*") if p.is_dir() and any(p.glob("*.ipynb"))]
    if not candidates:
        raise FileNotFoundError(f"no executed notebooks under {runs_root}: run `course run` first")
    return max(candidates, key=lambda p: max(nb.stat().st_mtime for nb in p.glob("*.ipynb")))


def write_page(report, path: Path) -> Path:
    """The report as Markdown or HTML, chosen by the file's suffix."""
    if path.suffix.lower() not in PAGE_SUFFIXES:
        raise ValueError(f"--out must end in .md or .html, got {path.name}")
    text = report.markdown() if path.suffix.lower() == ".md" else report.html()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(args) -> int:
    from course_lib.claims import collect_report
    from course_lib.cli import print_json

    run_dir = Path(args.run) if args.run else latest_run()
    if args.out and Path(args.out).suffix.lower() not in PAGE_SUFFIXES:
        raise ValueError(f"--out must end in .md or .html, got {args.out}")
    report = collect_report(run_dir)
    page = write_page(report, Path(args.out) if args.out else run_dir / "chapter-checks.html")
    if args.json:
        print_json(report.as_dict(), args)
    else:
        print(report.table())
        print(f"\npage for instructors: {page}")
    return 0
