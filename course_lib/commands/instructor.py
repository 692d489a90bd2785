"""``course student``, ``course instructor`` and ``course doctor``."""

from __future__ import annotations

from pathlib import Path


def add_parser(subparsers) -> None:
    student = subparsers.add_parser(
        "student", help="write student notebooks (no solutions, no outputs)"
    )
    student.add_argument("outdir", type=Path)
    student.set_defaults(func=run_student)

    instructor = subparsers.add_parser("instructor", help="write executed notebooks with solutions")
    instructor.add_argument("outdir", type=Path)
    instructor.add_argument("--mode", choices=("fast", "full"), default=None)
    instructor.set_defaults(func=run_instructor)

    doctor = subparsers.add_parser("doctor", help="check this environment for the course")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=run_doctor)


def run_student(args) -> int:
    from course_lib.instructor import write_student_notebooks
    from course_lib.runner import course_notebooks

    written = write_student_notebooks(course_notebooks(), args.outdir)
    print(f"{len(written)} student notebooks in {args.outdir}")
    return 0


def run_instructor(args) -> int:
    from course_lib.config import load_config
    from course_lib.runner import course_notebooks, run_notebooks, summary_table

    runs = run_notebooks(
        course_notebooks(), mode=args.mode or load_config().mode, out_dir=args.outdir
    )
    print(summary_table(runs))
    return 0 if all(run.ok for run in runs) else 1


def run_doctor(args) -> int:
    from course_lib.cli import print_json
    from course_lib.instructor import environment_checks

    checks = environment_checks()
    if args.json:
        print_json([check.__dict__ for check in checks], args)
    else:
        for check in checks:
            print(f"{'ok ' if check.ok else 'NO '} {check.name:<24} {check.detail}")
    return 0 if all(check.ok for check in checks) else 1
