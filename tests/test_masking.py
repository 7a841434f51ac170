import math

import pytest
import torch

from maskgit_lab.masking import random_token_mask


@pytest.mark.parametrize("ratio", [0.0, 0.01, 0.3, 0.5, 0.999, 1.0])
def test_exact_count_per_row_for_float_ratio(ratio):
    mask = random_token_mask(16, 64, ratio, generator=torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.shape == (16, 64)
    expected = max(1, math.floor(ratio * 64))
    assert mask.sum(dim=1).tolist() == [expected] * 16


def test_exact_count_per_row_for_tensor_ratio():
    ratio = torch.tensor([0.0, 0.2, 0.55, 1.0])
    mask = random_token_mask(4, 50, ratio)
    assert mask.sum(dim=1).tolist() == [1, 10, 27, 50]


def test_positions_are_uniform():
    mask = random_token_mask(20000, 8, 0.25, generator=torch.Generator().manual_seed(1))
    frequency = mask.float().mean(dim=0)  # each position masked with probability 2/8
    assert torch.allclose(frequency, torch.full((8,), 0.25), atol=0.02)


def test_same_generator_seed_same_mask():
    a = random_token_mask(3, 30, 0.4, generator=torch.Generator().manual_seed(7))
    b = random_token_mask(3, 30, 0.4, generator=torch.Generator().manual_seed(7))
    c = random_token_mask(3, 30, 0.4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ratio_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match=r"mask ratio must lie in \[0, 1\]"):
        random_token_mask(2, 10, 1.5)
