"""The checks of notebook 02: answers a student might write, right (CORRECT) and wrong (WRONG, with the words
the message must hold), which tests/test_checks.py grades; and the cases that need more than that."""

import math

import torch
from torch.nn import functional as F

from autograder.checks.attention import (
    check_merge_heads,
    check_multi_head_attention,
    check_scaled_dot_product_attention,
    check_split_heads,
)
from maskgit_lab.attention import MultiHeadAttention, merge_heads, scaled_dot_product_attention, split_heads


def layer(dim, num_heads):
    """A package layer; its random initialisation does not advance the global random stream."""
    with torch.random.fork_rng(devices=[]):
        return MultiHeadAttention(dim, num_heads).eval()


def mha_reference(x, w_q, w_k, w_v, w_o, num_heads):
    layer_ = layer(x.shape[-1], num_heads)
    with torch.no_grad():
        for linear, w in zip((layer_.q_proj, layer_.k_proj, layer_.v_proj, layer_.out_proj), (w_q, w_k, w_v, w_o)):
            linear.weight.copy_(w)
            linear.bias.zero_()
        return layer_(x)


# Mistakes, one knob each.
def attend(q, k, v, scale=None, axis=-1, transpose_weights=False):
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale is None else scale)
    weights = scores.softmax(dim=axis)
    return (weights.transpose(-2, -1) if transpose_weights else weights) @ v, weights


def split_no_transpose(x, H):
    B, N, D = x.shape
    return x.view(B, N, H, D // H)


def split_reshape_only(x, H):
    B, N, D = x.shape
    return x.reshape(B, H, N, D // H)


def split_interleaved(x, H):
    B, N, D = x.shape
    return x.view(B, N, D // H, H).permute(0, 3, 1, 2)


def merge_reshape_only(x):
    B, H, N, Dh = x.shape
    return x.reshape(B, N, H * Dh)


def merge_interleaved(x):
    B, H, N, Dh = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, N, H * Dh)


def merge_view_after_transpose(x):
    B, H, N, Dh = x.shape
    return x.transpose(1, 2).view(B, N, H * Dh)  # fails on a contiguous (B, H, N, Dh)


def mha_by_hand(x, w_q, w_k, w_v, w_o, num_heads, project=True, transpose=True, scale_width=None,
                merge=merge_heads, heads=None):
    B, N, D = x.shape
    H = heads or num_heads
    proj = (lambda t, w: t @ w.t()) if transpose else (lambda t, w: t @ w)
    q, k, v = (split_heads(proj(x, w), H) for w in (w_q, w_k, w_v))
    out, _ = attend(q, k, v, scale=math.sqrt(scale_width) if scale_width else None)
    out = merge(out)
    return proj(out, w_o) if project else out


CORRECT = [
    (check_scaled_dot_product_attention, scaled_dot_product_attention),
    (check_scaled_dot_product_attention, attend),
    (check_scaled_dot_product_attention, lambda q, k, v: (F.scaled_dot_product_attention(q, k, v), attend(q, k, v)[1])),
    (check_split_heads, split_heads),
    (check_split_heads, lambda x, H: x.reshape(x.shape[0], x.shape[1], H, -1).permute(0, 2, 1, 3)),
    (check_merge_heads, merge_heads),
    (check_merge_heads, lambda x: x.permute(0, 2, 1, 3).flatten(2)),
    (check_multi_head_attention, mha_reference),
    (check_multi_head_attention, mha_by_hand),
]

WRONG = [
    # scaled_dot_product_attention
    (check_scaled_dot_product_attention, lambda q, k, v: attend(q, k, v, scale=1.0), "not scaled"),
    (check_scaled_dot_product_attention, lambda q, k, v: attend(q, k, v, scale=q.shape[-1]), "divided by d_head"),
    (check_scaled_dot_product_attention, lambda q, k, v: attend(q, k, v, scale=1 / math.sqrt(q.shape[-1])), "multiplied"),
    (check_scaled_dot_product_attention, lambda q, k, v: attend(q, k, v, axis=-2), "wrong axis"),
    (check_scaled_dot_product_attention, lambda q, k, v: attend(q, k, v, scale=1.0, axis=-2), "wrong axis"),
    (check_scaled_dot_product_attention, lambda q, k, v: attend(q, k, v, transpose_weights=True), "transposed"),
    (check_scaled_dot_product_attention, lambda q, k, v: attend(q, k, v)[::-1], "wrong order"),
    (check_scaled_dot_product_attention, lambda q, k, v: attend(q, k, v)[0], "return two things"),
    (check_scaled_dot_product_attention, lambda q, k, v: (attend(q, k, v)[0], q @ k.transpose(-2, -1) / 2), "before the softmax"),
    (check_scaled_dot_product_attention, lambda q, k, v: (attend(q, k, v)[0], q @ k.transpose(-2, -1)),
     "not scaled: divide q·kᵀ by sqrt(d_head) = sqrt(4) before the softmax, or large dot products make the softmax nearly "
     "one-hot; these are the scores before the softmax"),  # two mistakes, each named
    (check_scaled_dot_product_attention, lambda q, k, v: (attend(q, k, v)[1] @ k, attend(q, k, v)[1]), "weights @ v"),
    (check_scaled_dot_product_attention, lambda q, k, v: (attend(q, k, v)[0], attend(q, k, v)[1].mean(1)),
     "expected weights of shape"),
    # split_heads
    (check_split_heads, split_no_transpose, "transpose(1, 2)"),
    (check_split_heads, split_reshape_only, "mixes different tokens"),
    (check_split_heads, split_interleaved, "every H-th channel"),
    (check_split_heads, lambda x, H: split_heads(x, 2), "for num_heads=4"),
    (check_split_heads, lambda x, H: split_heads(x, H).flip(1), "wrong channels"),
    # merge_heads
    (check_merge_heads, merge_reshape_only, "mixes tokens"),
    (check_merge_heads, merge_interleaved, "wrong order"),
    (check_merge_heads, merge_view_after_transpose, ".reshape"),
    (check_merge_heads, lambda x: x.transpose(1, 2), "expected shape (B, N, H·D/H)"),
    (check_merge_heads, lambda x: merge_heads(x.flip(1)), "undo split exactly"),
    # multi_head_attention
    (check_multi_head_attention, lambda *a: mha_by_hand(*a, project=False), "output projection is missing"),
    (check_multi_head_attention, lambda *a: mha_by_hand(*a, transpose=False), "x @ w.T"),
    (check_multi_head_attention, lambda *a: mha_by_hand(*a, scale_width=a[0].shape[-1]), "sqrt(D/H)"),
    (check_multi_head_attention, lambda *a: mha_by_hand(*a, merge=merge_reshape_only), "merged in the wrong order"),
    (check_multi_head_attention, lambda *a: mha_by_hand(*a, heads=1), "single head"),
    (check_multi_head_attention, lambda *a: (mha_reference(*a), None), "not a tuple"),
    (check_multi_head_attention, lambda x, *a: x, "fix that one first"),
]
