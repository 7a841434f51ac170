"""The judge (autograder/judge/judge.py) without nbgrader: every visible check and the hidden ones, computed
outside the notebook on the functions the worker runs. Example submissions are built in memory."""

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from submissions import SOURCES, judge_example, submission

from autograder import examples, judge, records, release
from autograder.cells import grade_id, is_test_cell
from autograder.judge import hidden
from autograder.judge.judge import judge as judge_notebook

BUGS = [e for e in examples.EXAMPLES_TABLE if e.student in (
    "straight_through_missing", "softmax_wrong_axis", "no_sqrt_scaling", "gamma_increasing", "loss_all_tokens",
    "scalar_gumbel", "keep_count_from_current", "labels_dropped_to_class_0", "guidance_halves_swapped", "guidance_two_passes",
    "logits_of_the_empty_canvas")]


@pytest.fixture(autouse=True)
def scratch_tmp(tmp_path, monkeypatch):
    """Set-up cells make temporary folders: keep them inside the test's own tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.mark.parametrize("notebook", sorted(SOURCES))
def test_reference_answers_pass_every_visible_and_hidden_check_outside_the_notebook(notebook, judged):
    report, _ = judged(notebook)
    assert report.errors == {} and report.crash is None
    tests = [c for c in SOURCES[notebook].cells if is_test_cell(c)]
    assert set(report.tests) == {grade_id(c) for c in tests}
    assert all(t.points == t.max_points for t in report.tests.values()), report.tests
    assert [h.points for h in report.hidden] == [h.max_points for h in report.hidden]
    assert sum(h.max_points for h in report.hidden) == hidden.hidden_max(notebook) > 0


@pytest.mark.parametrize("example", BUGS, ids=[e.student for e in BUGS])
def test_each_bug_loses_exactly_the_points_of_its_checks_with_the_right_message(example, judged):
    report, _ = judged(example.notebook, example.student)
    lost = {gid: t for gid, t in report.tests.items() if t.points < t.max_points}
    assert set(lost) == set(example.lost), {gid: t.message for gid, t in lost.items()}
    for gid, fragment in example.lost.items():
        assert lost[gid].points == 0 and fragment in lost[gid].message, lost[gid].message


def test_rebinding_show_or_hiding_tracebacks_changes_nothing_outside_the_notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for student in ("fakes_show", "hides_traceback"):
        report = judge_example(student, tmp_path)
        assert report.tests["01_check_nearest_code"].points == 0  # the dot-product bug, or no get_ipython here


@pytest.mark.parametrize("student, where", [("imports_reference", "(line 2 of nearest_code)"),
                                            ("reference_by_sys_modules", "(line 5 of nearest_code)")])
def test_an_error_raised_by_the_grader_s_guard_is_placed_in_the_student_s_code(student, where, judged):
    """The guard that keeps the reference out of the worker raises in the grader's own files; the message names the
    student's line that reached for it, which no edit of the grader moves."""
    report, _ = judged(examples.BY_STUDENT[student].notebook, student)
    message = report.tests["01_check_nearest_code"].message
    assert "ImportError: the reference package is not available" in message and message.endswith(where), message


def test_hidden_checks_stay_out_of_the_notebooks():
    for path in sorted(release.SOLUTIONS.glob("*.ipynb")) + sorted(release.RELEASE.glob("*.ipynb")):
        text = path.read_text()
        assert "autograder.judge" not in text, path  # the judge's modules, the hidden checks among them
        for items in hidden.HIDDEN.values():
            for item in items:
                assert item.check.__name__ not in text


@pytest.mark.parametrize("student", ["forges_report", "exits_in_rerun"])
def test_code_that_forges_the_report_or_exits_in_the_worker_scores_zero_for_it(student, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = judge_example(student, tmp_path)  # no time limit: nothing here loops
    assert "exited or stopped answering" in report.errors["01_nearest_code"]
    assert report.tests["01_check_nearest_code"].points == 0
    assert "not defined" in report.tests["01_check_nearest_code"].message
    assert (report.hidden[0].answer, report.hidden[0].points, report.hidden[0].max_points) == ("nearest_code", 0.0, 1.0)
    assert report.tests["01_check_vq_losses"].points == 3  # a fresh worker graded the other cells


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
    report = judge_notebook(path, release.SOLUTIONS / "01_vq_tokenization.ipynb")
    assert route in report.reference["01_nearest_code"], report.reference
    assert report.tests["01_check_nearest_code"].points == 0


@pytest.mark.parametrize("student", ["warns", "stderr"])
def test_warnings_and_stderr_from_the_students_function_cost_nothing_and_are_reported(student, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = judge_example(student, tmp_path)
    assert all(t.points == t.max_points for t in report.tests.values()), report.tests
    said = "warned UserWarning: float64 is slow" if student == "warns" else "wrote to stderr 'debug'"
    assert said in report.noise["01_check_nearest_code"]


def test_a_cell_that_runs_past_the_cell_timeout_is_interrupted_and_its_checks_score_zero(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = judge_example("hangs", tmp_path, cell_timeout=5)
    assert report.errors["01_nearest_code"].startswith("CellTimeoutError"), report.errors
    assert report.tests["01_check_nearest_code"].points == 0
    assert report.tests["01_check_vq_losses"].points == 3


def test_the_judges_command_line_reads_back_as_written():
    args = judge.Arguments(Path("/s/a.ipynb"), Path("/src/a.ipynb"), Path("/r.json"), Path("/g.log"), Path("/scratch"), 60,
                           Path("/figures"), Path("/shared"))
    line = judge.command(args)
    assert line[1:3] == ["-m", "autograder.judge"]
    assert judge.parse(line[3:]) == args
    bare = args._replace(figures=None, shared=None)
    assert judge.parse(judge.command(bare)[3:]) == bare


def test_the_judges_report_file_holds_the_verdicts_as_records(tmp_path, monkeypatch):
    """``python -m autograder.judge`` end to end: the report it writes reads back as a records.Report."""
    monkeypatch.setenv("MASKGIT_LAB_FAST", "1")
    path = submission(tmp_path, "01_vq_tokenization", examples.BY_STUDENT["straight_through_missing"].edits)
    args = judge.Arguments(path, release.SOLUTIONS / "01_vq_tokenization.ipynb", tmp_path / "report.json",
                           tmp_path / "guard.log", tmp_path, 120)
    (tmp_path / "guard.log").touch()
    subprocess.run(judge.command(args), cwd=tmp_path, timeout=600, check=True)
    report = records.read(records.Report, args.report)
    assert report.notebook == "01_vq_tokenization" and report.crash is None
    assert report.tests["01_check_straight_through"].points == 0 and report.tests["01_check_nearest_code"].points == 2
    assert json.loads(args.report.read_text())["tests"]["01_check_straight_through"]["check"] == "check_straight_through"
