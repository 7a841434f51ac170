"""The walls around a student's code: the environment of its processes, the bubblewrap sandbox, the reference out of reach.

Every process that runs a student's code, nbgrader's kernels and the judge's worker alike, runs
with :func:`scratch_env`: its own HOME and TMPDIR inside the scratch folder. The worker runs in
bubblewrap when it can start (:func:`prefix`), and takes the reference package out of its own
reach before any student code (:func:`block_reference`). The write guard (autograder/student/guard.py)
runs in both; the limits on time and memory are autograder/student/limits.py.

Why bubblewrap: Debian ships it (``apt-get install bubblewrap``, 0.8.0 on these machines), it
needs no daemon, and it builds the sandbox from mount, PID, network and IPC namespaces in one
command that dies with its parent. An unprivileged user of our own would need root to create and
would still see the network and every world-readable file. In the sandbox:

* the whole file system is read-only; ``/tmp`` is an empty tmpfs;
* the student's scratch folder is the one writable place;
* the project is absent except the grader modules the worker imports (``WORKER_MODULES``) and the
  virtual environment: no reference package, no solutions, no examples, no git history;
* the folder all students are graded in is absent too, so no other student can be read;
* no network (an empty network namespace), its own PID namespace, killed with the judge.

:func:`probe` tries the sandbox once; when bubblewrap is missing or cannot start (no user
namespaces in a container, say) the grader says so in one line, the worker runs under the write
guard alone, and the CSV's ``sandbox`` column says which it was.
"""

import builtins
import importlib.abc
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]  # the project: autograder/ and the reference package
REFERENCE_PACKAGE = "maskgit_lab"
# What the worker imports of the project (autograder/judge/worker.py): all that its sandbox shows of it.
WORKER_MODULES = ("__init__.py", "core.py", "cells.py", "student/__init__.py", "student/guard.py", "student/limits.py",
                  "student/sandbox.py", "judge/__init__.py", "judge/wire.py", "judge/worker.py")
BWRAP, GUARD = "bwrap", "guard"  # the two modes, as the CSV records them


def torch_home() -> str:
    """The folder torch.hub uses for the grader (as torch.hub.get_dir() finds it, without importing torch)."""
    if os.environ.get("TORCH_HOME"):
        return os.environ["TORCH_HOME"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "torch")


def scratch_env(scratch: Path) -> dict:
    """The environment every process of this student runs with: its own HOME and TMPDIR, and an IPYTHONDIR
    outside the scratch folder (it holds the guard's startup file, which no notebook may rewrite for the next)."""
    home, tmp, ipython = scratch / "home", scratch / "tmp", scratch.parent / "ipython"
    for folder in (home, tmp, ipython):
        folder.mkdir(parents=True, exist_ok=True)
    fonts = Path(os.environ.get("MPLCONFIGDIR") or Path.home() / ".cache" / "matplotlib")
    (home / ".matplotlib").mkdir(exist_ok=True)
    for cache in fonts.glob("fontlist-*.json"):  # spares every student matplotlib's font scan
        shutil.copy(cache, home / ".matplotlib")
    bin_dir = Path(sys.executable).parent
    return dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # nbgrader runs `alembic` by name
        HOME=str(home), TMPDIR=str(tmp), IPYTHONDIR=str(ipython), MPLCONFIGDIR=str(home / ".matplotlib"),
        TORCH_HOME=torch_home(),  # read only: the Inception weights for FID
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"), PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="module://matplotlib_inline.backend_inline",  # plots reach the feedback even without %matplotlib (#1070)
    )


def prefix(writable: Path, hidden=(), logs=()) -> list:
    """The bubblewrap command line a worker runs under: ``writable`` is its only writable folder (and the
    ``logs`` files its guard appends to); ``hidden`` folders (the grading folder, the submissions) are empty."""
    command = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for folder in hidden:
        command += ["--tmpfs", str(folder)]
    command += ["--tmpfs", str(ROOT)]
    for name in WORKER_MODULES:  # bubblewrap makes the folders they sit in
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
    test = f"import os, sys; sys.exit(0 if not os.path.exists({str(ROOT / REFERENCE_PACKAGE)!r}) else 3)"
    try:
        done = subprocess.run(prefix(Path(scratch)) + [sys.executable, "-c", test], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        return GUARD, f"bubblewrap could not start: {err}"
    if done.returncode != 0:
        return GUARD, f"bubblewrap could not start: {(done.stderr.strip().splitlines() or ['exit ' + str(done.returncode)])[-1]}"
    return BWRAP, "bubblewrap"


# --------------------------------------------------------------------------------- the reference out of reach


def refused(name: str) -> ImportError:
    return ImportError(f"the reference package is not available to your code ({name})")


def is_reference(name: str) -> bool:
    return name == REFERENCE_PACKAGE or name.startswith(REFERENCE_PACKAGE + ".")


class Tripwire(types.ModuleType):
    """What ``sys.modules`` holds for every reference module: any attribute is refused and noted."""

    def __init__(self, name: str, note: Callable[[str], None]):
        super().__init__(name)
        self._note = note

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        self._note(f"sys.modules[{self.__name__!r}].{name}")
        raise refused(f"{self.__name__}.{name}")


class Refuse(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: no finder ever gets to look for the reference package."""

    def __init__(self, note: Callable[[str], None]):
        self.note = note

    def find_spec(self, name, path=None, target=None):
        if is_reference(name):
            self.note(f"importlib ({name})")
            raise refused(name)
        return None


def block_reference(package_dir: str, modules: list, note: Callable[[str], None]) -> None:
    """Take the reference package out of this process's reach for good; ``note(route)`` hears of every attempt.

    ``import`` and the import system refuse it, every module of it (``modules``) in ``sys.modules``
    is a :class:`Tripwire`, and an audit hook refuses to open a file under ``package_dir``.
    """
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and is_reference(name):
            note(f"import {name}")
            raise refused(name)
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded_import
    sys.meta_path.insert(0, Refuse(note))
    sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", REFERENCE_PACKAGE))]
    for name in [REFERENCE_PACKAGE] + [f"{REFERENCE_PACKAGE}.{module}" for module in modules]:
        sys.modules[name] = Tripwire(name, note)
    root = os.path.realpath(package_dir)

    def refuse_reading(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.realpath(os.fsdecode(args[0]))
            if path == root or path.startswith(root + os.sep):
                note(f"open({os.path.basename(path)!r}) in the package's folder")
                raise PermissionError("the reference package is not available to your code")

    sys.addaudithook(refuse_reading)
