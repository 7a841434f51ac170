"""`python -m autograder grade` end to end, with real `nbgrader autograde` runs.

The default suite grades a trimmed copy of notebook 01 (set-up, the three TODOs with their
checks, one question: seconds per student instead of minutes) for a few students, once per
session (tests/conftest.py: ``course``, ``graded``); the full course with every example
submission is `@pytest.mark.slow` (and what `make grade` runs).
"""

import csv
import os
import pwd
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import early
import numpy as np
import pytest
from PIL import Image
from submissions import NB01, OPTIONS, STUDENTS

from autograder import examples, release
from autograder.grader import feedback, grade, misconceptions
from autograder.judge import hidden
from autograder.records import Figure, Job
from autograder.student.student import lane_of


def test_every_student_gets_a_row_with_the_columns(graded):
    rows, out = graded
    with open(out / "grades.csv") as handle:
        read = list(csv.DictReader(handle))
    assert [r["student"] for r in read] == sorted(STUDENTS + ["broken"])
    assert list(read[0]) == grade.COLUMNS



def test_the_printed_table_has_a_line_per_handed_in_notebook_and_counts_the_rest(graded):
    rows, _ = graded
    rows = list(rows.values()) + [dict(rows["reference"], student="absent", status="missing")]
    lines = feedback.table(rows).splitlines()
    # header, separator, one line per handed-in notebook, then the count of the missing one
    assert len(lines) == 2 + (len(rows) - 1) + 1 and lines[-1].startswith("(1 notebook(s) not handed in")
    for row in rows[:-1]:
        line = next(line for line in lines if line.startswith(f"| {row['student']} |"))
        assert f"| {row['status']} | {row['score']}/{row['max_score']} | {row['hidden_score']}/{row['hidden_max']} |" in line
    assert "absent" not in "".join(lines)

def test_the_reference_scores_full_marks_with_hidden_points(graded):
    row = graded[0]["reference"]
    assert (row["status"], row["score"], row["max_score"]) == ("graded", "7", "7"), row["reason"]
    assert (row["hidden_score"], row["hidden_max"], row["manual_max"]) == ("2", "2", "2")
    assert row["reason"] == "all checks passed"


def test_a_function_that_writes_to_stderr_keeps_its_points_and_the_reason_says_so(graded):
    row = graded[0]["stderr"]
    assert (row["status"], row["score"], row["hidden_score"]) == ("graded", "7", "2"), row["reason"]
    assert "01_check_nearest_code: your code wrote to stderr 'debug' (no points lost)" in row["reason"]


def test_a_duplicated_test_cell_is_repaired_from_the_release(graded):
    row = graded[0]["duplicated_test_cell"]
    assert (row["status"], row["score"], row["hidden_score"]) == ("graded", "7", "2"), row["reason"]
    assert "test cell 01_check_nearest_code was duplicated; the grader used the released one" in row["reason"]


def test_fetching_libc_open_through_ctypes_is_refused_and_tampered(graded):
    row = graded[0]["writes_by_ctypes"]
    assert (row["status"], row["score"], row["hidden_score"]) == ("tampered", "0", "0")
    assert "call the C function open() through ctypes" in row["reason"]
    assert not (Path(pwd.getpwuid(os.getuid()).pw_dir) / ".maskgit-grader-ctypes-test").exists()


def test_the_csv_says_which_sandbox_ran_the_students_functions(graded):
    from autograder.student import sandbox

    mode, _ = sandbox.probe(Path(tempfile.mkdtemp()))
    assert {r["sandbox"] for r in graded[0].values()} == {mode}


def test_a_deleted_test_cell_is_put_back_and_graded(graded):
    row = graded[0]["deleted_test_cell"]
    assert (row["status"], row["score"]) == ("graded", "5")  # the restored check catches the dot-product bug
    assert "were deleted" in row["reason"] and "dot product" in row["reason"]


def test_writing_outside_the_scratch_folder_is_refused_and_scores_zero(graded):
    row = graded[0]["writes_outside"]
    assert (row["status"], row["score"], row["hidden_score"]) == ("tampered", "0", "0")
    assert "outside its scratch folder" in row["reason"] and ".maskgit-grader-tamper-test" in row["reason"]
    assert not (Path(pwd.getpwuid(os.getuid()).pw_dir) / ".maskgit-grader-tamper-test").exists()


