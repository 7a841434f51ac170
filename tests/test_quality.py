import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maskgit_lab import fid
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import DecodeSettings
from maskgit_lab.quality import (
    Scorer,
    baseline_rows,
    covers_grid,
    fill_hole,
    gap_closed,
    markdown_table,
    maskgit_rows,
    read_rows,
    reference_for,
    score_tokenizer,
    summarize,
    token_accuracy,
    tokenizer_floor,
    write_rows,
)

STAND_IN = fid.FeatureExtractor(name="pooled-pixels-8x8", net=lambda x: F.adaptive_avg_pool2d(x, 8).flatten(1),
                                pixel_offset=128.0, pixel_scale=128.0)


@pytest.fixture(scope="module")
def scorer():
    test = load_test_batch(DEFAULT_ROOT, limit=40)
    features = fid.inception_features(test["gt"], progress=False, extractor=STAND_IN)
    reference = fid.ReferenceStats(*fid.statistics(features), features)
    return Scorer(reference, test["gt"], test["known"], extractor=STAND_IN, progress=False), test


def test_the_first_test_images_are_scored_against_the_shipped_features_of_their_extractor():
    """The FID threshold check scores the first test images: their rows of data/fid_stats_test.npz, never recomputed
    nor rewritten; another extractor's features are computed."""
    with np.load(fid.DEFAULT_STATS_CACHE) as stored:
        shipped, name = stored["features"], stored["extractor"].item()
    before, calls = fid.DEFAULT_STATS_CACHE.read_bytes(), []
    named_as_shipped = fid.FeatureExtractor(name=name, net=lambda x: calls.append(x) or x.mean((2, 3)),
                                            pixel_offset=128.0, pixel_scale=128.0)
    test = load_test_batch(DEFAULT_ROOT, limit=6)
    reference = reference_for(test, DEFAULT_ROOT, 6, named_as_shipped)
    assert calls == [] and np.array_equal(reference.features, shipped[:6].astype(np.float64))
    assert reference_for(test, DEFAULT_ROOT, 6, STAND_IN).features.shape == (6, 3 * 8 * 8)  # computed with STAND_IN
    assert fid.DEFAULT_STATS_CACHE.read_bytes() == before


def test_fill_hole_changes_only_the_hole(scorer):
    _, test = scorer
    filled = fill_hole(test["gt"], test["known"], 1.0)
    known = test["known"].unsqueeze(1).expand_as(filled)
    assert torch.equal(filled[known], test["gt"][known]) and (filled[~known] == 1.0).all()


def test_floor_is_the_reconstruction_in_the_hole(scorer, tiny_tokenizer):
    _, test = scorer
    gt, known = test["gt"][:4], test["known"][:4]
    floor = tokenizer_floor(tiny_tokenizer, gt, known)
    recon = tiny_tokenizer.decode(tiny_tokenizer.encode(gt))
    mask = known.unsqueeze(1).expand_as(floor)
    assert torch.equal(floor[mask], gt[mask]) and torch.allclose(floor[~mask], recon[~mask])


def test_gap_closed_is_zero_at_the_ceiling_and_one_at_the_floor():
    assert gap_closed(100.0, 40.0, 100.0) == 0.0
    assert gap_closed(100.0, 40.0, 40.0) == 1.0
    assert gap_closed(100.0, 40.0, 70.0) == pytest.approx(0.5)
    assert gap_closed(100.0, 40.0, 110.0) < 0  # worse than a trivial fill


def test_ground_truth_scores_perfectly(scorer):
    score, test = scorer
    row = score("truth", test["gt"])
    assert row["fid"] == pytest.approx(0.0, abs=1e-6)
    assert math.isinf(row["psnr_hole"]) and row["ssim_hole"] == pytest.approx(1.0)


def test_token_accuracy_counts_only_unknown_tokens():
    codes = torch.tensor([[1, 2, 3, 4]])
    target = torch.tensor([[1, 0, 3, 0]])
    unknown = torch.tensor([[False, True, True, True]])
    assert token_accuracy(codes, target, unknown) == pytest.approx(1 / 3)


def test_table_rows_and_summary(scorer, tiny_tokenizer, tiny_model):
    score, test = scorer
    rows = baseline_rows(score, tiny_tokenizer)
    settings = [DecodeSettings("cosine", 2), DecodeSettings("linear", 4, sweet_spot=2)]
    rows += maskgit_rows(score, tiny_tokenizer, tiny_model, test["masked"], settings, batch_size=16)
    labels = [setting.label for setting in settings]  # "cosine T=2 retok×5 blur 0.5", "linear T=4 stop@2 retok×5 blur 0.5"
    assert [r["method"] for r in rows] == ["gray fill", "white fill", "tokenizer floor"] + labels
    assert all(0 <= r["token_acc"] <= 1 for r in rows[3:])
    summary = summarize(rows)
    assert summary["ceiling"] == min(rows[0]["fid"], rows[1]["fid"])
    assert summary["best"]["method"] in labels
    assert rows[2]["gap_closed"] == pytest.approx(1.0)
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| tokenizer floor |" in table
    assert rows[4]["sweet_spot"] == 2 and rows[4]["temperature"] == DecodeSettings().temperature


def test_rows_come_back_from_json_as_they_were_written(tmp_path, scorer, tiny_tokenizer, tiny_model):
    score, test = scorer
    rows = baseline_rows(score, tiny_tokenizer)
    rows += maskgit_rows(score, tiny_tokenizer, tiny_model, test["masked"], [DecodeSettings("cosine", 2)], batch_size=16)
    summarize(rows)
    assert read_rows(write_rows(rows, tmp_path / "quality.json")) == rows
    assert markdown_table(read_rows(tmp_path / "quality.json")) == markdown_table(rows)


