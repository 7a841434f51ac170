"""Grade one student in its own process and its own scratch nbgrader course.

``python -m autograder.student JOB.json`` is started by the grader (autograder/grader/grade.py),
one process per student, in a new session so the whole tree can be killed at the wall-time
limit. It reads its :class:`~autograder.records.Job`, then

1. caps its own address space (autograder/student/limits.py; the kernels it starts inherit the cap),
2. copies the template course (source notebooks + gradebook made once by
   ``nbgrader generate_assignment``) into ``course/`` beside the scratch folder, not in it: its
   own gradebook, never shared, and out of the reach of the student's code; and a second copy,
   ``course-1/``, for the second lane (:data:`LANES`): the notebooks are graded two at a time,
   each lane in its own course, because nbgrader's gradebook takes one writer,
3. reads each submitted notebook against its source (autograder/student/tamper.py), puts back a
   duplicated test cell as released, and places it in its lane's ``submitted/<student>/maskgit/``,
4. starts one judge per notebook as that notebook's autograde starts (``python -m autograder.judge``,
   autograder/judge/judge.py): the re-run of every visible check and the hidden ones, the student's
   functions running in its worker, in the sandbox when there is one, then the notebook's feedback figure,
5. meanwhile runs ``nbgrader autograde`` once per notebook (per-cell ``Execute.timeout``, missing
   test cells added back) and ``nbgrader generate_feedback``, in the environment of
   autograder/student/sandbox.py, the write guard in every kernel (autograder/student/guard.py,
   from an IPYTHONDIR outside the scratch folder), the kernels allowed to write only the scratch
   folder and their cwd,
6. turns each notebook's evidence into its row (autograder/verdict.py) and writes one
   :class:`~autograder.records.StudentResult`: the rows, the feedback files and figures.

Only the grader reads that result and writes grades.csv, so students never share a gradebook.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from autograder import judge, records, verdict
from autograder.cells import grade_id
from autograder.core import Status
from autograder.records import Job, Report, StudentResult
from autograder.release import ASSIGNMENT
from autograder.student import guard, limits, sandbox, tamper


# Notebooks graded side by side. On an idle 2-core machine the six reference notebooks took 96 s one after the other,
# on one core's worth of work at a time (autograder/README.md, Timings); two lanes use both. A student's
# notebooks alternate between the lanes in course order, so 04 and 06 share one: 06 reads the student's
# decode_step from the autograded 04 beside it (autograder/earlier.py), which its lane grades first.
LANES = 2


def lane_of(notebook: str, course_notebooks: list) -> int:
    return course_notebooks.index(notebook) % LANES


class Course:
    """One lane's scratch course and the folders around it: which process may write where."""

    def __init__(self, job: Job, lane: int = 0):
        self.job, self.student = job, job.student
        self.scratch = Path(job.scratch)  # the student's code may write here, and nowhere else but its cwd
        # outside the scratch folder: no student code may write the gradebook
        self.root = self.scratch.parent / ("course" if lane == 0 else f"course-{lane}")
        self.submitted = self.root / "submitted" / self.student / ASSIGNMENT
        self.autograded = self.root / "autograded" / self.student / ASSIGNMENT  # the kernels' cwd
        self.guard_log = self.scratch.parent / "guard-kernel.log"  # outside the scratch folder: the student cannot erase it

    def log(self, notebook: str = "") -> Path:
        return self.scratch.parent / (f"nbgrader-{notebook}.log" if notebook else f"nbgrader-{self.root.name}.log")

    def nbgrader(self, env: dict, log: Path, *args: str) -> int:
        command = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={self.root}",
                   f"--CourseDirectory.db_url=sqlite:///{self.root / 'gradebook.db'}"]
        with open(log, "a") as out:
            out.write(f"$ nbgrader {' '.join(args)}\n")
            out.flush()
            return subprocess.run(command, cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def gradebook_grades(course: Path, student: str) -> dict:
    """notebook → grade id → :class:`~autograder.verdict.CellGrade` as nbgrader recorded them."""
    from nbgrader.api import Gradebook, MissingEntry

    grades = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "maskgit-lab") as gb:
        for notebook in gb.find_assignment(ASSIGNMENT).notebooks:
            try:
                submission = gb.find_submission_notebook(notebook.name, ASSIGNMENT, student)
            except MissingEntry:
                continue
            grades[notebook.name] = {grade.name: verdict.CellGrade(grade.auto_score, float(grade.max_score),
                                                                   manual=grade.cell.cell_type != "code")
                                     for grade in submission.grades}
    return grades


def cell_outputs(path: Path) -> dict:
    """grade id → (error text or None, wrote to stderr) in an autograded notebook."""
    found = {}
    if not path.exists():
        return found
    for cell in nbformat.read(str(path), as_version=4).cells:
        gid = grade_id(cell)
        if cell.cell_type != "code" or gid is None:
            continue
        error, stderr = None, False
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                error = f"{output.ename}: {output.evalue}".strip().rstrip(":")
            elif output.output_type == "stream" and output.name == "stderr":
                stderr = True
        found[gid] = (error, stderr)
    return found