def test_a_notebook_that_is_not_a_notebook_gets_an_error_row(graded):
    row = graded[0]["broken"]
    assert (row["status"], row["score"]) == ("error", "0") and "not a readable notebook" in row["reason"]


def test_feedback_and_summaries_are_copied_and_never_show_the_hidden_checks(graded):
    _, out = graded
    feedback = out / "feedback"
    assert (feedback / "reference" / f"{NB01}.html").exists()
    secrets = [item.check.__name__ for items in hidden.HIDDEN.values() for item in items]
    checks_part = open(hidden.__file__).read()  # the hidden checks' source
    source_lines = [line.strip() for line in checks_part.splitlines()
                    if len(line.strip()) > 30 and not line.strip().startswith(("#", '"""', "from", "import"))]
    files = list(feedback.rglob("*.html")) + list(feedback.rglob("*.md"))
    assert len(files) >= 2 * len(STUDENTS)
    for path in files:
        text = path.read_text()
        assert not [s for s in secrets if s in text], path
        assert not [line for line in source_lines if line in text], path
    summary = (feedback / "deleted_test_cell" / "summary.md").read_text()
    assert "hidden checks" in summary.lower() and "dot product" in summary


def test_feedback_holds_each_students_figure_beside_the_references_linked_and_embedded(graded):
    _, out = graded
    for student in ("reference", "deleted_test_cell"):
        folder = out / "feedback" / student
        yours, reference = folder / f"{NB01}.png", folder / f"{NB01}-reference.png"
        same = np.array_equal(np.asarray(Image.open(yours)), np.asarray(Image.open(reference)))
        assert same == (student == "reference"), student  # the dot product picks other codes: other pictures
        summary = (folder / "summary.md").read_text()
        assert f"| ![your functions]({NB01}.png) | ![the reference]({NB01}-reference.png) |" in summary
        page = (folder / f"{NB01}.html").read_text()
        assert page.count("data:image/png;base64,") == 2 and "Pictured with your functions" in page
        assert page.index('<section id="maskgit-figure"') < page.rindex("</body>")


def test_misconceptions_md_lists_each_misconception_example_under_its_own_name(graded):
    _, out = graded
    assert examples.BY_STUDENT["deleted_test_cell"].misconception == "dot product"  # its nearest_code: argmax of z·e_k
    assert misconceptions.read(out / misconceptions.REPORT) == {(NB01, "dot product"): ["deleted_test_cell"]}
    assert (out / misconceptions.CHART).is_file()


def test_a_figures_note_takes_the_pictures_place_in_the_summary_and_the_page(tmp_path):
    (tmp_path / "x-reference.png").write_bytes(b"\x89PNG")
    entry = Figure("a caption", reference="x-reference.png", note="no picture: your code raised ValueError: a | b < c")
    cells = "| no picture: your code raised ValueError: a / b < c | ![the reference](x-reference.png) |"
    assert feedback.figure_markdown(entry)[-2] == cells
    page = feedback.figure_html("<html><body>nbgrader's page</body></html>", entry, tmp_path)
    assert "nbgrader's page<section" in page and page.endswith("</section>\n</body></html>")
    assert "ValueError: a | b &lt; c</td>" in page and page.count("data:image/png;base64,") == 1


def test_parallel_and_serial_grading_give_the_same_rows(course, graded, tmp_path, monkeypatch):
    source, submissions, template = course
    monkeypatch.setenv("MASKGIT_LAB_FAST", "1")
    subset = tmp_path / "subset"
    for student in ("reference", "broken"):
        (subset / student).mkdir(parents=True)
        for notebook in (submissions / student).glob("*.ipynb"):
            (subset / student / notebook.name).write_bytes(notebook.read_bytes())
    rows = grade.grade(subset, tmp_path / "serial.csv", jobs=1, source=source, template=template, **OPTIONS)
    assert rows == [graded[0][r["student"]] for r in rows]


