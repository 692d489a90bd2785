"""``course lab`` and ``course run``: the course's main job."""

from __future__ import annotations

import os
import subprocess
import sys


def add_parser(subparsers) -> None:
    lab = subparsers.add_parser("lab", help="open JupyterLab on the course notebooks")
    lab.add_argument("--port", type=int, default=8888)
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    lab.set_defaults(func=run_lab)

    run = subparsers.add_parser("run", help="execute notebooks headless and summarise them")
    run.add_argument("notebooks", nargs="*", help="names, numbers (02) or paths; default: all")
    run.add_argument(
        "--mode",
        choices=("fast", "full"),
        default=None,
        help="fast classroom mode or full computation (default: course.toml)",
    )
    run.add_argument("--out", default=None, help="folder for executed copies (default: work dir)")
    run.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=run_headless)


def run_lab(args) -> int:
    from course_lib.paths import NOTEBOOKS_DIR

    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--notebook-dir={NOTEBOOKS_DIR}",
        f"--port={args.port}",
    ]
    if args.no_browser:
        command.append("--no-browser")
    return subprocess.call(command, env=os.environ.copy())


def run_headless(args) -> int:
    from pathlib import Path

    from course_lib.cli import print_json
    from course_lib.config import load_config
    from course_lib.runner import course_notebooks, find_notebook, run_notebooks, summary_table

    paths = [find_notebook(n) for n in args.notebooks] or course_notebooks()
    if not paths:
        raise FileNotFoundError("no notebooks found in notebooks/")
    mode = args.mode or load_config().mode
    runs = run_notebooks(
        paths, mode=mode, out_dir=Path(args.out) if args.out else None, timeout_s=args.timeout
    )
    if args.json:
        print_json([run.__dict__ for run in runs], args)
    else:
        print(summary_table(runs))
        print(f"executed copies and summary.json in {Path(runs[0].output).parent}")
    return 0 if all(run.ok for run in runs) else 1
