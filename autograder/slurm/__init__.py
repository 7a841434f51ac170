"""Grading a class as a SLURM job array: what an instructor submits.

``python -m autograder.slurm SUBMISSIONS --shards N --dir DIR [--course COURSE] [grade options]``
submits ``grade.sbatch`` as an array of N tasks (one shard each, autograder/grader/shard.py) and
``merge.sbatch`` with ``--dependency=afterok`` on the array (autograder/grader/merge.py), then prints
both job ids. A task that fails writes at once to DIR/failed-shards.txt which shard failed, its log, and
the commands that grade it again and merge (grade.sbatch). Each task's CPUs, memory and time limit come
from ``grade``'s own limits:

- CPUs: 2 per student graded at once (``-j``): its two lanes of notebooks (``student.LANES``), the
  judges beside them;
- memory: the per-student cap (``--memory``) for each of them, plus 2048 MB for the grader;
- time: the template course (``TEMPLATE_MINUTES``) plus, per round of ``-j`` students in the
  largest shard, the per-student wall-time limit (``--timeout``).
"""

import argparse
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

from autograder.grader import grade as grading
from autograder.grader import shard
from autograder.options import add
from autograder.student.limits import DEFAULT_MEMORY, DEFAULT_TIMEOUT
from maskgit_lab.arguments import Parser

HERE = Path(__file__).resolve().parent
GRADE_SCRIPT, MERGE_SCRIPT = HERE / "grade.sbatch", HERE / "merge.sbatch"
FAILURES = "failed-shards.txt"  # in DIR: a failed task writes there at once which shard failed and how to re-grade it
TEMPLATE_MINUTES = 10  # nbgrader generate_assignment for the template course, and start-up, with room to spare
GRADER_MB = 2048  # the grading process itself, beside its students


def resources(students: int, jobs: int = 1, timeout: float = DEFAULT_TIMEOUT, memory: int = DEFAULT_MEMORY) -> dict:
    """sbatch's per-task ``--cpus-per-task``, ``--mem`` (MB) and ``--time`` (minutes) for a shard of ``students``."""
    rounds = math.ceil(students / jobs)
    return {"cpus-per-task": 2 * jobs, "mem": f"{jobs * (memory or DEFAULT_MEMORY) + GRADER_MB}M",
            "time": TEMPLATE_MINUTES + rounds * math.ceil(timeout / 60)}


def sbatch(args: list, env: dict = None) -> str:
    """Submit; return the job id (``sbatch --parsable`` prints ``id`` or ``id;cluster``)."""
    done = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"sbatch failed: {done.stderr.strip()}")
    return done.stdout.strip().split(";")[0]


def parser() -> argparse.ArgumentParser:
    """Every option is typed by its domain in autograder/options.py: a bad value is one line and exit 2."""
    p = Parser(prog="python -m autograder.slurm", description=__doc__.split("\n\n")[1],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    add(p, "submissions", help="one folder per student, on a file system every node sees")
    add(p, "--shards", required=True, help="array tasks: the class is cut into this many shards (≥ 1)")
    add(p, "--dir", required=True, help="where the shards, logs and the class CSV go (shared file system; not in data/)")
    add(p, "--out", help="the class CSV (default DIR/grades.csv; not in data/)")
    add(p, "--course", help="an nbgrader course directory whose gradebook the merge fills")
    grading.add_limit_args(p, jobs_help="students graded at once in each task (default 1)")
    for name in ("cpus-per-task", "mem", "time"):
        add(p, f"--{name}", help=f"override the derived sbatch --{name} of each array task")
    add(p, "--sbatch", action="append", default=[], metavar="OPTION",
        help="an extra sbatch option for both jobs, e.g. --sbatch=--partition=short (repeatable)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    submissions, folder, source = args.submissions.resolve(), args.dir.resolve(), args.source.resolve()
    out = (args.out or folder / "grades.csv").resolve()
    found = grading.find_submissions(submissions, source)
    cut = shard.partition({s: len(f) for s, f in found.items()}, args.shards)
    largest = max([list(cut.values()).count(i) for i in range(args.shards)] + [0])
    limits = resources(largest, args.jobs, args.timeout, args.memory)
    limits.update({k: v for k in limits if (v := getattr(args, k.replace("-", "_"))) is not None})
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    grade_options = grading.limit_options(args)
    course = ["--course", str(args.course.resolve())] if args.course else []
    # what merge.sbatch runs, for the report of a failed task (grade.sbatch): sbatch hands the environment on
    merging = f"{shlex.join([sys.executable, '-m', 'autograder', 'merge'])} {shlex.quote(str(folder))}/shard-*.csv " \
              f"{shlex.join(['--out', str(out), *course])}"
    array = sbatch([f"--array=0-{args.shards - 1}", *[f"--{k}={v}" for k, v in limits.items()], f"--chdir={folder}",
                    f"--output={logs}/grade-%A_%a.out", *args.sbatch,
                    str(GRADE_SCRIPT), sys.executable, str(submissions), str(folder), *grade_options],
                   env=dict(os.environ, MASKGIT_MERGE=merging))
    merge = sbatch([f"--dependency=afterok:{array}", "--kill-on-invalid-dep=yes", f"--chdir={folder}",
                    f"--output={logs}/merge-%j.out", *args.sbatch, str(MERGE_SCRIPT), sys.executable, str(folder), str(out), *course])
    print(f"array job {array}: {len(cut)} student(s) in {args.shards} shard(s) (at most {largest} per task), each task "
          f"{limits['cpus-per-task']} CPUs, {limits['mem']}, {limits['time']} min; writes {folder}/shard-<task>.csv")
    print(f"merge job {merge}: runs when every task of {array} succeeded; writes {out}"
          + (f" and {args.course}'s gradebook" if args.course else ""))
    print(f"watch: squeue -j {array},{merge}   logs: {logs}/")
    print(f"if a task fails, SLURM cancels the merge, and the task writes at once to {folder / FAILURES} which shard "
          "failed, its log, the command that grades that shard again and the merge to run after it")
    return 0

