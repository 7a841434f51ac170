import pytest
import torch
from torch import nn
from torch.nn import functional as F

from maskgit_lab.attention import MultiHeadAttention, merge_heads, scaled_dot_product_attention, split_heads


def sdpa_reference(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """The same projections around torch's fused attention kernel."""
    q, k, v = (mha.split_heads(p(x)) for p in (mha.q_proj, mha.k_proj, mha.v_proj))
    return mha.out_proj(mha.merge_heads(F.scaled_dot_product_attention(q, k, v)))


@pytest.mark.parametrize("B,N,D,H", [(2, 5, 8, 1), (3, 16, 32, 4), (2, 64, 64, 8)])
def test_forward_matches_sdpa(B, N, D, H):
    torch.manual_seed(0)
    mha = MultiHeadAttention(D, H).eval()
    x = torch.randn(B, N, D)
    torch.testing.assert_close(mha(x), sdpa_reference(mha, x), rtol=1e-5, atol=1e-5)


def test_backward_matches_sdpa():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4)
    x = torch.randn(2, 10, 32, requires_grad=True)
    mha(x).pow(2).sum().backward()
    ours = [x.grad.clone()] + [p.grad.clone() for p in mha.parameters()]
    x.grad = None
    mha.zero_grad()
    sdpa_reference(mha, x).pow(2).sum().backward()
    theirs = [x.grad] + [p.grad for p in mha.parameters()]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_matches_torch_multihead_attention_with_copied_weights():
    torch.manual_seed(0)
    D, H = 32, 4
    ours = MultiHeadAttention(D, H).eval()
    theirs = nn.MultiheadAttention(D, H, batch_first=True).eval()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        theirs.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(3, 12, D)
    expected, expected_weights = theirs(x, x, x, average_attn_weights=False)
    out, weights = ours(x, return_attention=True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-5, atol=1e-6)


def test_attention_weights_are_distributions_over_keys():
    torch.manual_seed(0)
    out, weights = MultiHeadAttention(16, 2)(torch.randn(2, 7, 16), return_attention=True)
    assert out.shape == (2, 7, 16) and weights.shape == (2, 2, 7, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 7))


def test_scaling_is_one_over_sqrt_head_dim():
    q = torch.tensor([[[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])  # (1, 2, 4)
    k = q.clone()
    _, w = scaled_dot_product_attention(q, k, torch.zeros_like(q))
    # scores for the first query: [4 / sqrt(4), 0] = [2, 0]
    torch.testing.assert_close(w[0, 0], torch.softmax(torch.tensor([2.0, 0.0]), 0))


def test_dropout_acts_in_training_only():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, attn_drop=0.5)
    x = torch.randn(2, 8, 16)
    mha.eval()
    torch.testing.assert_close(mha(x), sdpa_reference(mha, x), rtol=1e-5, atol=1e-5)
    mha.train()
    assert not torch.allclose(mha(x), sdpa_reference(mha, x), atol=1e-3)


@pytest.mark.parametrize("H", [1, 2, 4, 8])
def test_split_heads_gives_each_head_a_contiguous_block_and_merge_undoes_it(H):
    B, N, D = 2, 5, 16
    x = torch.randn(B, N, D)
    Dh = D // H
    by_slicing = torch.stack([x[..., h * Dh : (h + 1) * Dh] for h in range(H)], dim=1)  # (B, H, N, Dh)
    heads = split_heads(x, H)
    assert torch.equal(heads, by_slicing)
    assert torch.equal(merge_heads(heads), x)
    assert torch.equal(merge_heads(heads.contiguous()), x)  # as attention returns it
    mha = MultiHeadAttention(D, H)  # the layer's methods are the same functions
    assert torch.equal(mha.split_heads(x), heads) and torch.equal(mha.merge_heads(heads), x)


def test_head_count_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)


def test_fused_path_matches_the_hand_built_one_forward_and_backward():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4)
    x = torch.randn(2, 10, 32, requires_grad=True)
    grads = []
    for fused in (False, True):
        mha.fused = fused
        x.grad = None
        mha.zero_grad()
        out = mha(x)
        out.pow(2).sum().backward()
        grads.append((out.detach(), x.grad.clone(), [p.grad.clone() for p in mha.parameters()]))
    (out_hand, gx_hand, gp_hand), (out_fused, gx_fused, gp_fused) = grads
    torch.testing.assert_close(out_fused, out_hand, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx_fused, gx_hand, rtol=1e-4, atol=1e-5)
    for a, b in zip(gp_fused, gp_hand):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_attention_maps_always_come_from_the_hand_built_path():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2).eval()
    mha.fused = True
    x = torch.randn(1, 6, 16)
    out, weights = mha(x, return_attention=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 6))
    torch.testing.assert_close(out, mha(x), rtol=1e-5, atol=1e-5)
