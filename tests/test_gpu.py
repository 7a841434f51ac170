"""The same code on CUDA; skipped cleanly on machines without a GPU."""

import pytest
import torch

from maskgit_lab.decoding import iterative_decode
from maskgit_lab.inpaint import inpaint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run `pytest -m gpu` on a GPU machine)"),
]


def test_decoding_on_cuda_keeps_the_invariants(tiny_model):
    model = tiny_model.cuda()
    tokens = torch.randint(16, (8, 64), device="cuda")
    token_mask = torch.rand(8, 64, device="cuda") < 0.5
    out, history = iterative_decode(model, tokens, token_mask, 6, return_history=True,
                                    generator=torch.Generator().manual_seed(0))
    assert out.device.type == "cuda"
    assert torch.equal(out[~token_mask], tokens[~token_mask])
    assert history.masks[-1].sum() == 0 and (out < 16).all()


def test_inpainting_on_cuda_matches_cpu_masks(tiny_tokenizer, tiny_model):
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    known = torch.ones(4, 64, 64, dtype=torch.bool)
    known[:, 20:44, 20:44] = False
    out = inpaint(tiny_tokenizer.cuda(), tiny_model.cuda(), images.cuda(), known.cuda(), steps=4)
    assert torch.equal(out.cpu()[:, :, :20], images[:, :, :20])