def submitted_cells(path: Path) -> list:
    try:
        return nbformat.read(str(path), as_version=4).cells
    except Exception:  # noqa: BLE001 (the row still says what happened, without the cell)
        return []


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def place_submissions(job: Job, course_of) -> tuple:
    """Read each notebook handed in against its source and place it in its course (``course_of(name)``); returns
    (findings, problems)."""
    findings, problems = {}, {}
    for name, given in sorted(job.files.items()):
        if os.path.getsize(given) > limits.MAX_NOTEBOOK_BYTES:
            problems[name] = f"the notebook is larger than {limits.MAX_NOTEBOOK_BYTES // 2**20} MB"
            continue
        try:
            submitted = nbformat.read(str(given), as_version=4)
            released = nbformat.read(str(Path(job.source) / f"{name}.ipynb"), as_version=4)
            findings[name] = tamper.scan(submitted, released)
            findings[name].duplicated_tests = tamper.repair_test_cells(submitted, released)
        except Exception as err:  # noqa: BLE001 (not JSON, not a notebook)
            problems[name] = f"not a readable notebook ({type(err).__name__}: {str(err)[:200]})"
            continue
        nbformat.write(submitted, str(course_of(name).submitted / f"{name}.ipynb"))
    return findings, problems


def autograde(course: Course, env: dict, notebooks: list, beside=lambda name: None) -> None:
    """nbgrader's autograde, once per notebook, then its feedback; ``beside(name)`` is called as each one's starts.

    One call per notebook: a cell that ignores the interrupt makes nbclient abandon the whole
    call, so it must cost that notebook only.
    """
    for name in notebooks:
        beside(name)
        course.nbgrader(env, course.log(name), "autograde", ASSIGNMENT, "--student", course.student, "--notebook", name,
                        "--force", f"--Execute.timeout={course.job.cell_timeout}",
                        f"--Execute.iopub_timeout={limits.IOPUB_TIMEOUT}", "--OverwriteCells.add_missing_cells=True")
        say(f"autograde of {name} done")
    if notebooks:
        course.nbgrader(env, course.log(), "generate_feedback", ASSIGNMENT, "--student", course.student, "--force")
        say(f"feedback of {course.root.name} done")


def run(job: Job) -> StudentResult:
    """Grade the student of ``job`` as the module's docstring says."""
    notebooks = sorted(p.stem for p in Path(job.source).glob("*.ipynb"))
    lanes = {lane: Course(job, lane) for lane in sorted({lane_of(name, notebooks) for name in job.files})}
    courses, course_of = list(lanes.values()), {name: lanes[lane_of(name, notebooks)] for name in job.files}
    env = sandbox.scratch_env(Path(job.scratch))
    # One torch thread per kernel: a kernel's work is small tensors, and the lanes' two kernels share the cores with
    # the judges (two threads gave the same wall time for 25 % more CPU, autograder/README.md, Timings).
    env["OMP_NUM_THREADS"] = "1"
    for course in courses:
        shutil.copytree(job.template, course.root)
        course.autograded.mkdir(parents=True)
        course.submitted.mkdir(parents=True)
    kernel_log = Course(job).guard_log  # one for every lane's kernels
    guard.write_startup(Path(env["IPYTHONDIR"]), [Path(job.scratch), *(course.autograded for course in courses), "/dev"],
                        kernel_log)
    findings, problems = place_submissions(job, course_of.get)
    say(f"{job.student}: scratch course ready, {len(findings)} notebook(s) to grade in {len(courses)} lane(s)")
    # The judges only need the submitted notebooks: each starts with its notebook's autograde and runs beside nbgrader,
    # so one or two share the cores with each kernel, not all of them at once while it starts (autograder/README.md,
    # Timings).
    judges = {}

    def lane(course: Course) -> dict:
        mine = [name for name in sorted(findings) if course_of[name] is course]
        autograde(course, env, mine, lambda name: judges.update({name: start_judge(course, name, env)}))
        graded = gradebook_grades(course.root, job.student) if mine else {}
        return {name: graded[name] for name in mine if name in graded}  # each gradebook lists every notebook

    with ThreadPoolExecutor(max_workers=len(courses) or 1) as pool:
        grades = {name: found for each in pool.map(lane, courses) for name, found in each.items()}
    reports = {name: finish_judge(started, job) for name, started in judges.items()}
    say("hidden checks done")
    result = StudentResult(job.student, sandbox=job.sandbox)
    # A refusal in a judge's worker belongs to that notebook; one seen only in the kernels
    # (which run every notebook) is charged to every notebook of the submission.
    kernel_refusals = guard.refusals(kernel_log)
    attributed = any(refused for _, refused in reports.values())
    for name in notebooks:
        course = course_of.get(name)
        if name not in job.files:
            result.rows.append(verdict.unscored(name, Status.MISSING, "not submitted"))
        elif name in problems:
            result.rows.append(verdict.unscored(name, Status.ERROR, problems[name]))
        elif name not in grades or not (course.autograded / f"{name}.ipynb").exists():
            log = course.log(name)
            text = log.read_text(errors="replace") if log.exists() else ""
            result.rows.append(verdict.not_autograded(name, text, submitted_cells(course.submitted / f"{name}.ipynb"),
                                                      job.cell_timeout))
        else:
            report, refused = reports[name]
            refused = refused or ([] if attributed else kernel_refusals)
            collect(result, course, name, grades[name], findings[name], report, refused)
    return result


