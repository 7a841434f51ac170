"""Stopping `python -m autograder grade`: SIGTERM or Ctrl-C (SIGINT) ends every process it started and removes its
``maskgit-grade-*`` scratch folder (autograder/grader/grade.py: Children, signals_end_the_run, scratch_folder).

A real grading run of one student (the full notebook 01, so that it runs for minutes) is stopped once the student's
process has started its own (the nbgrader autograde or the judge): the signal must reach the grandchildren too, which
run in sessions of their own.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from submissions import NB01

from autograder import release
from autograder.grader.grade import process_tree

START_S = 600  # the template course and the student's first processes, on a loaded machine


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """A running process (a zombie waiting for PID 1 to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def ctrl_c_reaches_it():
    """SIGINT as a shell gives it, whatever runs pytest: a parent that ignores SIGINT (nohup, a pytest-xdist worker)
    passes that on, and the grader keeps a signal its caller ignores."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def grandchildren_started(grader: subprocess.Popen) -> list:
    """The grader's process tree once the student's process has started nbgrader or the judge; else []."""
    tree = [pid for pid in process_tree(grader.pid) if pid != grader.pid]
    lines = [command_line(pid) for pid in tree]
    student = any("-m autograder.student" in line for line in lines)
    deeper = any("autograde" in line or "autograder.judge" in line for line in lines)
    return tree if student and deeper else []


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_process_of_the_grading_run_and_removes_its_scratch(tmp_path, number):
    source, student, temp = tmp_path / "source", tmp_path / "class" / "alice", tmp_path / "tmp"
    for folder in (source, student, temp):
        folder.mkdir(parents=True)
    shutil.copy(release.SOLUTIONS / f"{NB01}.ipynb", source)
    shutil.copy(release.SOLUTIONS / f"{NB01}.ipynb", student)
    with open(tmp_path / "grade.log", "w") as log:
        grader = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(student.parent), "--out",
                                   str(tmp_path / "out" / "grades.csv"), "--source", str(source)],
                                  env=dict(os.environ, TMPDIR=str(temp)), stdout=log, stderr=subprocess.STDOUT,
                                  preexec_fn=ctrl_c_reaches_it)
    try:
        deadline, tree = time.monotonic() + START_S, []
        while not tree and grader.poll() is None and time.monotonic() < deadline:  # follows progress: no fixed sleep
            time.sleep(0.2)
            tree = grandchildren_started(grader)
        assert tree, f"no student process started:\n{(tmp_path / 'grade.log').read_text()[-3000:]}"
        assert [p.name for p in temp.glob("maskgit-grade-*")], "the run's scratch folder is not where TMPDIR says"
        grader.send_signal(number)
        grader.wait(timeout=120)
    finally:
        if grader.poll() is None:
            grader.kill()
    left = [f"{pid}: {command_line(pid)}" for pid in tree if alive(pid)]
    assert left == [], f"still running after {signal.Signals(number).name}: {left}"
    assert list(temp.glob("maskgit-grade-*")) == []
    assert not (tmp_path / "out" / "grades.csv").exists()
    if number == signal.SIGTERM:
        assert grader.returncode == 128 + signal.SIGTERM
