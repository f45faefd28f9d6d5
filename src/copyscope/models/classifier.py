"""A small MNIST classifier, trained with the project's own code, that judges sample quality.

It tells a model producing noise apart from one that does not copy: the class histogram and the
classifier's confidence on samples, and a Fréchet distance in its feature space
(:mod:`copyscope.stages.quality`). Two 3x3 convolution + max-pool stages and a 64-unit feature
layer in the LeNet tradition (LeCun, Bottou, Bengio & Haffner 1998); one epoch of Adam on the 60,000
training digits reaches about 98% test accuracy. Trained weights are cached under
``$COPYSCOPE_HOME`` keyed by the training data and settings, so it trains once per machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from copyscope.cache import cached_arrays
from copyscope.data import ImageSet, load
from copyscope.models.base import to_unit
from copyscope.progress import bar
from copyscope.seeds import derived_seed, epoch_batches
from copyscope.tensors import to_nchw

FEATURES = 64


@dataclass(frozen=True)
class ClassifierConfig:
    train: str = "mnist:train"
    test: str = "mnist:test"
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


class Features(nn.Module):
    """uint8 (N, 1, 28, 28) -> (N, 64) penultimate-layer features."""

    num_features = FEATURES

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURES), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(to_unit(x))


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = Features()
        self.head = nn.Linear(FEATURES, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def mnist_classifier(config: ClassifierConfig | None = None, show: bool = True) -> Classifier:
    """The trained classifier (eval mode), trained on first use and cached."""
    cfg = config or ClassifierConfig()
    train_set = load(cfg.train)
    key = {"config": asdict(cfg), "train": train_set.sha256, "version": 1}
    weights = cached_arrays("classifier", key, lambda: _train(train_set, cfg, show))
    model = Classifier()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()
                           if k != "test_accuracy"})
    model.test_accuracy = float(weights["test_accuracy"])
    return model.eval()


def predict(model: Classifier, images: ImageSet, batch: int = 1000
            ) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, 10) and features (N, 64) of uint8 images."""
    probs, feats = [], []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = to_nchw(images.images[s : s + batch])
            f = model.features(x)
            probs.append(model.head(f).softmax(1).numpy())
            feats.append(f.numpy())
    return np.concatenate(probs), np.concatenate(feats)


def _train(train_set: ImageSet, cfg: ClassifierConfig, show: bool) -> dict[str, np.ndarray]:
    torch.manual_seed(derived_seed(cfg.seed))
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x = to_nchw(train_set.images)
    y = torch.from_numpy(train_set.labels.copy())
    batches = [epoch_batches(len(x), cfg.batch_size, cfg.seed, e) for e in range(cfg.epochs)]
    progress = bar(sum(map(len, batches)), desc="train MNIST classifier", show=show, unit="step")
    for epoch_batches_ in batches:
        for idx in epoch_batches_:
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            progress.update()
    progress.close()
    model.eval()
    test = load(cfg.test)
    probs, _ = predict(model, test)
    accuracy = float((probs.argmax(1) == test.labels).mean())
    return {**{k: v.numpy() for k, v in model.state_dict().items()},
            "test_accuracy": np.asarray(accuracy)}
