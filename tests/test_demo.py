"""The demo end to end on tiny checkpoints, with a stand-in feature network."""

import dataclasses

import pytest
import torch

from maskgit_lab import demo
from maskgit_lab.checkpoint import save_checkpoint
from maskgit_lab.classes import NUM_CLASSES
from maskgit_lab.configs import get_config
from maskgit_lab.decoding import DecodeSettings
from maskgit_lab.quality import markdown_table, read_rows
from maskgit_lab.schedules import SCHEDULES
from maskgit_lab.transformer import BidirectionalTransformer
from tests.test_quality import STAND_IN


@pytest.fixture
def checkpoints(tmp_path, tiny_tokenizer, tiny_model):
    save_checkpoint(tmp_path / "vq.pt", "vq", tiny_tokenizer)
    save_checkpoint(tmp_path / "mvtm.pt", "mvtm", tiny_model)
    return tmp_path / "vq.pt", tmp_path / "mvtm.pt"


def test_demo_with_checkpoints_scores_and_draws(tmp_path, checkpoints, capsys):
    vq, mvtm = checkpoints
    figures = demo.run_demo(tmp_path / "out", vq=vq, mvtm=mvtm, rows=3, settings=DecodeSettings(steps=4), limit=12,
                             extractor=STAND_IN, generator=None)
    out = capsys.readouterr().out
    label = DecodeSettings(steps=4).label  # with the default round trips and blur
    assert "tokenizer floor FID" in out and "gap closed" in out and f"| {label} |" in out
    assert [f.name for f in figures] == ["decoding_steps.png", "inpainted.png", "schedules.png", "quality.png"]
    assert all(f.stat().st_size > 1000 for f in figures)
    table = (tmp_path / "out" / "quality.md").read_text().splitlines()
    assert len(table) == 2 + 4  # header, rule, gray, white, floor, cosine T=4
    rows = read_rows(tmp_path / "out" / "quality.json")
    assert [row["method"] for row in rows] == ["gray fill", "white fill", "tokenizer floor", label]
    assert markdown_table(rows).splitlines() == table


def test_full_demo_covers_every_schedule_and_the_sweet_spot(tmp_path, checkpoints):
    vq, mvtm = checkpoints
    tokenizer, model = demo.load_pair(vq, mvtm)
    result = demo.score_test_set(tokenizer, model, tmp_path, demo.DEFAULT_ROOT, DecodeSettings(), full=True, limit=6,
                                 extractor=STAND_IN)
    methods = [row["method"] for row in result["rows"]]
    assert len(methods) == 3 + 6 * 4 + 5
    grid = result["rows"][3 : 3 + 24]
    assert {(row["schedule"], row["steps"]) for row in grid} == {(s, t) for s in SCHEDULES for t in (1, 4, 8, 12)}
    best = min(grid, key=lambda row: row["fid"])["schedule"]
    assert methods[-5:] == [DecodeSettings(best, 12, sweet_spot=s).label for s in (2, 4, 6, 8, 10)]


def test_demo_without_checkpoints_trains_a_quick_run_and_skips_scores(tmp_path, checkpoints, capsys, monkeypatch):
    monkeypatch.setattr(demo, "quick_checkpoints", lambda out, root, shipped_vq: checkpoints)
    figures = demo.run_demo(tmp_path / "out", vq=tmp_path / "none.pt", mvtm=tmp_path / "none.pt", rows=2,
                             settings=DecodeSettings(steps=2), generator=tmp_path / "conditional.pt")
    out = capsys.readouterr().out
    assert "training a short CPU demo run of what is missing first" in out and "FID" not in out
    assert [f.name for f in figures] == ["decoding_steps.png", "inpainted.png", "schedules.png"]


def test_quick_run_keeps_a_shipped_tokenizer(tmp_path, checkpoints, monkeypatch):
    trained = []
    monkeypatch.setattr(demo, "train_vq", lambda *args, **kw: trained.append("vq"))
    monkeypatch.setattr(demo, "train_mvtm", lambda cfg, tcfg, vq, run, *args, **kw: trained.append(("mvtm", vq)))
    monkeypatch.setattr(demo, "export", lambda run, kind, dest: dest)
    vq, mvtm = demo.quick_checkpoints(tmp_path, demo.DEFAULT_ROOT, shipped_vq=checkpoints[0])
    assert vq == checkpoints[0] and mvtm.name == "mvtm-on-shipped-vq.pt"
    assert trained == [("mvtm", checkpoints[0])]


def test_quick_run_sizes_its_transformer_to_the_tokenizer_and_trains_both_coarse_without_one(
        tmp_path, checkpoints, tiny_tokenizer, monkeypatch):
    configs = []
    monkeypatch.setattr(demo, "train_vq", lambda cfg, *args, **kw: configs.append(cfg))
    monkeypatch.setattr(demo, "train_mvtm", lambda cfg, *args, **kw: configs.append(cfg))
    monkeypatch.setattr(demo, "export", lambda run, kind, dest: dest)
    demo.quick_checkpoints(tmp_path / "given", demo.DEFAULT_ROOT, shipped_vq=checkpoints[0])
    default = get_config("default").transformer
    assert configs == [dataclasses.replace(default, num_codes=tiny_tokenizer.cfg.num_codes,
                                           num_tokens=tiny_tokenizer.cfg.num_tokens)]
    configs.clear()
    demo.quick_checkpoints(tmp_path / "none", demo.DEFAULT_ROOT)
    coarse = get_config("coarse")
    assert configs == [coarse.vq, coarse.transformer]


def test_demo_with_a_conditional_transformer_also_generates_every_class(tmp_path, checkpoints, tiny_model):
    vq, mvtm = checkpoints
    conditional = BidirectionalTransformer(dataclasses.replace(tiny_model.cfg, num_classes=NUM_CLASSES))
    save_checkpoint(tmp_path / "conditional.pt", "mvtm", conditional)
    figures = demo.run_demo(tmp_path / "out", vq=vq, mvtm=mvtm, rows=2, settings=DecodeSettings(steps=2), limit=6,
                             extractor=STAND_IN, generator=tmp_path / "conditional.pt")
    assert [f.name for f in figures][-2:] == ["generated.png", "generation_steps.png"]
    assert all(f.stat().st_size > 1000 for f in figures)


def test_generation_figures_draw_each_class_in_a_row_and_the_same_labels_and_seed_at_t_1_and_t(
        tmp_path, tiny_tokenizer, monkeypatch):
    calls = []

    def recording(tokenizer, model, labels, setting, generator):
        calls.append((labels.tolist(), setting.steps, generator.initial_seed()))
        return torch.zeros(labels.shape[0], 3, 8, 8)

    monkeypatch.setattr(demo, "generate", recording)
    figures = demo.generation_figures(tmp_path, tiny_tokenizer, None, DecodeSettings(steps=6, guidance=2.0), per_class=4,
                                      seed=3)
    every = [c for c in range(NUM_CLASSES) for _ in range(4)]
    half = [c for c in range(NUM_CLASSES) for _ in range(2)]
    assert calls == [(every, 6, 3), (half, 1, 3), (half, 6, 3)]
    assert [f.name for f in figures] == ["generated.png", "generation_steps.png"]
