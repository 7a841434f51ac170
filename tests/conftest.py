"""Tiny models shared by the tests: the same code as the course, at shapes that run in ms."""

from dataclasses import replace

import pytest
import torch

from maskgit_lab.transformer import BidirectionalTransformer, TransformerConfig
from maskgit_lab.vq import VQConfig, VQTokenizer

TINY_VQ = VQConfig(downsample=8, channels=(8, 16, 16), res_blocks=1, num_codes=16, code_dim=8)
TINY_TF = TransformerConfig(num_codes=16, num_tokens=64, dim=32, depth=2, num_heads=4, hidden_dim=64)


@pytest.fixture
def tiny_tokenizer():
    torch.manual_seed(0)
    return VQTokenizer(TINY_VQ).eval()


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return BidirectionalTransformer(TINY_TF).eval()


@pytest.fixture
def tiny_conditional():
    """A tiny class-conditional transformer (3 classes, null id 3) whose labels change its logits."""
    torch.manual_seed(0)
    model = BidirectionalTransformer(replace(TINY_TF, num_classes=3)).eval()
    torch.nn.init.normal_(model.class_emb.weight)
    return model
