"""The same code on CUDA; skipped cleanly on machines without a GPU."""

import pytest
import torch

from maskgit_lab.configs import get_config
from maskgit_lab.decoding import DecodeSettings, iterative_decode
from maskgit_lab.inpaint import inpaint
from maskgit_lab.mvtm import training_mask
from maskgit_lab.train import MVTMTrainConfig, accumulate_gradients
from maskgit_lab.transformer import BidirectionalTransformer
from maskgit_lab.vq import VQTokenizer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run `pytest -m gpu` on a GPU machine)"),
]


def test_decoding_on_cuda_keeps_the_invariants(tiny_model):
    model = tiny_model.cuda()
    tokens = torch.randint(16, (8, 64), device="cuda")
    token_mask = torch.rand(8, 64, device="cuda") < 0.5
    out, history = iterative_decode(model, tokens, token_mask, DecodeSettings(steps=6), return_history=True,
                                    generator=torch.Generator().manual_seed(0))
    assert out.device.type == "cuda"
    assert torch.equal(out[~token_mask], tokens[~token_mask])
    assert history.masks[-1].sum() == 0 and (out < 16).all()


def test_inpainting_on_cuda_matches_cpu_masks(tiny_tokenizer, tiny_model):
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    known = torch.ones(4, 64, 64, dtype=torch.bool)
    known[:, 20:44, 20:44] = False
    out = inpaint(tiny_tokenizer.cuda(), tiny_model.cuda(), images.cuda(), known.cuda(), DecodeSettings(steps=4))
    assert torch.equal(out.cpu()[:, :, :20], images[:, :, :20])


def lab_batch(cfg, batch_size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(cfg.num_codes, (batch_size, cfg.num_tokens), generator=generator)
    return tokens.cuda(), training_mask(batch_size, cfg.num_tokens, "cosine", generator).cuda()


def test_lab_size_shapes_forward_and_backward():
    lab = get_config("lab")
    tokenizer = VQTokenizer(lab.vq).cuda()
    images = torch.rand(4, 3, 64, 64, device="cuda") * 2 - 1
    recon, vq_loss, indices, _ = tokenizer(images)
    assert recon.shape == images.shape and indices.shape == (4, 256)
    model = BidirectionalTransformer(lab.transformer).cuda().use_fused_attention()
    tokens, mask = lab_batch(lab.transformer, 4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(tokens.masked_fill(mask, model.mask_id))
    assert logits.shape == (4, 256, 1024)
    (logits.float().mean() + vq_loss + recon.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_one_lab_size_step_with_bf16_and_fused_attention_lowers_the_loss():
    cfg = get_config("lab").transformer
    torch.manual_seed(0)
    model = BidirectionalTransformer(cfg).cuda().use_fused_attention()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    tokens, mask = lab_batch(cfg, 16)
    tcfg = MVTMTrainConfig(batch_size=16, accumulate=2, amp=True)
    model.eval()  # no dropout: the two losses see the same network
    before = accumulate_gradients(model, tokens, mask, tcfg)["loss"]
    opt.step()
    opt.zero_grad(set_to_none=True)
    after = accumulate_gradients(model, tokens, mask, tcfg)["loss"]
    assert after < before


def test_batched_decoding_of_747_lab_size_grids_keeps_the_invariants():
    cfg = get_config("lab").transformer
    model = BidirectionalTransformer(cfg).cuda().eval().use_fused_attention()
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(cfg.num_codes, (747, cfg.num_tokens), generator=generator).cuda()
    token_mask = (torch.rand(747, cfg.num_tokens, generator=generator) < 0.4).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = iterative_decode(model, tokens, token_mask, generator=generator)
    assert torch.equal(out[~token_mask], tokens[~token_mask])
    assert (out < cfg.num_codes).all()
