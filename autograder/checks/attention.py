"""Checks for notebook 02 (multi-head attention): attention, split / merge heads, the whole layer.

The trusted answers are torch's fused ``scaled_dot_product_attention``, the package's
``split_heads`` / ``merge_heads``, and its ``MultiHeadAttention`` loaded with the same weights.
When an answer differs, each check computes what the usual mistakes would have returned and
names the one that matches.
"""

import functools
import math

import torch
from torch.nn import functional as F

from autograder.checks.common import close, fmt, tensor
from autograder.core import CheckFailed, diagnose, graded
from maskgit_lab.attention import MultiHeadAttention
from maskgit_lab.attention import merge_heads as package_merge_heads
from maskgit_lab.attention import split_heads as package_split_heads

near = functools.partial(close, atol=1e-5)  # attention sums softmax products: a looser tolerance than the default


# ---------------------------------------------------------------------------------------
# scaled_dot_product_attention
# ---------------------------------------------------------------------------------------

@graded(3)
def check_scaled_dot_product_attention(attention) -> str:
    generator = torch.Generator().manual_seed(4)
    B, H, N, Dh = 2, 3, 5, 4
    q, k, v = (2 * torch.randn(B, H, N, Dh, generator=generator) for _ in range(3))
    answer = attention(q.clone(), k.clone(), v.clone())
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise CheckFailed("return two things, (output, weights): the attended values and the attention weights")
    out = tensor(answer[0], "the output")
    weights = tensor(answer[1], "the weights")
    expected_out = F.scaled_dot_product_attention(q, k, v)
    scores = q @ k.transpose(-2, -1)  # (B, H, N, N), not yet scaled
    expected_weights = (scores / math.sqrt(Dh)).softmax(dim=-1)
    if out.shape == (B, H, N, N) and weights.shape == (B, H, N, Dh):
        raise CheckFailed(f"the two results come in the wrong order: return (output {(B, H, N, Dh)}, weights {(B, H, N, N)})")
    if weights.shape != (B, H, N, N):
        raise CheckFailed(f"expected weights of shape (..., N_queries, N_keys) = {(B, H, N, N)}, got {tuple(weights.shape)}; "
                          f"the scores are q @ kᵀ with k transposed over its last two axes")
    why = diagnose(weights, expected_weights, [
        ((scores).softmax(-1), f"the scores are not scaled: divide q·kᵀ by sqrt(d_head) = sqrt({Dh}) before the "
                               f"softmax, or large dot products make the softmax nearly one-hot"),
        ((scores / Dh).softmax(-1), f"the scores are divided by d_head = {Dh}; divide by its square root, "
                                    f"sqrt(d_head) = {math.sqrt(Dh):g}"),
        ((scores * math.sqrt(Dh)).softmax(-1), "the scores are multiplied by sqrt(d_head); divide by it instead"),
        ((scores / math.sqrt(Dh)).softmax(-2), "the softmax runs over the wrong axis: each query's weights over the "
                                               "keys must sum to 1, so take the softmax over the last axis (dim=-1)"),
        (scores.softmax(-2), "the scores are not scaled by 1/sqrt(d_head), and the softmax runs over the wrong axis "
                             "(it must be over the keys, dim=-1)"),
        (scores / math.sqrt(Dh), "these are the scaled scores before the softmax; apply .softmax(dim=-1) to them"),
    ], same=near)
    if why:
        raise CheckFailed(f"expected weights {fmt(expected_weights)}, got {fmt(weights)}: {why}")
    if why == "":
        raise CheckFailed(f"expected weights softmax(q kᵀ / sqrt(d_head)) = {fmt(expected_weights)}, got {fmt(weights)}")
    if out.shape != (B, H, N, Dh):
        raise CheckFailed(f"expected an output of the shape of v, {(B, H, N, Dh)}, got {tuple(out.shape)}")
    transposed = expected_weights.transpose(-2, -1) @ v
    why = diagnose(out, expected_out, [(transposed, "the weights are right, but the output uses them transposed: output = "
                                                    "weights @ v, so row i (query i) mixes the values with its own weights")],
                   same=near)
    if why is not None:
        raise CheckFailed(why or f"the weights are right, but expected output weights @ v = {fmt(expected_out)}, got {fmt(out)}")
    return "output matches torch.nn.functional.scaled_dot_product_attention, and every row of weights sums to 1"


# ---------------------------------------------------------------------------------------
# split_heads and merge_heads
# ---------------------------------------------------------------------------------------

@graded(1)
def check_split_heads(split_heads) -> str:
    B, N, D = 2, 3, 8
    x = torch.arange(B * N * D, dtype=torch.float32).view(B, N, D)  # entry value = its position: easy to read
    for H in (2, 4):
        Dh = D // H
        expected = package_split_heads(x, H)
        got = tensor(split_heads(x.clone(), H), "the split tensor")
        if got.shape == (B, N, H, Dh):
            raise CheckFailed(f"expected shape (B, H, N, D/H) = {(B, H, N, Dh)}, got {tuple(got.shape)}: the width is "
                              f"split into heads, but the head axis must come before the tokens; add .transpose(1, 2)")
        if got.shape != (B, H, N, Dh):
            raise CheckFailed(f"expected shape (B, H, N, D/H) = {(B, H, N, Dh)} for num_heads={H}, got {tuple(got.shape)}")
        example = f"(image 0, token 0: expected heads {expected[0, :, 0].tolist()}, got {got[0, :, 0].tolist()})"
        why = diagnose(got, expected, [
            (x.reshape(B, H, N, Dh), f"reshaping (B, N, D) straight to (B, H, N, D/H) mixes different tokens into one row "
                                     f"{example}; view as (B, N, H, D/H) first, then .transpose(1, 2)"),
            (x.view(B, N, Dh, H).permute(0, 3, 1, 2), f"the heads take every H-th channel instead of a contiguous block "
                                                       f"{example}: head h must own channels h·D/H … (h+1)·D/H − 1, so view "
                                                       f"as (B, N, H, D/H), not (B, N, D/H, H)"),
        ], same=torch.equal)
        if why is not None:
            raise CheckFailed(why or f"wrong channels in the heads for num_heads={H} {example}")
    return "(B, N, D) → (B, H, N, D/H) with head h holding channels h·D/H … (h+1)·D/H − 1"


