"""The grader's house: short functions, and every `python -m` hop between its processes named beside its module."""

import ast
from pathlib import Path

import autograder
from autograder import judge, student
from autograder.judge import worker

PACKAGE = Path(autograder.__file__).parent
LONGEST = 60  # lines per function, decorators left out


def test_no_function_in_the_autograder_is_longer_than_sixty_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > LONGEST:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_each_process_is_started_by_the_module_path_that_lives_beside_it():
    for hop, started in ((student, "autograder.student"), (judge, "autograder.judge"), (worker, "autograder.judge.worker")):
        assert hop.MODULE == started == hop.__name__
    assert (PACKAGE / "student" / "__main__.py").exists() and (PACKAGE / "judge" / "__main__.py").exists()
    assert 'if __name__ == "__main__":' in Path(worker.__file__).read_text()
    assert student.command(Path("job.json"))[1:] == ["-m", "autograder.student", "job.json"]
    assert worker.command(3, 4, Path("/scratch"), Path("/g.log"))[1:7] == ["-m", "autograder.judge.worker", "3", "4",
                                                                          "/scratch", "/g.log"]


def imports_of(path: Path) -> set:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_the_import_graph_draws_each_hop_from_the_process_that_starts_the_next():
    assert "autograder.student" in imports_of(PACKAGE / "grader" / "grade.py")  # grader → student
    assert "autograder.judge" in imports_of(PACKAGE / "student" / "student.py")  # student → judge
    assert "autograder.judge.worker" in imports_of(PACKAGE / "judge" / "judge.py")  # judge → worker
