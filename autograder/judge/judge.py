"""The judge: every visible check and the hidden ones, computed in a process that runs no student code.

At grade time the student's process starts ``python -m autograder.judge SUBMITTED SOURCE REPORT.json
GUARD_LOG SCRATCH CELL_TIMEOUT [FIGURES [SHARED]]`` (autograder/judge/__init__.py) once per notebook.
The judge imports the checks (and through them the reference package) and never executes a line of
the student's: that happens in a worker (autograder/judge/worker.py, in the sandbox when there is
one) that holds no reference and no verdict. The judge

1. has the worker run, in the source notebook's order, the set-up cells and the
   ``hidden.PRELUDE`` cells (from the source) and the student's solution cells,
2. calls each test cell's check here, on a stand-in for the student's function: every call
   travels to the worker as plain data and the answer comes back as plain data
   (autograder/judge/wire.py), so a rebound ``show``, an overridden ``showtraceback``, an edited
   test cell or code that walks the stack to the report file changes nothing,
3. calls the hidden checks (``hidden.HIDDEN``) the same way, and writes the
   :class:`~autograder.records.Report` itself.

A worker that dies, hangs past the cell timeout or answers nonsense scores 0 for the checks it
did not answer; the judge starts a fresh one (replaying the cells) for the next check. Each
reach for the reference package that the worker notes is reported per solution cell; what the
student's code prints or warns during a check is reported with it and costs nothing.

Other locked cells (training, pictures) are skipped: the checks do not need them. After the
checks, the report written, the judge draws the notebook's feedback figure (autograder/judge/figures.py)
with the student's functions through the same worker, beside the reference's (drawn once per grading run
into SHARED, or here when it is not there).
"""

import ast
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Callable

from autograder import records
from autograder.cells import checked_names, grade_id, is_solution_cell, is_test_cell, owners, strip_magics
from autograder.checks import visible_checks
from autograder.core import Result
from autograder.judge import SANDBOX, figures, parse, worker
from autograder.judge.hidden import HIDDEN, PRELUDE
from autograder.judge.wire import Endpoint, WireError
from autograder.records import CheckVerdict, HiddenVerdict, Report
from autograder.student.limits import deadline
from autograder.student.sandbox import ROOT


class WorkerProcess:
    """The worker process and the judge's end of the wire; restarted (replaying the cells run so far) after a failure."""

    def __init__(self, scratch: Path, guard_log: Path, env: dict = None, prefix: list = ()):
        self.scratch, self.guard_log, self.prefix = Path(scratch), Path(guard_log), list(prefix)
        self.env = dict(env or os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
        self.history = []  # the exec and bind requests so far: replayed into a fresh worker
        self.process = self.endpoint = None
        self.notes, self.noise = [], []  # reference routes noted, and what the student's code printed or warned

    def start(self) -> None:
        to_worker, from_judge = os.pipe()
        to_judge, from_worker = os.pipe()
        command = self.prefix + worker.command(to_worker, from_worker, self.scratch, self.guard_log)
        self.process = subprocess.Popen(command, cwd=os.getcwd(), env=self.env, pass_fds=(to_worker, from_worker),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_worker)
        os.close(from_worker)
        self.endpoint = Endpoint(to_judge, from_judge)
        for message in self.history:
            self.request(self.encoded(message))

    def stop(self) -> None:
        self.drain()
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.endpoint.reader.close()
            self.endpoint.writer.close()
        self.process = self.endpoint = None

    def request(self, message: dict) -> dict:
        """One request; a failure (timeout, death, nonsense) stops the worker and raises."""
        if self.process is None:
            self.start()
        try:
            reply = self.endpoint.request(message)
        except BaseException:
            self.stop()
            raise
        if "malformed" in reply:
            self.stop()
            raise WireError(f"the worker could not do it: {reply['malformed']}")
        return reply

    def encoded(self, message: dict) -> dict:
        return dict(message, value=self.endpoint.encode(message["value"])) if "value" in message else message

    def exec(self, cell: str, code: str, setup: bool = False) -> dict:
        message = {"op": "exec", "cell": cell, "code": code, "setup": setup}
        reply = self.request(message)
        self.history.append(message)
        return reply

    def bind(self, name: str, function) -> None:
        """Give the worker ``name`` as a stand-in for the judge's ``function``: calls to it run here."""
        if self.process is None:
            self.start()
        message = {"op": "bind", "name": name, "value": function}
        self.request(self.encoded(message))
        self.history.append(message)

    def cap_memory(self, megabytes: int) -> None:
        """Limit the worker's address space to what it holds now plus ``megabytes`` (for the rest of its life)."""
        self.request({"op": "cap", "megabytes": megabytes})

    def function(self, name: str):
        """The student's ``name`` as a stand-in that calls it in the worker (None when it is not defined)."""
        reply = self.request({"op": "get", "name": name})
        return None if "missing" in reply else self.endpoint.decode(reply.get("result"))

    def drain(self) -> None:
        """Move what the worker noted and said (through any request, the checks' calls included) here."""
        if self.endpoint is None:
            return
        self.notes += [str(n.get("reference")) for n in self.endpoint.noted]
        for said in self.endpoint.said:
            if said["stderr"].strip():
                self.noise.append(f"wrote to stderr {said['stderr'].strip()[:200]!r}")
            self.noise += [f"warned {w}" for w in said["warnings"]]
        self.endpoint.noted.clear()
        self.endpoint.said.clear()

    def take(self) -> tuple:
        """(reference routes, noise) gathered since the last take."""
        self.drain()
        notes, noise = self.notes, self.noise
        self.notes, self.noise = [], []
        return notes, noise


def reference_helpers(source: str) -> tuple:
    """A locked cell's ``name = use_or_reference(name, <reference>, check_x)`` lines, and the rest of its code.

    The worker cannot run these lines (it has neither the reference nor the checks): the judge
    runs the check itself and, when it fails, binds the name to its reference (which runs here).
    """
    helpers, rest = [], []
    for statement in ast.parse(source).body:
        call = statement.value if isinstance(statement, ast.Assign) else None
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "use_or_reference"
                and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name) and len(call.args) == 3
                and isinstance(call.args[0], ast.Name) and isinstance(call.args[2], ast.Name)):
            helpers.append((statement.targets[0].id, call.args[0].id, ast.unparse(call.args[1]), call.args[2].id))
        else:
            rest.append(ast.unparse(statement))
    return helpers, "\n".join(rest)


