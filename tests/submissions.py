"""Submissions built in memory for the grader's tests without nbgrader: the solutions answered, then edited."""

import nbformat

from autograder import examples, release
from autograder.judge.judge import judge

SOURCES = {p.stem: nbformat.read(str(p), as_version=4) for p in sorted(release.SOLUTIONS.glob("*.ipynb"))}


def submission(tmp_path, notebook, edits=None, name="student"):
    """The solutions' notebook answered with the reference code, then ``edits``; written to a file."""
    path = tmp_path / name / f"{notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(examples.answered(SOURCES[notebook], SOURCES[notebook], edits or {}), str(path))
    return path


def judge_example(student, tmp_path, **options):
    """The judge's report on the example submission ``student`` (autograder/examples.py)."""
    example = examples.BY_STUDENT[student]
    path = submission(tmp_path, example.notebook, example.edits, student)
    return judge(path, release.SOLUTIONS / f"{example.notebook}.ipynb", **options)
