"""The autograder without nbgrader: static reading of submissions, the re-run of the checks with
the hidden ones, the write guard and the memory cap. Example submissions are built in memory."""

import json
import subprocess
import sys
import tempfile

import nbformat
import pytest

from autograder import examples, hidden, release, rerun, tamper

SOURCES = {p.stem: nbformat.read(str(p), as_version=4) for p in sorted(release.SOLUTIONS.glob("*.ipynb"))}
BUGS = [e for e in examples.EXAMPLES_TABLE if e.student in (
    "straight_through_missing", "softmax_wrong_axis", "no_sqrt_scaling", "gamma_increasing", "loss_all_tokens",
    "scalar_gumbel", "keep_count_from_current")]


@pytest.fixture(autouse=True)
def scratch_tmp(tmp_path, monkeypatch):
    """Set-up cells make temporary folders: keep them inside the test's own tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def submission(tmp_path, notebook, edits=None, name="student"):
    """The solutions' notebook answered with the reference code, then ``edits``; written to a file."""
    path = tmp_path / name / f"{notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(examples.answered(SOURCES[notebook], SOURCES[notebook], edits or {}), str(path))
    return path


def test_the_table_names_real_cells_and_every_bug_notebook_exists():
    for example in examples.EXAMPLES_TABLE:
        ids = {tamper.grade_id(c) for c in SOURCES[example.notebook].cells}
        assert set(example.edits) <= ids, example.student
        assert set(example.lost) <= ids, example.student
    assert len({e.student for e in examples.EXAMPLES_TABLE}) == len(examples.EXAMPLES_TABLE)


@pytest.mark.parametrize("notebook", sorted(SOURCES))
def test_reference_answers_raise_no_static_finding(notebook):
    answered = examples.answered(SOURCES[notebook], SOURCES[notebook], {})
    findings = tamper.scan(answered, SOURCES[notebook])
    assert findings.notes() == [] and findings.unparsable == []


@pytest.mark.parametrize("student, kind, cell", [
    ("imports_reference", "reference_use", "01_nearest_code"),
    ("hides_traceback", "grader_tampering", "01_nearest_code"),
    ("fakes_show", "grader_tampering", "01_nearest_code"),
    ("deleted_test_cell", "missing_tests", "01_check_nearest_code"),
    ("edited_test_cell", "edited_tests", "01_check_nearest_code"),
])
def test_static_reading_finds_each_trap(student, kind, cell):
    example = examples.BY_STUDENT[student]
    answered = examples.answered(SOURCES[example.notebook], SOURCES[example.notebook], example.edits)
    findings = tamper.scan(answered, SOURCES[example.notebook])
    assert cell in getattr(findings, kind)
    assert findings.notes()


def test_reference_use_is_found_in_its_usual_disguises():
    names = {"decoding", "gamma", "nearest"}
    for source in ["import maskgit_lab.vq\nx = maskgit_lab.vq.nearest_code", "def f(a):\n    return decoding.gumbel_noise(a)",
                   "import importlib\nm = importlib.import_module('maskgit_lab.vq')"]:
        reference, _ = tamper.scan_solution(source, names)
        assert reference, source
    own, grader = tamper.scan_solution("def gamma(name):\n    return lambda r: 1 - r", names)
    assert own == [] and grader == []  # defining its own gamma is the task, not a use of the package's


