"""A function the student wrote in an earlier notebook, for a later notebook that builds on it.

Notebook 06 generates images with the student's own ``decode_step`` from notebook 04. The later
notebook reads the earlier one from its own folder and runs, in a fresh namespace, what defines the
function: the imports of the set-up cell, the solution cells, and the locked cells that only pick
helpers with ``use_or_reference`` (as notebook 04's step helpers do). What they print or warn is not
shown, and a cell that raises is skipped. The function is used only if its check passes
(:func:`autograder.core.use_or_reference`); otherwise, and when the earlier notebook is not in the
folder or does not define it, the reference is used and one line says why.
"""

import ast
import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Callable

from autograder.cells import grade_id, is_solution_cell, parse
from autograder.core import use_or_reference


def picks_helpers(tree: ast.Module) -> bool:
    """Every statement of the cell is ``name = use_or_reference(...)``."""
    return bool(tree.body) and all(
        isinstance(s, ast.Assign) and isinstance(s.value, ast.Call) and getattr(s.value.func, "id", "") == "use_or_reference"
        for s in tree.body)


def defining_code(notebook: dict) -> list:
    """The code, cell by cell as ``ast.Module``s, that defines a notebook's answers: set-up imports, solutions, helper picks."""
    code = []
    for cell in notebook.get("cells", []):
        source = cell.get("source", "")
        tree = parse(source if isinstance(source, str) else "".join(source)) if cell.get("cell_type") == "code" else None
        if tree is None:
            continue
        if str(grade_id(cell)).endswith("_setup"):
            code.append(ast.Module([s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))], []))
        elif is_solution_cell(cell) or picks_helpers(tree):
            code.append(tree)
    return code


def earlier_answer(notebook: str, name: str, reference: Callable, check: Callable, folder: Path = None) -> Callable:
    """The student's ``name`` from ``<folder>/<notebook>.ipynb`` (the current folder by default) if ``check`` passes it,
    else ``reference``; either way a line says which is used when it is not the student's."""
    path = Path.cwd() / f"{notebook}.ipynb" if folder is None else Path(folder) / f"{notebook}.ipynb"
    fallback = f"Using the reference {reference.__module__}.{reference.__name__} below"
    if not path.is_file():
        print(f"{fallback}: {path.name} is not in this folder ({path.parent}), so your {name} cannot be read from it.")
        return reference
    namespace = {"__name__": f"earlier_{notebook}"}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tree in defining_code(json.loads(path.read_text())):
            with contextlib.suppress(Exception):  # an unfinished or broken cell: what it would define stays undefined
                exec(compile(tree, str(path), "exec"), namespace)
    answer = namespace.get(name)
    if not callable(answer):
        print(f"{fallback}: {path.name} does not define {name}.")
        return reference
    return use_or_reference(answer, reference, check)
