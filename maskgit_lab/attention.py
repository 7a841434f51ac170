"""Multi-head self-attention built by hand (Vaswani et al. 2017, Eq. 1 and Sec. 3.2.2).

    Attention(Q, K, V) = softmax(Q Kᵀ / sqrt(d_head)) V

MaskGIT's transformer is bidirectional, so there is no causal mask: every token attends
to every token. Built from matrix products only (no attention module from torch, no fused
kernel), so a student sees every step; the tests hold it to
``torch.nn.functional.scaled_dot_product_attention``. That fused kernel is also an opt-in
path (``fused = True``) for GPU training at lab size: same projections, same maths, no
attention matrix kept in memory. Teaching, grading and ``return_attention`` use the hand-built one.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


def scaled_dot_product_attention(q, k, v, dropout: nn.Module = None):
    """softmax(q kᵀ / sqrt(d)) v over the last two axes; returns (output, weights)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., N, N)
    weights = scores.softmax(dim=-1)  # each query's weights over keys sum to 1
    if dropout is not None:
        weights = dropout(weights)
    return weights @ v, weights


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, D) → (B, H, N, D/H); head h holds channels h·D/H … (h+1)·D/H − 1 of every token."""
    B, N, D = x.shape
    return x.view(B, N, num_heads, D // num_heads).transpose(1, 2)  # (B, H, N, Dh)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, Dh) → (B, N, H·Dh), the exact inverse of ``split_heads``."""
    B, H, N, Dh = x.shape
    return x.transpose(1, 2).reshape(B, N, H * Dh)  # (B, N, D); reshape, as the transpose is not contiguous


class MultiHeadAttention(nn.Module):
    """Split D into H heads, attend in each head, merge heads, project."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.fused = False  # True: torch's SDPA kernel instead of the hand-built product

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return split_heads(x, self.num_heads)  # the module-level function: (B, H, N, Dh)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        return merge_heads(x)  # the module-level function: (B, N, D)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        q = self.split_heads(self.q_proj(x))  # (B, H, N, Dh)
        k = self.split_heads(self.k_proj(x))
        v = self.split_heads(self.v_proj(x))
        if self.fused and not return_attention:
            drop = self.attn_drop.p if self.training else 0.0
            out, weights = F.scaled_dot_product_attention(q, k, v, dropout_p=drop), None  # (B, H, N, Dh)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, self.attn_drop)  # (B, H, N, Dh)
        out = self.out_proj(self.merge_heads(out))  # (B, N, D)
        return (out, weights) if return_attention else out
