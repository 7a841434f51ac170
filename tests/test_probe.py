"""The class probe: logistic regression on frozen features, checked against a brute-force fit."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from maskgit_lab import fid
from maskgit_lab import probe as probe_module
from maskgit_lab.classes import NUM_CLASSES, labels_for
from maskgit_lab.data import DEFAULT_ROOT, ImageFolder
from maskgit_lab.probe import ClassProbe, fit_probe, load_probe


def blobs(per_class=30, dim=12, seed=0, spread=0.3):
    """Separable features: one Gaussian blob per class around its own random centre."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(NUM_CLASSES, dim, generator=generator) * 3
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    features = centres[labels] + spread * torch.randn(labels.shape[0], dim, generator=generator)
    return features.numpy().astype(np.float64), labels


def test_a_fitted_probe_separates_separable_classes_and_ignores_unlabelled_rows():
    features, labels = blobs()
    with_null = torch.cat([labels, torch.full((5,), NUM_CLASSES)])
    noise = np.random.default_rng(0).normal(size=(5, features.shape[1])) * 50
    probe = fit_probe(np.concatenate([features, noise]), with_null, "stand-in")
    test_features, test_labels = blobs(per_class=10, seed=0)
    assert probe.accuracy(test_features, test_labels) == 1.0
    torch.testing.assert_close(probe.mean, torch.as_tensor(features, dtype=torch.float32).mean(0))


def test_the_fit_is_the_minimum_of_the_regularised_cross_entropy():
    features, labels = blobs(per_class=8, dim=5, spread=2.0)
    probe = fit_probe(features, labels, "stand-in", weight_decay=1e-2, steps=500)
    z = (torch.as_tensor(features, dtype=torch.float32) - probe.mean) / probe.std

    def objective(weight, bias):
        return F.cross_entropy(z @ weight + bias, labels) + 1e-2 * weight.square().sum()

    weight, bias = probe.weight.clone().requires_grad_(), probe.bias.clone().requires_grad_()
    objective(weight, bias).backward()
    # a stationary point of a strictly convex loss (L2 term) is its one minimum
    assert weight.grad.abs().max() < 1e-3 and bias.grad.abs().max() < 1e-3
    nudged = probe.weight + 1e-2 * torch.randn_like(probe.weight)
    assert objective(nudged, probe.bias).item() > objective(probe.weight, probe.bias).item()


def test_a_stored_probe_loads_for_its_own_extractor_only(tmp_path):
    features, labels = blobs(per_class=5)
    probe = fit_probe(features, labels, "stand-in")
    torch.save(probe.state(), tmp_path / "probe.pt")
    again = load_probe(tmp_path / "probe.pt", "stand-in")
    assert isinstance(again, ClassProbe) and torch.equal(again.predict(features), probe.predict(features))
    with pytest.raises(ValueError, match="was fitted to 'stand-in' features, not 'inception'"):
        load_probe(tmp_path / "probe.pt", "inception")


def test_the_recipe_fits_the_training_images_with_their_labels(monkeypatch):
    stand_in = fid.FeatureExtractor(name="pooled-2x2", net=lambda x: F.adaptive_avg_pool2d(x, 2).flatten(1),
                                    pixel_offset=128.0, pixel_scale=128.0)
    seen = {}
    monkeypatch.setattr(probe_module, "fit_probe", lambda features, labels, name: seen.update(n=len(features), labels=labels, name=name))
    probe_module.fit_to_training_set(extractor=stand_in, progress=False)
    names = [f.name for f in ImageFolder(DEFAULT_ROOT, "train").files]
    assert seen["n"] == len(names) and seen["name"] == "pooled-2x2"
    assert torch.equal(seen["labels"], labels_for(names, DEFAULT_ROOT))
