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

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from copyscope.data import ImageSet, load
from copyscope.models.classifier import Classifier, mnist_classifier, predict
from copyscope.records import QualityRecord
from copyscope.rundir import RunDir
from copyscope.tensors import to_nchw


def frechet_distance(model: Classifier, a: ImageSet, b: ImageSet, batch: int = 1000) -> float:
    """Fréchet distance between the classifier features of two image sets (Heusel et al. 2017)."""
    fd = FrechetInceptionDistance(feature=model.features, reset_real_features=False)
    with torch.inference_mode():
        for images, real in ((b, True), (a, False)):
            for s in range(0, len(images), batch):
                fd.update(to_nchw(images.images[s : s + batch]), real=real)
    return float(fd.compute())


def sample_quality(samples: str | Path | ImageSet, heldout: str | Path | ImageSet = "mnist:test",
                   model: Classifier | None = None) -> QualityRecord:
    """Class histogram, mean confidence and Fréchet distance to held-out images of a sample set."""
    model = model or mnist_classifier()
    s_set, h_set = load(samples), load(heldout)
    probs, _ = predict(model, s_set)
    counts = np.bincount(probs.argmax(1), minlength=10)
    return QualityRecord(
        n=len(s_set), class_histogram=counts.tolist(),
        class_fractions=(counts / len(s_set)).round(4).tolist(),
        mean_confidence=float(probs.max(1).mean()),
        frechet_distance=frechet_distance(model, s_set, h_set),
        classifier={"test_accuracy": model.test_accuracy, "features": "penultimate, 64-d"},
        samples_sha256=s_set.sha256,
        heldout=str(heldout) if isinstance(heldout, str | Path) else h_set.source)


def quality(run: str | Path, heldout: str = "mnist:test") -> QualityRecord:
    """The quality stage: ``run``'s samples judged by the classifier, written to quality.json
    (skipped when quality.json already holds these samples against this held-out set)."""
    rundir = RunDir(Path(run))
    samples = load(rundir.path)
    done = rundir.done(QualityRecord, {"samples": samples.sha256, "heldout": heldout})
    if done is not None:
        return done
    record = sample_quality(samples, heldout)
    rundir.write(record)
    return record


def heldout_floor(heldout: str | Path | ImageSet = "mnist:test",
                  model: Classifier | None = None) -> QualityRecord:
    """The same numbers for one half of the held-out set against the other: what real digits
    reach (the Fréchet distance of a finite sample is never 0)."""
    model = model or mnist_classifier()
    h_set = load(heldout)
    half = len(h_set) // 2
    return sample_quality(h_set.select(slice(half, None)), h_set.select(slice(None, half)), model)
