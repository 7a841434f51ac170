"""Grade one student in its own process and its own scratch nbgrader course.

``python -m autograder.isolation JOB.json`` is started by the grader (autograder/grade.py),
one process per student, in a new session so the whole tree can be killed at the wall-time
limit. It

1. caps its own address space (``RLIMIT_AS``; the kernels it starts inherit the cap),
2. copies the template course (source notebooks + gradebook made once by
   ``nbgrader generate_assignment``) into ``course/`` beside the scratch folder, not in it: its
   own gradebook, never shared, and out of the reach of the student's code,
3. reads each submitted notebook against its source (autograder/tamper.py), puts back a
   duplicated test cell as released, and places it in ``submitted/<student>/maskgit/``,
4. runs ``nbgrader autograde`` once per notebook (per-cell ``Execute.timeout``, missing test
   cells added back) and ``nbgrader generate_feedback``, with HOME and TMPDIR inside the scratch
   folder, the write guard in every kernel (autograder/guard.py, from an IPYTHONDIR outside it),
   and the kernels allowed to write only the scratch folder and their cwd,
5. has the judge (autograder/rerun.py) re-run every visible check and the hidden checks, the
   student's functions running in its worker, in the sandbox when there is one, then draw each
   notebook's feedback figure (autograder/figures.py),
6. writes one JSON result: a row per notebook, the per-check messages, the feedback files and figures.

Only the parent reads that result and writes grades.csv, so students never share a gradebook.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import nbformat

from autograder import guard, sandbox, tamper
from autograder.core import Status
from autograder.release import ASSIGNMENT

MAX_NOTEBOOK_BYTES = 20 * 2**20  # a giant submitted file once took an nbgrader server down (#874)
# Seconds nbclient waits for an interrupted cell to go idle before it gives up on the notebook
# (nbgrader's default, 4 s, is shorter than a loaded machine takes to leave a torch call).
IOPUB_TIMEOUT = 60


def cap_memory(megabytes: int) -> None:
    if megabytes:
        limit = megabytes * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def torch_home() -> str:
    """The folder torch.hub uses for the grader (as torch.hub.get_dir() finds it, without importing torch)."""
    if os.environ.get("TORCH_HOME"):
        return os.environ["TORCH_HOME"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "torch")


def scratch_env(scratch: Path) -> dict:
    """The environment every process of this student runs with: its own HOME and TMPDIR, and an IPYTHONDIR
    outside the scratch folder (it holds the guard's startup file, which no notebook may rewrite for the next)."""
    home, tmp, ipython = scratch / "home", scratch / "tmp", scratch.parent / "ipython"
    for folder in (home, tmp, ipython):
        folder.mkdir(parents=True, exist_ok=True)
    fonts = Path(os.environ.get("MPLCONFIGDIR") or Path.home() / ".cache" / "matplotlib")
    (home / ".matplotlib").mkdir(exist_ok=True)
    for cache in fonts.glob("fontlist-*.json"):  # spares every student matplotlib's font scan
        shutil.copy(cache, home / ".matplotlib")
    bin_dir = Path(sys.executable).parent
    return dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # nbgrader runs `alembic` by name
        HOME=str(home), TMPDIR=str(tmp), IPYTHONDIR=str(ipython), MPLCONFIGDIR=str(home / ".matplotlib"),
        TORCH_HOME=torch_home(),  # read only: the Inception weights for FID
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"), PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="module://matplotlib_inline.backend_inline",  # plots reach the feedback even without %matplotlib (#1070)
    )