def test_a_file_that_is_not_rows_is_refused_with_the_fix(tmp_path):
    (tmp_path / "q.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not a list of quality rows"):
        read_rows(tmp_path / "q.json")
    (tmp_path / "q.json").write_text(json.dumps([{"method": "gray fill", "fid": 1.0}]))
    with pytest.raises(ValueError, match="'gray fill' has no kid, psnr_hole, ssim_hole; re-run"):
        read_rows(tmp_path / "q.json")


def test_the_shipped_rows_are_the_full_grid_and_match_the_shipped_table():
    from maskgit_lab.checkpoint import SHIPPED_CHECKPOINTS

    rows = read_rows(SHIPPED_CHECKPOINTS / "quality.json")
    assert covers_grid(rows) and not covers_grid(rows[:4])
    summarize(rows)
    assert markdown_table(rows) + "\n" == (SHIPPED_CHECKPOINTS / "quality.md").read_text()


def test_score_tokenizer_reports_floor_over_ceiling(tiny_tokenizer):
    result = score_tokenizer(tiny_tokenizer, limit=12, extractor=STAND_IN, progress=False)
    assert [row["method"] for row in result["rows"]] == ["gray fill", "white fill", "tokenizer floor"]
    assert result["ratio"] == pytest.approx(result["floor"] / result["ceiling"])


def test_scoring_needs_the_ground_truth(tmp_path):
    import shutil

    for folder in ("masked_image", "mask64"):
        (tmp_path / "test" / folder).mkdir(parents=True)
        source = DEFAULT_ROOT / "test" / folder
        for name in sorted(p.name for p in source.iterdir())[:2]:
            shutil.copy(source / name, tmp_path / "test" / folder / name)
    with pytest.raises(FileNotFoundError, match=r"has no test ground truth \(test_gt/\), so nothing can be scored"):
        score_tokenizer(None, tmp_path, extractor=STAND_IN)


class CountingExtractor:
    """The stand-in network, counting how many images it has been fed."""

    name = STAND_IN.name
    pixel_offset, pixel_scale = STAND_IN.pixel_offset, STAND_IN.pixel_scale

    def __init__(self):
        self.images = 0

    def __call__(self, pixels):
        self.images += pixels.shape[0]
        return STAND_IN(pixels)


def counting_scorer(test):
    extractor = CountingExtractor()
    features = fid.inception_features(test["gt"], progress=False, extractor=STAND_IN)
    reference = fid.ReferenceStats(*fid.statistics(features), features)
    return Scorer(reference, test["gt"], test["known"], extractor=extractor, progress=False), extractor


def test_an_image_set_seen_before_is_not_fed_to_the_network_again():
    test = load_test_batch(DEFAULT_ROOT, limit=6)
    score, extractor = counting_scorer(test)
    first = score("a", test["gt"])
    again = score("b", test["gt"].clone())
    assert extractor.images == 6 and first["fid"] == again["fid"]
    score("c", fill_hole(test["gt"], test["known"], 0.0))
    assert extractor.images == 12


def test_baseline_rows_come_back_from_the_cache_only_for_the_same_tokenizer(tmp_path, tiny_tokenizer, capsys):
    test = load_test_batch(DEFAULT_ROOT, limit=6)
    cache = tmp_path / "baselines.json"
    score, extractor = counting_scorer(test)
    rows = baseline_rows(score, tiny_tokenizer, cache)
    fresh, fresh_extractor = counting_scorer(test)
    assert baseline_rows(fresh, tiny_tokenizer, cache) == rows and fresh_extractor.images == 0
    assert "from " + str(cache) in capsys.readouterr().out
    with torch.no_grad():
        tiny_tokenizer.decoder.to_rgb.bias.add_(0.5)  # another tokenizer: the floor must be recomputed
    other, other_extractor = counting_scorer(test)
    changed = baseline_rows(other, tiny_tokenizer, cache)
    assert other_extractor.images == 3 * 6 and changed[2]["fid"] != rows[2]["fid"]
    assert len(json.loads(cache.read_text())) == 2  # both tokenizers stay cached


def test_one_step_rows_are_decoded_once_per_temperature_and_equal_a_fresh_decode(monkeypatch, scorer, tiny_tokenizer, tiny_model):
    score, test = scorer
    scored, call = [], type(score).__call__

    def counting(self, name, images, **extra):
        scored.append(name)
        return call(self, name, images, **extra)

    settings = [DecodeSettings("cosine", 1), DecodeSettings("linear", 1), DecodeSettings("linear", 1, temperature=0.0),
                DecodeSettings("square", 1, sample_temperature=0.9, first_sample_temperature=0.3),  # its one step: s 0.3
                DecodeSettings("sqrt", 1, retokenize=0)]
    with monkeypatch.context() as patch:
        patch.setattr(type(score), "__call__", counting)
        rows = maskgit_rows(score, tiny_tokenizer, tiny_model, test["masked"], settings, batch_size=16)
    # the second linear T=1 has another temperature, the sqrt one no round trips; the square one samples as cosine's
    assert scored == [settings[0].label, settings[1].label, settings[4].label]
    assert rows[3]["fid"] == rows[0]["fid"] and rows[3]["first_sample_temperature"] == 0.3
    fresh = maskgit_rows(score, tiny_tokenizer, tiny_model, test["masked"], [DecodeSettings("linear", 1)], batch_size=16)[0]
    assert rows[1] == fresh
    assert rows[1]["schedule"] == "linear" and rows[0]["schedule"] == "cosine"
