"""The student release: ``solutions/*.ipynb`` → ``notebooks/*.ipynb`` with nbgrader itself.

nbgrader wants a course directory (``source/<assignment>/``); the repository keeps its
notebooks flat, so the release is generated in a scratch course and copied back. The
same scratch course holds the gradebook that ``nbgrader autograde`` needs later.

``python -m autograder release`` writes ``notebooks/``; ``--check`` only compares, for CI.
"""

import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
RELEASE = ROOT / "notebooks"
COURSE_CONFIG = Path(__file__).resolve().parent / "nbgrader_config.py"
ASSIGNMENT = "maskgit"  # nbgrader ids must stay [A-Za-z0-9_-]
SOLUTION_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def make_course(course: Path, solutions: Path = SOLUTIONS) -> Path:
    """A scratch nbgrader course whose ``source/maskgit/`` holds the solution notebooks."""
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    shutil.copy(COURSE_CONFIG, course / "nbgrader_config.py")
    for notebook in sorted(solutions.glob("*.ipynb")):
        shutil.copy(notebook, source)
    return course


def run_nbgrader(course: Path, *args: str):
    """``nbgrader ARGS`` inside ``course``; its log goes to the error message when it fails."""
    command = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}",
               f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    # nbgrader runs `alembic` by name, so the environment's bin folder must be on PATH
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(command, cwd=course, capture_output=True, text=True, env=env)
    if done.returncode != 0 or "[ERROR]" in done.stderr:
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed:\n{done.stderr[-3000:]}")
    return done


def generate(dest: Path, solutions: Path = SOLUTIONS) -> list:
    """Generate the release of every solution notebook into ``dest``; returns the written paths."""
    with tempfile.TemporaryDirectory(prefix="maskgit-release-") as tmp:
        course = make_course(Path(tmp), solutions)
        run_nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for notebook in sorted((course / "release" / ASSIGNMENT).glob("*.ipynb")):
            written.append(Path(shutil.copy(notebook, dest / notebook.name)))
    return written


def leaked_solutions(notebook: Path) -> list:
    """Lines of a released notebook that still carry a solution or hidden-test marker."""
    return [line.strip() for line in notebook.read_text().splitlines() if any(m in line for m in SOLUTION_MARKERS)]


def check(release: Path = RELEASE, solutions: Path = SOLUTIONS) -> list:
    """Problems that make ``release`` differ from a fresh generation (empty when in sync)."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="maskgit-release-check-") as tmp:
        fresh = {p.name: p for p in generate(Path(tmp), solutions)}
        shipped = {p.name: p for p in release.glob("*.ipynb")}
        for name in sorted(set(fresh) - set(shipped)):
            problems.append(f"{name} is missing from {release}")
        for name in sorted(set(shipped) - set(fresh)):
            problems.append(f"{release / name} has no source in {solutions}")
        for name in sorted(set(fresh) & set(shipped)):
            new, old = fresh[name].read_text().splitlines(), shipped[name].read_text().splitlines()
            if new != old:
                diff = list(difflib.unified_diff(old, new, f"{release.name}/{name}", "fresh release", lineterm="", n=0))
                problems.append(f"{name} is out of date ({len(diff)} diff lines, first: {diff[2:4]})")
    for notebook in sorted(release.glob("*.ipynb")):
        leaks = leaked_solutions(notebook)
        if leaks:
            problems.append(f"{notebook.name} still holds solution markers: {leaks[:3]}")
    return problems