def nbgrader(course: Path, env: dict, log: Path, *args: str) -> int:
    command = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}",
               f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    with open(log, "a") as out:
        out.write(f"$ nbgrader {' '.join(args)}\n")
        out.flush()
        return subprocess.run(command, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def gradebook_grades(course: Path, student: str) -> dict:
    """notebook → grade id → {score, max_score, kind} as nbgrader recorded them."""
    from nbgrader.api import Gradebook, MissingEntry

    grades = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "maskgit-lab") as gb:
        for notebook in gb.find_assignment(ASSIGNMENT).notebooks:
            try:
                submission = gb.find_submission_notebook(notebook.name, ASSIGNMENT, student)
            except MissingEntry:
                continue
            grades[notebook.name] = {
                grade.name: {"score": grade.auto_score, "max_score": float(grade.max_score),
                             "kind": "test" if grade.cell.cell_type == "code" else "manual"}
                for grade in submission.grades
            }
    return grades


def cell_outputs(path: Path) -> dict:
    """grade id → (error text or None, wrote to stderr) in an autograded notebook."""
    found = {}
    if not path.exists():
        return found
    for cell in nbformat.read(str(path), as_version=4).cells:
        gid = tamper.grade_id(cell)
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


def describe_error(error: str, job: dict) -> str:
    if error.startswith(("CellTimeoutError", "KeyboardInterrupt")):
        return f"timed out after {job['cell_timeout']} s and was interrupted"
    if "MemoryError" in error or "can't allocate memory" in error or "DeadKernelError" in error:
        return f"ran out of memory (the cap is {job['memory_mb']} MB): {error[:200]}"
    return f"raised {error[:300]}"


def grader_notes(findings, report: dict, job: dict) -> list:
    """What the static reading found and what went wrong outside the checks (a crash, a cell that raised)."""
    notes = list(findings.notes())
    if report.get("crash"):
        notes.append("the grader could not re-run the checks outside the notebook: " + report["crash"].strip().splitlines()[-1])
    for gid, error in report.get("errors", {}).items():
        notes.append(f"your cell {gid} {describe_error(error, job)}")
    return notes


def score_test_cell(gid: str, grade: dict, output: tuple, again, job: dict, noise=()) -> tuple:
    """(the check's entry, notes) for one test cell: the smaller of nbgrader's score and the re-run's.

    ``output`` is (error text or None, wrote to stderr) from the autograded notebook; ``again``
    the re-run's result for this cell (None when it has none: then it scores 0), ``noise`` what the
    student's code printed to stderr or warned during the re-run (reported, never charged). A note
    explains a loss in words the check's own message would not give (a timeout, stderr, a pass
    that does not hold up).
    """
    points, notes = float(grade["score"] or 0), []
    error, stderr = output
    message = again["message"] if again else ""
    if error:
        why = describe_error(error, job)
        if again is None or again["points"] == again["max_points"]:
            message = why
            notes.append(f"{gid} {why}")
    elif stderr and points == 0:
        notes.append(f"{gid} wrote to stderr, which nbgrader scores 0")
        message = "wrote to stderr (a warning or a progress bar?), which nbgrader scores 0"
    if again is None:  # the judge has no answer for this cell: nbgrader's score alone is never kept
        if points:
            notes.append(f"{gid}: the grader could not re-run this check outside the notebook, so it scores 0")
        points, message = 0.0, message or "the grader could not re-run this check outside the notebook"
    elif again["points"] < points:
        notes.append(f"{gid} passed in the notebook but fails when the grader re-runs it: {again['message'][:200]}")
        points = again["points"]
    if noise:
        said = "; ".join(noise)[:300]
        message = f"{message} (your code {said}: reported only, no points lost)"
        notes.append(f"{gid}: your code {said} (no points lost)")
    check = {"cell": gid, "check": again["check"] if again else gid, "points": points, "max_points": grade["max_score"],
             "message": message}
    return check, notes


def penalize_reference_use(checks: list, source, findings) -> set:
    """Zero the checks of every TODO that used the reference package; returns the functions those TODOs define."""
    todos = [c for c in source.cells if tamper.grade_id(c) in findings.reference_use]
    penalized = {t for c in todos for t in tamper.tests_of_solution(source).get(tamper.grade_id(c), [])}
    for check in checks:
        if check["cell"] in penalized:
            check.update(points=0.0, message="uses the reference implementation instead of your own")
    return {name for c in todos for name in tamper.defined_functions(c.source)}


