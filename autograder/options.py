"""The grader's argument validator: the domain of every option of ``python -m autograder`` (``grade``,
``merge``, ``examples``, ``release``, ``bench``) and of ``python -m autograder.slurm``, in ``DOMAINS``, as
``maskgit_lab.cli.DOMAINS`` holds the course's.

Every option that takes a value is added with :func:`add`, which gives it the type ``DOMAINS`` names for
its destination (an option without a domain is a ``KeyError``). The parsers are
``maskgit_lab.arguments.Parser``: a bad value is one line naming the fix and exit code 2, before any
student is read or any file written. The paths a command writes are checked for their kind, for being
writable, and for lying outside the shipped ``data/`` (which only ``maskgit_lab``'s own commands change), by
the course's own types; :func:`check_derived` does the same for the one path derived from another (the
feedback folder beside --out).
"""

import argparse
import re
from pathlib import Path

from maskgit_lab.arguments import existing_dir, existing_file, file_to_write, folder_to_write, integer, number, writable


def source_folder(text: str) -> Path:
    """The source notebooks: a folder holding at least one ``*.ipynb``."""
    path = existing_dir(text)
    if not any(path.glob("*.ipynb")):
        raise argparse.ArgumentTypeError(f"{path} holds no notebooks (*.ipynb); give the folder of the source "
                                         f"notebooks, e.g. solutions/")
    return path


def course_folder(text: str) -> Path:
    """An nbgrader course directory whose gradebook the merge fills: it holds nbgrader_config.py and is writable."""
    path = existing_dir(text)
    if not (path / "nbgrader_config.py").is_file():
        raise argparse.ArgumentTypeError(f"{path} is not an nbgrader course (no nbgrader_config.py); give the course "
                                         f"directory, where `nbgrader generate_assignment` was run")
    return writable(path)


def shard_of_class(text: str) -> tuple:
    """``I/N``: the I-th (from 0) of N shards."""
    from autograder.grader import shard  # it imports the grader, which adds its options with this module

    try:
        return shard.parse(text)
    except shard.ShardError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def pattern(regex: str, what: str):
    """Text matching ``regex`` in full; ``what`` says what it is, with examples."""

    def parse(text: str) -> str:
        if not re.fullmatch(regex, text):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return text

    return parse


POSITIVE = integer(1)
CSV_OUT = file_to_write("grades.csv", "write it elsewhere, e.g. grades/grades.csv")
FEEDBACK = folder_to_write("write it elsewhere, e.g. grades/feedback")
# The domain of every option that takes a value, by its destination: a new option must be given one here.
DOMAINS = {
    # grade and python -m autograder.slurm
    "submissions": existing_dir, "out": CSV_OUT, "feedback": FEEDBACK, "shard": shard_of_class,
    "jobs": POSITIVE, "timeout": number(0, low_open=True), "memory": integer(0), "cell_timeout": POSITIVE,
    "source": source_folder,
    # merge
    "shard_csvs": existing_file, "course": course_folder,
    # examples, bench
    "dest": folder_to_write("write them elsewhere, e.g. artifacts/examples"), "verify": existing_file, "repeats": POSITIVE,
    # python -m autograder.slurm
    "shards": POSITIVE, "dir": folder_to_write("write it elsewhere, e.g. grades/slurm"), "cpus_per_task": POSITIVE,
    "mem": pattern(r"[1-9][0-9]*[KMGT]?", "sbatch's --mem: a whole number of MB, or with a unit K, M, G or T (e.g. 10G)"),
    "time": pattern(r"([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}", "sbatch's --time: minutes, MM:SS, HH:MM:SS, D-HH, "
                                                           "D-HH:MM or D-HH:MM:SS (e.g. 90 or 1-12:00:00)"),
    "sbatch": pattern(r"--?[A-Za-z].*", "an sbatch option starting with - (e.g. --sbatch=--partition=short)"),
}


def add(parser, *flags, **kwargs):
    """``parser.add_argument``, typed by ``DOMAINS`` unless it is a switch (``store_true``: no value)."""
    action = parser.add_argument(*flags, **kwargs)
    if action.nargs != 0:
        if action.dest not in DOMAINS:
            raise KeyError(f"option {action.dest!r} of {parser.prog} has no domain; add one to autograder.options.DOMAINS")
        action.type = DOMAINS[action.dest]
    return action


def check_derived(parser, args):
    """Check the feedback folder that defaults to feedback/ beside --out, as --feedback would have been."""
    if getattr(args, "feedback", "") is None:
        beside = args.out.parent / "feedback"
        try:
            FEEDBACK(str(beside))
        except argparse.ArgumentTypeError as err:
            parser.error(f"the feedback folder beside --out (--feedback's default): {err}")
