"""The re-run: every visible check and the hidden ones, judged in a process that runs no student code.

At grade time ``python -m autograder.rerun SUBMITTED SOURCE OUT.json GUARD_LOG SCRATCH CELL_TIMEOUT
[FIGURES [SHARED]]`` starts this process, the judge. It imports the checks (and through them the reference package)
and never executes a line of the student's: that happens in a worker (autograder/worker.py,
in the sandbox when there is one) that holds no reference and no verdict. The judge

1. has the worker run, in the source notebook's order, the set-up cells and the
   ``hidden.PRELUDE`` cells (from the source) and the student's solution cells,
2. calls each test cell's check here, on a stand-in for the student's function: every call
   travels to the worker as plain data and the answer comes back as plain data
   (autograder/wire.py), so a rebound ``show``, an overridden ``showtraceback``, an edited test
   cell or code that walks the stack to the report file changes nothing,
3. calls the hidden checks (``hidden.HIDDEN``) the same way, and writes the report itself.

A worker that dies, hangs past the cell timeout or answers nonsense scores 0 for the checks it
did not answer; the judge starts a fresh one (replaying the cells) for the next check. Each
reach for the reference package that the worker notes is reported per solution cell; what the
student's code prints or warns during a check is reported with it and costs nothing.

Other locked cells (training, pictures) are skipped: the checks do not need them. After the
checks, the report written, the judge draws the notebook's feedback figure (autograder/figures.py)
with the student's functions through the same worker, beside the reference's (drawn once per grading run
into SHARED, or here when it is not there).
"""

import importlib
import json
import os
import pkgutil
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Callable

from autograder import checks as check_modules
from autograder.core import Result
from autograder.figures import PICTURES
from autograder.figures import make as make_figure
from autograder.hidden import HIDDEN, PRELUDE
from autograder.wire import Endpoint, WireError


def visible_checks() -> dict:
    """Every graded check (each ``check_*`` in ``autograder/checks/``) by name, taken before any student code runs."""
    checks = {}
    for info in pkgutil.iter_modules(check_modules.__path__):
        module = importlib.import_module(f"{check_modules.__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.startswith("check_") and callable(value) and hasattr(value, "points"):
                checks[name] = value
    return checks


class CellTimeoutError(BaseException):
    """A student's cell or a check ran past the per-cell time limit (SIGALRM)."""


def _alarm(signum, frame):
    raise CellTimeoutError("no answer before the cell timeout")


ROOT = Path(__file__).resolve().parent.parent  # the project: autograder/ and the reference package


class Worker:
    """The worker process and its end of the wire; restarted (replaying the cells run so far) after a failure."""

    def __init__(self, scratch: Path, guard_log: Path, env: dict = None, prefix: list = ()):
        self.scratch, self.guard_log, self.prefix = Path(scratch), Path(guard_log), list(prefix)
        self.env = dict(env or os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
        self.history = []  # the exec and bind requests so far: replayed into a fresh worker
        self.process = self.endpoint = None
        self.notes, self.noise = [], []  # reference routes noted, and what the student's code printed or warned

    def start(self) -> None:
        to_worker, from_judge = os.pipe()
        to_judge, from_worker = os.pipe()
        command = self.prefix + [sys.executable, "-m", "autograder.worker", str(to_worker), str(from_worker),
                                 str(self.scratch), str(self.guard_log), str(ROOT / "maskgit_lab"),
                                 ",".join(sorted(p.stem for p in (ROOT / "maskgit_lab").glob("*.py")))]
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
        """Give the worker ``name`` as a stand-in for the grader's ``function``: calls to it run here."""
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


def _deadline(seconds: int) -> None:
    if seconds:
        signal.setitimer(signal.ITIMER_REAL, seconds)


def _call_check(check, answer, cell_timeout: int) -> Result:
    """``check(answer)``, interrupted after ``cell_timeout`` s; whatever escapes it scores 0."""
    try:
        _deadline(cell_timeout)
        return check(answer)
    except BaseException as err:  # noqa: BLE001 (graded() turns Exceptions into 0; this catches the rest)
        return Result(check.__name__, 0, check.points, f"{type(err).__name__}: {err}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def reference_helpers(source: str) -> tuple:
    """A locked cell's ``name = use_or_reference(name, <reference>, check_x)`` lines, and the rest of its code.

    The worker cannot run these lines (it has neither the reference nor the checks): the grader
    runs the check itself and, when it fails, binds the name to its reference (which runs here).
    """
    import ast

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
    """Run only the import statements of a (set-up) cell into ``namespace``: the grader's view of its names."""
    import ast

    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), "<set-up imports>", "exec"), namespace)