@pytest.mark.parametrize("notebook", sorted(SOURCES))
def test_reference_answers_pass_every_visible_and_hidden_check_outside_the_notebook(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("MASKGIT_LAB_FAST", "1")
    monkeypatch.chdir(tmp_path)
    report = rerun.run(submission(tmp_path, notebook), release.SOLUTIONS / f"{notebook}.ipynb")
    assert report["errors"] == {}
    tests = [c for c in SOURCES[notebook].cells if tamper.is_test_cell(c)]
    assert set(report["tests"]) == {tamper.grade_id(c) for c in tests}
    assert all(t["points"] == t["max_points"] for t in report["tests"].values()), report["tests"]
    assert [h["points"] for h in report["hidden"]] == [h["max_points"] for h in report["hidden"]]
    assert sum(h["max_points"] for h in report["hidden"]) == hidden.hidden_max(notebook) > 0


@pytest.mark.parametrize("example", BUGS, ids=[e.student for e in BUGS])
def test_each_bug_loses_exactly_the_points_of_its_checks_with_the_right_message(example, tmp_path, monkeypatch):
    monkeypatch.setenv("MASKGIT_LAB_FAST", "1")
    monkeypatch.chdir(tmp_path)
    report = rerun.run(submission(tmp_path, example.notebook, example.edits), release.SOLUTIONS / f"{example.notebook}.ipynb")
    lost = {gid: t for gid, t in report["tests"].items() if t["points"] < t["max_points"]}
    assert set(lost) == set(example.lost), {gid: t["message"] for gid, t in lost.items()}
    for gid, fragment in example.lost.items():
        assert lost[gid]["points"] == 0 and fragment in lost[gid]["message"], lost[gid]["message"]


def test_rebinding_show_or_hiding_tracebacks_changes_nothing_outside_the_notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for student in ("fakes_show", "hides_traceback"):
        example = examples.BY_STUDENT[student]
        path = submission(tmp_path, example.notebook, example.edits, student)
        report = rerun.run(path, release.SOLUTIONS / f"{example.notebook}.ipynb")
        assert report["tests"]["01_check_nearest_code"]["points"] == 0  # the dot-product bug, or no get_ipython here


def run_python(code: str, tmp_path):
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_the_guard_refuses_writes_and_processes_outside_and_logs_them(tmp_path):
    inside, outside = tmp_path / "scratch", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    log = tmp_path / "guard.log"
    code = f"""
import os, subprocess
from autograder import guard
guard.install([{str(inside)!r}], {str(log)!r})
open({str(inside / 'ok.txt')!r}, 'w').write('fine')
results = []
for attempt in (lambda: open({str(outside / 'x.txt')!r}, 'w'), lambda: os.remove({str(log)!r}),
                lambda: os.rename({str(inside / 'ok.txt')!r}, {str(outside / 'y.txt')!r}),
                lambda: os.symlink('/etc', {str(outside / 'link')!r}), lambda: subprocess.run(['touch', 'z'])):
    try:
        attempt()
        results.append('allowed')
    except PermissionError:
        results.append('refused')
print(results, open({str(outside.parent / 'guard.log')!r}).read().count('REFUSED'))
"""
    done = run_python(code, tmp_path)
    assert done.stdout.strip() == "['refused', 'refused', 'refused', 'refused', 'refused'] 5", done.stderr
    assert (inside / "ok.txt").exists() and list(outside.iterdir()) == []


def test_the_memory_cap_turns_a_huge_allocation_into_an_error(tmp_path):
    code = """
from autograder.isolation import cap_memory
cap_memory(2048)
try:
    block = bytearray(4 * 2**30)
    print('allocated')
except MemoryError:
    print('MemoryError')
"""
    assert run_python(code, tmp_path).stdout.strip() == "MemoryError"


def test_hidden_checks_stay_out_of_the_notebooks():
    for notebook in SOURCES.values():
        text = json.dumps(notebook)
        for items in hidden.HIDDEN.values():
            for item in items:
                assert item.check.__name__ not in text


def test_a_todo_that_uses_the_reference_scores_its_checks_and_hidden_points_zero():
    from autograder import isolation
    from autograder.core import Status

    example = examples.BY_STUDENT["imports_reference"]
    source = SOURCES[example.notebook]
    findings = tamper.scan(examples.answered(source, source, example.edits), source)
    tests = [tamper.grade_id(c) for c in source.cells if tamper.is_test_cell(c)]
    grades = {gid: {"kind": "auto", "score": 2.0, "max_score": 2.0} for gid in tests}
    report = {"tests": {}, "hidden": [{"answer": "nearest_code", "points": 1.0, "max_points": 1.0},
                                      {"answer": "vq_losses", "points": 1.0, "max_points": 1.0}]}
    job = {"source": str(release.SOLUTIONS), "hidden_max": {example.notebook: 2.0}, "cell_timeout": 60, "memory_mb": 0}
    row = isolation.assemble(example.notebook, job, grades, {}, findings, report, refused=[])
    lost = [c["cell"] for c in row["checks"] if c["points"] == 0]
    assert row["status"] == Status.PENALIZED and lost == ["01_check_nearest_code"]
    assert (row["score"], row["max_score"], row["hidden_score"]) == (2.0 * len(tests) - 2.0, 2.0 * len(tests), 1.0)
    assert "uses the reference implementation instead of your own" in row["reason"]
    tampered = isolation.assemble(example.notebook, job, grades, {}, findings, report, refused=["write to /etc/x"])
    assert (tampered["status"], tampered["score"], tampered["hidden_score"]) == (Status.TAMPERED, 0.0, 0.0)
    assert "tried to write to /etc/x (outside its scratch folder; refused)" in tampered["reason"]
