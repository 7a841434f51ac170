"""The verdict: one notebook's row of grades.csv (status, score, reason), decided here and nowhere else.

:func:`row` turns everything gathered about a graded notebook into its :class:`~autograder.records.Row`:
the judge's :class:`~autograder.records.Report` (each check computed outside the notebook), nbgrader's
score of each test cell and the cells' outputs, the static reading (autograder/student/tamper.py)
and the guard's refusals. A test cell scores the smaller of nbgrader's score and the judge's; a TODO
that used the reference loses its checks (``penalized``); reaching for the grader or writing outside
the scratch folder scores the notebook 0 (``tampered``). The other statuses have no scores to
weigh: :func:`unscored` (missing, error, timeout, missing shard), :func:`not_autograded` (nbgrader gave
up on the notebook) and :func:`tampered_meanwhile` (files outside changed while the student was graded).
"""

from typing import NamedTuple, Optional

from nbclient.exceptions import CellTimeoutError as NotebookTimeout
from nbclient.exceptions import DeadKernelError

from autograder.cells import defined_functions, grade_id, tests_of_solution
from autograder.core import Status
from autograder.records import CellCheck, Job, Report, Row
from autograder.student.limits import CellTimeoutError
from autograder.student.tamper import Findings


class CellGrade(NamedTuple):
    """One graded cell as nbgrader recorded it."""

    score: Optional[float]
    max_score: float
    manual: bool  # a discussion question, graded by hand later


def unscored(notebook: str, status: Status, reason: str) -> Row:
    """A row without scores: nothing was graded (``reason`` says why), so every score is 0."""
    return Row(notebook, status, reason)


def student_rows(notebooks: list, handed_in, status: Status, reason: str) -> list:
    """A student's rows when its grading gave nothing usable: each notebook handed in gets ``status``."""
    return [unscored(n, status, reason) if n in handed_in else unscored(n, Status.MISSING, "not submitted")
            for n in notebooks]


def tampered_meanwhile(row: Row, touched: list) -> None:
    """Zero ``row`` (unless not handed in): files outside the student's scratch folder changed while it was graded."""
    if row.status != Status.MISSING:
        row.status, row.score, row.hidden_score = Status.TAMPERED, 0.0, 0.0
        row.reason = f"files outside its scratch folder changed while it was graded: {', '.join(touched[:3])}"


def cell_preview(source: str) -> str:
    """The preview of a cell that nbclient puts into its CellTimeoutError (nbclient/exceptions.py)."""
    lines = source.strip().split("\n")
    return source if len(lines) < 11 else f"{lines[:5]}\n...\n{lines[-5:]}"


def timed_out_cell(log_text: str, cells: list) -> str:
    """Which of the submitted ``cells`` nbclient gave up on, in words, found by its preview in the autograde log."""
    flat = "\n".join(line.strip() for line in log_text.splitlines())  # the log indents the preview's lines
    for number, cell in enumerate(cells, 1):
        preview = "\n".join(line.strip() for line in cell_preview(cell.source).splitlines())
        if cell.cell_type == "code" and cell.source.strip() and preview in flat:
            gid = grade_id(cell)
            return f"your cell {gid}" if gid else f"cell {number} (code: {cell.source.strip().splitlines()[0][:60]!r})"
    return "a cell"


def not_autograded(notebook: str, log_text: str, cells: list, cell_timeout: int) -> Row:
    """The row of a notebook nbgrader gave no grades for, from its autograde log and the submitted ``cells``."""
    if NotebookTimeout.__name__ in log_text:  # nbclient gives up on the notebook when the interrupt is ignored
        return unscored(notebook, Status.TIMEOUT, (
            f"{timed_out_cell(log_text, cells)} ran past the cell timeout ({cell_timeout} s) and ignored the interrupt, "
            f"so nbgrader gave up on this notebook (your other notebooks were graded on their own)"))
    errors = [line for line in log_text.splitlines() if "[AutogradeApp | ERROR]" in line][:2]
    return unscored(notebook, Status.ERROR, f"nbgrader could not grade it: {' '.join(errors)[:300] or log_text.strip()[-300:]}")


def describe_error(error: str, job: Job) -> str:
    """An error a cell showed (``"ErrorType: message"``, from the kernel or the judge) in words.

    The error is text from another process, so it is recognised by the names of the exception types.
    """
    if error.startswith((CellTimeoutError.__name__, KeyboardInterrupt.__name__)):
        return f"timed out after {job.cell_timeout} s and was interrupted"
    if MemoryError.__name__ in error or "can't allocate memory" in error or DeadKernelError.__name__ in error:
        return f"ran out of memory (the cap is {job.memory_mb} MB): {error[:200]}"
    return f"raised {error[:300]}"