def status_of(findings, refused: list) -> Status:
    if findings.grader_tampering or refused:
        return Status.TAMPERED
    return Status.PENALIZED if findings.reference_use else Status.GRADED


def assemble(notebook: str, job: dict, grades: dict, outputs: dict, findings, report: dict, refused: list) -> dict:
    """One notebook's row (and the per-check messages) from everything gathered."""
    source = nbformat.read(str(Path(job["source"]) / f"{notebook}.ipynb"), as_version=4)
    for cell, routes in report.get("reference", {}).items():  # reaches for the reference the worker noted at run time
        used = findings.reference_use.setdefault(cell, [])
        used += [f"at run time: {route}" for route in routes if f"at run time: {route}" not in used]
    notes, checks, explained = grader_notes(findings, report, job), [], set()  # explained: losses a note already gives
    for gid, grade in grades.items():
        if grade["kind"] != "manual":
            check, cell_notes = score_test_cell(gid, grade, outputs.get(gid, (None, False)), report.get("tests", {}).get(gid),
                                                job, report.get("noise", {}).get(gid, ()))
            checks.append(check)
            notes += cell_notes
            if cell_notes:
                explained.add(gid)
    penalized_answers = penalize_reference_use(checks, source, findings)
    score = sum((c["points"] for c in checks), 0.0)
    hidden_score = sum((h["points"] for h in report.get("hidden", []) if h["answer"] not in penalized_answers), 0.0)
    status = status_of(findings, refused)
    if status == Status.TAMPERED:
        score, hidden_score = 0.0, 0.0
        notes += [f"tried to {what} (outside its scratch folder; refused)" for what in refused]
    lost = [f"{c['cell']}: {c['message']}" for c in checks
            if c["points"] < c["max_points"] and c["message"] and c["cell"] not in explained]
    return {"notebook": notebook, "status": status, "score": score, "max_score": sum((c["max_points"] for c in checks), 0.0),
            "hidden_score": hidden_score, "hidden_max": job["hidden_max"].get(notebook, 0.0),
            "manual_max": sum((g["max_score"] for g in grades.values() if g["kind"] == "manual"), 0.0),
            "reason": "; ".join(notes + lost) or "all checks passed", "checks": checks}


def autograde_log(scratch: Path, notebook: str) -> Path:
    return scratch.parent / f"nbgrader-{notebook}.log"


def cell_preview(source: str) -> str:
    """The preview of a cell that nbclient puts into its CellTimeoutError (nbclient/exceptions.py)."""
    lines = source.strip().split("\n")
    return source if len(lines) < 11 else f"{lines[:5]}\n...\n{lines[-5:]}"


