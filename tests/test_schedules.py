import math

import pytest
import torch

from maskgit_lab.schedules import SCHEDULES, gamma

NAMES = list(SCHEDULES)


def test_all_six_schedules_are_registered():
    assert set(NAMES) == {"cosine", "linear", "square", "cubic", "sqrt", "arccos"}


@pytest.mark.parametrize("name", NAMES)
def test_endpoints(name):
    g = gamma(name)
    assert g(0.0) == pytest.approx(1.0)
    assert g(1.0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_non_increasing_and_in_unit_interval(name):
    values = gamma(name)(torch.linspace(0, 1, 1001, dtype=torch.float64))
    assert (values[1:] <= values[:-1] + 1e-12).all()
    assert ((values >= 0) & (values <= 1)).all()


@pytest.mark.parametrize("name", NAMES)
def test_float_and_tensor_agree(name):
    g = gamma(name)
    r = torch.tensor([0.1, 0.37, 0.8], dtype=torch.float64)
    assert torch.allclose(g(r), torch.tensor([g(float(x)) for x in r], dtype=torch.float64))
    assert isinstance(g(0.3), float)


def test_known_values():
    assert gamma("cosine")(0.5) == pytest.approx(math.cos(math.pi / 4))
    assert gamma("linear")(0.25) == pytest.approx(0.75)
    assert gamma("square")(0.5) == pytest.approx(0.75)
    assert gamma("cubic")(0.5) == pytest.approx(0.875)
    assert gamma("sqrt")(0.25) == pytest.approx(0.5)
    assert gamma("arccos")(0.5) == pytest.approx(math.acos(0.5) / (math.pi / 2))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown mask schedule 'cosin'.*cosine, linear, square, cubic, sqrt, arccos"):
        gamma("cosin")
