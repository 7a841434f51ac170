"""How good is a generator? One table, every row scored the same way against the whole test set.

A row generates as many images as the test set holds, with the test set's classes (so the class
mix is the same as the images they are compared with; one seeded stream, seed 0), and scores:
FID and KID against the test images (the same Inception features for every row) and class
accuracy, the share of images that the class probe (``probe``) assigns to the class asked for.

Reference rows: the real test images (the probe's own accuracy, the bar for class accuracy),
the training images against the test images (the data floor: two samples of the same
distribution), and the tokenizer's reconstruction of the test images (the best a generator over
these tokens could do). The baseline row is the unconditional transformer at MaskGIT's setting,
given no label.
"""

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from maskgit_lab.classes import labels_of_test_set
from maskgit_lab.data import DEFAULT_ROOT, load_test_batch
from maskgit_lab.decoding import GENERATION, DecodeSettings
from maskgit_lab.fid import ReferenceStats, fid_from_features, kid, load_extractor
from maskgit_lab.generate import generate_batched, labels_like_test
from maskgit_lab.probe import SHIPPED_PROBE, ClassProbe, load_probe
from maskgit_lab.quality import cached_features, reconstruct, reference_for
from maskgit_lab.schedules import SCHEDULES
from maskgit_lab.train import load_images

BASELINE = DecodeSettings(temperature=4.5, sample_temperature=1.0, retokenize=0, blur=0.0)  # MaskGIT's τ, s, T = 8; no label


@dataclass
class GenerationScorer:
    """Scores generated images (M, 3, S, S) against the test set's features and classes."""

    reference: ReferenceStats
    test_labels: torch.Tensor  # (M,) the class of each test image
    probe: ClassProbe
    extractor: Optional[object] = None
    progress: bool = True
    seen: dict = field(default_factory=dict, repr=False)  # image-set hash → features

    def features(self, images: torch.Tensor) -> np.ndarray:
        return cached_features(self.seen, images, self.extractor, self.progress)

    def score_features(self, name: str, features: np.ndarray, labels: torch.Tensor, **extra) -> dict:
        kid_mean, _ = kid(features, self.reference.features)
        return {"method": name, "fid": fid_from_features(features, self.reference.features), "kid": kid_mean,
                "class_acc": self.probe.accuracy(features, labels), **extra}

    def __call__(self, name: str, images: torch.Tensor, labels: torch.Tensor, **extra) -> dict:
        return self.score_features(name, self.features(images), labels, **extra)


def reference_rows(scorer: GenerationScorer, tokenizer, test_images: torch.Tensor,
                   train_features: np.ndarray, train_labels: torch.Tensor) -> list:
    """The real test images (class accuracy only), the training set, and the tokenizer's reconstruction."""
    real = {"method": "real test images", "fid": None, "kid": None,
            "class_acc": scorer.probe.accuracy(scorer.reference.features, scorer.test_labels)}
    labelled = train_labels < scorer.probe.weight.shape[1]  # the probe's classes: unlabelled images left out
    train = scorer.score_features("training set (data floor)", train_features[labelled.numpy()], train_labels[labelled])
    return [real, train, scorer("tokenizer reconstruction", reconstruct(tokenizer, test_images), scorer.test_labels)]


def generation_rows(scorer: GenerationScorer, tokenizer, model, settings: Sequence[DecodeSettings], seed: int = 0,
                    batch_size: int = 64, labelled: bool = True, count: Optional[int] = None) -> list:
    """One row per setting: ``count`` images (default: as many as the test set) of classes in the test
    set's proportions (or, without ``labelled``, as many with no label, scored against those classes)."""
    labels = labels_like_test(scorer.test_labels, count or scorer.test_labels.shape[0])  # (M,) grouped by class
    rows = []
    for setting in tqdm(settings, desc="settings", disable=not scorer.progress, delay=0.5):
        images = generate_batched(tokenizer, model, labels if labelled else labels.shape[0], setting, batch_size, seed,
                                  progress=False)
        noise = f"τ {setting.temperature:g} s {setting.sampling}"
        name = f"{setting.label} {noise}" if labelled else f"no label, {setting.label} {noise}"
        rows.append(scorer(name, images, labels, labelled=labelled, **asdict(setting)))
    return rows


def generation_grid(default: DecodeSettings = GENERATION, steps=(1, 4, 8, 12), compared_at: int = 8,
                    guidance=(0.0, 1.0)) -> list:
    """The table's settings, each the default with one thing changed: cosine at each T, the other
    schedules at T = ``compared_at``, the default itself, and a sweep of the guidance w at the default
    (0: the same model given no label; 1: no guidance)."""
    grid = [replace(default, schedule="cosine", steps=t) for t in steps]
    grid += [replace(default, schedule=name, steps=compared_at) for name in SCHEDULES if name != "cosine"]
    grid += [] if default in grid else [default]
    grid += [replace(default, guidance=w) for w in guidance if w != default.guidance]
    return grid


def generation_table(tokenizer, model, baseline, data_root=DEFAULT_ROOT, default: DecodeSettings = GENERATION,
                     probe: Optional[ClassProbe] = None, extractor=None, limit: Optional[int] = None,
                     progress: bool = True) -> list:
    """Every row of the table, scored against the test set (its first ``limit`` images): the
    reference rows, the baseline (``baseline``: a transformer given no label, at ``BASELINE``) and
    ``model``'s rows for ``generation_grid(default)``. ``probe``: the shipped one by default."""
    extractor = extractor or load_extractor()
    test = load_test_batch(data_root, limit, needs_gt="so generated images have nothing to be compared with")
    scorer = GenerationScorer(reference_for(test, data_root, limit, extractor),
                              labels_of_test_set(data_root, test["gt"].shape[0]),
                              probe or load_probe(SHIPPED_PROBE, extractor.name), extractor, progress)
    train_images, train_labels = load_images(data_root, "train", labels=True)
    rows = reference_rows(scorer, tokenizer, test["gt"], scorer.features(train_images), train_labels)
    (base,) = generation_rows(scorer, tokenizer, baseline, [BASELINE], labelled=False)
    rows.append({**base, "method": f"baseline: {base['method']}"})
    return rows + generation_rows(scorer, tokenizer, model, generation_grid(default))


def markdown_table(rows: list) -> str:
    lines = ["| method | FID ↓ | KID ↓ | class accuracy ↑ |", "|---|---|---|---|"]
    for row in rows:
        fid = "–" if row["fid"] is None else f"{row['fid']:.1f}"
        kid_text = "–" if row["kid"] is None else f"{row['kid']:.4f}"
        lines.append(f"| {row['method']} | {fid} | {kid_text} | {row['class_acc']:.3f} |")
    return "\n".join(lines)


def write_rows(rows: list, path) -> Path:
    Path(path).write_text(json.dumps(rows, indent=1) + "\n")
    return Path(path)
