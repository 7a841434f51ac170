"""Reading an nbgrader notebook: which cell is which, and what a cell's code names.

Every process of the grader reads notebooks the same way through these helpers: the grader
(maxima), the student's process (the static reading, the repair of test cells), the judge (which
check a test cell calls, which solution cell defines a function) and the worker (a cell's code
without its IPython magics). Plain ``ast`` and dicts: no nbformat, no torch.
"""

import ast


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell):
    return nbgrader_meta(cell).get("grade_id")


def is_test_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_solution_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("solution"))


def strip_magics(source: str) -> str:
    """A cell's code without its IPython lines (``%matplotlib inline``, ``!pip …``): what plain Python can run."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def parse(source: str):
    """A cell's code as an ``ast.Module`` (its magics left out), or None when it is not valid Python."""
    try:
        return ast.parse(strip_magics(source))
    except SyntaxError:
        return None


def checked_names(test_source: str) -> tuple:
    """``show(check_x(answer))`` → ("check_x", "answer"); (None, None) for any other shape."""
    tree = parse(test_source)
    if tree is None or len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None, None
    call = tree.body[0].value
    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "show" and len(call.args) == 1
            and isinstance(call.args[0], ast.Call) and isinstance(call.args[0].func, ast.Name)
            and len(call.args[0].args) == 1 and isinstance(call.args[0].args[0], ast.Name)):
        return call.args[0].func.id, call.args[0].args[0].id
    return None, None


def defined_functions(source: str) -> set:
    tree = parse(source)
    return {n.name for n in (tree.body if tree else []) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def tests_of_solution(source_nb) -> dict:
    """Solution grade id → the grade ids of the test cells that check a function it defines."""
    defines = {grade_id(c): defined_functions(c.source) for c in source_nb.cells if is_solution_cell(c)}
    tests = {}
    for cell in source_nb.cells:
        if is_test_cell(cell):
            _, answer = checked_names(cell.source)
            for gid, names in defines.items():
                if answer in names:
                    tests.setdefault(gid, []).append(grade_id(cell))
    return tests


def owners(source_nb) -> dict:
    """Function name → the grade id of the solution cell that defines it."""
    return {name: grade_id(c) for c in source_nb.cells if is_solution_cell(c) for name in defined_functions(c.source)}
