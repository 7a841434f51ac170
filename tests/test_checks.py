"""Every visible check of the course against its reference twin in the package.

The reference scores full marks, quietly (no warning, nothing printed) and without touching the
global random stream; an unfinished TODO scores 0 and says so. How long each check takes is a
benchmark (`python -m autograder bench`), never an assertion here.
"""

import warnings

import pytest
import torch

from autograder.bench import CHECK_BUDGET_S, bench_checks, report
from autograder.checks import reference_twins
from autograder.checks import visible_checks
from tests import test_checks_attention, test_checks_vq

CHECKS = visible_checks()
REFERENCES = reference_twins()
# Calls the answer once with generator=None (the u = 0 and u = 1 edge case), so the global stream moves.
DRAWS_FROM_THE_GLOBAL_STREAM = {"check_gumbel_noise"}


def test_every_visible_check_has_its_reference_here():
    assert sorted(REFERENCES) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_the_reference_scores_full_marks_quietly(name, capfd):
    check = CHECKS[name]
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = check(REFERENCES[name])
    assert result.passed and result.points == result.max_points == check.points > 0, result.message
    if name not in DRAWS_FROM_THE_GLOBAL_STREAM:
        assert torch.equal(torch.rand(3), expected_next), "the check used the notebook's random stream"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_an_unfinished_todo_scores_zero_and_says_so(name):
    def todo(*args, **kwargs):
        raise NotImplementedError("TODO: replace this line with your code (see the task above)")

    result = CHECKS[name](todo)
    assert (result.points, result.max_points) == (0, CHECKS[name].points)
    assert "not implemented yet" in result.message


def test_the_benchmark_times_every_check_against_the_budget():
    rows = bench_checks(repeats=1)
    assert [row["name"] for row in rows] == list(REFERENCES)
    assert all(row["seconds"] > 0 and row["ratio"] == row["seconds"] / CHECK_BUDGET_S for row in rows)
    text = report(rows)
    assert text.count("× budget") == len(rows) and f"budget {CHECK_BUDGET_S:g} s each" in text


# Other right answers and the usual mistakes, written as a student would (notebooks 01 and 02).
@pytest.mark.parametrize("check,answer", test_checks_vq.CORRECT + test_checks_attention.CORRECT)
def test_other_right_answers_get_full_marks(check, answer):
    result = check(answer)
    assert result.passed and result.points == result.max_points == check.points, result.message


@pytest.mark.parametrize("check,answer,words", test_checks_vq.WRONG + test_checks_attention.WRONG)
def test_each_mistake_gets_zero_and_is_named(check, answer, words):
    result = check(answer)
    assert result.points == 0 and not result.passed and result.max_points == check.points
    assert words in result.message, result.message
