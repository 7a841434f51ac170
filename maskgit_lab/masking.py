"""Random token masks for Masked Visual Token Modeling (MaskGIT, Sec. 3.2).

Each training image gets exactly max(1, floor(ratio·N)) masked tokens, chosen uniformly
without replacement: the ranks of i.i.d. uniform scores give a random permutation, and
the lowest ``count`` ranks are masked. Exact counts (not Bernoulli(ratio) per token) are
what the decoding schedule assumes at test time.
"""

from typing import Optional, Union

import numpy as np
import torch

from maskgit_lab.data import MASK_KINDS, make_hole
from maskgit_lab.inpaint import token_mask_from_pixels


def mask_counts(ratio: Union[float, torch.Tensor], batch_size: int, num_tokens: int) -> torch.Tensor:
    """Tokens to mask per row: max(1, floor(ratio·N)), never more than N. Shape (B,)."""
    ratio = torch.as_tensor(ratio, dtype=torch.float64).expand(batch_size)
    if ((ratio < 0) | (ratio > 1)).any():
        raise ValueError("mask ratio must lie in [0, 1]; got values outside it")
    counts = torch.floor(ratio * num_tokens).long()
    return counts.clamp(min=1, max=num_tokens)


def random_token_mask(
    batch_size: int,
    num_tokens: int,
    ratio: Union[float, torch.Tensor],
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Bool (B, N) mask, True = masked, with exactly ``mask_counts`` True per row."""
    counts = mask_counts(ratio, batch_size, num_tokens)  # (B,)
    scores = torch.rand(batch_size, num_tokens, generator=generator)  # (B, N)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # (B, N): rank of each token's score
    return ranks < counts.unsqueeze(1)


def hole_token_mask(batch_size: int, downsample: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Bool (B, N) token masks shaped like the test set's holes: the same four mask makers
    (boxes, strokes, half, centre, one drawn at random per row) under seeds drawn from ``generator``,
    then a token is masked when any pixel of its patch is (as ``inpaint`` does)."""
    seeds = torch.randint(2**62, (batch_size,), generator=generator).tolist()
    kinds = sorted(MASK_KINDS)
    holes = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        holes.append(torch.from_numpy(make_hole(kinds[rng.integers(len(kinds))], rng)))
    return token_mask_from_pixels(~torch.stack(holes), downsample)  # (B, N)
