"""The re-run: every visible check and the hidden ones, called outside the notebook.

At grade time, in the student's scratch folder, ``python -m autograder.rerun SUBMITTED SOURCE
OUT.json GUARD_LOG SCRATCH CELL_TIMEOUT`` starts a fresh Python process that:

1. installs the write guard (autograder/guard.py),
2. runs, in the source notebook's order, the set-up cells and the ``hidden.PRELUDE`` cells (from
   the source), the student's solution cells, and each test cell's check — called directly on the
   student's function with the check object imported before any student code ran, so a
   rebound ``show``, an overridden ``showtraceback`` or an edited test cell changes nothing,
3. calls the hidden checks (``hidden.HIDDEN``) on the functions exactly as the student's
   solution cells defined them.

Other locked cells (training, pictures) are skipped: the checks do not need them.
"""

import importlib
import json
import os
import pkgutil
import signal
import sys
import traceback
from pathlib import Path

from autograder import checks as check_modules
from autograder.core import Result
from autograder.hidden import HIDDEN, PRELUDE


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


class _NoShell:
    """Stands in for ``get_ipython()`` outside a kernel: any attribute is a no-op, any can be set."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _code(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def _call_check(check, answer, cell_timeout: int) -> Result:
    """``check(answer)``, interrupted after ``cell_timeout`` s; whatever escapes it scores 0."""
    try:
        signal.alarm(cell_timeout)
        return check(answer)
    except BaseException as err:  # noqa: BLE001 (graded() turns Exceptions into 0; this catches the rest)
        return Result(check.__name__, 0, check.points, f"{type(err).__name__}: {err}")
    finally:
        signal.alarm(0)


def run(submitted: Path, source: Path, cell_timeout: int = 0) -> dict:
    """Run the checks of one notebook as described above; returns a JSON-able report.

    With ``cell_timeout`` (seconds, main thread only), each student cell and each check is
    interrupted after that long, as nbgrader interrupts a cell after ``Execute.timeout``.
    """
    import nbformat

    from autograder import tamper

    checks = visible_checks()
    notebook = Path(source).stem
    source_nb = nbformat.read(str(source), as_version=4)
    sub_nb = nbformat.read(str(submitted), as_version=4)
    students = {tamper.grade_id(c): c.source for c in sub_nb.cells if tamper.is_solution_cell(c)}
    namespace = {"__name__": "__main__", "get_ipython": _NoShell}
    defined, tests, errors = {}, {}, {}
    if cell_timeout:
        signal.signal(signal.SIGALRM, _alarm)
    for cell in source_nb.cells:
        gid = tamper.grade_id(cell)
        if cell.cell_type != "code" or gid is None:
            continue
        if tamper.is_solution_cell(cell):
            if gid not in students:
                continue
            try:
                signal.alarm(cell_timeout)
                exec(compile(_code(students[gid]), f"<{gid}>", "exec"), namespace)
            except BaseException as err:  # noqa: BLE001 (the student's cell may raise anything, even SystemExit)
                errors[gid] = f"{type(err).__name__}: {err}"
            finally:
                signal.alarm(0)
            for name in tamper.defined_functions(cell.source):
                if name in namespace:
                    defined[name] = namespace[name]
        elif tamper.is_test_cell(cell):
            name, answer = tamper.checked_names(cell.source)
            check = checks.get(name)
            if check is None:
                raise RuntimeError(f"{gid}: cannot read which check the test cell calls: {cell.source!r}")
            if answer not in namespace:
                result = Result(name, 0, check.points, f"{answer} is not defined (its cell did not run)")
            else:
                result = _call_check(check, namespace[answer], cell_timeout)
            tests[gid] = {"check": name, "points": float(result.points), "max_points": float(result.max_points),
                          "message": result.message}
        elif gid.endswith("_setup") or gid in PRELUDE:
            exec(compile(_code(cell.source), f"<{gid}>", "exec"), namespace)
    hidden = []
    for item in HIDDEN.get(notebook, []):
        if item.answer in defined:
            result = _call_check(item.check, defined[item.answer], cell_timeout)
        else:
            result = Result(item.check.__name__, 0, item.check.points, f"{item.answer} is not defined")
        hidden.append({"answer": item.answer, "points": float(result.points), "max_points": float(result.max_points)})
    return {"notebook": notebook, "tests": tests, "hidden": hidden, "errors": errors}


def main(argv=None) -> int:
    submitted, source, out, guard_log, scratch, cell_timeout = (argv or sys.argv[1:])[:6]
    from autograder import guard

    os.environ["MPLBACKEND"] = "Agg"  # no kernel here to show inline figures
    report_file = open(out, "w")  # opened before the guard: the only file this process may write outside
    guard.install([scratch, "/dev"], guard_log)
    try:
        report = run(Path(submitted), Path(source), int(cell_timeout))
    except BaseException:  # noqa: BLE001
        report = {"crash": traceback.format_exc()[-2000:]}
    report_file.write(json.dumps(report))
    report_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
