"""A tiny end-to-end run on the shipped data: train both stages, resume, export, inpaint."""

import copy
import dataclasses
import json

import pytest
import torch

from maskgit_lab import train as train_module
from maskgit_lab.checkpoint import load_model, load_pair
from maskgit_lab.classes import NUM_CLASSES
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import DecodeSettings
from maskgit_lab.evaluate import inpaint_batched
from maskgit_lab.mvtm import training_mask
from maskgit_lab.train import (
    MVTMTrainConfig,
    VQTrainConfig,
    accumulate_gradients,
    export,
    train_mvtm,
    train_vq,
    warmup_cosine,
)
from maskgit_lab.transformer import BidirectionalTransformer
from tests.conftest import TINY_TF, TINY_VQ

VQ_RUN = VQTrainConfig(steps=6, batch_size=4, gan_start=3, log_every=3, save_every=3, max_images=8)
MVTM_RUN = MVTMTrainConfig(steps=6, batch_size=4, warmup=2, log_every=3, save_every=3, max_images=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train_vq(TINY_VQ, VQ_RUN, root / "vq", progress=False)
    export(root / "vq", "vq", root / "vq.pt")
    train_mvtm(TINY_TF, MVTM_RUN, root / "vq.pt", root / "mvtm", progress=False)
    export(root / "mvtm", "mvtm", root / "mvtm.pt")
    return root


def test_logs_record_every_interval(trained):
    vq_log = (trained / "vq" / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in vq_log] == ["step", "3", "6"]
    assert "test_mse" in vq_log[0] and "gan_term" in vq_log[0]
    mvtm_log = (trained / "mvtm" / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in mvtm_log] == ["step", "3", "6"]


def test_exported_pair_inpaints_and_keeps_known_pixels(trained):
    tokenizer, model = load_pair(trained / "vq.pt", trained / "mvtm.pt")
    test = load_test_batch(DEFAULT_ROOT, limit=3)
    out = inpaint_batched(tokenizer, model, test["masked"], test["known"], DecodeSettings(steps=3), batch_size=2, progress=False)
    known = test["known"].unsqueeze(1).expand_as(out)
    assert torch.equal(out[known], test["masked"][known])
    assert model.meta["steps"] == 6


def test_resume_continues_where_it_stopped(tmp_path):
    short = dataclasses.replace(VQ_RUN, steps=3)
    train_vq(TINY_VQ, short, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match=r"other settings \(edge_weight was 0.5, now 0.0; hflip was True, now False\); resume with the same values"):
        train_vq(TINY_VQ, dataclasses.replace(short, hflip=False, edge_weight=0.0), tmp_path / "a", resume=True, progress=False)
    with pytest.raises(ValueError, match=r"other settings \(num_codes was 16, now 32\)"):
        train_vq(dataclasses.replace(TINY_VQ, num_codes=32), short, tmp_path / "a", resume=True, progress=False)
    with pytest.raises(ValueError, match="has trained 3 steps already; resume with --steps ≥ 3"):
        train_vq(TINY_VQ, dataclasses.replace(short, steps=2), tmp_path / "a", resume=True, progress=False)
    with pytest.raises(FileExistsError, match="pass --resume"):
        train_vq(TINY_VQ, short, tmp_path / "a", progress=False)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_vq(TINY_VQ, short, tmp_path / "b", resume=True, progress=False)


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    vq = tmp_path / "vq.pt"
    train_vq(TINY_VQ, dataclasses.replace(VQ_RUN, steps=2), tmp_path / "vq", progress=False)
    export(tmp_path / "vq", "vq", vq)
    run = dataclasses.replace(MVTM_RUN, steps=4, log_every=2, save_every=2)
    saved = []
    original_save = train_module._save_state
    monkeypatch.setattr(train_module, "_save_state", lambda d, s: (saved.append(copy.deepcopy(s)), original_save(d, s)))
    train_mvtm(TINY_TF, run, vq, tmp_path / "whole", progress=False)
    assert [s["step"] for s in saved] == [2, 4]
    # an "interrupted" run: only the step-2 state exists, then --resume
    (tmp_path / "part").mkdir()
    torch.save(saved[0], tmp_path / "part" / "state.pt")
    torch.manual_seed(123)  # the global seed must not matter: the state carries every RNG
    train_mvtm(TINY_TF, run, vq, tmp_path / "part", resume=True, progress=False)
    resumed = torch.load(tmp_path / "part" / "state.pt", weights_only=False)
    for key, value in saved[1]["model"].items():
        torch.testing.assert_close(resumed["model"][key], value)
    assert [row["step"] for row in resumed["log"]] == [2, 4]


def test_an_extended_run_trains_on_at_the_final_learning_rate_in_a_new_phase(tmp_path, trained):
    run = dataclasses.replace(MVTM_RUN, steps=4, log_every=1, save_every=2)
    train_mvtm(TINY_TF, run, trained / "vq.pt", tmp_path / "run", progress=False)
    longer = dataclasses.replace(run, steps=6, save_every=3)
    train_mvtm(TINY_TF, longer, trained / "vq.pt", tmp_path / "run", resume=True, progress=False)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    assert [(row["step"], row["phase"]) for row in state["log"]] == [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2), (6, 2)]
    floor = run.lr * warmup_cosine(10**6, run.steps, run.warmup)  # the schedule's end: the first phase's length
    assert [row["lr"] for row in state["log"][4:]] == pytest.approx([floor, floor])
    phases = json.loads((tmp_path / "run" / "phases.json").read_text())
    assert phases == state["phases"] == [
        {"phase": 1, "start_step": 0, "steps": 4, "changes": {}},
        {"phase": 2, "start_step": 4, "steps": 6, "changes": {"steps": [4, 6], "save_every": [2, 3]}}]
    export(tmp_path / "run", "mvtm", tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt", "mvtm").meta["phases"] == phases
    with pytest.raises(FileExistsError, match="m.pt already exists; export elsewhere, or pass --overwrite"):
        export(tmp_path / "run", "mvtm", tmp_path / "m.pt")


def test_a_stale_temp_file_is_removed_on_the_next_start(tmp_path, capsys):
    short = dataclasses.replace(VQ_RUN, steps=3)
    train_vq(TINY_VQ, short, tmp_path / "run", progress=False)
    (tmp_path / "run" / "state.pt.tmp").write_bytes(b"half a save")
    train_vq(TINY_VQ, dataclasses.replace(short, steps=4), tmp_path / "run", resume=True, progress=False)
    assert not (tmp_path / "run" / "state.pt.tmp").exists()
    assert f"note: removed {tmp_path / 'run' / 'state.pt.tmp'}, left by an interrupted save" in capsys.readouterr().out


def test_a_run_dir_holding_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds other files \(notes.txt\); give a new or empty folder"):
        train_vq(TINY_VQ, VQ_RUN, tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_warmup_then_cosine_decay():
    factors = [warmup_cosine(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[-1] == pytest.approx(0.1, abs=0.01)


def test_decoder_only_fine_tune_keeps_every_token(tmp_path):
    train_vq(TINY_VQ, dataclasses.replace(VQ_RUN, steps=2, gan_start=0), tmp_path / "base", progress=False)
    export(tmp_path / "base", "vq", tmp_path / "base.pt", half=False)
    tune = dataclasses.replace(VQ_RUN, steps=3, gan_start=0, init=str(tmp_path / "base.pt"), decoder_only=True, restart_after=1)
    train_vq(TINY_VQ, tune, tmp_path / "tuned", progress=False)
    export(tmp_path / "tuned", "vq", tmp_path / "tuned.pt", half=False)
    before, after = (load_model(tmp_path / name, "vq") for name in ("base.pt", "tuned.pt"))
    changed = {k for k, v in before.state_dict().items() if not torch.equal(v, after.state_dict()[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    images = load_test_batch(DEFAULT_ROOT, limit=4)["gt"]
    assert torch.equal(before.encode(images), after.encode(images))


def test_decoder_only_needs_a_starting_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="pass --init"):
        train_vq(TINY_VQ, dataclasses.replace(VQ_RUN, decoder_only=True), tmp_path / "run", progress=False)



def test_mvtm_init_starts_model_and_ema_from_the_checkpoint(tmp_path, trained):
    export(trained / "mvtm", "mvtm", tmp_path / "start.pt", half=False)
    still = dataclasses.replace(MVTM_RUN, steps=2, lr=0.0, init=str(tmp_path / "start.pt"))
    train_mvtm(TINY_TF, still, trained / "vq.pt", tmp_path / "run", progress=False)
    export(tmp_path / "run", "mvtm", tmp_path / "after.pt", half=False)
    start, after = (load_model(tmp_path / name, "mvtm").state_dict() for name in ("start.pt", "after.pt"))
    assert all(torch.equal(start[k], after[k]) for k in start)


def test_mvtm_init_may_change_the_dropout_and_keeps_every_weight(tmp_path, trained):
    export(trained / "mvtm", "mvtm", tmp_path / "start.pt", half=False)
    assert load_model(tmp_path / "start.pt", "mvtm").cfg.dropout == TINY_TF.dropout > 0
    no_dropout = dataclasses.replace(TINY_TF, dropout=0.0, attn_drop=0.0)
    still = dataclasses.replace(MVTM_RUN, steps=2, lr=0.0, init=str(tmp_path / "start.pt"))
    train_mvtm(no_dropout, still, trained / "vq.pt", tmp_path / "run", progress=False)
    export(tmp_path / "run", "mvtm", tmp_path / "after.pt", half=False)
    start, after = (load_model(tmp_path / name, "mvtm") for name in ("start.pt", "after.pt"))
    assert (after.cfg.dropout, after.cfg.attn_drop) == (0.0, 0.0)
    assert all(torch.equal(start.state_dict()[k], v) for k, v in after.state_dict().items())


def test_mvtm_init_refuses_a_checkpoint_of_another_size(tmp_path, trained):
    other = dataclasses.replace(TINY_TF, depth=TINY_TF.depth + 1)
    with pytest.raises(ValueError, match="different mvtm config"):
        train_mvtm(other, dataclasses.replace(MVTM_RUN, init=str(trained / "mvtm.pt")), trained / "vq.pt",
                   tmp_path / "run", progress=False)

def tiny_batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(TINY_TF.num_codes, (8, TINY_TF.num_tokens), generator=generator)
    return tokens, training_mask(8, TINY_TF.num_tokens, "cosine", generator)


def gradients_of(model, tokens, mask, **settings):
    model.zero_grad()
    stats = accumulate_gradients(model, tokens, mask, dataclasses.replace(MVTM_RUN, **settings))
    return stats, [p.grad.clone() for p in model.parameters()]


def test_accumulated_micro_batches_give_the_whole_batch_gradient():
    torch.manual_seed(0)
    model = BidirectionalTransformer(dataclasses.replace(TINY_TF, dropout=0.0, attn_drop=0.0))
    tokens, mask = tiny_batch()
    whole_stats, whole = gradients_of(model, tokens, mask, accumulate=1)
    split_stats, split = gradients_of(model, tokens, mask, accumulate=4)
    for a, b in zip(split, whole):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert split_stats["loss"] == pytest.approx(whole_stats["loss"], rel=1e-5)


def test_bf16_autocast_and_fused_attention_train_the_same_model():
    torch.manual_seed(0)
    model = BidirectionalTransformer(dataclasses.replace(TINY_TF, dropout=0.0, attn_drop=0.0))
    tokens, mask = tiny_batch(1)
    plain_stats, plain = gradients_of(model, tokens, mask)
    amp_stats, amp = gradients_of(model.use_fused_attention(), tokens, mask, amp=True)
    assert amp_stats["loss"] == pytest.approx(plain_stats["loss"], rel=2e-2)
    flat = [torch.cat([g.flatten() for g in grads]) for grads in (amp, plain)]
    assert torch.nn.functional.cosine_similarity(*flat, dim=0) > 0.99


def test_batch_must_split_into_equal_micro_batches(tmp_path, trained):
    with pytest.raises(ValueError, match="equal micro-batches"):
        train_mvtm(TINY_TF, dataclasses.replace(MVTM_RUN, accumulate=3), trained / "vq.pt", tmp_path / "run", progress=False)


def test_compile_option_compiles_the_transformer(tmp_path, trained, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    train_mvtm(TINY_TF, dataclasses.replace(MVTM_RUN, steps=1, compile=True), trained / "vq.pt", tmp_path / "run", progress=False)
    assert len(compiled) == 1 and isinstance(compiled[0], BidirectionalTransformer)


def test_a_run_started_before_a_setting_existed_still_resumes(tmp_path, trained):
    run = tmp_path / "run"
    short = dataclasses.replace(MVTM_RUN, steps=3)
    train_mvtm(TINY_TF, short, trained / "vq.pt", run, progress=False)
    state = torch.load(run / "state.pt", weights_only=False)
    del state["train_config"]["amp"]  # as written by a version without the setting
    torch.save(state, run / "state.pt")
    train_mvtm(TINY_TF, short, trained / "vq.pt", run, resume=True, progress=False)
    with pytest.raises(ValueError, match="started with other settings"):
        train_mvtm(TINY_TF, dataclasses.replace(short, amp=True), trained / "vq.pt", run, resume=True, progress=False)


def test_init_decoder_starts_only_the_decoder_from_a_tokenizer(tmp_path, trained):
    donor = load_model(trained / "vq.pt", "vq")
    patch = dataclasses.replace(TINY_VQ, encoder="patch")
    still = dataclasses.replace(VQ_RUN, steps=1, lr=0.0, gan_weight=0.0, init_decoder=str(trained / "vq.pt"))
    train_vq(patch, still, tmp_path / "run", progress=False)
    export(tmp_path / "run", "vq", tmp_path / "new.pt", half=False)
    new = load_model(tmp_path / "new.pt", "vq")
    assert new.cfg.encoder == "patch"
    for name, value in new.decoder.state_dict().items():
        torch.testing.assert_close(value, donor.decoder.state_dict()[name], atol=1e-3, rtol=0)  # the donor is fp16
    with pytest.raises(ValueError, match="needs the same channels"):
        wider = dataclasses.replace(patch, code_dim=TINY_VQ.code_dim * 2)
        train_vq(wider, still, tmp_path / "other", progress=False)


def test_unknown_restart_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown --restart-from 'never'; choose one of: random, error"):
        train_vq(TINY_VQ, dataclasses.replace(VQ_RUN, restart_from="never"), tmp_path / "run", progress=False)


def test_a_conditional_model_starts_from_an_unconditional_one_and_learns_its_labels(tmp_path, trained):
    conditional = dataclasses.replace(TINY_TF, num_classes=NUM_CLASSES)
    run = dataclasses.replace(MVTM_RUN, steps=3, log_every=3, init=str(trained / "mvtm.pt"), p_uncond=0.5)
    train_mvtm(conditional, run, trained / "vq.pt", tmp_path / "run", progress=False)
    export(tmp_path / "run", "mvtm", tmp_path / "cond.pt", half=False)
    donor, model = load_model(trained / "mvtm.pt", "mvtm"), load_model(tmp_path / "cond.pt", "mvtm")
    assert model.cfg.num_classes == NUM_CLASSES and model.class_emb.weight.abs().sum() > 0
    assert set(model.state_dict()) - set(donor.state_dict()) == {"class_emb.weight"}
    assert "test_acc_90_label" in (tmp_path / "run" / "log.csv").read_text().splitlines()[0]
    with pytest.raises(ValueError, match="is class-conditional; train with --conditional true"):
        train_mvtm(TINY_TF, dataclasses.replace(run, init=str(tmp_path / "cond.pt")), trained / "vq.pt",
                   tmp_path / "back", progress=False)
