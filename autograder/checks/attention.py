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

from autograder.checks.common import close, expect, fmt, tensor
from autograder.checks.variants import MERGE_HEADS, MULTI_HEAD, SDPA_OUTPUT, SDPA_WEIGHTS, SPLIT_HEADS
from autograder.core import CheckFailed, applied, diagnose, graded, name_each
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
    answer = expect(attention, "scaled_dot_product_attention(q, k, v)")(q.clone(), k.clone(), v.clone())
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise CheckFailed("return two things, (output, weights): the attended values and the attention weights")
    out = tensor(answer[0], "the output")
    weights = tensor(answer[1], "the weights")
    expected_out = F.scaled_dot_product_attention(q, k, v)
    scores = q @ k.transpose(-2, -1)  # (B, H, N, N), not yet scaled
    if out.shape == (B, H, N, N) and weights.shape == (B, H, N, Dh):
        raise CheckFailed(f"the two results come in the wrong order: return (output {(B, H, N, Dh)}, weights {(B, H, N, N)})")
    if weights.shape != (B, H, N, N):
        raise CheckFailed(f"expected weights of shape (..., N_queries, N_keys) = {(B, H, N, N)}, got {tuple(weights.shape)}; "
                          f"the scores are q @ kᵀ with k transposed over its last two axes")
    def weights_as(ways):  # the weights an answer doing each property the way ``ways`` says computes
        return ways["softmax"](scores / ways["scale"](Dh), dim=ways["softmax axis"])

    wrong = name_each(weights, SDPA_WEIGHTS, weights_as, same=near)
    if wrong is not None:
        right = fmt(weights_as({prop: way for prop, (way, _) in SDPA_WEIGHTS.items()}))
        if not wrong:
            raise CheckFailed(f"expected weights softmax(q kᵀ / sqrt(d_head)) = {right}, got {fmt(weights)}")
        words = "; ".join(wrong).format(d=Dh, root=math.sqrt(Dh))
        raise CheckFailed(f"expected weights {right}, got {fmt(weights)}: {words}")
    if out.shape != (B, H, N, Dh):
        raise CheckFailed(f"expected an output of the shape of v, {(B, H, N, Dh)}, got {tuple(out.shape)}")
    why = diagnose(out, expected_out, applied(SDPA_OUTPUT, weights, v), same=near)
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
    fn = expect(split_heads, "split_heads(x, num_heads)")
    for H in (2, 4):
        Dh = D // H
        expected = package_split_heads(x, H)
        got = tensor(fn(x.clone(), H), "the split tensor")
        if got.shape == (B, N, H, Dh):
            raise CheckFailed(f"expected shape (B, H, N, D/H) = {(B, H, N, Dh)}, got {tuple(got.shape)}: the width is "
                              f"split into heads, but the head axis must come before the tokens; add .transpose(1, 2)")
        if got.shape != (B, H, N, Dh):
            raise CheckFailed(f"expected shape (B, H, N, D/H) = {(B, H, N, Dh)} for num_heads={H}, got {tuple(got.shape)}")
        example = f"(num_heads={H}, image 0, token 0: expected heads {expected[0, :, 0].tolist()}, got {got[0, :, 0].tolist()})"
        why = diagnose(got, expected, applied(SPLIT_HEADS, x, H), same=torch.equal)
        if why is not None:
            raise CheckFailed(f"{why or 'wrong channels in the heads'} {example}")
    return "(B, N, D) → (B, H, N, D/H) with head h holding channels h·D/H … (h+1)·D/H − 1"


@graded(1)
def check_merge_heads(merge_heads) -> str:
    B, N, D = 2, 3, 8
    x = torch.arange(B * N * D, dtype=torch.float32).view(B, N, D)
    fn = expect(merge_heads, "merge_heads(x)")
    for H in (2, 4):
        heads = package_split_heads(x, H).contiguous()  # (B, H, N, Dh), laid out as attention returns it
        got = tensor(fn(heads.clone()), "the merged tensor")
        if got.shape != (B, N, D):
            raise CheckFailed(f"expected shape (B, N, H·D/H) = {(B, N, D)}, got {tuple(got.shape)}")
        example = f"(num_heads={H}, image 0, token 0: expected {x[0, 0].tolist()}, got {got[0, 0].tolist()})"
        why = diagnose(got, x, applied(MERGE_HEADS, heads), same=torch.equal)
        if why is not None:
            raise CheckFailed(f"{why or 'merge must undo split exactly'} {example}")
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
    got = expect(multi_head_attention, "multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads)")(
        x.clone(), w_q.clone(), w_k.clone(), w_v.clone(), w_o.clone(), H)
    if isinstance(got, (tuple, list)):
        raise CheckFailed("return only the output tensor of shape (B, N, D), not a tuple")
    got = tensor(got, "the output")
    if got.shape != (B, N, D):
        raise CheckFailed(f"expected the input's shape (B, N, D) = {(B, N, D)}, got {tuple(got.shape)}")

    def layer_as(ways):  # what the layer computes with each property done the way ``ways`` says
        return by_hand(x, w_q, w_k, w_v, w_o, H if ways["heads"] == "H" else ways["heads"], transpose=ways["weight layout"],
                       scale_width=D if ways["scale"] == "D" else None, project=ways["output projection"],
                       merge_transposed=ways["merge"])

    wrong = name_each(got, MULTI_HEAD, layer_as, same=near)
    if wrong is None:
        return f"matches maskgit_lab.attention.MultiHeadAttention with the same weights (D={D}, {H} heads)"
    raise CheckFailed(f"expected {fmt(expected)}, got {fmt(got)}" + (": " + "; ".join(wrong) if wrong else
                      ": project x to q, k, v (x @ w.T), split them into heads, attend, merge the heads, project with "
                      "w_o. If a check above failed, fix that one first"))