def timed_out_cell(log_text: str, submitted: Path) -> str:
    """Which cell nbclient gave up on, in words, found by its preview in the autograde log."""
    try:
        cells = nbformat.read(str(submitted), as_version=4).cells
    except Exception:  # noqa: BLE001 (the row still says what happened, without the cell)
        cells = []
    flat = "\n".join(line.strip() for line in log_text.splitlines())  # the log indents the preview's lines
    for number, cell in enumerate(cells, 1):
        preview = "\n".join(line.strip() for line in cell_preview(cell.source).splitlines())
        if cell.cell_type == "code" and cell.source.strip() and preview in flat:
            gid = tamper.grade_id(cell)
            return f"your cell {gid}" if gid else f"cell {number} (code: {cell.source.strip().splitlines()[0][:60]!r})"
    return "a cell"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def grade(job: dict) -> dict:
    student, scratch, source = job["student"], Path(job["scratch"]), Path(job["source"])
    course = scratch.parent / "course"  # outside the scratch folder: no student code may write the gradebook
    shutil.copytree(job["template"], course)
    env = scratch_env(scratch)
    guard_log = scratch.parent / "guard-kernel.log"  # outside the scratch folder: the student cannot erase it
    kernel_dir = course / "autograded" / student / ASSIGNMENT  # the kernels' cwd: theirs to write, nothing else there
    kernel_dir.mkdir(parents=True)
    guard.write_startup(Path(env["IPYTHONDIR"]), [scratch, kernel_dir, "/dev"], guard_log)
    notebooks = sorted(p.stem for p in source.glob("*.ipynb"))
    submitted_dir = course / "submitted" / student / ASSIGNMENT
    submitted_dir.mkdir(parents=True)
    rows, findings, problems = {}, {}, {}
    for name in notebooks:
        given = job["files"].get(name)
        if given is None:
            continue
        if os.path.getsize(given) > MAX_NOTEBOOK_BYTES:
            problems[name] = f"the notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
            continue
        try:
            submitted = nbformat.read(str(given), as_version=4)
            released = nbformat.read(str(source / f"{name}.ipynb"), as_version=4)
            findings[name] = tamper.scan(submitted, released)
            findings[name].duplicated_tests = tamper.repair_test_cells(submitted, released)
        except Exception as err:  # noqa: BLE001 (not JSON, not a notebook)
            problems[name] = f"not a readable notebook ({type(err).__name__}: {str(err)[:200]})"
            continue
        nbformat.write(submitted, str(submitted_dir / f"{name}.ipynb"))
    log = scratch.parent / "nbgrader.log"
    say(f"{student}: scratch course ready, {len(findings)} notebook(s) to grade")
    # The re-run of the checks only needs the submitted notebooks: start it now, beside nbgrader.
    hidden_runs = {name: start_hidden(submitted_dir / f"{name}.ipynb", source / f"{name}.ipynb", scratch, env, job)
                   for name in sorted(findings)}
    # One autograde call per notebook: a cell that ignores the interrupt makes nbclient abandon the
    # whole call, so it must cost that notebook only.
    for name in sorted(findings):
        nbgrader(course, env, autograde_log(scratch, name), "autograde", ASSIGNMENT, "--student", student,
                 "--notebook", name, "--force", f"--Execute.timeout={job['cell_timeout']}",
                 f"--Execute.iopub_timeout={IOPUB_TIMEOUT}",
                 "--OverwriteCells.add_missing_cells=True")
        say(f"autograde of {name} done")
    if findings:
        nbgrader(course, env, log, "generate_feedback", ASSIGNMENT, "--student", student, "--force")
        say("feedback done")
    grades = gradebook_grades(course, student) if findings else {}
    reports = {name: finish_hidden(run, job) for name, run in hidden_runs.items()}
    feedback, autograded_files, figures = {}, {}, {}
    say("hidden checks done")
    # A refusal in the hidden runner belongs to that notebook; one seen only in the kernels
    # (which run every notebook) is charged to every notebook of the submission.
    kernel_refusals = guard.refusals(guard_log)
    attributed = any(refused for _, refused in reports.values())
    for name in notebooks:
        if name not in job["files"]:
            rows[name] = {"notebook": name, "status": Status.MISSING, "reason": "not submitted"}
        elif name in problems:
            rows[name] = {"notebook": name, "status": Status.ERROR, "reason": problems[name]}
        elif name not in grades or not (course / "autograded" / student / ASSIGNMENT / f"{name}.ipynb").exists():
            own_log = autograde_log(scratch, name)
            text = own_log.read_text(errors="replace") if own_log.exists() else ""
            if "CellTimeoutError" in text:  # nbclient gives up on the notebook when the interrupt is ignored
                rows[name] = {"notebook": name, "status": Status.TIMEOUT, "reason": (
                    f"{timed_out_cell(text, submitted_dir / f'{name}.ipynb')} ran past the cell timeout "
                    f"({job['cell_timeout']} s) and ignored the interrupt, so nbgrader gave up on this notebook "
                    f"(your other notebooks were graded on their own)")}
            else:
                errors = [line for line in text.splitlines() if "[AutogradeApp | ERROR]" in line][:2]
                rows[name] = {"notebook": name, "status": Status.ERROR,
                              "reason": f"nbgrader could not grade it: {' '.join(errors)[:300] or text.strip()[-300:]}"}
        else:
            report, refused = reports[name]
            autograded = course / "autograded" / student / ASSIGNMENT / f"{name}.ipynb"
            refused = refused or ([] if attributed else kernel_refusals)
            rows[name] = assemble(name, job, grades[name], cell_outputs(autograded), findings[name], report, refused)
            html = course / "feedback" / student / ASSIGNMENT / f"{name}.html"
            if html.exists():
                feedback[name] = str(html)
            if report.get("figure"):
                figures[name] = report["figure"]
            autograded_files[name] = str(autograded)
    return {"student": student, "rows": [rows[n] for n in notebooks], "feedback": feedback, "autograded": autograded_files,
            "figures": figures, "sandbox": job.get("sandbox", sandbox.GUARD)}


