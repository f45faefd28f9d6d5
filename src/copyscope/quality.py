"""Sample quality, so that a model producing noise is not mistaken for one that does not copy.

A copy rate of zero means little if the samples are not digits. Three numbers from an MNIST
classifier trained with the project's own code (:mod:`copyscope.models.classifier`):

- the class histogram of the samples (a model that collapsed onto a few classes shows it);
- the mean classifier confidence (max softmax probability; noise scores low);
- the Fréchet distance between samples and held-out real images in the classifier's 64-d
  feature space: Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter (2017), *GANs Trained by a
  Two Time-Scale Update Rule Converge to a Local Nash Equilibrium* (FID), with the classifier's
  features in place of Inception's, computed by torchmetrics. The same distance between two
  halves of the held-out set is reported as the floor that real data reaches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from copyscope.data import ImageSet, load
from copyscope.models.classifier import Classifier, mnist_classifier, predict


def frechet_distance(model: Classifier, a: ImageSet, b: ImageSet, batch: int = 1000) -> float:
    """Fréchet distance between the classifier features of two image sets (Heusel et al. 2017)."""
    fd = FrechetInceptionDistance(feature=model.features, reset_real_features=False)
    with torch.inference_mode():
        for images, real in ((b, True), (a, False)):
            for s in range(0, len(images), batch):
                x = torch.from_numpy(np.moveaxis(images.images[s : s + batch], -1, 1).copy())
                fd.update(x, real=real)
    return float(fd.compute())


def sample_quality(samples: str | Path | ImageSet, heldout: str | Path | ImageSet = "mnist:test",
                   model: Classifier | None = None) -> dict[str, Any]:
    """Class histogram, mean confidence and Fréchet distance to held-out images of a sample set."""
    model = model or mnist_classifier()
    s_set, h_set = load(samples), load(heldout)
    probs, _ = predict(model, s_set)
    counts = np.bincount(probs.argmax(1), minlength=10)
    return {
        "n": len(s_set),
        "class_histogram": counts.tolist(),
        "class_fractions": (counts / len(s_set)).round(4).tolist(),
        "mean_confidence": float(probs.max(1).mean()),
        "frechet_distance": frechet_distance(model, s_set, h_set),
        "classifier": {"test_accuracy": model.test_accuracy, "features": "penultimate, 64-d"},
    }


def heldout_floor(heldout: str | Path | ImageSet = "mnist:test",
                  model: Classifier | None = None) -> dict[str, Any]:
    """The same numbers for one half of the held-out set against the other: what real digits
    reach (the Fréchet distance of a finite sample is never 0)."""
    model = model or mnist_classifier()
    h_set = load(heldout)
    half = len(h_set) // 2
    return sample_quality(h_set.select(slice(half, None)), h_set.select(slice(None, half)), model)
