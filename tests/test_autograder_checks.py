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
    report = {"tests": {gid: {"check": gid, "points": 2.0, "max_points": 2.0, "message": "all good"} for gid in tests},
              "hidden": [{"answer": "nearest_code", "points": 1.0, "max_points": 1.0},
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


# --------------------------------------------------------------------------- the judge and its worker


def rerun_example(student, tmp_path):
    example = examples.BY_STUDENT[student]
    path = submission(tmp_path, example.notebook, example.edits, student)
    return rerun.run(path, release.SOLUTIONS / f"{example.notebook}.ipynb")  # no time limit: nothing here loops


@pytest.mark.parametrize("student", ["forges_report", "exits_in_rerun"])
def test_code_that_forges_the_report_or_exits_in_the_worker_scores_zero_for_it(student, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = rerun_example(student, tmp_path)
    assert "exited or stopped answering" in report["errors"]["01_nearest_code"]
    assert report["tests"]["01_check_nearest_code"]["points"] == 0
    assert "not defined" in report["tests"]["01_check_nearest_code"]["message"]
    assert report["hidden"][0] == {"answer": "nearest_code", "points": 0.0, "max_points": 1.0}
    assert report["tests"]["01_check_vq_losses"]["points"] == 3  # a fresh worker graded the other cells


@pytest.mark.parametrize("code, route", [
    ("import sys\n\ndef nearest_code(z, codebook):\n    return sys.modules['maskgit' + '_lab.vq'].nearest_code(z, codebook)\n",
     "sys.modules['maskgit_lab.vq'].nearest_code"),
    ("import importlib\n\ndef nearest_code(z, codebook):\n    return importlib.import_module('maskgit' + '_lab.vq').nearest_code(z, codebook)\n",
     "sys.modules['maskgit_lab.vq'].nearest_code"),
    ("def nearest_code(z, codebook):\n    return __import__('maskgit' + '_lab').vq.nearest_code(z, codebook)\n", "import maskgit_lab"),
    (f"source = open({str(release.ROOT / 'maskgit_lab' / 'vq.py')!r}).read()\n", "open('vq.py') in the package's folder"),
])
def test_every_route_to_the_reference_fails_in_the_worker_and_is_named(code, route, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = submission(tmp_path, "01_vq_tokenization", {"01_nearest_code": code})
    report = rerun.run(path, release.SOLUTIONS / "01_vq_tokenization.ipynb")
    assert route in report["reference"]["01_nearest_code"], report["reference"]
    assert report["tests"]["01_check_nearest_code"]["points"] == 0


@pytest.mark.parametrize("student", ["warns", "stderr"])
def test_warnings_and_stderr_from_the_students_function_cost_nothing_and_are_reported(student, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = rerun_example(student, tmp_path)
    assert all(t["points"] == t["max_points"] for t in report["tests"].values()), report["tests"]
    said = "warned UserWarning: float64 is slow" if student == "warns" else "wrote to stderr 'debug'"
    assert said in report["noise"]["01_check_nearest_code"]


def test_the_wire_builds_only_plain_data_and_refuses_the_rest(tmp_path):
    import os

    import torch

    from autograder import wire

    read_fd, write_fd = os.pipe()
    end = wire.Endpoint(read_fd, write_fd)
    value = {"t": torch.arange(6.0).reshape(2, 3).requires_grad_(), "g": torch.Generator().manual_seed(3), "n": (1, 2.5, None)}
    back = end.decode(json.loads(json.dumps(end.encode(value))))
    assert torch.equal(back["t"], value["t"].detach()) and back["t"].requires_grad and back["n"] == (1, 2.5, None)
    assert torch.equal(back["g"].get_state(), value["g"].get_state())
    assert type(end.decode(end.encode(object()))).__name__ == "object"  # an inert stand-in, named like the original
    for bad in ({"tensor": "float32", "shape": [10**9], "data": ""}, {"tensor": "object", "shape": [], "data": ""},
                {"pickle": "gASVAAAAAAAAAAB9lC4="}, {"theirs": 7}, [1, 2]):
        with pytest.raises(wire.WireError):
            end.decode(bad)


def test_in_the_sandbox_the_worker_sees_neither_the_project_nor_other_folders_nor_the_network(tmp_path):
    from autograder import sandbox

    mode, why = sandbox.probe(tmp_path / "probe")
    if mode != sandbox.BWRAP:
        pytest.skip(f"no sandbox on this machine: {why}")
    scratch, elsewhere, log = tmp_path / "scratch", tmp_path / "elsewhere", tmp_path / "guard.log"
    scratch.mkdir()
    elsewhere.mkdir()
    (elsewhere / "other-student.ipynb").write_text("{}")
    log.touch()
    worker = rerun.Worker(scratch, log, prefix=sandbox.prefix(scratch, [elsewhere], [log]))
    try:
        worker.exec("probe", """import os, socket

def look(paths):
    return [os.path.exists(p) for p in paths]

def connect():
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=5)
    except OSError as err:
        return type(err).__name__
    return "connected"
""")
        paths = [release.ROOT / "solutions", release.ROOT / "maskgit_lab", release.ROOT / ".git",
                 elsewhere / "other-student.ipynb", scratch]  # a hidden folder is an empty mount point
        assert worker.function("look")([str(p) for p in paths]) == [False, False, False, False, True]
        assert worker.function("connect")() != "connected"
    finally:
        worker.stop()
