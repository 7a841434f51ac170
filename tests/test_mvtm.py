import math

import pytest
import torch
from torch.nn import functional as F

from maskgit_lab import mvtm
from maskgit_lab.mvtm import drop_labels, masked_token_loss, mixed_training_mask, mvtm_loss, mvtm_step, training_mask
from tests.conftest import TINY_TF


def test_loss_ignores_unmasked_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 5)
    targets = torch.randint(5, (2, 6))
    mask = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    base = masked_token_loss(logits, targets, mask, label_smoothing=0.0)
    changed = logits.clone()
    changed[~mask] = torch.randn(int((~mask).sum()), 5) * 10
    torch.testing.assert_close(masked_token_loss(changed, targets, mask, label_smoothing=0.0), base)
    # and it is the mean negative log-likelihood over exactly the masked tokens
    nll = [-F.log_softmax(logits[b, n], -1)[targets[b, n]] for b, n in mask.nonzero().tolist()]
    torch.testing.assert_close(base, torch.stack(nll).mean())


def test_label_smoothing_matches_its_definition():
    logits = torch.randn(1, 4, 3)
    targets = torch.tensor([[0, 1, 2, 0]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    eps = 0.1
    log_p = logits[0].log_softmax(-1)
    smooth = (1 - eps) * F.one_hot(targets[0], 3) + eps / 3
    torch.testing.assert_close(masked_token_loss(logits, targets, mask, eps), -(smooth * log_p).sum(-1).mean())


class Recorder(torch.nn.Module):
    """Stands in for the transformer and records what it was given."""

    mask_id = TINY_TF.num_codes

    def forward(self, tokens):
        self.seen = tokens.clone()
        return torch.zeros(*tokens.shape, TINY_TF.num_codes, requires_grad=True)


def test_step_masks_gamma_fraction_and_feeds_the_mask_id():
    recorder = Recorder()
    tokens = torch.randint(TINY_TF.num_codes, (64, TINY_TF.num_tokens))
    generator = torch.Generator().manual_seed(3)
    loss, stats = mvtm_step(recorder, tokens, "cosine", label_smoothing=0.0, generator=generator)
    masked = recorder.seen == recorder.mask_id
    r = torch.rand(64, generator=torch.Generator().manual_seed(3))  # the same draw as inside the step
    expected = torch.floor(torch.cos(r.double() * math.pi / 2) * TINY_TF.num_tokens).long().clamp(min=1)
    assert masked.sum(dim=1).tolist() == expected.tolist()
    assert torch.equal(recorder.seen[~masked], tokens[~masked])
    # uniform logits: cross-entropy is log K whatever was masked
    assert loss.item() == pytest.approx(math.log(TINY_TF.num_codes))
    assert 0 < stats["mask_frac"] <= 1


def test_step_trains_a_tiny_model(tiny_model):
    torch.manual_seed(0)
    tiny_model.train()
    tokens = torch.randint(TINY_TF.num_codes, (8, TINY_TF.num_tokens))
    loss, _ = mvtm_step(tiny_model, tokens)
    loss.backward()
    assert tiny_model.tok_emb.weight.grad.abs().sum() > 0


def test_mixed_mask_keeps_maskgit_rows_and_replaces_a_share_with_holes(monkeypatch):
    B, N = 400, 64
    plain = training_mask(B, N, "cosine", torch.Generator().manual_seed(0))
    none = mixed_training_mask(B, N, "cosine", 8, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(plain, none)  # share 0: exactly MaskGIT's masks, same draws
    hole = torch.zeros(N, dtype=torch.bool)
    hole[:3] = True  # a pattern no training_mask row has (they mask at least 1 token, at random places)
    monkeypatch.setattr(mvtm, "hole_token_mask", lambda count, downsample, generator: hole.expand(count, N).clone())
    mixed = mixed_training_mask(B, N, "cosine", 8, 0.5, torch.Generator().manual_seed(0))
    replaced = ~(mixed == plain).all(1)
    assert 150 < replaced.sum() < 250  # about half of the rows
    assert (mixed[replaced] == hole).all()  # and those rows are the hole maker's


def test_drop_labels_replaces_each_label_with_the_null_class_by_its_own_draw():
    labels = torch.arange(9).repeat(100)  # (900,)
    dropped = drop_labels(labels, 0.3, 9, torch.Generator().manual_seed(5))
    draws = torch.rand(900, generator=torch.Generator().manual_seed(5)) < 0.3
    assert torch.equal(dropped, torch.where(draws, torch.tensor(9), labels))
    assert torch.equal(drop_labels(labels, 0.0, 9), labels)
    assert (drop_labels(labels, 1.0, 9) == 9).all()


def test_mvtm_loss_passes_the_labels_to_the_model(tiny_model):
    seen = []
    tokens = torch.randint(16, (2, 64))
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, :5] = True

    def recorder(inputs, labels=None):
        seen.append(labels)
        return tiny_model(inputs)

    recorder.mask_id = tiny_model.mask_id
    mvtm_loss(recorder, tokens, mask, labels=torch.tensor([1, 2]))
    mvtm_loss(recorder, tokens, mask)
    assert seen[0].tolist() == [1, 2] and seen[1] is None
