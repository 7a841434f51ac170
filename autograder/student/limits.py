"""Every limit a student's code runs under, set in this one place: time, memory, size.

The grader's defaults (``--timeout``, ``--memory``, ``--cell-timeout``: autograder/README.md,
"Choosing --cell-timeout"), the size of a submission, how long nbclient waits for an interrupted
cell, how long the judge may take, the feedback figures' own limits and the largest message on the
wire. :func:`cap_memory` and :func:`deadline` apply them inside a process; the OS-level walls are
autograder/student/sandbox.py and autograder/student/guard.py.
"""

import contextlib
import resource
import signal
import time

DEFAULT_TIMEOUT = 3600  # seconds per student, all notebooks together: a correct one took ~900 s at load 19 on 2 cores
DEFAULT_MEMORY = 8192  # MB of address space per student; importing torch alone takes ~3.3 GB of it
DEFAULT_CELL_TIMEOUT = 600  # nbgrader's Execute.timeout, as in autograder/nbgrader_config.py (README: choosing it)
MAX_NOTEBOOK_BYTES = 20 * 2**20  # a giant submitted file once took an nbgrader server down (#874)
# Seconds nbclient waits for an interrupted cell to go idle before it gives up on the notebook
# (nbgrader's default, 4 s, is shorter than a loaded machine takes to leave a torch call).
IOPUB_TIMEOUT = 60
FIGURE_SECONDS = 120  # the student's half of one figure: a few model passes on four images, far less than any cell
FIGURE_MEMORY_MB = 1024  # address space the worker may add while a figure calls the student's functions
MAX_MESSAGE = 64 * 2**20  # bytes: one answer on the wire larger than this is malformed, not graded


def judge_seconds(cell_timeout: int) -> int:
    """How long the student's process waits for a judge: every cell and check has ``cell_timeout``, the figure its own."""
    return max(120, 4 * cell_timeout)


def held_bytes() -> int:
    """The address space this process holds now."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def cap_memory(megabytes: int, above_held: bool = False) -> None:
    """Cap this process's address space (``RLIMIT_AS``, inherited by what it starts) at ``megabytes`` MB, or at what it
    holds now plus ``megabytes`` with ``above_held``; 0 sets no cap. Soft and hard limit alike, so code that runs after
    this cannot raise it again, and never above a cap already set."""
    if not megabytes:
        return
    limit = megabytes * 2**20 + (held_bytes() if above_held else 0)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class CellTimeoutError(BaseException):
    """A student's cell or a check ran past its time limit (raised by :func:`deadline`)."""


def _time_is_up(signum, frame):
    raise CellTimeoutError("no answer before the cell timeout")


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise :class:`CellTimeoutError` in the block when it runs longer than ``seconds`` (0: no limit).

    SIGALRM, so the main thread only. A deadline inside another keeps the outer one: the inner
    block ends by the sooner of the two, and the outer timer runs on afterwards with the time it
    had left; the signal handler before it is put back.
    """
    if not seconds:
        yield
        return
    started, raised = time.monotonic(), True
    handler = signal.signal(signal.SIGALRM, _time_is_up)
    outer, _ = signal.getitimer(signal.ITIMER_REAL)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    try:
        yield
        raised = False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        left = outer - (time.monotonic() - started)
        if outer and (left > 0 or not raised):  # a block that ended past the outer deadline meets it at once
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6))
