import math

import numpy as np
import pytest
import torch

from maskgit_lab import masking
from maskgit_lab.masking import hole_token_mask, random_token_mask


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


def test_hole_token_masks_come_from_the_test_mask_makers():
    generator = torch.Generator().manual_seed(0)
    masks = hole_token_mask(200, 8, generator)
    assert masks.shape == (200, 64) and masks.dtype == torch.bool
    # the makers hide 20–60 % of the pixels; a token is masked if any of its pixels is, so 13..64 tokens
    assert masks.sum(1).min() >= 13 and masks.any(1).all()
    again = hole_token_mask(200, 8, torch.Generator().manual_seed(0))
    assert torch.equal(masks, again)


def test_hole_token_mask_marks_every_token_touching_the_hole(monkeypatch):
    hole = np.zeros((64, 64), dtype=bool)
    hole[10:20, 30:33] = True  # rows 10–19 cross token rows 1 and 2; columns 30–32 cross token columns 3 and 4
    monkeypatch.setattr(masking, "make_hole", lambda kind, rng: hole)
    mask = hole_token_mask(1, 8)[0].view(8, 8)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[1:3, 3:5] = True
    assert torch.equal(mask, expected)
