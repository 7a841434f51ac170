"""Masked Visual Token Modeling, MaskGIT's training objective (Chang et al. 2022, Eq. 1).

    L_mask = − E_Y [ Σ_{i : m_i = 1} log p(y_i | Y_M̄) ]

Sample r ~ U(0, 1), mask exactly max(1, floor(γ(r)·N)) tokens, replace them with the
[MASK] id and score the cross-entropy on the masked positions only — the visible tokens
are given, so predicting them would teach the model to copy.

Class-conditional training (for classifier-free guidance, Ho & Salimans 2022) also drops each
row's label with probability p_uncond, replacing it with the null class: one model then learns
both p(y | Y_M̄, c) and p(y | Y_M̄), the two halves that guidance contrasts at decoding time.
"""

from typing import Optional

import torch
from torch.nn import functional as F

from maskgit_lab.masking import hole_token_mask, random_token_mask
from maskgit_lab.schedules import gamma


def masked_token_loss(logits, targets, mask, label_smoothing: float = 0.1):
    """Cross-entropy over masked positions only: logits (B, N, K), targets/mask (B, N)."""
    return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing)


def training_mask(B: int, N: int, schedule: str = "cosine", generator: Optional[torch.Generator] = None):
    """(B, N) bool: per row r ~ U(0, 1), then exactly max(1, floor(γ(r)·N)) masked tokens."""
    r = torch.rand(B, generator=generator)  # (B,) training progress drawn uniformly
    return random_token_mask(B, N, gamma(schedule)(r), generator=generator)


def mixed_training_mask(B: int, N: int, schedule: str, downsample: int, hole_share: float,
                        generator: Optional[torch.Generator] = None):
    """``training_mask`` rows, with a ``hole_share`` of them replaced by inpainting-shaped masks.

    MaskGIT's uniformly random masks teach generation from any context; the test set hides whole
    regions (boxes, strokes, halves, centres), so part of every batch hides regions too.
    """
    mask = training_mask(B, N, schedule, generator)
    holes = torch.rand(B, generator=generator) < hole_share  # (B,) rows that get a hole instead
    if holes.any():
        mask[holes] = hole_token_mask(int(holes.sum()), downsample, generator)
    return mask


def drop_labels(labels: torch.Tensor, p_uncond: float, null_class: int,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Each of the (B,) class ids replaced by ``null_class`` with probability ``p_uncond``."""
    dropped = torch.rand(labels.shape, generator=generator) < p_uncond  # (B,) rows trained without a label
    return labels.masked_fill(dropped.to(labels.device), null_class)


def mvtm_loss(model, tokens: torch.Tensor, mask: torch.Tensor, label_smoothing: float = 0.1,
              labels: Optional[torch.Tensor] = None):
    """The loss of ``model`` on clean tokens (B, N) with ``mask`` (B, N) hidden, given class ids
    ``labels`` (B,) or none; returns (loss, stats)."""
    inputs = tokens.masked_fill(mask, model.mask_id)
    logits = model(inputs) if labels is None else model(inputs, labels)  # (B, N, K)
    loss = masked_token_loss(logits, tokens, mask, label_smoothing)
    with torch.no_grad():
        accuracy = (logits[mask].argmax(-1) == tokens[mask]).float().mean()
    return loss, {"loss": loss.item(), "masked_acc": accuracy.item(), "mask_frac": mask.float().mean().item()}


def mvtm_step(
    model,
    tokens: torch.Tensor,
    schedule: str = "cosine",
    label_smoothing: float = 0.1,
    generator: Optional[torch.Generator] = None,
):
    """One MVTM forward pass on clean tokens (B, N) with a fresh training mask; returns (loss, stats)."""
    B, N = tokens.shape
    return mvtm_loss(model, tokens, training_mask(B, N, schedule, generator).to(tokens.device), label_smoothing)