def grader_notes(findings: Findings, report: Report, job: Job) -> list:
    """What the static reading found and what went wrong outside the checks (a crash, a cell that raised)."""
    notes = list(findings.notes())
    if report.crash:
        notes.append("the grader could not re-run the checks outside the notebook: " + report.crash.strip().splitlines()[-1])
    for gid, error in report.errors.items():
        notes.append(f"your cell {gid} {describe_error(error, job)}")
    return notes


def score_test_cell(gid: str, grade: CellGrade, output: tuple, report: Report, job: Job) -> tuple:
    """(the cell's CellCheck, notes) for one test cell: the smaller of nbgrader's score and the judge's.

    ``output`` is (error text or None, wrote to stderr) from the autograded notebook. A cell the
    judge has no verdict for scores 0; what the student's code printed or warned while the judge
    ran the check is reported, never charged. A note explains a loss in words the check's own
    message would not give (a timeout, stderr, a pass that does not hold up).
    """
    again, noise = report.tests.get(gid), report.noise.get(gid, ())
    points, notes = float(grade.score or 0), []
    error, stderr = output
    message = again.message if again else ""
    if error:
        why = describe_error(error, job)
        if again is None or again.points == again.max_points:
            message = why
            notes.append(f"{gid} {why}")
    elif stderr and points == 0:
        notes.append(f"{gid} wrote to stderr, which nbgrader scores 0")
        message = "wrote to stderr (a warning or a progress bar?), which nbgrader scores 0"
    if again is None:  # the judge has no answer for this cell: nbgrader's score alone is never kept
        if points:
            notes.append(f"{gid}: the grader could not re-run this check outside the notebook, so it scores 0")
        points, message = 0.0, message or "the grader could not re-run this check outside the notebook"
    elif again.points < points:
        notes.append(f"{gid} passed in the notebook but fails when the grader re-runs it: {again.message[:200]}")
        points = again.points
    if noise:
        said = "; ".join(noise)[:300]
        message = f"{message} (your code {said}: reported only, no points lost)"
        notes.append(f"{gid}: your code {said} (no points lost)")
    named = list(again.misconceptions) if again else []  # a check names misconceptions only when it fails
    return CellCheck(gid, again.check if again else gid, points, grade.max_score, message, named), notes


def penalize_reference_use(checks: list, source_nb, findings: Findings) -> set:
    """Zero the checks of every TODO that used the reference package; returns the functions those TODOs define."""
    todos = [c for c in source_nb.cells if grade_id(c) in findings.reference_use]
    penalized = {t for c in todos for t in tests_of_solution(source_nb).get(grade_id(c), [])}
    for check in checks:
        if check.cell in penalized:
            check.points, check.message, check.misconceptions = 0.0, "uses the reference implementation instead of your own", []
    return {name for c in todos for name in defined_functions(c.source)}


def status_of(findings: Findings, refused: list) -> Status:
    if findings.grader_tampering or refused:
        return Status.TAMPERED
    return Status.PENALIZED if findings.reference_use else Status.GRADED


def row(notebook: str, job: Job, source_nb, grades: dict, outputs: dict, findings: Findings, report: Report,
        refused: list) -> Row:
    """One graded notebook's row: ``grades`` (test cell → CellGrade) and ``outputs`` (test cell → (error, wrote to
    stderr)) from nbgrader, ``findings`` from the static reading, ``report`` from the judge, ``refused`` by the guard."""
    for cell, routes in report.reference.items():  # reaches for the reference the worker noted at run time
        used = findings.reference_use.setdefault(cell, [])
        used += [f"at run time: {route}" for route in routes if f"at run time: {route}" not in used]
    notes, checks, explained = grader_notes(findings, report, job), [], set()  # explained: losses a note already gives
    for gid, grade in grades.items():
        if not grade.manual:
            check, cell_notes = score_test_cell(gid, grade, outputs.get(gid, (None, False)), report, job)
            checks.append(check)
            notes += cell_notes
            if cell_notes:
                explained.add(gid)
    penalized_answers = penalize_reference_use(checks, source_nb, findings)
    score = sum((c.points for c in checks), 0.0)
    hidden_score = sum((h.points for h in report.hidden if h.answer not in penalized_answers), 0.0)
    status = status_of(findings, refused)
    if status == Status.TAMPERED:
        score, hidden_score = 0.0, 0.0
        notes += [f"tried to {what} (outside its scratch folder; refused)" for what in refused]
    lost = [f"{c.cell}: {c.message}" for c in checks if c.points < c.max_points and c.message and c.cell not in explained]
    return Row(notebook, status, "; ".join(notes + lost) or "all checks passed", score=score,
               max_score=sum((c.max_points for c in checks), 0.0), hidden_score=hidden_score,
               hidden_max=job.hidden_max.get(notebook, 0.0),
               manual_max=sum((g.max_score for g in grades.values() if g.manual), 0.0), checks=checks)