def imports_of(source: str, namespace: dict) -> None:
    """Run only the import statements of a (set-up) cell into ``namespace``: the judge's view of its names."""
    tree = ast.parse(strip_magics(source))
    imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), "<set-up imports>", "exec"), namespace)


class Judgement:
    """One notebook judged: the worker, the cells run in it, and the verdicts gathered so far."""

    def __init__(self, submitted_nb, source_nb, notebook: str, worker_process: WorkerProcess, cell_timeout: int):
        self.source_nb, self.worker, self.cell_timeout = source_nb, worker_process, cell_timeout
        self.students = {grade_id(c): c.source for c in submitted_nb.cells if is_solution_cell(c)}
        self.owner = owners(source_nb)  # function → the solution cell that defines it
        self.checks = visible_checks()
        self.names = {}  # the set-up cells' imports, as the judge sees them (for the reference helpers)
        self.report = Report(notebook)

    def gather(self, cell) -> list:
        """Charge the reference routes noted since the last gather to ``cell``; returns what the code said meanwhile."""
        routes, said = self.worker.take()
        if routes and cell:
            self.report.reference.setdefault(cell, []).extend(r for r in routes if r not in self.report.reference.get(cell, []))
        return said

    def call_check(self, check, answer: str) -> Result:
        """``check`` on the student's ``answer``, each half (fetching it, the check) given the cell timeout; 0 on failure."""
        try:
            with deadline(self.cell_timeout):
                function = self.worker.function(answer)
        except BaseException as err:  # noqa: BLE001 (the worker died or hangs: this check scores 0)
            return Result(check.__name__, 0, check.points, str(err) if isinstance(err, WireError) else f"{type(err).__name__}: {err}")
        if function is None:
            return Result(check.__name__, 0, check.points, f"{answer} is not defined (its cell did not run)")
        try:
            with deadline(self.cell_timeout):
                return check(function)
        except BaseException as err:  # noqa: BLE001 (graded() turns Exceptions into 0; this catches the rest)
            return Result(check.__name__, 0, check.points, f"{type(err).__name__}: {err}")

    def solution_cell(self, gid: str) -> None:
        try:
            with deadline(self.cell_timeout):
                reply = self.worker.exec(gid, self.students[gid])
            if "raised" in reply:
                self.report.errors[gid] = f"{reply['raised'][0]}: {reply['raised'][1]}"
        except BaseException as err:  # noqa: BLE001 (timed out or died: the next request starts a fresh worker)
            self.report.errors[gid] = f"{'WorkerExit' if isinstance(err, WireError) else type(err).__name__}: {err}"
        self.gather(gid)

    def test_cell(self, gid: str, source: str) -> None:
        name, answer = checked_names(source)
        check = self.checks.get(name)
        if check is None:
            raise RuntimeError(f"{gid}: cannot read which check the test cell calls: {source!r}")
        result = self.call_check(check, answer)
        said = self.gather(self.owner.get(answer))
        self.report.tests[gid] = CheckVerdict(name, float(result.points), float(result.max_points), result.message,
                                              list(result.misconceptions))
        if said:
            self.report.noise[gid] = said

    def prelude_cell(self, gid: str, source: str) -> None:
        """A locked cell the later checks rely on: its reference helpers bound here when the student's check fails."""
        helpers, rest = reference_helpers(source)
        for name, answer, reference_code, check_name in helpers:
            if not self.call_check(self.names[check_name], answer).passed:
                self.worker.bind(name, eval(reference_code, self.names))
            self.gather(None)
        self.worker.exec(gid, rest, setup=True)

    def cells(self) -> None:
        """Every cell the checks need, in the source notebook's order."""
        for cell in self.source_nb.cells:
            gid = grade_id(cell)
            if cell.cell_type != "code" or gid is None:
                continue
            if is_solution_cell(cell):
                if gid in self.students:
                    self.solution_cell(gid)
            elif is_test_cell(cell):
                self.test_cell(gid, cell.source)
            elif gid.endswith("_setup"):
                imports_of(cell.source, self.names)
                self.worker.exec(gid, cell.source, setup=True)
            elif gid in PRELUDE:
                self.prelude_cell(gid, cell.source)

    def hidden(self) -> None:
        for item in HIDDEN.get(self.report.notebook, []):
            result = self.call_check(item.check, item.answer)
            self.gather(self.owner.get(item.answer))
            self.report.hidden.append(HiddenVerdict(item.answer, float(result.points), float(result.max_points)))


