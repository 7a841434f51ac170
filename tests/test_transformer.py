from dataclasses import replace

import pytest
import torch

from maskgit_lab.transformer import BidirectionalTransformer

from tests.conftest import TINY_TF


def test_logits_cover_the_codebook_but_not_the_mask_id(tiny_model):
    tokens = torch.randint(TINY_TF.num_codes, (3, TINY_TF.num_tokens))
    logits = tiny_model(tokens)
    assert logits.shape == (3, TINY_TF.num_tokens, TINY_TF.num_codes)
    assert tiny_model.mask_id == TINY_TF.num_codes
    assert tiny_model.tok_emb.num_embeddings == TINY_TF.num_codes + 1


def test_attention_is_bidirectional(tiny_model):
    tokens = torch.randint(TINY_TF.num_codes, (1, TINY_TF.num_tokens))
    changed = tokens.clone()
    changed[0, -1] = (changed[0, -1] + 1) % TINY_TF.num_codes
    # The first position sees the last one: no causal mask.
    assert not torch.allclose(tiny_model(tokens)[0, 0], tiny_model(changed)[0, 0])


def test_mask_token_is_accepted_and_changes_predictions(tiny_model):
    tokens = torch.randint(TINY_TF.num_codes, (1, TINY_TF.num_tokens))
    masked = tokens.clone()
    masked[0, :10] = tiny_model.mask_id
    assert not torch.allclose(tiny_model(tokens), tiny_model(masked))


def test_attention_maps_per_layer(tiny_model):
    logits, maps = tiny_model(torch.zeros(2, TINY_TF.num_tokens, dtype=torch.long), return_attention=True)
    assert len(maps) == TINY_TF.depth
    assert maps[0].shape == (2, TINY_TF.num_heads, TINY_TF.num_tokens, TINY_TF.num_tokens)


def test_wrong_token_count_is_refused(tiny_model):
    with pytest.raises(ValueError, match=f"expected {TINY_TF.num_tokens} tokens per image, got 10"):
        tiny_model(torch.zeros(1, 10, dtype=torch.long))


def conditional_twin(model, num_classes=3):
    """The same weights as ``model``, with a fresh (zero) class embedding for ``num_classes`` classes."""
    twin = BidirectionalTransformer(replace(model.cfg, num_classes=num_classes)).eval()
    missing, unexpected = twin.load_state_dict(model.state_dict(), strict=False)
    assert (missing, unexpected) == (["class_emb.weight"], [])
    return twin


def test_a_fresh_class_embedding_leaves_the_model_unchanged(tiny_model):
    twin = conditional_twin(tiny_model)
    tokens = torch.randint(TINY_TF.num_codes, (4, TINY_TF.num_tokens))
    labels = torch.tensor([0, 1, 2, 3])  # 3 = the null class
    assert torch.equal(twin(tokens, labels), tiny_model(tokens))


def test_no_label_is_the_null_class_and_a_label_shifts_every_position(tiny_model):
    twin = conditional_twin(tiny_model)
    torch.nn.init.normal_(twin.class_emb.weight)
    tokens = torch.randint(TINY_TF.num_codes, (2, TINY_TF.num_tokens))
    null = torch.full((2,), twin.null_class)
    assert torch.equal(twin(tokens), twin(tokens, null))
    by_hand = tiny_model.tok_emb(tokens) + tiny_model.pos_emb + twin.class_emb.weight[[0, 2]].unsqueeze(1)
    for block in tiny_model.blocks:
        by_hand = block(by_hand)
    torch.testing.assert_close(twin(tokens, torch.tensor([0, 2])), tiny_model.head(tiny_model.norm(by_hand)))


def test_labels_are_refused_by_an_unconditional_model_and_out_of_range(tiny_model):
    tokens = torch.zeros(2, TINY_TF.num_tokens, dtype=torch.long)
    with pytest.raises(ValueError, match="this transformer is unconditional"):
        tiny_model(tokens, torch.tensor([0, 1]))
    twin = conditional_twin(tiny_model)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\] \(3 = no label\)"):
        twin(tokens, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"labels must be a \(B,\) = \(2,\) long tensor"):
        twin(tokens, torch.tensor([0.0, 1.0]))
