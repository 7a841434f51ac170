import dataclasses

import pytest
import torch

from maskgit_lab.checkpoint import SHIPPED_MVTM, SHIPPED_VQ, load_model, load_pair, load_shipped, save_checkpoint, weights_hash
from maskgit_lab.configs import ModelConfig, get_config
from maskgit_lab.transformer import BidirectionalTransformer
from maskgit_lab.vq import VQTokenizer
from tests.conftest import TINY_TF, TINY_VQ


def test_round_trip_gives_the_same_outputs(tmp_path, tiny_model):
    save_checkpoint(tmp_path / "m.pt", "mvtm", tiny_model, meta={"steps": 3})
    loaded = load_model(tmp_path / "m.pt", "mvtm", expect=TINY_TF)
    tokens = torch.randint(TINY_TF.num_codes, (2, TINY_TF.num_tokens))
    torch.testing.assert_close(loaded(tokens), tiny_model(tokens))
    assert loaded.meta == {"steps": 3}


def test_half_precision_storage_stays_close(tmp_path, tiny_tokenizer):
    save_checkpoint(tmp_path / "vq.pt", "vq", tiny_tokenizer, half=True)
    loaded = load_model(tmp_path / "vq.pt", "vq")
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    assert (loaded.encode(images) == tiny_tokenizer.encode(images)).float().mean() > 0.9
    assert loaded.cfg == TINY_VQ


def test_mismatched_config_names_the_fields(tmp_path, tiny_model):
    save_checkpoint(tmp_path / "m.pt", "mvtm", tiny_model)
    other = dataclasses.replace(TINY_TF, depth=3, dim=64)
    with pytest.raises(ValueError, match=r"dim: expected 64, checkpoint has 32; depth: expected 3, checkpoint has 2"):
        load_model(tmp_path / "m.pt", "mvtm", expect=other)


def test_wrong_kind_missing_and_corrupt_files(tmp_path, tiny_model):
    save_checkpoint(tmp_path / "m.pt", "mvtm", tiny_model)
    with pytest.raises(ValueError, match="holds a 'mvtm' model, but a 'vq' checkpoint was expected"):
        load_model(tmp_path / "m.pt", "vq")
    with pytest.raises(FileNotFoundError, match="train one with `python -m maskgit_lab train-vq`"):
        load_model(tmp_path / "absent.pt", "vq")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_model(tmp_path / "cut.pt", "mvtm")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ValueError, match="not a readable checkpoint") as refused:
        load_model(tmp_path / "random.pt", "vq")
    assert "weights_only" not in str(refused.value) and "\n" not in str(refused.value)
    torch.save(tmp_path, tmp_path / "pickle.pt")  # a torch file of another object: torch's advice says weights_only=False
    with pytest.raises(ValueError, match="not a readable checkpoint") as refused:
        load_model(tmp_path / "pickle.pt", "vq")
    assert "weights_only" not in str(refused.value)
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a maskgit-lab checkpoint"):
        load_model(tmp_path / "foreign.pt", "mvtm")


def test_weights_that_do_not_fit_their_config(tmp_path, tiny_model):
    save_checkpoint(tmp_path / "m.pt", "mvtm", tiny_model)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["config"]["hidden_dim"] = 128
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="weights do not fit the stored config"):
        load_model(tmp_path / "m.pt", "mvtm")


def test_pair_must_agree_on_codebook_and_tokens(tmp_path, tiny_tokenizer):
    save_checkpoint(tmp_path / "vq.pt", "vq", tiny_tokenizer)
    mismatched = BidirectionalTransformer(dataclasses.replace(TINY_TF, num_codes=32))
    save_checkpoint(tmp_path / "m.pt", "mvtm", mismatched)
    with pytest.raises(ValueError, match="expects K=32 codes and N=64 tokens, but .* makes K=16, N=64"):
        load_pair(tmp_path / "vq.pt", tmp_path / "m.pt")
    assert isinstance(load_model(tmp_path / "vq.pt", "vq"), VQTokenizer)


def test_pair_is_checked_against_a_named_config(tmp_path, tiny_tokenizer, tiny_model):
    save_checkpoint(tmp_path / "vq.pt", "vq", tiny_tokenizer)
    save_checkpoint(tmp_path / "m.pt", "mvtm", tiny_model)
    expected = get_config("default").vq.num_codes
    with pytest.raises(ValueError, match=f"different vq config .*num_codes: expected {expected}, checkpoint has 16"):
        load_pair(tmp_path / "vq.pt", tmp_path / "m.pt", expect=get_config("default"))
    tiny = ModelConfig("tiny", TINY_VQ, TINY_TF)
    tokenizer, model = load_pair(tmp_path / "vq.pt", tmp_path / "m.pt", expect=tiny)
    assert model.cfg == TINY_TF


def test_pair_check_lets_the_dropout_rates_differ_and_nothing_else(tmp_path, tiny_tokenizer):
    save_checkpoint(tmp_path / "vq.pt", "vq", tiny_tokenizer)
    save_checkpoint(tmp_path / "m.pt", "mvtm", BidirectionalTransformer(dataclasses.replace(TINY_TF, dropout=0.0, attn_drop=0.0)))
    tiny = ModelConfig("tiny", TINY_VQ, dataclasses.replace(TINY_TF, dropout=0.3, attn_drop=0.2))
    _, model = load_pair(tmp_path / "vq.pt", tmp_path / "m.pt", expect=tiny)
    assert (model.cfg.dropout, model.cfg.attn_drop) == (0.0, 0.0)  # the checkpoint's own rates
    wider = ModelConfig("tiny", TINY_VQ, dataclasses.replace(TINY_TF, dropout=0.3, hidden_dim=TINY_TF.hidden_dim * 2))
    with pytest.raises(ValueError, match=r"different mvtm config \(hidden_dim: expected"):
        load_pair(tmp_path / "vq.pt", tmp_path / "m.pt", expect=wider)


def test_load_shipped_is_the_pair_at_the_shipped_paths():
    tokenizer, model = load_shipped()
    assert isinstance(tokenizer, VQTokenizer) and isinstance(model, BidirectionalTransformer)
    assert weights_hash(tokenizer) == weights_hash(load_model(SHIPPED_VQ, "vq"))
    assert weights_hash(model) == weights_hash(load_model(SHIPPED_MVTM, "mvtm"))
    default = get_config("default")
    assert tokenizer.cfg == default.vq
    assert model.cfg == dataclasses.replace(default.transformer, dropout=0.0, attn_drop=0.0)  # tuned without dropout
