"""``python -m autograder grade SUBMISSIONS --out grades.csv [-j N] [--timeout S] [--memory MB]``.

SUBMISSIONS holds one folder per student with its notebooks, either flat
(``alice/01_vq_tokenization.ipynb``), per assignment (``alice/maskgit/…``) or in nbgrader's
layout (``submitted/alice/maskgit/…``). A student may hand in only some notebooks.

The template course (the source notebooks and a gradebook made by ``nbgrader
generate_assignment``) is built once; then every student is graded by its own process
(``python -m autograder.student``, autograder/student/) in its own copy of it, ``-j N`` at a
time, each handed a :class:`~autograder.records.Job` and killed with its whole process tree at
the wall-time limit. This process alone writes ``grades.csv`` — one row per student and
notebook, always, whatever happened (the statuses: autograder/core.py, decided in
autograder/verdict.py) — and each student's feedback folder (autograder/grader/feedback.py).
"""

import contextlib
import csv
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from autograder import options, records, release, student, verdict
from autograder.cells import is_test_cell, nbgrader_meta
from autograder.core import Status
from autograder.grader import misconceptions
from autograder.grader.feedback import write_feedback
from autograder.records import Job, StudentResult
from autograder.student import sandbox
from autograder.student.limits import DEFAULT_CELL_TIMEOUT, DEFAULT_MEMORY, DEFAULT_TIMEOUT

COLUMNS = ["student", "notebook", "status", "score", "max_score", "hidden_score", "hidden_max", "manual_max", "reason",
           "sandbox"]
STUDENT_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # nbgrader ids with odd characters break paths (#1738)


def find_submissions(root: Path, source: Path = release.SOLUTIONS) -> dict:
    """student → {notebook name → path}, from any of the three layouts."""
    root = Path(root)
    names = {p.stem for p in source.glob("*.ipynb")}
    base = root / "submitted" if (root / "submitted").is_dir() else root
    students = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        inner = folder / release.ASSIGNMENT if (folder / release.ASSIGNMENT).is_dir() else folder
        students[folder.name] = {p.stem: p for p in sorted(inner.glob("*.ipynb")) if p.stem in names}
    return students


def make_template(work: Path, source: Path) -> Path:
    """The scratch course every student's course is copied from: sources + gradebook, generated once."""
    course = release.make_course(work / "template", source)
    release.run_nbgrader(course, "generate_assignment", release.ASSIGNMENT, "--force")
    return course


def process_tree(pid: int) -> list:
    """``pid`` and all its descendants (kernels start their own session, so a group kill misses them)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def kill_tree(process: subprocess.Popen) -> None:
    """Kill the running ``process`` and everything it started, then reap it."""
    for pid in process_tree(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def snapshot(paths) -> dict:
    """(size, mtime) of every file under ``paths``: what a student must not change."""
    found = {}
    for root in paths:
        root = Path(root)
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                found[path] = (stat.st_size, stat.st_mtime_ns)
    return found


def changed(before: dict, after: dict) -> list:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


class Stopped(Exception):
    """The grading run was stopped (a signal, Ctrl-C, an error): no student is started any more."""


class Children:
    """The students' processes that run now, so that a stopped grading run kills every one and starts no more."""

    def __init__(self):
        self.lock, self.live, self.stopped = threading.Lock(), set(), False

    @contextlib.contextmanager
    def running(self, command: list, **popen):
        """``subprocess.Popen(command, **popen)``, known to :meth:`stop` while the block runs."""
        with self.lock:
            if self.stopped:
                raise Stopped("the grading run was stopped before this student started")
            process = subprocess.Popen(command, **popen)
            self.live.add(process)
        try:
            yield process
        finally:
            with self.lock:
                self.live.discard(process)

    def stop(self) -> None:
        """Kill the process tree of every student that runs, and refuse to start another."""
        with self.lock:
            self.stopped, live = True, list(self.live)
        for process in live:
            kill_tree(process)


