"""Hole-only image metrics for inpainting: PSNR and SSIM over the pixels the model had to invent.

Known pixels are given to the model, so counting them would flatter every method alike; both
scores here look at the unknown pixels only. Images are (B, 3, H, W) tensors in [-1, 1] and
``known`` is a (B, H, W) bool mask, True where a pixel was given. Both return one score per image.

PSNR = 10 log₁₀(MAX² / MSE), the MSE taken over the unknown pixels of all three channels.
Images are mapped to [0, 1] first (MAX = 1); that is the same number as MAX = 2 on [-1, 1],
because MSE and MAX² both scale by 4.

SSIM (Wang et al. 2004) compares local statistics under an 11×11 Gaussian window (σ = 1.5):

    SSIM(x, y) = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
    C1 = (0.01 L)², C2 = (0.03 L)², L = 1 for images in [0, 1].

The luminance term is not shift-invariant, so the [0, 1] mapping matters here. We keep the
per-pixel SSIM map of each channel (reflect padding at the border, so every pixel has a value;
5 or more pixels from the border it is the textbook map) and average it over the hole only.
Windows near the hole's edge also see known pixels, so those are first taken from the target:
the score then depends only on what the prediction put inside the hole.
"""

import torch
import torch.nn.functional as F

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _check_inputs(pred: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> None:
    if pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"pred must be (B, 3, H, W); got shape {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target shape {tuple(target.shape)} differs from pred shape {tuple(pred.shape)}")
    B, _, H, W = pred.shape
    if known.shape != (B, H, W):
        raise ValueError(f"known must be (B, H, W) = {(B, H, W)}; got {tuple(known.shape)}")
    if known.dtype != torch.bool:
        raise TypeError(f"known must be a bool mask (True = known pixel); got {known.dtype}, use known.bool()")
    empty = (~known).flatten(1).sum(dim=1) == 0  # (B,)
    if empty.any():
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(f"images {rows} have no unknown pixels; hole metrics need a hole")


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1]."""
    return (x + 1) / 2


def hole_mean(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mean of (B, C, H, W) values over the unknown pixels of every channel: (B,)."""
    hole = (~known).unsqueeze(1).to(values.dtype)  # (B, 1, H, W)
    C = values.shape[1]
    return (values * hole).sum(dim=(1, 2, 3)) / (hole.sum(dim=(1, 2, 3)) * C)


def psnr_hole(pred: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """PSNR in dB over the unknown pixels of each image: (B,). A perfect hole gives inf."""
    _check_inputs(pred, target, known)
    mse = hole_mean((to_unit_range(pred) - to_unit_range(target)) ** 2, known)  # (B,)
    return 10 * torch.log10(1.0 / mse)  # MAX = 1 on [0, 1]


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA, dtype=torch.float32) -> torch.Tensor:
    """(size, size) Gaussian weights summing to 1."""
    offsets = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(offsets**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]  # separable: the outer product of two 1-d Gaussians


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of each channel for images in [0, 1]: (B, C, H, W) → (B, C, H, W)."""
    B, C, H, W = x.shape
    pad = WINDOW_SIZE // 2
    if min(H, W) <= pad:
        raise ValueError(f"images must be larger than {pad} pixels per side for an {WINDOW_SIZE}×{WINDOW_SIZE} window; got {H}×{W}")
    window = gaussian_window(dtype=x.dtype).to(x.device).expand(C, 1, WINDOW_SIZE, WINDOW_SIZE)  # (C, 1, 11, 11)

    def local_mean(z):  # Gaussian-weighted mean around every pixel, each channel on its own
        return F.conv2d(F.pad(z, (pad, pad, pad, pad), mode="reflect"), window, groups=C)  # (B, C, H, W)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2  # σx² = E[x²] − μx²
    var_y = local_mean(y * y) - mu_y**2
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = K1**2, K2**2  # (K L)² with L = 1
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    contrast_structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    return luminance * contrast_structure


def ssim_hole(pred: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """SSIM averaged over the unknown pixels (and the three channels) of each image: (B,)."""
    _check_inputs(pred, target, known)
    # Context around the hole comes from the target, so known pixels of pred cannot count.
    composite = torch.where(known.unsqueeze(1), target, pred)  # (B, 3, H, W)
    x = to_unit_range(composite).to(torch.promote_types(pred.dtype, torch.float32))
    y = to_unit_range(target).to(x.dtype)
    return hole_mean(ssim_map(x, y), known)