def collect(result: StudentResult, course: Course, name: str, grades: dict, findings, report: Report, refused: list) -> None:
    """Add a graded notebook's row to ``result``, with its feedback page, autograded notebook and figure."""
    autograded = course.autograded / f"{name}.ipynb"
    source_nb = nbformat.read(str(Path(course.job.source) / f"{name}.ipynb"), as_version=4)
    result.rows.append(verdict.row(name, course.job, source_nb, grades, cell_outputs(autograded), findings, report, refused))
    html = course.root / "feedback" / course.student / ASSIGNMENT / f"{name}.html"
    if html.exists():
        result.feedback[name] = str(html)
    if report.figure:
        result.figures[name] = report.figure
    result.autograded[name] = str(autograded)


def start_judge(course: Course, notebook: str, env: dict) -> tuple:
    """Start the judge of one notebook (autograder/judge/judge.py): the re-run of the visible checks and the hidden
    ones, then (unless the job says no figures) the feedback figure, drawn into a folder beside the scratch folder
    (beside the reference's, drawn once per grading run into the job's ``reference_figures``).

    The judge runs no student code; its worker does, in the sandbox when the grader found one
    (the job's ``sandbox``): only the scratch folder and the worker's guard log writable, the
    grading folder (every student) and the submissions hidden.
    """
    job, scratch = course.job, course.scratch
    beside = scratch.parent  # the report, the guard log and the figures sit outside the scratch folder: the student
    args = judge.Arguments(course.submitted / f"{notebook}.ipynb", Path(job.source) / f"{notebook}.ipynb",  # writes none
                           beside / f"hidden-{notebook}.json", beside / f"guard-{notebook}.log", scratch, job.cell_timeout,
                           beside / f"figures-{notebook}" if job.figures else None,
                           Path(job.reference_figures) if job.figures and job.reference_figures else None)
    args.guard_log.touch()
    cwd = scratch / "hidden" / notebook  # the worker's cwd: a folder of its own, as the kernel's is the autograded one
    cwd.mkdir(parents=True)
    # PYTHONSAFEPATH: that cwd is the student's to write, so the judge must not import from it (it imports
    # matplotlib's parts late, when it draws). One torch thread for the judge and its worker: their tensors are small,
    # and the judges share the student's cores with nbgrader's kernel, where idle threads would spin for nothing.
    env = dict(env, PYTHONSAFEPATH="1", OMP_NUM_THREADS="1")
    if job.sandbox == sandbox.BWRAP:
        hide = [scratch.parent.parent] + [Path(job.submissions)] * bool(job.submissions)
        env[judge.SANDBOX] = json.dumps(sandbox.prefix(scratch, hide, [args.guard_log]))
    process = subprocess.Popen(judge.command(args), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, args


def finish_judge(started: tuple, job: Job) -> tuple:
    """(report, refusals) of a judge started by :func:`start_judge`.

    A judge stopped at the time limit while it drew the figure has written its verdicts already: they count.
    The report's figure, if any, names its files with their full paths.
    """
    process, args = started
    stopped = None
    try:
        process.wait(timeout=limits.judge_seconds(job.cell_timeout))
    except subprocess.TimeoutExpired as err:
        process.kill()
        process.wait()
        stopped = f"{type(err).__name__}: {err}"
    try:
        report = records.read(Report, args.report)
    except (OSError, ValueError, TypeError, AttributeError) as err:  # none, or not a report
        report = Report(crash=stopped or f"{type(err).__name__}: {err}")
    if report.figure:
        for side in ("yours", "reference"):
            name = getattr(report.figure, side)
            setattr(report.figure, side, str(args.figures / name) if name else None)
    return report, guard.refusals(args.guard_log)


def main(argv=None) -> int:
    job = records.read(Job, Path((argv or sys.argv[1:])[0]))
    limits.cap_memory(job.memory_mb)
    try:
        result = run(job)
    except BaseException:  # noqa: BLE001 (reported in the student's rows, never lost)
        result = StudentResult(job.student, crash=traceback.format_exc()[-3000:])
    records.write(result, job.result)
    return 0