def grade_student(job: Job, children: Children = None) -> StudentResult:
    """Run the student's process (autograder/student/) for ``job`` and return its result, whatever happens."""
    notebooks = sorted(p.stem for p in Path(job.source).glob("*.ipynb"))
    folder = Path(job.result).parent
    records.write(job, folder / "job.json")
    started = time.monotonic()
    with open(folder / "student.log", "w") as log, (children or Children()).running(
            student.command(folder / "job.json"), cwd=folder, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True) as process:
        try:
            process.wait(timeout=job.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:  # kill it while its process tree can still be read
            kill_tree(process)  # kernels run in their own session: a group kill alone would miss them
            timed_out = True
    if timed_out:
        reason = f"grading took longer than {job.timeout:g} s (an endless loop, or cells that ignore interrupts?)"
        result = StudentResult(job.student, verdict.student_rows(notebooks, job.files, Status.TIMEOUT, reason))
    else:
        result = read_result(job, process.returncode, folder / "student.log", notebooks)
    result.seconds, result.sandbox = time.monotonic() - started, result.sandbox or job.sandbox
    return result


def read_result(job: Job, returncode: int, log: Path, notebooks: list) -> StudentResult:
    """The student's process's result; a crash (a traceback, or no result at all) gives every notebook handed in an error row."""
    try:
        result = records.read(StudentResult, job.result)
    except (OSError, ValueError, TypeError, AttributeError):
        tail = log.read_text(errors="replace").strip()[-300:]
        result = StudentResult(job.student, crash=f"no result (exit code {returncode}): {tail}")
    if result.crash is not None:
        last = result.crash.strip().splitlines()[-1] if result.crash.strip() else "unknown"
        result = StudentResult(job.student, verdict.student_rows(notebooks, job.files, Status.ERROR, f"the grader crashed: {last}"))
    return result


def max_points(source: Path) -> dict:
    """notebook → (visible checks' points, discussion questions' points), from the source notebooks."""
    import nbformat

    found = {}
    for path in sorted(source.glob("*.ipynb")):
        cells = [c for c in nbformat.read(str(path), as_version=4).cells if nbgrader_meta(c).get("grade")]
        tests = sum(float(nbgrader_meta(c).get("points", 0)) for c in cells if is_test_cell(c))
        manual = sum(float(nbgrader_meta(c).get("points", 0)) for c in cells if not is_test_cell(c))
        found[path.stem] = (tests, manual)
    return found


def csv_rows(result: StudentResult, work: Path, maxima: dict, hidden_maxima: dict) -> list:
    """The student's rows as grades.csv writes them: a maximum the row leaves open is the source notebook's."""
    rows = []
    for row in result.rows:
        notebook = row.notebook
        filled = {"student": result.student, "notebook": notebook, "status": row.status, "score": row.score,
                  "max_score": maxima[notebook][0] if row.max_score is None else row.max_score,
                  "hidden_score": row.hidden_score,
                  "hidden_max": hidden_maxima[notebook] if row.hidden_max is None else row.hidden_max,
                  "manual_max": maxima[notebook][1] if row.manual_max is None else row.manual_max,
                  "reason": row.reason.replace(str(work), "<grading dir>").replace("\n", " "), "sandbox": result.sandbox}
        rows.append({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in filled.items()})
    return rows


def add_limit_args(parser, jobs_help: str = "students graded at the same time (default 1)"):
    """The per-student limits, the source notebooks and the sandbox and figure switches, as flags typed by their
    domains (autograder/options.py): shared by `grade` and the SLURM wrapper, which hands them on to `grade` with
    :func:`limit_options`."""
    options.add(parser, "-j", "--jobs", default=1, help=jobs_help)
    options.add(parser, "--timeout", default=DEFAULT_TIMEOUT, help="wall-time limit per student, seconds (> 0)")
    options.add(parser, "--memory", default=DEFAULT_MEMORY, help="address-space cap per student, MB (0: none)")
    options.add(parser, "--cell-timeout", default=DEFAULT_CELL_TIMEOUT, help="nbgrader's Execute.timeout per cell, s (≥ 1)")
    options.add(parser, "--source", default=release.SOLUTIONS, help="the source notebooks (default solutions/)")
    parser.add_argument("--no-sandbox", action="store_true", help="run the students' functions under the write guard alone, "
                        "even where bubblewrap works (to compare; the CSV's sandbox column says guard)")
    parser.add_argument("--no-figures", action="store_true", help="draw no feedback figures (autograder/judge/figures.py), "
                        "e.g. to measure what they add to the grading time")


def limit_options(args) -> list:
    """The flags of :func:`add_limit_args` as parsed into ``args``, written out again for `grade`'s command line."""
    flags = ["-j", str(args.jobs), "--timeout", f"{args.timeout:g}", "--memory", str(args.memory),
             "--cell-timeout", str(args.cell_timeout), "--source", str(Path(args.source).resolve())]
    return flags + ["--no-sandbox"] * args.no_sandbox + ["--no-figures"] * args.no_figures


def reference_figure(folder: Path, notebook: str, log=print) -> None:
    """Draw ``notebook``'s feedback figure with the reference's functions once for the whole grading run (every judge
    puts its student's beside it); a notebook whose picture fails here is drawn by each judge instead."""
    from autograder.judge import figures

    try:
        figures.reference_figure(notebook, folder)
    except Exception as err:  # noqa: BLE001 (a judge draws it again and notes what fails)
        log(f"the reference figure of {notebook} could not be drawn once for all ({type(err).__name__}: {err}); "
            "each judge draws it")


@contextlib.contextmanager
def reference_figures_beside(work: Path, source: Path, figures: bool = True, log=print):
    """The folder of the reference's figures (None without ``figures``), drawn in a thread while the students are
    graded: a judge that reaches its figure before the reference's is there draws that one itself
    (``figures.make``), so no student waits for them. Figures not yet begun are dropped when the run stops."""
    if not figures:
        yield None
        return
    from autograder.judge import figures as pictures

    folder = work / "reference-figures"
    with ThreadPoolExecutor(max_workers=1) as pool:
        drawn = [pool.submit(reference_figure, folder, notebook, log)
                 for notebook in sorted(p.stem for p in source.glob("*.ipynb") if p.stem in pictures.PICTURES)]
        try:
            yield str(folder)
        except BaseException:
            for future in drawn:
                future.cancel()
            raise


@contextlib.contextmanager
def signals_end_the_run():
    """Turn SIGTERM into ``SystemExit(143)`` (and keep Ctrl-C's ``KeyboardInterrupt``) while a grading run goes on, so
    that its clean-up runs: the students' processes killed, the scratch folder removed. A second signal during that
    clean-up is ignored. A signal the caller ignores stays ignored; outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    caught = {number: handler for number, handler in caught.items() if handler is not signal.SIG_IGN}

    def stop(number, frame):
        for each in caught:
            signal.signal(each, signal.SIG_IGN)
        if number == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + number)

    for number in caught:
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in caught.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def scratch_folder(keep: bool, log=print):
    """The run's ``maskgit-grade-*`` folder in the temp directory, removed however the run ends (a signal included,
    :func:`signals_end_the_run`) unless ``keep``."""
    with signals_end_the_run():
        work = Path(tempfile.mkdtemp(prefix="maskgit-grade-"))
        try:
            yield work
        finally:
            if keep:
                log(f"kept the scratch courses in {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)


class Run:
    """One grading run: its scratch folder, the settings every student's Job shares, and the files to watch."""

    def __init__(self, source: Path, work: Path, template: Path, watched: list, **settings):
        self.source, self.work, self.template, self.watched, self.settings = source, work, template, watched, settings
        self.started, self.children = time.monotonic(), Children()

    def job(self, name: str, files: dict) -> Job:
        folder = self.work / name
        folder.mkdir()
        return Job(student=name, files={k: str(v) for k, v in files.items()}, template=str(self.template),
                   scratch=str(folder / "scratch"), source=str(self.source), result=str(folder / "result.json"),
                   **self.settings)

    def grade(self, name: str, files: dict, log=print) -> StudentResult:
        """Grade one student; a file in the submissions or the template course that changed meanwhile zeroes it."""
        before = snapshot(self.watched)
        result = grade_student(self.job(name, files), self.children)
        touched = changed(before, snapshot(self.watched))
        if touched:
            for row in result.rows:
                verdict.tampered_meanwhile(row, touched)
        log(f"{name}: {time.monotonic() - self.started:.0f} s since start, took {result.seconds:.0f} s")
        return result

    def grade_all(self, students: dict, jobs: int, log=print) -> dict:
        """student → result for ``students`` (name → files), ``jobs`` at a time. Stopped by an exception (SIGTERM and
        Ctrl-C among them), it kills the students' processes that run and starts no more."""
        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        futures = [pool.submit(self.grade, name, students[name], log) for name in sorted(students)]
        try:
            pending = futures
            while pending:  # in short waits: the main thread runs a signal's handler only when it runs Python code
                pending = wait(pending, timeout=1).not_done
            return {r.student: r for r in (future.result() for future in futures)}
        except BaseException:
            self.children.stop()
            raise
        finally:
            pool.shutdown(cancel_futures=True)


