"""The verdict (autograder/verdict.py): each kind of evidence becomes the right status, score and reason."""

import nbformat
import pytest
from submissions import SOURCES

from autograder import examples
from autograder.cells import grade_id, is_test_cell
from autograder.core import Status
from autograder.records import CheckVerdict, HiddenVerdict, Job, Report, Row
from autograder.student import tamper
from autograder.verdict import CellGrade, not_autograded, row, student_rows, tampered_meanwhile, unscored

NB01 = "01_vq_tokenization"
SOURCE = SOURCES[NB01]
TESTS = [grade_id(c) for c in SOURCE.cells if is_test_cell(c)]
JOB = Job(student="s", files={}, template="", scratch="", source="", result="", timeout=60, memory_mb=5000,
          cell_timeout=60, hidden_max={NB01: 2.0})


def full_marks() -> tuple:
    """(grades, report) of a notebook whose every check passed in nbgrader and in the judge."""
    grades = {gid: CellGrade(2.0, 2.0, manual=False) for gid in TESTS} | {"01_a_beta": CellGrade(None, 1.0, manual=True)}
    report = Report(NB01, tests={gid: CheckVerdict(gid, 2.0, 2.0, "all good") for gid in TESTS},
                    hidden=[HiddenVerdict("nearest_code", 1.0, 1.0), HiddenVerdict("vq_losses", 1.0, 1.0)])
    return grades, report


def judged(report: Report, findings=None, outputs=None, refused=(), grades=None) -> Row:
    return row(NB01, JOB, SOURCE, grades or full_marks()[0], outputs or {}, findings or tamper.Findings(), report,
               list(refused))


def test_full_marks_are_graded_with_every_maximum():
    graded = judged(full_marks()[1])
    assert (graded.status, graded.reason) == (Status.GRADED, "all checks passed")
    assert (graded.score, graded.max_score, graded.hidden_score, graded.hidden_max, graded.manual_max) == (
        2.0 * len(TESTS), 2.0 * len(TESTS), 2.0, 2.0, 1.0)


def test_a_todo_that_uses_the_reference_scores_its_checks_and_hidden_points_zero():
    example = examples.BY_STUDENT["imports_reference"]
    findings = tamper.scan(examples.answered(SOURCE, SOURCE, example.edits), SOURCE)
    grades, report = full_marks()
    penalized = judged(report, findings)
    lost = [c.cell for c in penalized.checks if c.points == 0]
    assert penalized.status == Status.PENALIZED and lost == ["01_check_nearest_code"]
    assert (penalized.score, penalized.max_score, penalized.hidden_score) == (2.0 * len(TESTS) - 2.0, 2.0 * len(TESTS), 1.0)
    assert "uses the reference implementation instead of your own" in penalized.reason
    tampered = judged(report, tamper.scan(examples.answered(SOURCE, SOURCE, example.edits), SOURCE), refused=["write to /etc/x"])
    assert (tampered.status, tampered.score, tampered.hidden_score) == (Status.TAMPERED, 0.0, 0.0)
    assert "tried to write to /etc/x (outside its scratch folder; refused)" in tampered.reason


def test_a_reach_for_the_reference_seen_only_at_run_time_penalizes_too():
    report = full_marks()[1]
    report.reference = {"01_nearest_code": ["import maskgit_lab"]}
    penalized = judged(report)
    assert penalized.status == Status.PENALIZED and "at run time: import maskgit_lab" in penalized.reason


def test_reaching_for_the_grader_zeroes_the_notebook():
    findings = tamper.Findings(grader_tampering={"01_nearest_code": ["showtraceback"]})
    tampered = judged(full_marks()[1], findings)
    assert (tampered.status, tampered.score, tampered.hidden_score) == (Status.TAMPERED, 0.0, 0.0)
    assert "tampers with the grader (showtraceback)" in tampered.reason


def test_a_cell_keeps_the_smaller_of_nbgraders_score_and_the_judges():
    grades, report = full_marks()
    report.tests["01_check_nearest_code"] = CheckVerdict("check_nearest_code", 0.0, 2.0, "expected [1, 2], got [0, 0]")
    graded = judged(report, grades=grades)
    assert graded.status == Status.GRADED and graded.score == 2.0 * len(TESTS) - 2.0
    assert "01_check_nearest_code passed in the notebook but fails when the grader re-runs it: expected [1, 2]" in graded.reason
    grades["01_check_vq_losses"] = CellGrade(0.0, 2.0, manual=False)  # the judge passed it, nbgrader did not
    assert judged(report, grades=grades).score == 2.0 * len(TESTS) - 4.0


