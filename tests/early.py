"""Grading runs the suite starts as it begins, each in its own process, for a test that reads it later.

A run that mostly waits (a cell blocked past its timeout, then nbclient's wait for the interrupted
kernel) costs the suite its wall time but hardly any CPU; started as the session begins it waits
beside the other tests. ``pytest_collection_modifyitems`` in tests/conftest.py starts the runs that
a collected test asks for (by fixture name); the fixture waits for its process and returns the
run's folder: ``rows.json`` (the rows ``grade.grade`` returned), ``feedback/``, ``log.txt``.

``python tests/early.py NAME FOLDER`` is what each process runs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

BLOCKS_IN_C = """import signal
import time

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # as a long C call that never looks at SIGINT
time.sleep(10**6)
"""
KEEP_02 = {"02_intro", "02_setup", "02_sdpa", "02_check_sdpa"}
NB02 = "02_multi_head_attention"
BLOCKED_CELL_TIMEOUT = 60  # 2 × the slowest other cell of these two notebooks at load 14


def blocked_in_c(folder: Path) -> list:
    """Notebook 01 whose 01_nearest_code blocks SIGINT and sleeps, beside a correct notebook 02 (both trimmed), graded
    with a cell timeout of ``BLOCKED_CELL_TIMEOUT``: the kernel never sees the interrupt."""
    from submissions import KEEP, NB01, OPTIONS

    from autograder import examples, release
    from autograder.cells import grade_id
    from autograder.grader import grade

    source = folder / "source"
    source.mkdir()
    for name, keep in ((NB01, KEEP), (NB02, KEEP_02)):
        notebook = nbformat.read(str(release.SOLUTIONS / f"{name}.ipynb"), as_version=4)
        notebook.cells = [c for c in notebook.cells if grade_id(c) in keep]
        nbformat.write(notebook, str(source / f"{name}.ipynb"))
    template = grade.make_template(folder, source)
    releases = examples.released(source, template / "release" / release.ASSIGNMENT)
    sources = {p.stem: nbformat.read(str(p), as_version=4) for p in source.glob("*.ipynb")}
    student = folder / "submissions" / "blocks_in_c"
    student.mkdir(parents=True)
    blocking = {"01_nearest_code": BLOCKS_IN_C + examples.NEAREST}
    nbformat.write(examples.answered(releases[NB01], sources[NB01], blocking), str(student / f"{NB01}.ipynb"))
    nbformat.write(examples.answered(releases[NB02], sources[NB02], {}), str(student / f"{NB02}.ipynb"))
    return grade.grade(folder / "submissions", folder / "grades.csv", jobs=1, source=source, template=template,
                       figures=False, **dict(OPTIONS, timeout=1800, cell_timeout=BLOCKED_CELL_TIMEOUT))


RUNS = {"blocked_in_c": blocked_in_c}


class Run:
    """One run's process, started in ``folder`` (made here)."""

    def __init__(self, name: str, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True)
        env = dict(os.environ, MASKGIT_LAB_FAST="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]))
        with open(folder / "log.txt", "w") as log:
            self.process = subprocess.Popen([sys.executable, str(TESTS / "early.py"), name, str(folder)], cwd=folder,
                                            env=env, stdout=log, stderr=subprocess.STDOUT)

    def result(self) -> Path:
        """The run's folder once its process has ended (the grader bounds its own time: ``timeout``, the cell timeout)."""
        code = self.process.wait()
        assert code == 0, f"the early run in {self.folder} exited {code}:\n{(self.folder / 'log.txt').read_text()[-3000:]}"
        return self.folder

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    name, out = sys.argv[1], Path(sys.argv[2])
    (out / "rows.json").write_text(json.dumps(RUNS[name](out)))