def grade(submissions: Path, out: Path, jobs: int = 1, timeout: float = DEFAULT_TIMEOUT, memory: int = DEFAULT_MEMORY,
          cell_timeout: int = DEFAULT_CELL_TIMEOUT, feedback: Path = None, source: Path = release.SOLUTIONS,
          keep: bool = False, log=print, template: Path = None, only=None, on_student=None, sandboxed: bool = True,
          figures: bool = True) -> list:
    """Grade every student under ``submissions``; write ``out`` (CSV) and the feedback folder; return the rows.

    ``template`` reuses a course made by :func:`make_template` from the same ``source``. ``only`` (a set of
    student names) grades those alone, as a shard does; ``on_student(result, rows)`` is called for each
    student while its scratch course still exists (autograder/grader/shard.py keeps the autograded notebooks).
    ``sandboxed=False`` runs the students' functions under the guard alone, as where bubblewrap cannot start.
    ``figures=False`` draws no feedback figures (to measure what they cost).
    """
    from autograder.judge import hidden  # imports torch: only when grading

    submissions, out, source = Path(submissions).resolve(), Path(out).resolve(), Path(source).resolve()
    feedback_dir = Path(feedback).resolve() if feedback else out.parent / "feedback"
    students = find_submissions(submissions, source)
    if only is not None:
        students = {s: f for s, f in students.items() if s in only}
    notebooks = sorted(p.stem for p in source.glob("*.ipynb"))
    hidden_max = {n: hidden.hidden_max(n) for n in notebooks}
    with scratch_folder(keep, log) as work:
        mode, why = sandbox.probe(work / "sandbox-probe") if sandboxed else (sandbox.GUARD, "turned off")
        if mode != sandbox.BWRAP:
            log(f"no sandbox: {why}; the student's functions run under the write guard alone (CSV column sandbox = guard)")
        valid = {s: f for s, f in students.items() if STUDENT_ID.match(s)}
        results = {s: StudentResult(s, verdict.student_rows(notebooks, students[s], Status.ERROR,
                                                            "the folder name is not a usable student id ([A-Za-z0-9_-] only)"))
                   for s in sorted(set(students) - set(valid))}
        with reference_figures_beside(work, source, figures and bool(valid), log) as shared:
            started = time.monotonic()
            template = make_template(work, source) if template is None and valid else template
            log(f"template course ready ({time.monotonic() - started:.0f} s); grading {len(valid)} student(s), {jobs} at a time")
            # What a student could change to sway others: the submissions and the template course.
            # (Code and sources are left out: an instructor may edit them while a class is graded.)
            watched = [p for p in (submissions, template) if p and not (out.parent == p or p in out.parents)]
            run = Run(source, work, template, watched, timeout=timeout, memory_mb=memory, cell_timeout=cell_timeout,
                      hidden_max=hidden_max, sandbox=mode, submissions=str(submissions), figures=figures,
                      reference_figures=shared)
            results.update(run.grade_all(valid, jobs, log))
        return write_class(results, out, feedback_dir, work, max_points(source), hidden_max, on_student)


def write_class(results: dict, out: Path, feedback_dir: Path, work: Path, maxima: dict, hidden_max: dict,
                on_student=None) -> list:
    """Every student's feedback folder, then the class CSV ``out`` (sorted by student) and ``misconceptions.md`` beside
    it (autograder/grader/misconceptions.py); returns the CSV's rows."""
    all_rows = []
    for name in sorted(results):
        rows = csv_rows(results[name], work, maxima, hidden_max)
        all_rows.extend(rows)
        write_feedback(results[name], rows, feedback_dir / name)
        if on_student:
            on_student(results[name], rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(all_rows)
    misconceptions.write({(r.student, row.notebook): misconceptions.entries(row) for r in results.values()
                          for row in r.rows if row.status != Status.MISSING}, out.parent)
    return all_rows
