"""The generation table on tiny models and a stand-in feature network: every row scored the same way."""

from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from maskgit_lab import fid
from maskgit_lab.classes import NUM_CLASSES
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import GENERATION, DecodeSettings
from maskgit_lab.generate import generate_batched
from maskgit_lab.generation_quality import (
    BASELINE,
    GenerationScorer,
    generation_grid,
    generation_rows,
    generation_table,
    markdown_table,
    reference_rows,
)
from maskgit_lab.probe import fit_probe
from maskgit_lab.schedules import SCHEDULES
from maskgit_lab.transformer import BidirectionalTransformer
from tests.conftest import TINY_TF

STAND_IN = fid.FeatureExtractor(name="pooled-pixels-4x4", net=lambda x: F.adaptive_avg_pool2d(x, 4).flatten(1),
                                pixel_offset=128.0, pixel_scale=128.0)
COUNT = 18  # two test images per class


@pytest.fixture(scope="module")
def scorer():
    gt = load_test_batch(DEFAULT_ROOT, limit=COUNT)["gt"]
    labels = torch.arange(NUM_CLASSES).repeat(2)
    features = fid.inception_features(gt, progress=False, extractor=STAND_IN)
    probe = fit_probe(features, labels, STAND_IN.name)
    reference = fid.ReferenceStats(*fid.statistics(features), features)
    return GenerationScorer(reference, labels, probe, STAND_IN, progress=False), gt


@pytest.fixture
def conditional():
    torch.manual_seed(0)
    model = BidirectionalTransformer(replace(TINY_TF, num_classes=NUM_CLASSES)).eval()
    torch.nn.init.normal_(model.class_emb.weight)
    return model


def test_a_row_is_the_same_scores_as_computed_by_hand(scorer, tiny_tokenizer, conditional):
    scorer, _ = scorer
    settings = DecodeSettings(steps=2, guidance=2.0)
    (row,) = generation_rows(scorer, tiny_tokenizer, conditional, [settings], seed=3)
    labels = scorer.test_labels.sort().values
    images = generate_batched(tiny_tokenizer, conditional, labels, settings, seed=3, progress=False)
    features = fid.inception_features(images, progress=False, extractor=STAND_IN)
    assert row["method"] == "cosine T=2 retok×5 blur 0.5 w=2 τ 1 s 0.3" and row["guidance"] == 2.0
    assert row["fid"] == pytest.approx(fid.fid_from_features(features, scorer.reference.features))
    assert row["class_acc"] == pytest.approx(scorer.probe.accuracy(features, labels))


def test_the_unlabelled_baseline_runs_an_unconditional_model(scorer, tiny_tokenizer, tiny_model):
    scorer, _ = scorer
    (row,) = generation_rows(scorer, tiny_tokenizer, tiny_model, [replace(BASELINE, steps=2)], labelled=False)
    assert row["method"].startswith("no label, cosine T=2") and row["labelled"] is False
    assert 0.0 <= row["class_acc"] <= 1.0


def test_reference_rows_score_the_real_images_the_training_set_and_the_tokenizer(scorer, tiny_tokenizer):
    scorer, gt = scorer
    train_features = scorer.reference.features[::-1].copy()
    rows = reference_rows(scorer, tiny_tokenizer, gt, train_features, scorer.test_labels.flip(0))
    real, train, recon = rows
    assert real["fid"] is None and real["class_acc"] == scorer.probe.accuracy(scorer.reference.features, scorer.test_labels)
    assert train["fid"] == pytest.approx(0.0, abs=1e-6)  # the same features in another order
    assert recon["method"] == "tokenizer reconstruction" and recon["fid"] > 0
    assert "| real test images | – | – |" in markdown_table(rows)


def test_the_grid_covers_t_the_schedules_and_the_guidance_sweep():
    grid = generation_grid()
    cosine = [s.steps for s in grid if s.schedule == "cosine" and s.guidance == GENERATION.guidance]
    assert sorted(cosine) == [1, 4, 8, 12]
    assert {s.schedule for s in grid if s.steps == 8 and s.guidance == GENERATION.guidance} == set(SCHEDULES)
    assert GENERATION in grid and {s.guidance for s in grid} >= {0.0, 1.0, GENERATION.guidance}
    assert {s.guidance for s in grid if s.guidance != GENERATION.guidance} == {
        s.guidance for s in grid if (s.schedule, s.steps) == (GENERATION.schedule, GENERATION.steps) and s != GENERATION}
    assert all(replace(s, schedule=GENERATION.schedule, steps=GENERATION.steps, guidance=GENERATION.guidance) == GENERATION
               for s in grid)  # each row changes only the schedule, T or w
    assert len(grid) == len(set(grid))


def test_the_table_is_the_reference_rows_the_baseline_and_the_grid_in_that_order(scorer, tiny_tokenizer, conditional,
                                                                                   tiny_model):
    scorer, _ = scorer
    default = replace(GENERATION, steps=2)
    rows = generation_table(tiny_tokenizer, conditional, tiny_model, default=default, probe=scorer.probe,
                            extractor=STAND_IN, limit=COUNT, progress=False)
    grid = generation_grid(default)
    assert [row["method"] for row in rows[:4]] == ["real test images", "training set (data floor)", "tokenizer reconstruction",
                                                   "baseline: no label, cosine T=8 τ 4.5 s 1"]
    assert rows[3]["labelled"] is False and rows[3]["guidance"] == 1.0
    assert [(row["schedule"], row["steps"], row["guidance"]) for row in rows[4:]] == [
        (s.schedule, s.steps, s.guidance) for s in grid]
    assert all(row["labelled"] and row["temperature"] == GENERATION.temperature for row in rows[4:])
