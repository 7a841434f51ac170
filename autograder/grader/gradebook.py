"""The course's nbgrader gradebook, written by one process: the merge (autograder/grader/merge.py).

Every student is graded in a scratch course of its own (autograder/student/), because
nbgrader's sqlite gradebook is not safe for concurrent writers (#174, #1344). This module
brings the results home, through nbgrader's own API, so that formgrader, ``nbgrader
generate_feedback`` and ``nbgrader export`` see them: per student, its autograded notebooks
go to ``autograded/<student>/maskgit/`` and each test cell's points (as the CSV scored them:
penalties and tampering included) become the grade's ``auto_score``. The discussion questions
keep ``auto_score`` empty and ``needs_manual_grade`` set, and a manual score already given in
formgrader is never touched.

A re-run updates the same rows (nbgrader keeps one submission per student and assignment), so
it never duplicates them. Each student is written in one commit after its files are in place,
so a merge interrupted half-way leaves whole students, and running it again completes the class.
A lock file keeps a second merge out while one is writing.
"""

import fcntl
import os
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from autograder.release import ASSIGNMENT
from autograder.grader.shard import ShardError

LOCK = ".maskgit-merge.lock"


def settings(course: Path) -> tuple:
    """(database URL, course id) as nbgrader reads them from the course's ``nbgrader_config.py``."""
    from traitlets.config.loader import PyFileConfigLoader

    if not (course / "nbgrader_config.py").is_file():
        raise ShardError(f"{course} is not an nbgrader course (no nbgrader_config.py): give --course the course directory")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config().CourseDirectory
    url = config.db_url if "db_url" in config else f"sqlite:///{course / 'gradebook.db'}"
    return url, config.course_id if "course_id" in config else "default_course"


@contextmanager
def one_writer(course: Path):
    """Hold the course's merge lock, or fail at once naming the other writer."""
    with open(course / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ShardError(f"another merge is writing {course}'s gradebook now: wait for it, then merge again") from None
        yield


def place(source: Path, target: Path) -> None:
    """Copy a file so that no reader ever sees half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copy(source, partial)
    os.replace(partial, target)


def check_cells(assignment, graded: dict, notebooks: list) -> None:
    """Every notebook and test cell graded must exist in the course's assignment (same source notebooks)."""
    cells = {nb.name: {c.name for c in nb.grade_cells} for nb in assignment.notebooks}
    for notebook in notebooks:
        if notebook not in cells:
            raise ShardError(f"the course's {ASSIGNMENT} assignment has no notebook {notebook}: generate it from the "
                             f"source notebooks the class was graded with")
    for student, (_, entry) in sorted(graded.items()):
        for notebook, scored in entry["notebooks"].items():
            unknown = sorted(set(scored["cells"]) - cells[notebook])
            if unknown:
                raise ShardError(f"{student}/{notebook}: test cell(s) {', '.join(unknown)} are not in the course's gradebook; "
                                 f"generate the course's assignment from the source notebooks the class was graded with")


def import_student(gb, course: Path, student: str, folder: Path, entry: dict) -> None:
    """Place one student's autograded notebooks, then write its grades in one commit."""
    from nbgrader.api import MissingEntry
    from sqlalchemy.exc import SAWarning

    target = course / "autograded" / student / ASSIGNMENT
    for notebook in gb.find_assignment(ASSIGNMENT).notebooks:
        graded = folder / "autograded" / student / f"{notebook.name}.ipynb"
        if notebook.name in entry["notebooks"] and graded.exists():
            place(graded, target / f"{notebook.name}.ipynb")
        elif (target / f"{notebook.name}.ipynb").exists():  # handed in before, not now
            (target / f"{notebook.name}.ipynb").unlink()
    gb.update_or_create_student(student)
    try:
        gb.find_submission(ASSIGNMENT, student)
    except MissingEntry:
        with warnings.catch_warnings():  # nbgrader's add_submission builds its rows in a way SQLAlchemy 2 warns about
            warnings.simplefilter("ignore", SAWarning)
            gb.add_submission(ASSIGNMENT, student)
    for notebook in gb.find_submission(ASSIGNMENT, student).notebooks:
        scored = entry["notebooks"].get(notebook.name)
        for grade in notebook.grades:
            if scored is None:  # not handed in: nothing to score, nothing to grade by hand
                grade.auto_score, grade.needs_manual_grade = None, False
                continue
            test = grade.cell.cell_type == "code"
            grade.auto_score = scored["cells"].get(grade.name, 0.0) if test else None
            grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
    gb.db.commit()


def import_class(course: Path, graded: dict, notebooks: list, log=print) -> None:
    """Import ``graded`` (student → (shard folder, manifest entry)) into ``course``'s gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    started = time.monotonic()
    url, course_id = settings(course)
    no_assignment = ShardError(f"{course}'s gradebook has no assignment {ASSIGNMENT!r}: run "
                               f"`nbgrader generate_assignment {ASSIGNMENT}` in {course} first")
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        raise no_assignment
    with one_writer(course), Gradebook(url, course_id) as gb:
        try:
            assignment = gb.find_assignment(ASSIGNMENT)
        except MissingEntry:
            raise no_assignment from None
        check_cells(assignment, graded, notebooks)
        for student, (folder, entry) in sorted(graded.items()):
            import_student(gb, course, student, folder, entry)
    log(f"gradebook: {len(graded)} student(s) imported into {url.replace('sqlite:///', '')} "
        f"in {time.monotonic() - started:.1f} s")
