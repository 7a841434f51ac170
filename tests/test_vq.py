import dataclasses

import pytest
import torch
from torch.nn import functional as F

from maskgit_lab.vq import VectorQuantizer, VQTokenizer, encode_all, nearest_code, perplexity, straight_through, vq_loss
from tests.conftest import TINY_VQ


def test_nearest_code_matches_brute_force():
    generator = torch.Generator().manual_seed(0)
    z, codebook = torch.randn(300, 8, generator=generator), torch.randn(40, 8, generator=generator)
    brute = torch.tensor([min(range(40), key=lambda k: ((row - codebook[k]) ** 2).sum().item()) for row in z])
    assert torch.equal(nearest_code(z, codebook), brute)
    assert torch.equal(nearest_code(z, codebook), torch.cdist(z, codebook).argmin(dim=1))


def test_straight_through_forward_value_and_identity_gradient():
    z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
    z_q = torch.randn(2, 4, 3, 3)
    out = straight_through(z_e, z_q)
    torch.testing.assert_close(out, z_q)
    upstream = torch.randn_like(out)
    out.backward(upstream)
    torch.testing.assert_close(z_e.grad, upstream)


def test_quantizer_output_is_the_nearest_code_and_indices_are_row_major():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=10, code_dim=3).eval()
    z_e = torch.randn(2, 3, 2, 4)
    z_q, _, indices, _ = vq(z_e)
    assert indices.shape == (2, 8)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    expected = torch.cdist(flat, vq.codebook.weight).argmin(1).view(2, 8)
    assert torch.equal(indices, expected)
    torch.testing.assert_close(z_q[0, :, 1, 3], vq.codebook.weight[expected[0, 7]])


def test_loss_is_codebook_plus_beta_commitment_with_the_right_gradients():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=6, code_dim=4, beta=0.25).eval()
    z_e = torch.randn(1, 4, 2, 2, requires_grad=True)
    _, loss, indices, _ = vq(z_e)
    chosen = vq.codebook.weight[indices.flatten()].view(1, 2, 2, 4).permute(0, 3, 1, 2)
    expected = F.mse_loss(chosen, z_e) * (1 + 0.25)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # The codebook term moves codes towards encodings; only β·commitment reaches the encoder.
    diff = (z_e - chosen).detach()
    torch.testing.assert_close(z_e.grad, 0.25 * 2 * diff / diff.numel())


def test_vq_loss_value_and_where_each_gradient_goes():
    generator = torch.Generator().manual_seed(0)
    z_e = torch.randn(2, 4, 3, 3, generator=generator).requires_grad_()
    z_q = torch.randn(2, 4, 3, 3, generator=generator).requires_grad_()
    loss = vq_loss(z_e, z_q, 0.25)
    diff = (z_e - z_q).detach()
    torch.testing.assert_close(loss, 1.25 * diff.pow(2).mean())  # both terms have the value mean((z_e − z_q)²)
    loss.backward()
    unit = 2 * diff / diff.numel()  # ∂ mean((z_e − z_q)²) / ∂z_e
    torch.testing.assert_close(z_e.grad, 0.25 * unit)  # only β·commitment reaches the encoder
    torch.testing.assert_close(z_q.grad, -unit)  # only the codebook term reaches the codes


def test_perplexity_extremes():
    assert perplexity(torch.arange(8), 8).item() == pytest.approx(8.0, rel=1e-4)
    assert perplexity(torch.zeros(8, dtype=torch.long), 8).item() == pytest.approx(1.0, rel=1e-4)


def test_dead_codes_are_restarted_from_batch_encodings():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=8, code_dim=2, restart_after=3).train()
    with torch.no_grad():
        vq.codebook.weight.copy_(torch.tensor([[0.0, 0.0]] + [[100.0, 100.0]] * 7))
    z_e = torch.randn(4, 2, 4, 4, requires_grad=True)  # far from codes 1..7: only code 0 is used
    for _ in range(3):
        _, _, indices, stats = vq(z_e)
    assert stats["codes_used"] == 1
    _, _, indices, stats = vq(z_e)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 2)
    for k in range(1, 8):  # every restarted code now sits on one of the batch's encodings
        assert torch.isclose(flat, vq.codebook.weight[k]).all(dim=1).any()
    assert vq(z_e)[3]["codes_used"] > 1


