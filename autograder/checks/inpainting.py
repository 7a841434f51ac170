"""Checks for notebook 05 (inpainting and FID): pixel mask → token mask, and pasting known pixels back.

Every check takes the student's function, runs it on tiny masks and images (milliseconds),
compares it with ``maskgit_lab.inpaint`` and, when they differ, names the likely misconception.
"""

import torch

from autograder.checks.common import expect, quietly, tensor
from autograder.checks.variants import PASTE, TOKEN_MASK
from autograder.core import CheckFailed, applied, diagnose, graded
from maskgit_lab.inpaint import paste_known as reference_paste
from maskgit_lab.inpaint import token_mask_from_pixels as reference_token_mask


def _grid(mask: torch.Tensor, side: int) -> str:
    """A (N,) bool token mask as rows of '#' (unknown) and '.' (known)."""
    rows = mask.view(side, side).tolist()
    return " / ".join("".join("#" if v else "." for v in row) for row in rows)


# --- pixel mask → token mask -----------------------------------------------------------------


def _handmade_known() -> torch.Tensor:
    """(2, 8, 8) known-pixel masks for f = 4 (a 2×2 token grid) that no transposition maps onto itself."""
    known = torch.ones(2, 8, 8, dtype=torch.bool)
    known[0, 1, 6] = False  # one pixel in token (row 0, col 1)
    known[0, 4:, 4:] = False  # the whole of token (1, 1)
    known[1, 4:, :4] = False  # the whole of token (1, 0)
    known[1, 0, 0] = known[1, 3, 2] = False  # two pixels in token (0, 0)
    return known


def _cases():
    g = torch.Generator().manual_seed(0)
    scattered = torch.rand(2, 16, 16, generator=g) > 0.05  # a few unknown pixels anywhere
    scattered[1, 2:9, 5:15] = False  # and a rectangle that cuts through tokens
    return [(_handmade_known(), 4), (scattered, 2), (scattered, 8)]


@graded(3)
def check_token_mask_from_pixels(fn):
    """True where ANY pixel of a token's f×f patch is unknown, flattened row by row to (B, (S/f)²)."""
    for known, f in _cases():
        B, S, _ = known.shape
        side = S // f
        want = reference_token_mask(known, f)
        got = quietly(expect(fn, "token_mask_from_pixels(known, downsample)"), known.clone(), f)
        where = f"token_mask_from_pixels(known of shape {tuple(known.shape)}, downsample={f})"
        tensor(got, f"the result of {where}")
        if got.shape == (B, side, side):
            raise CheckFailed(f"{where} returned the token grid {tuple(got.shape)}; flatten it row by row to "
                              f"(B, N) = {(B, side * side)}, the layout of the tokenizer's tokens.")
        if got.shape != want.shape:
            hint = ""
            if got.dim() == 2 and got.shape[1] == f * f:
                hint = " You pooled with a kernel of S/f; the kernel is the patch size f = downsample."
            raise CheckFailed(f"{where} should return shape (B, (S/f)²) = {tuple(want.shape)}, one entry per token "
                              f"(each token covers an f×f = {f}×{f} pixel patch); got {tuple(got.shape)}.{hint}")
        if got.dtype != torch.bool:
            raise CheckFailed(f"{where} should return a bool mask (True = unknown token), as decoding expects; "
                              f"got dtype {got.dtype}. Convert with .bool() or compare.")
        why = diagnose(got, want, applied(TOKEN_MASK, known, f, want), same=torch.equal)
        if why is None:
            continue
        b = int((got != want).any(dim=1).nonzero()[0])
        summary = (f"{where}, image {b}: expected tokens {_grid(want[b], side)}, got {_grid(got[b], side)} "
                   f"('#' = unknown, rows of the token grid).")
        raise CheckFailed(f"{summary} " + (why or "Token (i, j) covers pixel rows i·f … i·f+f−1 and columns j·f … j·f+f−1 "
                                                  "and is unknown if any of them is unknown."))
    return "a token is unknown as soon as one of its pixels is, in the tokenizer's row-by-row order"


# --- pasting the known pixels back -----------------------------------------------------------


@graded(2)
def check_paste_known(fn):
    """Known pixels from the original, hole pixels from the generated image; inputs untouched."""
    g = torch.Generator().manual_seed(0)
    B, S = 2, 8
    original = torch.rand(B, 3, S, S, generator=g) * 2 - 1
    generated = torch.rand(B, 3, S, S, generator=g) * 2 - 1
    known = torch.rand(B, S, S, generator=g) > 0.4
    known[0, :4] = True  # a wide known band and a clear hole in image 1
    known[1, 2:7, 1:6] = False
    inputs = (generated.clone(), original.clone(), known.clone())
    got = quietly(expect(fn, "paste_known(generated, original, known)"), *inputs)
    want = reference_paste(generated, original, known)
    tensor(got, "the images paste_known returns")
    if not got.is_floating_point():
        raise CheckFailed(f"paste_known should return float images like its inputs; got dtype {got.dtype}")
    if got.shape != want.shape:
        raise CheckFailed(f"paste_known should return images of shape (B, 3, S, S) = {tuple(want.shape)}; got "
                          f"{tuple(got.shape)}. `known` is (B, S, S): give it a channel axis, known[:, None], so it "
                          f"applies to all three colour channels.")
    if not (torch.equal(inputs[0], generated) and torch.equal(inputs[1], original) and torch.equal(inputs[2], known)):
        raise CheckFailed("paste_known changed one of its inputs in place; build a new tensor "
                          "(e.g. with torch.where) and leave generated, original and known as they were.")
    got = got.detach().to(want.dtype)  # an answer computed in float64 is fine
    why = diagnose(got, want, applied(PASTE, generated, original, known), same=torch.allclose)
    if why is None:
        return "known pixels come from the original, the hole from the generated image"
    if why:
        raise CheckFailed(why)
    mask = known.unsqueeze(1).expand_as(got)  # (B, 3, S, S)
    if not torch.allclose(got[mask], original[mask]):
        raise CheckFailed("Some known pixels differ from the original: every pixel with known = True must be copied "
                          "exactly from the original image.")
    raise CheckFailed("Some pixels in the hole are not the generated ones: where known is False, take the generated image.")
