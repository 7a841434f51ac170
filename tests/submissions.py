"""Submissions built in memory for the grader's tests without nbgrader: the solutions answered, then edited; and the
trimmed one-notebook course (with nbgrader) and its example class that tests/conftest.py makes and grades once."""

import nbformat

from autograder import examples, release
from autograder.cells import grade_id
from autograder.grader import grade
from autograder.judge.judge import judge

SOURCES = {p.stem: nbformat.read(str(p), as_version=4) for p in sorted(release.SOLUTIONS.glob("*.ipynb"))}
# Notebook 01 trimmed to its set-up, the three TODOs with their checks and one question: seconds per student, not minutes.
KEEP = {"01_intro", "01_setup", "01_nearest_code", "01_check_nearest_code", "01_straight_through", "01_check_straight_through",
        "01_vq_losses", "01_check_vq_losses", "01_q_beta", "01_a_beta"}
NB01 = "01_vq_tokenization"
OPTIONS = dict(timeout=900, memory=5120, cell_timeout=300)  # no student here loops: limits as safe as the defaults
STUDENTS = ["reference", "stderr", "deleted_test_cell", "writes_outside", "writes_by_ctypes", "duplicated_test_cell"]


def submission(tmp_path, notebook, edits=None, name="student"):
    """The solutions' notebook answered with the reference code, then ``edits``; written to a file."""
    path = tmp_path / name / f"{notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(examples.answered(SOURCES[notebook], SOURCES[notebook], edits or {}), str(path))
    return path


def judge_with_figure(tmp_path, notebook, edits=None, name="student", shared=None) -> tuple:
    """(report, figures folder) of the judge on ``submission(...)``, its feedback figure drawn into tmp_path/figures."""
    out = tmp_path / "figures"
    report = judge(submission(tmp_path, notebook, edits, name), release.SOLUTIONS / f"{notebook}.ipynb", figures_dir=out,
                   shared=shared)
    return report, out


def judge_example(student, tmp_path, **options):
    """The judge's report on the example submission ``student`` (autograder/examples.py)."""
    example = examples.BY_STUDENT[student]
    path = submission(tmp_path, example.notebook, example.edits, student)
    return judge(path, release.SOLUTIONS / f"{example.notebook}.ipynb", **options)


def trimmed_course(root) -> tuple:
    """(source folder with notebook 01 trimmed to KEEP, the course nbgrader made from it: its release and gradebook)."""
    source = root / "source"
    source.mkdir()
    notebook = nbformat.read(str(release.SOLUTIONS / f"{NB01}.ipynb"), as_version=4)
    notebook.cells = [c for c in notebook.cells if grade_id(c) in KEEP]
    nbformat.write(notebook, str(source / f"{NB01}.ipynb"))
    return source, grade.make_template(root, source)


def example_class(folder, source, course) -> None:
    """STUDENTS' example submissions of the trimmed course, made from its release, and "broken": a file that is not a notebook."""
    examples.write(folder, source, students=STUDENTS, release_dir=course / "release" / release.ASSIGNMENT)
    (folder / "broken").mkdir()
    (folder / "broken" / f"{NB01}.ipynb").write_text("{ this is not a notebook")
