"""A class probe: does a generated image show the class it was asked for?

A linear classifier (multinomial logistic regression) on the Inception pool features that FID
uses, trained on the training images and their labels (``classes``), standardised by the
training features' mean and spread. Scored on the real test images, it gives the accuracy that
generated images are compared with: a generator whose pictures the probe recognises as often
as real ones draws its classes as well as the data does. This is the probe-on-frozen-features
protocol of representation learning (e.g. Alain & Bengio 2016), with the FID network as the
frozen one, so no second network is needed.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch.nn import functional as F

from maskgit_lab.checkpoint import SHIPPED_CHECKPOINTS
from maskgit_lab.classes import NUM_CLASSES
from maskgit_lab.data import DEFAULT_ROOT
from maskgit_lab.fid import FeatureExtractor, inception_features, load_extractor
from maskgit_lab.train import load_images

SHIPPED_PROBE = SHIPPED_CHECKPOINTS / "class_probe.pt"  # fitted to the Inception features of the training images


@dataclass
class ClassProbe:
    """Features (M, D) → class logits (M, C): ((x − mean) / std) · weight + bias."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    weight: torch.Tensor  # (D, C)
    bias: torch.Tensor  # (C,)
    extractor: str  # the feature extractor's name: features of another network do not fit

    def logits(self, features) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        return ((x - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, features) -> torch.Tensor:
        return self.logits(features).argmax(dim=1)

    def accuracy(self, features, labels: torch.Tensor) -> float:
        """Share of the images whose predicted class is their label."""
        return (self.predict(features) == labels).float().mean().item()

    def state(self) -> dict:
        return {"mean": self.mean, "std": self.std, "weight": self.weight, "bias": self.bias, "extractor": self.extractor}


def fit_probe(features, labels: torch.Tensor, extractor: str, weight_decay: float = 0.1, steps: int = 200) -> ClassProbe:
    """Fit the probe to labelled features (M, D) by full-batch L-BFGS on the L2-regularised cross-entropy.

    Rows with the null label (unlabelled categories) are left out. The default ``weight_decay`` scored
    best on a fifth of the training groups held out (0.855; 1e-4 … 3: 0.846 … 0.753; data/checkpoints/README.md).
    """
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    keep = labels < NUM_CLASSES
    x, y = x[keep], labels[keep]
    mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-6)
    z = (x - mean) / std  # (M, D)
    weight = torch.zeros(z.shape[1], NUM_CLASSES, requires_grad=True)
    bias = torch.zeros(NUM_CLASSES, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight + bias, y) + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return ClassProbe(mean, std, weight.detach(), bias.detach(), extractor)


def load_probe(path, extractor: str) -> ClassProbe:
    """The probe stored at ``path``; refused when it was fitted to another extractor's features."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["extractor"] != extractor:
        raise ValueError(f"{path} was fitted to {state['extractor']!r} features, not {extractor!r}; "
                         f"fit it again with maskgit_lab.probe.fit_probe")
    return ClassProbe(**state)


def fit_to_training_set(data_root=DEFAULT_ROOT, extractor: Optional[FeatureExtractor] = None, progress: bool = True) -> ClassProbe:
    """The shipped probe's recipe: the training images' Inception features and labels, ``fit_probe``'s defaults."""
    extractor = extractor or load_extractor()
    images, labels = load_images(data_root, "train", labels=True)
    return fit_probe(inception_features(images, progress=progress, extractor=extractor), labels, extractor.name)
