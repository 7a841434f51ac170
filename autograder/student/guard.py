"""Keep a student's code from writing outside its scratch folder, as well as Python allows.

nbgrader runs student code with the grader's rights and no sandbox (jupyter/nbgrader#1429,
#483). Without root or containers, the strongest tool a Python process has is an audit hook
(PEP 578): once added it cannot be removed, and it sees every ``open`` and every file-system
call made through Python. :func:`install` adds one that refuses (``PermissionError``) any write,
delete, rename or new subprocess outside the allowed folders, and records each refusal in a log
that the grader reads afterwards.

The grader puts a startup file into the kernel's ``IPYTHONDIR`` (:func:`write_startup`), so the
hook is in place before the first cell runs; the judge's worker calls :func:`install` itself.

It also refuses to hand out, through ``ctypes``, the C functions that write, delete or start
processes (``open``, ``system``, ``fork``, …). Limits (see autograder/README.md): reads are not
restricted; a C extension of the student's own, or a C function reached by its address instead
of its name, is not seen. The worker that the grader judges runs in a bubblewrap sandbox where
one exists (autograder/student/sandbox.py); the kernel runs under this guard alone.
"""

import os
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_EVENTS = {  # audit event → indices of the arguments that are paths being changed
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.replace": (0, 1),
    "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,), "os.link": (1,),
    "os.symlink": (1,), "shutil.rmtree": (0,), "shutil.copyfile": (1,), "shutil.move": (1,),
}
# Read-only helpers that libraries start: ctypes.util.find_library runs `ldconfig -p` while torch
# loads, matplotlib runs `fc-list` when it builds its font cache.
HARMLESS_PROGRAMS = {"ldconfig", "uname", "fc-list", "fc-match"}
# C functions a student could fetch through ctypes to write or start processes past the hook above:
# fetching one (the ``ctypes.dlsym`` audit event) is refused; the libraries never look these up by name.
C_SYMBOLS = {"open", "open64", "openat", "openat64", "creat", "creat64", "fopen", "fopen64", "freopen", "rename", "renameat",
             "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "truncate", "ftruncate", "chmod", "fchmod", "chown", "link",
             "symlink", "system", "popen", "fork", "vfork", "clone", "execve", "execv", "execvp", "execl", "execlp",
             "posix_spawn", "posix_spawnp", "syscall", "write", "pwrite", "pwrite64", "fwrite", "mmap", "dlopen", "prctl",
             "ptrace", "kill", "setrlimit", "prlimit", "prlimit64"}
PROCESS_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "pty.spawn"}
LOG_PREFIX = "REFUSED "


def install(allowed, log_path) -> None:
    """Refuse writes outside ``allowed`` (folders) for the rest of this process's life."""
    roots = tuple(os.path.realpath(p) for p in allowed)
    log = open(log_path, "a", buffering=1)  # opened before the hook exists, kept open

    def inside(path) -> bool:
        if isinstance(path, int):  # an already open file descriptor
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        real = os.path.realpath(os.fspath(path))
        return any(real == root or real.startswith(root + os.sep) for root in roots)

    def refuse(what: str):
        log.write(f"{LOG_PREFIX}{what}\n")
        raise PermissionError(f"the autograder does not allow this: {what}")

    def hook(event, args):
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writing = (isinstance(flags, int) and flags & WRITE_FLAGS) or (isinstance(mode, str) and any(m in mode for m in "wax+"))
            if path is not None and writing and not inside(path):
                refuse(f"write to {os.fspath(path) if not isinstance(path, int) else path}")
        elif event in PATH_EVENTS:
            for index in PATH_EVENTS[event]:
                if index < len(args) and args[index] is not None and not inside(args[index]):
                    refuse(f"{event} on {args[index]}")
        elif event in ("ctypes.dlsym", "ctypes.dlsym/handle"):
            name = args[1] if len(args) > 1 else None
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            if isinstance(name, str) and name in C_SYMBOLS:
                refuse(f"call the C function {name}() through ctypes")
        elif event in PROCESS_EVENTS:
            program = args[0] if event == "subprocess.Popen" and args else None
            if not (isinstance(program, (str, bytes, os.PathLike)) and os.path.basename(os.fsdecode(program)) in HARMLESS_PROGRAMS):
                refuse(f"start a process ({event}: {str(args[0])[:80] if args else ''})")

    sys.addaudithook(hook)


def write_startup(ipython_dir: Path, allowed, log_path) -> Path:
    """An IPython startup file that installs the guard in every kernel using ``ipython_dir``."""
    startup = Path(ipython_dir) / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    path = startup / "00-maskgit-guard.py"
    path.write_text("from autograder.student.guard import install as _install\n"
                    f"_install({[str(p) for p in allowed]!r}, {str(log_path)!r})\n"
                    "del _install\n")
    return path


def refusals(log_path) -> list:
    """What the guard refused, in order, without repeats."""
    path = Path(log_path)
    if not path.exists():
        return []
    seen = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(LOG_PREFIX) and line[len(LOG_PREFIX):] not in seen:
            seen.append(line[len(LOG_PREFIX):])
    return seen
