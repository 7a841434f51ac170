"""The judge: ``python -m autograder.judge …``, started by the student's process once per notebook.

autograder/judge/judge.py computes every visible and hidden check (hidden.py) outside the notebook
and draws the feedback figure (figures.py); the student's functions run in its worker (worker.py),
which it talks to over the wire (wire.py). This file holds the judge's command line, read and
written here only.
"""

import sys
from pathlib import Path
from typing import NamedTuple, Optional

MODULE = __name__  # what the student's process runs with ``python -m``
SANDBOX = "MASKGIT_LAB_SANDBOX"  # in the judge's environment: the sandbox command (a JSON list) its worker runs under


class Arguments(NamedTuple):
    submitted: Path  # the student's notebook
    source: Path  # its source notebook
    report: Path  # where the judge writes its records.Report
    guard_log: Path  # where the worker's guard logs what it refused
    scratch: Path  # the one folder the worker may write
    cell_timeout: int  # seconds per cell and per check (0: none)
    figures: Optional[Path] = None  # where the feedback figure goes (none without)
    shared: Optional[Path] = None  # the reference's figures, drawn once per grading run


def command(args: Arguments) -> list:
    """The judge's command line for ``args``."""
    line = [sys.executable, "-m", MODULE, *(str(a) for a in args[:6])]
    if args.figures is not None:
        line += [str(args.figures)] + ([str(args.shared)] if args.shared else [])
    return line


def parse(argv: list) -> Arguments:
    """The inverse of :func:`command`, from the arguments after ``-m autograder.judge``."""
    submitted, source, report, guard_log, scratch, cell_timeout = argv[:6]
    paths = [Path(a) for a in argv[6:8]]
    return Arguments(Path(submitted), Path(source), Path(report), Path(guard_log), Path(scratch), int(cell_timeout), *paths)
