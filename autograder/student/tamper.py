"""Read a submitted notebook against its source before anything runs: what was changed that must not be.

* test cells deleted or edited (nbgrader restores them from the gradebook; we say so),
* solution cells that call the package's reference twin (``maskgit_lab.…``) instead of
  implementing it: the checks of that cell score 0,
* solution cells that reach for the grading machinery (``showtraceback``, ``sys.excepthook``,
  ``get_ipython``, the ``autograder`` package, rebinding ``show`` or a ``check_*`` name):
  the whole notebook scores 0 and is reported as tampered.

Everything here is static (``ast``), so it cannot be fooled by what the code does at run time;
the judge re-runs the checks outside the notebook for that (autograder/judge/judge.py).
"""

import ast
from collections import Counter
from dataclasses import dataclass, field

import nbformat

from autograder.cells import grade_id, is_solution_cell, is_test_cell, nbgrader_meta, parse

REFERENCE_PACKAGE = "maskgit_lab"
GRADER_ATTRIBUTES = {"showtraceback", "excepthook", "showsyntaxerror", "_showtraceback", "set_custom_exc", "audithook",
                     "addaudithook"}
GRADER_NAMES = {"get_ipython", "autograder", "show", "use_or_reference", "CheckFailed", "Result", "graded", "__builtins__",
                "builtins"}


@dataclass
class Findings:
    """What the static reading found in one submitted notebook."""

    missing_tests: list = field(default_factory=list)  # grade ids of deleted test cells
    edited_tests: list = field(default_factory=list)  # grade ids of test cells whose source changed
    reference_use: dict = field(default_factory=dict)  # solution grade id → what it used
    grader_tampering: dict = field(default_factory=dict)  # solution grade id → what it touched
    unparsable: list = field(default_factory=list)  # solution grade ids that are not valid Python
    duplicated_tests: list = field(default_factory=list)  # grade ids of test cells found more than once (repaired)

    def notes(self) -> list:
        notes = []
        if self.missing_tests:
            notes.append(f"test cell(s) {', '.join(self.missing_tests)} were deleted; the grader put them back")
        for gid in self.duplicated_tests:
            notes.append(f"test cell {gid} was duplicated; the grader used the released one")
        if self.edited_tests:
            notes.append(f"test cell(s) {', '.join(self.edited_tests)} were edited; the grader ran the released version")
        for cell, used in self.reference_use.items():
            notes.append(f"{cell} uses the reference implementation ({', '.join(used)}), so its checks score 0")
        for cell, touched in self.grader_tampering.items():
            notes.append(f"{cell} tampers with the grader ({', '.join(touched)}), so the notebook scores 0")
        return notes


def _imported_from_package(source: str) -> set:
    """Names a (set-up) cell binds to the reference package: ``import maskgit_lab.vq``, ``from maskgit_lab import x``."""
    names = set()
    for node in ast.walk(parse(source) or ast.Module(body=[], type_ignores=[])):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == REFERENCE_PACKAGE:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == REFERENCE_PACKAGE:
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _bound_in(tree) -> set:
    """Names a cell binds itself (defs, arguments, assignments, imports): these shadow the set-up's."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
    return bound


def scan_solution(source: str, package_names: set) -> tuple:
    """(uses of the reference package, touches of the grading machinery) in one solution cell."""
    tree = parse(source)
    if tree is None:
        return None, None
    bound = _bound_in(tree)
    reference, grader = [], []

    def add(found, what):
        if what not in found:
            found.append(what)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root == REFERENCE_PACKAGE:
                    add(reference, f"import {alias.name}")
                elif root in ("autograder", "builtins", "IPython", "ctypes"):
                    add(grader, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if root == REFERENCE_PACKAGE:
                add(reference, f"from {node.module} import …")
            elif root in ("autograder", "builtins", "IPython", "ctypes"):
                add(grader, f"from {node.module} import …")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id == REFERENCE_PACKAGE or (node.id in package_names and node.id not in bound):
                add(reference, node.id)
            elif node.id in GRADER_NAMES - {"show", "use_or_reference", "Result", "graded", "CheckFailed"}:
                add(grader, node.id)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            if node.id in GRADER_NAMES or node.id.startswith("check_"):
                add(grader, f"rebinds {node.id}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name in GRADER_NAMES or node.name.startswith("check_"):
                add(grader, f"redefines {node.name}")
        elif isinstance(node, ast.Attribute) and node.attr in GRADER_ATTRIBUTES:
            add(grader, node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if REFERENCE_PACKAGE in node.value and ("import" in node.value or node.value.startswith(REFERENCE_PACKAGE)):
                add(reference, f"the string {node.value[:40]!r}")
            elif any(a in node.value for a in GRADER_ATTRIBUTES):
                add(grader, f"the string {node.value[:40]!r}")
    return reference, grader


def scan(submitted, source) -> Findings:
    """Compare a submitted notebook with its source notebook (both nbformat nodes)."""
    findings = Findings()
    sub_cells = {grade_id(c): c for c in submitted.cells if grade_id(c)}
    setup = "\n".join(c.source for c in source.cells if c.cell_type == "code" and not nbgrader_meta(c).get("solution"))
    package_names = _imported_from_package(setup)
    for cell in source.cells:
        gid = grade_id(cell)
        if is_test_cell(cell):
            mine = sub_cells.get(gid)
            if mine is None or mine.cell_type != "code":
                findings.missing_tests.append(gid)
            elif mine.source.strip() != cell.source.strip():
                findings.edited_tests.append(gid)
        elif is_solution_cell(cell) and gid in sub_cells:
            reference, grader = scan_solution(sub_cells[gid].source, package_names)
            if reference is None:
                findings.unparsable.append(gid)
                continue
            if reference:
                findings.reference_use[gid] = reference
            if grader:
                findings.grader_tampering[gid] = grader
    return findings


def repair_test_cells(submitted, source) -> list:
    """Put each test cell of ``source`` back in ``submitted`` once, as released; returns the ids found more than once.

    nbgrader refuses a notebook in which a grade id appears twice (jupyter/nbgrader#1083): the
    first copy of a test cell becomes the released cell, the other copies (code or not) go.
    """
    released = {grade_id(c): c for c in source.cells if is_test_cell(c)}
    counts = Counter(grade_id(c) for c in submitted.cells)
    duplicated = [gid for gid in released if counts[gid] > 1]
    cells, seen = [], set()
    for cell in submitted.cells:
        gid = grade_id(cell)
        if gid in duplicated:
            if gid in seen:
                continue
            seen.add(gid)
            cell = nbformat.from_dict(dict(released[gid], outputs=[], execution_count=None))
        cells.append(cell)
    submitted.cells = cells
    return duplicated
