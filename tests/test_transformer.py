import pytest
import torch

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