def run(submitted: Path, source: Path, cell_timeout: int = 0, scratch: Path = None, guard_log: Path = None,
        env: dict = None, prefix: list = (), figures: Path = None, checked: Callable = None, shared: Path = None) -> dict:
    """Run the checks of one notebook as described above; returns a JSON-able report.

    With ``cell_timeout`` (seconds), each student cell and each check is given up after that
    long, as nbgrader interrupts a cell after ``Execute.timeout``. ``scratch`` is the folder the
    worker may write to (default: the current one), ``prefix`` the sandbox command it runs under.
    With ``figures`` (a folder), the notebook's feedback figure is drawn there after the checks
    (the report's ``figure``), beside the reference's from ``shared`` when it holds it; ``checked(report)`` is
    called with the verdicts before it is.
    """
    import nbformat

    from autograder import tamper

    checks = visible_checks()
    notebook = Path(source).stem
    source_nb = nbformat.read(str(source), as_version=4)
    sub_nb = nbformat.read(str(submitted), as_version=4)
    students = {tamper.grade_id(c): c.source for c in sub_nb.cells if tamper.is_solution_cell(c)}
    owner = {name: tamper.grade_id(c) for c in source_nb.cells if tamper.is_solution_cell(c)
             for name in tamper.defined_functions(c.source)}  # function → the solution cell that defines it
    scratch = Path(scratch or os.getcwd())
    worker = Worker(scratch, Path(guard_log or scratch / "worker-guard.log"), env, prefix)
    tests, errors, reference, noise = {}, {}, {}, {}
    names = {}  # the set-up cells' imports, as the grader sees them (for the reference helpers)

    def gather(cell):
        routes, said = worker.take()
        if routes and cell:
            reference.setdefault(cell, []).extend(r for r in routes if r not in reference.get(cell, []))
        return said

    def check_answer(check, answer):
        try:
            _deadline(cell_timeout)
            function = worker.function(answer)
        except BaseException as err:  # noqa: BLE001 (the worker died or hangs: this check scores 0)
            return Result(check.__name__, 0, check.points, str(err) if isinstance(err, WireError) else f"{type(err).__name__}: {err}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if function is None:
            return Result(check.__name__, 0, check.points, f"{answer} is not defined (its cell did not run)")
        return _call_check(check, function, cell_timeout)

    signal.signal(signal.SIGALRM, _alarm)
    try:
        for cell in source_nb.cells:
            gid = tamper.grade_id(cell)
            if cell.cell_type != "code" or gid is None:
                continue
            if tamper.is_solution_cell(cell):
                if gid not in students:
                    continue
                try:
                    _deadline(cell_timeout)
                    reply = worker.exec(gid, students[gid])
                    if "raised" in reply:
                        errors[gid] = f"{reply['raised'][0]}: {reply['raised'][1]}"
                except BaseException as err:  # noqa: BLE001 (timed out or died: the next request starts a fresh worker)
                    errors[gid] = f"{'WorkerExit' if isinstance(err, WireError) else type(err).__name__}: {err}"
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                gather(gid)
            elif tamper.is_test_cell(cell):
                name, answer = tamper.checked_names(cell.source)
                check = checks.get(name)
                if check is None:
                    raise RuntimeError(f"{gid}: cannot read which check the test cell calls: {cell.source!r}")
                result = check_answer(check, answer)
                said = gather(owner.get(answer))
                tests[gid] = {"check": name, "points": float(result.points), "max_points": float(result.max_points),
                              "message": result.message}
                if said:
                    noise[gid] = said
            elif gid.endswith("_setup"):
                imports_of(cell.source, names)
                worker.exec(gid, cell.source, setup=True)
            elif gid in PRELUDE:
                helpers, rest = reference_helpers(cell.source)
                for name, answer, reference_code, check_name in helpers:
                    if not check_answer(names[check_name], answer).passed:
                        worker.bind(name, eval(reference_code, names))
                    gather(None)
                worker.exec(gid, rest, setup=True)
        hidden = []
        for item in HIDDEN.get(notebook, []):
            result = check_answer(item.check, item.answer)
            gather(owner.get(item.answer))
            hidden.append({"answer": item.answer, "points": float(result.points), "max_points": float(result.max_points)})
        report = {"notebook": notebook, "tests": tests, "hidden": hidden, "errors": errors, "reference": reference,
                  "noise": noise}
        if figures is not None and notebook in PICTURES:
            if checked is not None:
                checked(report)
            report["figure"] = feedback_figure(notebook, worker, Path(figures), shared)
    finally:
        worker.stop()
    return report


def feedback_figure(notebook: str, worker: Worker, out: Path, shared: Path = None) -> dict:
    """The notebook's figure (autograder/figures.py); whatever the student's code did meanwhile changes no score."""
    try:
        return make_figure(notebook, worker, out, shared)
    except BaseException as err:  # noqa: BLE001 (the reference's half failed: said in one line, the verdicts kept)
        return {"caption": PICTURES[notebook].caption, "reference": None, "yours": None,
                "note": f"no picture: the grader could not draw it ({type(err).__name__}: {str(err)[:200]})"}
    finally:
        worker.take()  # prints, warnings and reaches for the reference while drawing are not charged


def write_report(out: Path, report: dict) -> None:
    """Replace ``out`` at once: a judge stopped while drawing leaves the verdicts it had already written."""
    partial = Path(f"{out}.partial")
    partial.write_text(json.dumps(report))
    os.replace(partial, out)


def main(argv=None) -> int:
    args = argv or sys.argv[1:]
    submitted, source, out, guard_log, scratch, cell_timeout = args[:6]
    figures = Path(args[6]) if len(args) > 6 else None  # where the feedback figure goes (none without)
    shared = Path(args[7]) if len(args) > 7 else None  # the grading run's reference figures
    prefix = json.loads(os.environ.pop("MASKGIT_LAB_SANDBOX", "[]"))
    try:
        report = run(Path(submitted), Path(source), int(cell_timeout), Path(scratch), Path(guard_log), dict(os.environ), prefix,
                     figures, checked=lambda verdicts: write_report(Path(out), verdicts), shared=shared)
    except BaseException:  # noqa: BLE001
        report = {"crash": traceback.format_exc()[-2000:]}
    write_report(Path(out), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
