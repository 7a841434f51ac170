"""The OS-level sandbox the worker (autograder/worker.py) runs in: bubblewrap, when it can start.

Why bubblewrap: Debian ships it (``apt-get install bubblewrap``, 0.8.0 on these machines), it
needs no daemon, and it builds the sandbox from mount, PID, network and IPC namespaces in one
command that dies with its parent. An unprivileged user of our own would need root to create and
would still see the network and every world-readable file. In the sandbox:

* the whole file system is read-only; ``/tmp`` is an empty tmpfs;
* the student's scratch folder is the one writable place;
* the project is absent except the five grader modules the worker imports and the virtual
  environment: no reference package, no solutions, no examples, no git history;
* the folder all students are graded in is absent too, so no other student can be read;
* no network (an empty network namespace), its own PID namespace, killed with the judge.

:func:`probe` tries the sandbox once; when bubblewrap is missing or cannot start (no user
namespaces in a container, say) the grader says so in one line, the worker runs under the write
guard alone, and the CSV's ``sandbox`` column says which it was.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_MODULES = ("__init__.py", "core.py", "guard.py", "wire.py", "worker.py")
BWRAP, GUARD = "bwrap", "guard"  # the two modes, as the CSV records them


def prefix(writable: Path, hidden=(), logs=()) -> list:
    """The bubblewrap command line a worker runs under: ``writable`` is its only writable folder (and the
    ``logs`` files its guard appends to); ``hidden`` folders (the grading folder, the submissions) are empty."""
    command = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for folder in hidden:
        command += ["--tmpfs", str(folder)]
    command += ["--tmpfs", str(ROOT)]
    for name in WORKER_MODULES:
        command += ["--ro-bind", str(ROOT / "autograder" / name), str(ROOT / "autograder" / name)]
    if Path(sys.prefix).resolve().is_relative_to(ROOT):
        command += ["--ro-bind", sys.prefix, sys.prefix]
    for log in logs:
        command += ["--bind", str(log), str(log)]
    command += ["--bind", str(writable), str(writable),
                "--unshare-all", "--die-with-parent", "--new-session", "--"]
    return command


def probe(scratch: Path) -> tuple:
    """(mode, why): ``bwrap`` when a sandboxed Python starts and sees the project hidden, else ``guard``."""
    if shutil.which("bwrap") is None:
        return GUARD, "bubblewrap is not installed (apt-get install bubblewrap)"
    Path(scratch).mkdir(parents=True, exist_ok=True)
    test = f"import os, sys; sys.exit(0 if not os.path.exists({str(ROOT / 'maskgit_lab')!r}) else 3)"
    try:
        done = subprocess.run(prefix(Path(scratch)) + [sys.executable, "-c", test], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return GUARD, f"bubblewrap could not start: {err}"
    if done.returncode != 0:
        return GUARD, f"bubblewrap could not start: {(done.stderr.strip().splitlines() or ['exit ' + str(done.returncode)])[-1]}"
    return BWRAP, "bubblewrap"