def test_tokenizer_round_trip_shapes(tiny_tokenizer):
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    indices = tiny_tokenizer.encode(images)
    assert indices.shape == (2, TINY_VQ.num_tokens) and indices.dtype == torch.long
    assert indices.max() < TINY_VQ.num_codes
    decoded = tiny_tokenizer.decode(indices)
    assert decoded.shape == (2, 3, 64, 64) and decoded.abs().max() <= 1


def test_encoder_gets_gradient_through_the_quantizer(tiny_tokenizer):
    tiny_tokenizer.train()
    recon, vq_loss, _, _ = tiny_tokenizer(torch.rand(2, 3, 64, 64) * 2 - 1)
    F.mse_loss(recon, torch.zeros_like(recon)).backward()
    first_conv = tiny_tokenizer.encoder.net[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 1, 64, 64), (3, 64, 64)])
def test_wrong_image_shape_is_refused(tiny_tokenizer, shape):
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 64, 64\)"):
        tiny_tokenizer.encode(torch.zeros(shape))


def test_patch_encoder_token_depends_on_its_own_patch_only():
    torch.manual_seed(0)
    tokenizer = VQTokenizer(dataclasses.replace(TINY_VQ, encoder="patch")).eval()
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    changed = images.clone()
    changed[:, :, 8:, :] = -1.0  # everything outside the top row of patches
    z, z_changed = tokenizer.encoder(images), tokenizer.encoder(changed)  # (B, C, 8, 8)
    torch.testing.assert_close(z[:, :, 0], z_changed[:, :, 0])  # the untouched row: identical vectors
    assert not torch.allclose(z[:, :, 1:], z_changed[:, :, 1:])
    white = torch.ones(1, 3, 64, 64)
    assert tokenizer.encode(white).unique().numel() == 1  # one look, one code


def test_conv_encoder_sees_past_its_patch():
    torch.manual_seed(0)
    tokenizer = VQTokenizer(TINY_VQ).eval()
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    changed = images.clone()
    changed[:, :, 8:, :] = -1.0
    assert not torch.allclose(tokenizer.encoder(images)[:, :, 0], tokenizer.encoder(changed)[:, :, 0])


def test_unknown_encoder_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown encoder 'pixel'; choose one of: conv, patch"):
        VQTokenizer(dataclasses.replace(TINY_VQ, encoder="pixel"))


@pytest.mark.parametrize("restart_from", ["random", "error"])
def test_dead_codes_restart_onto_batch_encodings(restart_from):
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=8, code_dim=2, restart_after=1, restart_from=restart_from).train()
    vq.codebook.weight.data[:] = 100.0  # every code far away and tied: only code 0 is ever picked
    z_e = torch.randn(1, 2, 4, 4)
    vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    restarted = vq.codebook.weight[1:]  # the seven dead codes
    assert all((flat == code).all(1).any() for code in restarted)


def test_error_restarts_never_land_on_an_encoding_the_codebook_already_fits():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=4, code_dim=2, restart_after=1, restart_from="error").train()
    fitted, far = torch.tensor([0.0, 0.0]), torch.tensor([5.0, 5.0])
    vq.codebook.weight.data[:] = torch.stack([fitted, torch.full((2,), 50.0), torch.full((2,), 60.0), torch.full((2,), 70.0)])
    z_e = torch.stack([fitted] * 15 + [far]).T.reshape(1, 2, 4, 4)  # 15 encodings on code 0, one far from it
    vq(z_e)
    for code in vq.codebook.weight[1:]:  # the dead codes
        torch.testing.assert_close(code, far)  # random restarts would pick the fitted encoding 15 times in 16


def test_encode_all_in_batches_equals_one_encode(tiny_tokenizer):
    images = torch.rand(7, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    tokens = encode_all(tiny_tokenizer, images, batch_size=3)  # batches of 3, 3 and 1
    assert tokens.shape == (7, 64) and tokens.device.type == "cpu"
    assert torch.equal(tokens, tiny_tokenizer.encode(images))