def test_the_judges_misconception_names_reach_the_row_unless_the_check_is_penalized():
    grades, report = full_marks()
    report.tests["01_check_nearest_code"] = CheckVerdict("check_nearest_code", 0.0, 2.0, "the dot product …", ["dot product"])
    assert [c.misconceptions for c in judged(report, grades=grades).checks if c.points < c.max_points] == [["dot product"]]
    findings = tamper.scan(examples.answered(SOURCE, SOURCE, examples.BY_STUDENT["imports_reference"].edits), SOURCE)
    assert all(not c.misconceptions for c in judged(report, findings, grades=grades).checks)


def test_a_cell_the_judge_has_no_verdict_for_scores_zero_and_a_crash_is_named():
    report = Report(NB01, crash="Traceback (most recent call last):\nRuntimeError: boom")
    graded = judged(report)
    assert graded.status == Status.GRADED and graded.score == 0.0
    assert graded.reason.startswith("the grader could not re-run the checks outside the notebook: RuntimeError: boom")


@pytest.mark.parametrize("error, words", [
    ("CellTimeoutError: no answer before the cell timeout", "timed out after 60 s and was interrupted"),
    ("KeyboardInterrupt: ", "timed out after 60 s and was interrupted"),
    ("MemoryError: ", "ran out of memory (the cap is 5000 MB)"),
    ("ValueError: bad shape", "raised ValueError: bad shape"),
])
def test_a_cell_that_failed_in_the_notebook_is_described_in_words(error, words):
    grades, report = full_marks()
    report.tests["01_check_nearest_code"] = CheckVerdict("check_nearest_code", 0.0, 2.0, "not defined")
    report.errors = {"01_nearest_code": error}
    graded = judged(report, outputs={"01_check_nearest_code": (error, False)}, grades=grades)
    assert f"your cell 01_nearest_code {words}" in graded.reason


def test_stderr_is_named_and_noise_in_the_judge_costs_nothing():
    grades, report = full_marks()
    grades["01_check_nearest_code"] = CellGrade(0.0, 2.0, manual=False)
    report.noise = {"01_check_vq_losses": ["warned UserWarning: slow"]}
    graded = judged(report, outputs={"01_check_nearest_code": (None, True)}, grades=grades)
    assert "01_check_nearest_code wrote to stderr, which nbgrader scores 0" in graded.reason
    assert "01_check_vq_losses: your code warned UserWarning: slow (no points lost)" in graded.reason
    assert graded.score == 2.0 * len(TESTS) - 2.0


def test_rows_without_scores():
    assert unscored(NB01, Status.MISSING_SHARD, "shard 1/2 wrote no results") == Row(NB01, Status.MISSING_SHARD,
                                                                                      "shard 1/2 wrote no results")
    rows = student_rows(["a", "b"], {"b": "b.ipynb"}, Status.TIMEOUT, "too long")
    assert [(r.notebook, r.status, r.reason, r.score) for r in rows] == [("a", Status.MISSING, "not submitted", 0.0),
                                                                         ("b", Status.TIMEOUT, "too long", 0.0)]
    graded = judged(full_marks()[1])
    tampered_meanwhile(graded, ["/subs/bob/01.ipynb"])
    tampered_meanwhile(rows[0], ["/subs/bob/01.ipynb"])
    assert (graded.status, graded.score, graded.hidden_score) == (Status.TAMPERED, 0.0, 0.0)
    assert graded.reason == "files outside its scratch folder changed while it was graded: /subs/bob/01.ipynb"
    assert rows[0].status == Status.MISSING


def test_a_notebook_nbgrader_gave_up_on_names_the_cell_or_nbgraders_error():
    cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(10**6)", metadata={"nbgrader": {"grade_id": "01_nearest_code"}})]
    log = "nbclient.exceptions.CellTimeoutError: A cell timed out while it was being executed\n  import time\n  time.sleep(10**6)\n"
    timed_out = not_autograded(NB01, log, cells, 60)
    assert timed_out.status == Status.TIMEOUT
    assert timed_out.reason.startswith("your cell 01_nearest_code ran past the cell timeout (60 s)")
    failed = not_autograded(NB01, "[AutogradeApp | ERROR] the notebook is broken\n", cells, 60)
    assert failed.status == Status.ERROR
    assert failed.reason == "nbgrader could not grade it: [AutogradeApp | ERROR] the notebook is broken"
