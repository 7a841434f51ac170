"""The static reading of a submission against its source (autograder/student/tamper.py), before anything runs."""

import pytest
from submissions import SOURCES

from autograder import examples
from autograder.cells import grade_id
from autograder.student import tamper


def test_the_table_names_real_cells_and_every_bug_notebook_exists():
    for example in examples.EXAMPLES_TABLE:
        ids = {grade_id(c) for c in SOURCES[example.notebook].cells}
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


def test_a_cell_with_magics_is_read_without_them_and_a_broken_one_is_unparsable():
    reference, grader = tamper.scan_solution("%matplotlib inline\n!ls\nimport maskgit_lab\n", set())
    assert reference == ["import maskgit_lab"] and grader == []
    assert tamper.scan_solution("def f(:\n", set()) == (None, None)