@graded(1)
def check_merge_heads(merge_heads) -> str:
    B, N, D = 2, 3, 8
    x = torch.arange(B * N * D, dtype=torch.float32).view(B, N, D)
    for H in (2, 4):
        heads = package_split_heads(x, H).contiguous()  # (B, H, N, Dh), laid out as attention returns it
        got = tensor(merge_heads(heads.clone()), "the merged tensor")
        if got.shape != (B, N, D):
            raise CheckFailed(f"expected shape (B, N, H·D/H) = {(B, N, D)}, got {tuple(got.shape)}")
        example = f"(image 0, token 0: expected {x[0, 0].tolist()}, got {got[0, 0].tolist()})"
        why = diagnose(got, x, [
            (heads.reshape(B, N, D), f"merge must undo split exactly, but reshaping (B, H, N, D/H) straight to (B, N, D) "
                                     f"mixes tokens {example}; first .transpose(1, 2) back to (B, N, H, D/H), then reshape"),
            (heads.permute(0, 2, 3, 1).reshape(B, N, D), f"the heads are merged in the wrong order {example}: channel j of "
                                                          f"head h must land at position h·D/H + j, so transpose to "
                                                          f"(B, N, H, D/H), not (B, N, D/H, H)"),
        ], same=torch.equal)
        if why is not None:
            raise CheckFailed(why or f"merge must undo split exactly (num_heads={H}) {example}")
    return "merge_heads(split(x)) gives back x exactly"


# ---------------------------------------------------------------------------------------
# multi_head_attention
# ---------------------------------------------------------------------------------------

def by_hand(x, w_q, w_k, w_v, w_o, H, transpose=True, scale_width=None, project=True, merge_transposed=True):
    """Multi-head attention with one of the usual mistakes switched on (all off = right)."""
    B, N, D = x.shape
    proj = (lambda t, w: t @ w.t()) if transpose else (lambda t, w: t @ w)
    q, k, v = (package_split_heads(proj(x, w), H) for w in (w_q, w_k, w_v))  # (B, H, N, Dh)
    scale = math.sqrt(scale_width or D // H)
    out = ((q @ k.transpose(-2, -1)) / scale).softmax(-1) @ v  # (B, H, N, Dh)
    out = package_merge_heads(out) if merge_transposed else out.reshape(B, N, D)
    return proj(out, w_o) if project else out


@graded(3)
def check_multi_head_attention(multi_head_attention) -> str:
    B, N, D, H = 2, 5, 8, 2
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random stream as it was
        layer = MultiHeadAttention(D, H).eval()  # its random initial weights are all replaced below
    generator = torch.Generator().manual_seed(5)
    w_q, w_k, w_v, w_o = (torch.randn(D, D, generator=generator) / math.sqrt(D) * 2 for _ in range(4))
    with torch.no_grad():
        for linear, w in zip((layer.q_proj, layer.k_proj, layer.v_proj, layer.out_proj), (w_q, w_k, w_v, w_o)):
            linear.weight.copy_(w)
            linear.bias.zero_()
    x = torch.randn(B, N, D, generator=generator)
    with torch.no_grad():
        expected = layer(x)
    got = multi_head_attention(x.clone(), w_q.clone(), w_k.clone(), w_v.clone(), w_o.clone(), H)
    if isinstance(got, (tuple, list)):
        raise CheckFailed("return only the output tensor of shape (B, N, D), not a tuple")
    got = tensor(got, "the output")
    if got.shape != (B, N, D):
        raise CheckFailed(f"expected the input's shape (B, N, D) = {(B, N, D)}, got {tuple(got.shape)}")
    wrong = [
        (dict(project=False), "the output projection is missing: after merging the heads, project with w_o "
                              "(x @ w_o.T); it is the only place where the heads' results are mixed"),
        (dict(transpose=False), "the weights are stored like nn.Linear.weight, (out, in): project with x @ w.T, "
                                "not x @ w (the same holds for w_o)"),
        (dict(scale_width=D), f"the scores are divided by sqrt(D) = sqrt({D}); each head has width D/H = {D // H}, "
                              f"so divide by sqrt(D/H)"),
        (dict(merge_transposed=False), "the heads are merged in the wrong order: transpose (B, H, N, D/H) back to "
                                       "(B, N, H, D/H) before reshaping to (B, N, D)"),
    ]
    variants = [(lambda bugs=bugs: by_hand(x, w_q, w_k, w_v, w_o, H, **bugs), ": " + why) for bugs, why in wrong]
    variants.append((lambda: by_hand(x, w_q, w_k, w_v, w_o, 1),
                     f", which is attention with a single head of width D: split q, k and v into num_heads = {H} heads, "
                     f"attend in each, then merge"))
    why = diagnose(got, expected, variants, same=near)
    if why is None:
        return f"matches maskgit_lab.attention.MultiHeadAttention with the same weights (D={D}, {H} heads)"
    raise CheckFailed(f"expected {fmt(expected)}, got {fmt(got)}" + (why or ": project x to q, k, v (x @ w.T), split them "
                      "into heads, attend, merge the heads, project with w_o. If a check above failed, fix that one first"))
