"""One student's process: ``python -m autograder.student JOB.json``, started by the grader per student.

autograder/student/student.py grades the student in a scratch course of its own; tamper.py reads
each submission against its source; guard.py, sandbox.py and limits.py are the walls and limits
that every process running the student's code is given.
"""

import sys
from pathlib import Path

MODULE = __name__  # what the grader runs with ``python -m``


def command(job: Path) -> list:
    """The command line of the process that grades the student of ``job`` (a records.Job in JSON)."""
    return [sys.executable, "-m", MODULE, str(job)]