def start_hidden(submitted: Path, source: Path, scratch: Path, env: dict, job: dict):
    """Start the judge of one notebook (autograder/rerun.py): the re-run of the visible checks and the hidden ones,
    then (unless ``job["figures"]`` is false) the feedback figure, drawn into a folder beside the scratch folder
    (beside the reference's, drawn once per grading run into ``job["reference_figures"]``).

    The judge runs no student code; its worker does, in the sandbox when the grader found one
    (``job["sandbox"]``): only the scratch folder and the worker's guard log writable, the
    grading folder (every student) and the submissions hidden.
    """
    hidden_log = scratch.parent / f"guard-{source.stem}.log"  # all three outside the scratch folder: the student
    result = scratch.parent / f"hidden-{source.stem}.json"  # can write none of them
    figures = scratch.parent / f"figures-{source.stem}"
    hidden_log.touch()
    command = [sys.executable, "-m", "autograder.rerun", str(submitted), str(source), str(result), str(hidden_log), str(scratch),
               str(job["cell_timeout"])]
    if job.get("figures", True):
        command += [str(figures)] + [job["reference_figures"]] * bool(job.get("reference_figures"))
    cwd = scratch / "hidden" / source.stem  # the worker's cwd: a folder of its own, as the kernel's is the autograded one
    cwd.mkdir(parents=True)
    # PYTHONSAFEPATH: that cwd is the student's to write, so the judge must not import from it (it imports
    # matplotlib's parts late, when it draws)
    env = dict(env, PYTHONSAFEPATH="1")
    if job.get("sandbox") == sandbox.BWRAP:
        hide = [scratch.parent.parent] + [Path(job["submissions"])] * bool(job.get("submissions"))
        env["MASKGIT_LAB_SANDBOX"] = json.dumps(sandbox.prefix(scratch, hide, [hidden_log]))
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, result, figures, hidden_log


def finish_hidden(run, job: dict):
    """(report, refusals) of a run started by :func:`start_hidden`.

    A judge stopped at the time limit while it drew the figure has written its verdicts already: they count.
    The report's figure, if any, names its files with their full paths.
    """
    process, result, figures, hidden_log = run
    stopped = None
    try:
        process.wait(timeout=max(120, 4 * job["cell_timeout"]))
    except subprocess.TimeoutExpired as err:
        process.kill()
        process.wait()
        stopped = f"{type(err).__name__}: {err}"
    try:
        report = json.loads(result.read_text())
    except (OSError, ValueError) as err:
        report = {"crash": stopped or f"{type(err).__name__}: {err}"}
    figure = report.get("figure")
    if figure:
        report["figure"] = dict(figure, **{side: str(figures / figure[side]) if figure.get(side) else None
                                           for side in ("yours", "reference")})
    return report, guard.refusals(hidden_log)


def main(argv=None) -> int:
    job_path = Path((argv or sys.argv[1:])[0])
    job = json.loads(job_path.read_text())
    cap_memory(job["memory_mb"])
    try:
        result = grade(job)
    except BaseException:  # noqa: BLE001 (reported in the student's rows, never lost)
        result = {"student": job["student"], "crash": traceback.format_exc()[-3000:]}
    Path(job["result"]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
