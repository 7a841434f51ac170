"""The walls around a student's code (autograder/student/sandbox.py): the worker's view in bubblewrap, the reference out of reach."""

import subprocess
import sys
from pathlib import Path

import pytest

from autograder import release
from autograder.judge.judge import WorkerProcess
from autograder.student import sandbox


def test_the_sandbox_shows_the_worker_every_module_it_imports_and_no_other():
    code = ("import sys, autograder.judge.worker\n"
            "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'autograder')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    imported = {str(Path(f).relative_to(sandbox.ROOT / "autograder")) for f in done.stdout.split()}
    assert imported == set(sandbox.WORKER_MODULES)


def test_the_reference_out_of_reach_refuses_every_route_and_notes_it(tmp_path):
    code = f"""
import sys
from autograder.student import sandbox
noted = []
sandbox.block_reference({str(sandbox.ROOT / sandbox.REFERENCE_PACKAGE)!r}, ["vq"], noted.append)
for attempt in (lambda: __import__("maskgit_lab"), lambda: sys.modules["maskgit_lab.vq"].nearest_code,
                lambda: (sys.modules.pop("maskgit_lab"), __import__("importlib").import_module("maskgit_lab")),
                lambda: open({str(sandbox.ROOT / sandbox.REFERENCE_PACKAGE / 'vq.py')!r})):
    try:
        attempt()
        print("allowed")
    except (ImportError, PermissionError) as err:
        print(type(err).__name__)
print(noted)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines[:4] == ["ImportError", "ImportError", "ImportError", "PermissionError"], done.stderr
    assert lines[4] == str(["import maskgit_lab", "sys.modules['maskgit_lab.vq'].nearest_code",
                            "importlib (maskgit_lab)", "open('vq.py') in the package's folder"])


def test_in_the_sandbox_the_worker_sees_neither_the_project_nor_other_folders_nor_the_network(tmp_path):
    mode, why = sandbox.probe(tmp_path / "probe")
    if mode != sandbox.BWRAP:
        pytest.skip(f"no sandbox on this machine: {why}")
    scratch, elsewhere, log = tmp_path / "scratch", tmp_path / "elsewhere", tmp_path / "guard.log"
    scratch.mkdir()
    elsewhere.mkdir()
    (elsewhere / "other-student.ipynb").write_text("{}")
    log.touch()
    worker = WorkerProcess(scratch, log, prefix=sandbox.prefix(scratch, [elsewhere], [log]))
    try:
        worker.exec("probe", """import os, socket

def look(paths):
    return [os.path.exists(p) for p in paths]

def connect():
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=5)
    except OSError as err:
        return type(err).__name__
    return "connected"
""")
        paths = [release.ROOT / "solutions", release.ROOT / "maskgit_lab", release.ROOT / ".git",
                 elsewhere / "other-student.ipynb", scratch]  # a hidden folder is an empty mount point
        assert worker.function("look")([str(p) for p in paths]) == [False, False, False, False, True]
        assert worker.function("connect")() != "connected"
    finally:
        worker.stop()