def judge(submitted: Path, source: Path, cell_timeout: int = 0, scratch: Path = None, guard_log: Path = None,
          env: dict = None, prefix: list = (), figures_dir: Path = None, checked: Callable = None,
          shared: Path = None) -> Report:
    """Judge one notebook as described above; returns its :class:`~autograder.records.Report`.

    With ``cell_timeout`` (seconds), each student cell and each check is given up after that
    long, as nbgrader interrupts a cell after ``Execute.timeout``. ``scratch`` is the folder the
    worker may write to (default: the current one), ``prefix`` the sandbox command it runs under.
    With ``figures_dir`` (a folder), the notebook's feedback figure is drawn there after the checks
    (the report's ``figure``), beside the reference's from ``shared`` when it holds it;
    ``checked(report)`` is called with the verdicts before it is.
    """
    import nbformat

    scratch = Path(scratch or os.getcwd())
    process = WorkerProcess(scratch, Path(guard_log or scratch / "worker-guard.log"), env, prefix)
    judgement = Judgement(nbformat.read(str(submitted), as_version=4), nbformat.read(str(source), as_version=4),
                          Path(source).stem, process, cell_timeout)
    try:
        judgement.cells()
        judgement.hidden()
        report = judgement.report
        if figures_dir is not None and report.notebook in figures.PICTURES:
            if checked is not None:
                checked(report)
            report.figure = feedback_figure(report.notebook, process, Path(figures_dir), shared)
    finally:
        process.stop()
    return report


def feedback_figure(notebook: str, process: WorkerProcess, out: Path, shared: Path = None) -> records.Figure:
    """The notebook's figure (autograder/judge/figures.py); whatever the student's code did meanwhile changes no score."""
    try:
        return figures.make(notebook, process, out, shared)
    except BaseException as err:  # noqa: BLE001 (the reference's half failed: said in one line, the verdicts kept)
        return records.Figure(figures.PICTURES[notebook].caption,
                              note=f"no picture: the grader could not draw it ({type(err).__name__}: {str(err)[:200]})")
    finally:
        process.take()  # prints, warnings and reaches for the reference while drawing are not charged


def write_report(out: Path, report: Report) -> None:
    """Replace ``out`` at once: a judge stopped while drawing leaves the verdicts it had already written."""
    partial = Path(f"{out}.partial")
    records.write(report, partial)
    os.replace(partial, out)


def main(argv=None) -> int:
    args = parse(argv or sys.argv[1:])
    prefix = json.loads(os.environ.pop(SANDBOX, "[]"))
    try:
        report = judge(args.submitted, args.source, args.cell_timeout, args.scratch, args.guard_log, dict(os.environ),
                       prefix, args.figures, checked=lambda verdicts: write_report(args.report, verdicts), shared=args.shared)
    except BaseException:  # noqa: BLE001
        report = Report(crash=traceback.format_exc()[-2000:])
    write_report(args.report, report)
    return 0
