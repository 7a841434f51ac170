"""``python -m autograder release [--check]``, ``grade SUBMISSIONS --out grades.csv [--shard I/N]``, ``merge``, ``examples``, ``bench``."""

import argparse
import sys

from autograder import release
from autograder.options import add, check_derived
from maskgit_lab.arguments import Parser


def parser() -> argparse.ArgumentParser:
    """Every option is typed by its domain in autograder/options.py: a bad value is one line and exit 2."""
    from autograder.grader import grade as grading

    p = Parser(prog="python -m autograder", description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="generate notebooks/ from solutions/ with nbgrader")
    rel.add_argument("--check", action="store_true", help="only report whether notebooks/ is in sync (exit 1 if not)")
    gr = commands.add_parser("grade", help="autograde every student folder in SUBMISSIONS, one process each")
    add(gr, "submissions", help="one folder per student (or nbgrader's submitted/<student>/maskgit/)")
    add(gr, "--out", required=True, help="the CSV to write (one row per student and notebook; not in data/)")
    add(gr, "--feedback", help="where feedback HTML and summaries go (default: feedback/ beside --out; not in data/)")
    grading.add_limit_args(gr)
    gr.add_argument("--keep", action="store_true", help="keep the scratch courses (their path is printed) for debugging")
    add(gr, "--shard", help="I/N: grade only the I-th (from 0) of N parts of the class, balanced by notebooks handed in "
        "(default inside a SLURM array task: its task id and count); see autograder/grader/shard.py")
    mg = commands.add_parser("merge", help="merge the shards' CSVs into the class CSV (and the course's gradebook)")
    add(mg, "shard_csvs", metavar="SHARDS", nargs="+", help="every shard's CSV (DIR/shard-*.csv)")
    add(mg, "--out", required=True, help="the class CSV to write (not in data/)")
    add(mg, "--feedback", help="where the shards' feedback folders are gathered (default: feedback/ beside --out; not in data/)")
    add(mg, "--course", help="an nbgrader course directory: import every graded student into its gradebook")
    ex = commands.add_parser("examples", help="write the example submissions (autograder/examples/)")
    add(ex, "--dest", help="where to write them (default autograder/examples/)")
    add(ex, "--verify", metavar="GRADES_CSV", help="instead, check a grades.csv of the examples (and the "
        "misconceptions.md beside it) against the table")
    be = commands.add_parser("bench", help="time every visible check on its reference answer against the per-check budget")
    add(be, "--repeats", default=3, help="runs per check; the fastest counts (default 3)")
    return p


def grade(args) -> int:
    from autograder.grader import grade as grading
    from autograder.grader import shard
    from autograder.grader.feedback import table

    options = dict(jobs=args.jobs, timeout=args.timeout, memory=args.memory, cell_timeout=args.cell_timeout,
                   feedback=args.feedback, source=args.source, keep=args.keep, sandboxed=not args.no_sandbox,
                   figures=not args.no_figures)
    try:
        which = args.shard or shard.from_environment()
        rows = shard.grade_shard(args.submissions, args.out, *which, **options) if which else \
            grading.grade(args.submissions, args.out, **options)
    except shard.ShardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table(rows))
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


def examples(args) -> int:
    from autograder import examples as table

    if args.verify:
        import csv

        from pathlib import Path

        from autograder.grader import misconceptions

        with open(args.verify) as handle:
            problems = table.verify(list(csv.DictReader(handle)), sorted(p.stem for p in release.SOLUTIONS.glob("*.ipynb")))
        problems += table.verify_misconceptions(Path(args.verify).with_name(misconceptions.REPORT))
        print("\n".join(problems) or f"{args.verify}: every example graded as expected")
        return 1 if problems else 0
    for path in table.write(args.dest or table.EXAMPLES):
        print(f"wrote {path}")
    return 0


def release_notebooks(args) -> int:
    if args.check:
        problems = release.check()
        for problem in problems:
            print(problem)
        print("notebooks/ is in sync with solutions/" if not problems else "run `make release` and commit notebooks/")
        return 1 if problems else 0
    for path in release.generate(release.RELEASE):
        print(f"wrote {path.relative_to(release.ROOT)}")
    return 0


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    check_derived(p, args)
    if args.command == "merge":
        from autograder.grader import merge

        return merge.main(args.shard_csvs, args.out, args.feedback, args.course)
    if args.command == "bench":
        from autograder.bench import bench_checks, report

        print(report(bench_checks(args.repeats)))
        return 0
    if args.command == "grade":
        return grade(args)
    if args.command == "examples":
        return examples(args)
    return release_notebooks(args)


if __name__ == "__main__":
    sys.exit(main())
