"""Hole-only PSNR and SSIM against brute-force loops and exact invariants."""

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from maskgit_lab.metrics import psnr_hole, ssim_hole, ssim_map


def random_case(B=2, H=16, W=16, seed=0):
    """Target and a noisy prediction in [-1, 1], and a mask with a rectangular hole."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(B, 3, H, W, generator=g, dtype=torch.float64) * 2 - 1
    pred = (target + 0.3 * torch.randn(B, 3, H, W, generator=g, dtype=torch.float64)).clamp(-1, 1)
    known = torch.ones(B, H, W, dtype=torch.bool)
    known[:, H // 4 : 3 * H // 4, W // 3 : W - 2] = False
    return pred, target, known


def brute_force_ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SSIM of every pixel of (C, H, W) images in [0, 1], one 11×11 window at a time."""
    r = np.arange(11) - 5
    weights = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    weights /= weights.sum()
    c1, c2 = (0.01 * 1) ** 2, (0.03 * 1) ** 2
    C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (5, 5), (5, 5)), mode="reflect")
    yp = np.pad(y, ((0, 0), (5, 5), (5, 5)), mode="reflect")
    out = np.zeros_like(x)
    for c in range(C):
        for i in range(H):
            for j in range(W):
                a, b = xp[c, i : i + 11, j : j + 11], yp[c, i : i + 11, j : j + 11]
                mu_a, mu_b = (weights * a).sum(), (weights * b).sum()
                var_a = (weights * (a - mu_a) ** 2).sum()
                var_b = (weights * (b - mu_b) ** 2).sum()
                cov = (weights * (a - mu_a) * (b - mu_b)).sum()
                out[c, i, j] = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
                    (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
                )
    return out


def test_ssim_map_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 13, 15, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(1, 3, 13, 15, generator=g, dtype=torch.float64)).clamp(0, 1)
    expected = torch.from_numpy(brute_force_ssim_map(x[0].numpy(), y[0].numpy()))
    assert_close(ssim_map(x, y)[0], expected)


def test_ssim_hole_matches_brute_force():
    pred, target, known = random_case(B=2, H=14, W=12)
    scores = ssim_hole(pred, target, known)
    for b in range(2):
        composite = torch.where(known[b], target[b], pred[b])  # known pixels from the target
        full = brute_force_ssim_map(((composite + 1) / 2).numpy(), ((target[b] + 1) / 2).numpy())
        hole = ~known[b].numpy()
        expected = full[:, hole].mean()  # over the three channels of every unknown pixel
        assert scores[b].item() == pytest.approx(expected, rel=1e-10)


def test_psnr_hole_matches_brute_force_on_minus_one_to_one():
    pred, target, known = random_case(B=3, seed=2)
    scores = psnr_hole(pred, target, known)
    for b in range(3):
        hole = ~known[b].numpy()
        err = (pred[b].numpy() - target[b].numpy())[:, hole]
        # Peak-to-peak 2 on [-1, 1] must give the same dB as peak 1 on [0, 1].
        expected = 10 * math.log10(2**2 / np.mean(err**2))
        assert scores[b].item() == pytest.approx(expected, rel=1e-12)


def test_identical_images_score_perfectly():
    _, target, known = random_case()
    assert_close(ssim_hole(target, target, known), torch.ones(2, dtype=torch.float64))
    assert torch.isinf(psnr_hole(target, target, known)).all()


def test_scores_improve_as_the_error_shrinks():
    _, target, known = random_case(B=1, H=32, W=32, seed=3)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    psnrs, ssims = [], []
    for scale in (0.5, 0.2, 0.05, 0.01):
        pred = (target + scale * noise).clamp(-1, 1)
        psnrs.append(psnr_hole(pred, target, known).item())
        ssims.append(ssim_hole(pred, target, known).item())
    assert psnrs == sorted(psnrs) and len(set(psnrs)) == 4, psnrs
    assert ssims == sorted(ssims) and len(set(ssims)) == 4, ssims


def test_known_pixels_of_the_prediction_do_not_count():
    pred, target, known = random_case(seed=5)
    scribbled = torch.where(known.unsqueeze(1), -pred, pred)  # change every known pixel, keep the hole
    assert_close(psnr_hole(scribbled, target, known), psnr_hole(pred, target, known), rtol=0, atol=0)
    assert_close(ssim_hole(scribbled, target, known), ssim_hole(pred, target, known), rtol=0, atol=0)


def test_known_pixels_of_the_target_do_not_count_for_psnr():
    pred, target, known = random_case(seed=6)
    other_target = torch.where(known.unsqueeze(1), torch.zeros_like(target), target)
    assert_close(psnr_hole(pred, other_target, known), psnr_hole(pred, target, known), rtol=0, atol=0)


def test_bad_inputs_raise_clear_errors():
    pred, target, known = random_case()
    with pytest.raises(TypeError, match="bool"):
        psnr_hole(pred, target, known.float())
    with pytest.raises(ValueError, match=r"known must be \(B, H, W\)"):
        ssim_hole(pred, target, known[:, None])
    with pytest.raises(ValueError, match="differs from pred"):
        psnr_hole(pred, target[:, :, :8], known)
    full = known.clone()
    full[1] = True
    with pytest.raises(ValueError, match=r"images \[1\] have no unknown pixels"):
        ssim_hole(pred, target, full)