def test_a_notebook_that_reads_an_earlier_one_is_graded_after_it_in_its_lane():
    """Notebook 06 reads the student's decode_step from the autograded 04 beside it (autograder/earlier.py): the two
    must share a lane (one course copy), and 04 must come first in it. The lanes alternate in course order."""
    notebooks = sorted(p.stem for p in release.SOLUTIONS.glob("*.ipynb"))
    reads = {path.stem: re.findall(r'earlier_answer\(\\"(\w+)\\"', path.read_text())
             for path in release.SOLUTIONS.glob("*.ipynb")}
    pairs = [(later, earlier) for later, found in reads.items() for earlier in found]
    assert pairs == [("06_generation_and_guidance", "04_iterative_decoding")]
    for later, earlier in pairs:
        assert lane_of(later, notebooks) == lane_of(earlier, notebooks)
        assert notebooks.index(earlier) < notebooks.index(later)
    assert [lane_of(n, notebooks) for n in notebooks] == [0, 1, 0, 1, 0, 1]


def test_a_student_whose_grading_crashes_or_times_out_still_gets_rows(tmp_path, course):
    source, submissions, _ = course

    def job(student: str, timeout: float) -> Job:
        (tmp_path / student).mkdir()
        return Job(student=student, files={NB01: str(submissions / "reference" / f"{NB01}.ipynb")},
                   template=str(tmp_path / "no-template"), scratch=str(tmp_path / student / "scratch"), source=str(source),
                   result=str(tmp_path / student / "result.json"), timeout=timeout, memory_mb=0, cell_timeout=10,
                   hidden_max={NB01: 2.0})

    crashed = grade.grade_student(job("crashes", 60))
    assert crashed.rows[0].notebook == NB01
    assert [r.status for r in crashed.rows] == ["error"] and "crashed" in crashed.rows[0].reason
    late = grade.grade_student(job("late", 0.01))
    assert [r.status for r in late.rows] == ["timeout"]


def test_a_cell_blocked_in_c_past_the_timeout_costs_its_notebook_only(blocked_in_c):
    """The kernel never sees the interrupt: that notebook gets `timeout` naming the cell, the other one is graded
    (tests/early.py grades them, started as the session begins: most of the run waits on the blocked kernel)."""
    by, folder = blocked_in_c
    assert (by[NB01]["status"], by[NB01]["score"]) == ("timeout", "0")
    assert (f"your cell 01_nearest_code ran past the cell timeout ({early.BLOCKED_CELL_TIMEOUT} s) and ignored the interrupt"
            in by[NB01]["reason"])
    assert (by[early.NB02]["status"], by[early.NB02]["score"], by[early.NB02]["max_score"]) == ("graded", "3", "3"), \
        by[early.NB02]["reason"]
    assert (folder / "feedback" / "blocks_in_c" / f"{early.NB02}.html").exists()


def test_the_command_line_writes_the_csv(tmp_path, course):
    source, _, _ = course
    empty = tmp_path / "nobody"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", str(empty), "--out", str(tmp_path / "g.csv"),
                           "--source", str(source), "-j", "2", "--timeout", "30", "--memory", "4096", "--no-figures"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "g.csv").read_text().strip() == ",".join(grade.COLUMNS)


def test_submissions_are_found_in_all_three_layouts(tmp_path):
    for layout in ("{s}/{n}.ipynb", "{s}/maskgit/{n}.ipynb", "submitted/{s}/maskgit/{n}.ipynb"):
        root = tmp_path / re.sub(r"\W", "_", layout)
        path = root / layout.format(s="alice", n=NB01)
        path.parent.mkdir(parents=True)
        path.write_text("{}")
        assert grade.find_submissions(root) == {"alice": {NB01: path}}


# --------------------------------------------------------------------------- the whole course, slow


def skip_unless_selected(request):
    """Slow tests run only when asked for (`pytest -m slow`): `make test` selects no marker."""
    expression = request.config.getoption("markexpr") or ""
    if "slow" not in expression or "not slow" in expression:
        pytest.skip("slow: run with `pytest -m slow`")


@pytest.mark.slow
def test_every_example_submission_on_the_real_notebooks(tmp_path, monkeypatch, request):
    """What `make grade` runs: each example gets its status, its lost checks and its reason."""
    skip_unless_selected(request)
    monkeypatch.setenv("MASKGIT_LAB_FAST", "1")
    submissions = tmp_path / "examples"
    examples.write(submissions)
    rows = grade.grade(submissions, tmp_path / "grades.csv", jobs=2)
    assert examples.verify(rows, sorted(p.stem for p in release.SOLUTIONS.glob("*.ipynb"))) == []
    assert examples.verify_misconceptions(tmp_path / misconceptions.REPORT) == []
