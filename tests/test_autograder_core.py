"""autograder.core outside a kernel: how ``show`` and ``whose`` behave in plain Python.

In a kernel, ``show`` publishes a failed check as the cell's error output instead of raising;
tests/test_release.py runs the release notebooks to check that, and nbgrader's score and Validate.
"""

import pytest

from autograder.core import Result, show, whose
from maskgit_lab.vq import nearest_code


def test_show_prints_a_pass_and_returns(capsys):
    show(Result("check_x", 2, 2, "all good"))
    assert capsys.readouterr().out == "[PASSED] check_x (2/2): all good\n"


def test_show_raises_on_a_lost_point_outside_a_kernel(capsys):
    with pytest.raises(AssertionError, match="^not implemented yet$"):
        show(Result("check_x", 0, 2, "not implemented yet"))
    assert capsys.readouterr().out == "[FAILED] check_x (0/2): not implemented yet\n"


def test_whose_says_who_computed_a_result():
    def mine(z, codebook):
        return nearest_code(z, codebook)

    assert whose(mine, mine) == "your"
    assert whose(nearest_code, mine) == "the reference"
