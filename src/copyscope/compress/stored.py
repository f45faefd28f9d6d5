"""What a model stores about each training item, in bits, and how well bits tell members apart.

**Stored bits** of a training item x (class c) are the bits the model saves on x against what it
needs for an unseen item of the same kind:

    stored(x) = E[ bits(x') | x' unseen, class c, complexity κ(x') = κ(x) ]  -  bits(x)

where bits is the model's code length (-log2 p, the ideal length; the coder's actual length is
within a few dozen bits of it per item) and κ is a model-independent complexity, a classical
compressor's bits for the item alone. The expectation is estimated from the held-out items by a
least-squares line per class, bits ≈ a_c + b_c κ, so an item is only credited with the bits it
saves beyond what its class and its plain compressibility explain.

This is a held-out-calibrated estimate of *counterfactual memorization* (Zhang, Ippolito, Lee,
Jagielski, Tramèr & Carlini 2023, *Counterfactual Memorization in Neural Language Models*): the
gain on x from having trained on x, here in bits. Morris, Sitawarin, Guo, Kokhlikyan, Suh, Rush,
Chaudhuri & Mahloujifar (2025), *How much do language models memorize?*, define unintended
memorization as bits under a reference model minus bits under the target, and measure a
capacity near 3.6 bits per parameter; the held-out line here takes the reference model's place
and needs no second model. The per-item ratio to a compressor follows Carlini, Tramèr, Wallace,
Jagielski, Herbert-Voss, Lee, Roberts, Brown, Song, Erlingsson, Oprea & Raffel (2021),
*Extracting Training Data from Large Language Models* (zlib calibration).

Uncertainty. For each item, ``stored_p`` is the share of held-out items (cross-fitted: their line
is fitted without them) that save at least as many bits by chance, a per-item p-value. For the
total over the training set, a bootstrap resamples the held-out items (refitting the lines) and
adds, per training item, a held-out residual drawn at random, because even an unseen x would
have landed off the line by its own residual: the interval covers both the calibration's error
and that chance.

What it assumes. The held-out items must come from the distribution the training items came
from: any systematic difference between the two sets is counted as storage. MNIST's test digits
were written by other people than its training digits, so for a model trained on a subset the
unseen rest of the training set (``--heldout mnist:train``) is the cleaner control; for the
60,000-image model only the test set remains. The line is linear in κ within each class: an
item far outside the held-out items' range of κ is extrapolated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

FOLDS = 10
BOOTSTRAP = 1000
MIN_K = 0.2  # Min-K% Prob's k (Shi et al. 2023 use 20%)


@dataclass(frozen=True)
class Line:
    """bits ≈ a[c] + b[c] * κ per class c, fitted on unseen items."""

    classes: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def predict(self, labels: np.ndarray, kappa: np.ndarray) -> np.ndarray:
        k = np.searchsorted(self.classes, labels).clip(0, len(self.classes) - 1)
        known = self.classes[k] == labels
        a = np.where(known, self.a[k], self.a.mean())  # a class without held-out items: the
        b = np.where(known, self.b[k], self.b.mean())  # classes' average line
        return a + b * kappa


def fit_line(labels: np.ndarray, kappa: np.ndarray, bits: np.ndarray) -> Line:
    classes = np.unique(labels)
    a, b = np.empty(len(classes)), np.empty(len(classes))
    for i, c in enumerate(classes):
        m = labels == c
        if m.sum() >= 3 and np.ptp(kappa[m]) > 0:
            b[i], a[i] = np.polyfit(kappa[m], bits[m], 1)
        else:
            b[i], a[i] = 0.0, bits[m].mean()
    return Line(classes, a, b)


@dataclass(frozen=True)
class Stored:
    """Per item (train rows, then held-out rows) and in total."""

    expected: np.ndarray
    """Bits an unseen item of the same class and complexity needs (cross-fitted for held-out)."""
    stored: np.ndarray
    """expected - bits: the bits the model saves on the item."""
    p: np.ndarray
    """Share of held-out items that save at least as many bits (per-item p-value)."""
    total: float
    total_ci: tuple[float, float]
    """95% bootstrap interval of the total over the training items."""
    residual_sd: float


def stored_bits(bits: np.ndarray, kappa: np.ndarray, labels: np.ndarray, is_train: np.ndarray,
                seed: int = 0) -> Stored:
    """Stored bits of every item (see the module docstring); held-out items get cross-fitted
    values, which should scatter around zero."""
    rng = np.random.default_rng([seed, 0x5707ED])
    held = np.flatnonzero(~is_train)
    train = np.flatnonzero(is_train)
    expected = np.empty(len(bits))
    expected[train] = fit_line(labels[held], kappa[held], bits[held]).predict(labels[train],
                                                                              kappa[train])
    folds = rng.permutation(len(held)) % FOLDS
    for f in range(FOLDS):
        out, fit = held[folds == f], held[folds != f]
        expected[out] = fit_line(labels[fit], kappa[fit], bits[fit]).predict(labels[out],
                                                                            kappa[out])
    stored = expected - bits
    chance = np.sort(stored[held])  # what unseen items save by chance
    p = (len(chance) - np.searchsorted(chance, stored, side="left") + 1) / (len(chance) + 1)
    residuals = bits[held] - expected[held]
    totals = np.empty(BOOTSTRAP)
    for r in range(BOOTSTRAP):
        pick = held[rng.integers(0, len(held), len(held))]
        line = fit_line(labels[pick], kappa[pick], bits[pick])
        luck = residuals[rng.integers(0, len(residuals), len(train))].sum()
        totals[r] = (line.predict(labels[train], kappa[train]) - bits[train]).sum() + luck
    lo, hi = np.percentile(totals, [2.5, 97.5])
    return Stored(expected, stored, p, float(stored[train].sum()), (float(lo), float(hi)),
                  float(residuals.std()))


def membership(score: np.ndarray, is_train: np.ndarray) -> dict[str, float]:
    """ROC AUC and TPR at 1% FPR of a score that is higher for members (train items)."""
    fpr, tpr, _ = roc_curve(is_train, score)
    return {"auc": float(roc_auc_score(is_train, score)),
            "tpr_at_1pct_fpr": float(tpr[np.searchsorted(fpr, 0.01, side="right") - 1])}


def min_k(pixel_bits: np.ndarray, k: float = MIN_K) -> np.ndarray:
    """Min-K% Prob (Shi, Ajith, Xia, Huang, Liu, Blevins, Chen & Zettlemoyer 2024, *Detecting
    Pretraining Data from Large Language Models*): the mean bits of an item's k% least likely
    symbols; (N, D) -> (N,). Lower means more likely a member."""
    count = max(1, round(k * pixel_bits.shape[1]))
    return -np.sort(-pixel_bits, axis=1)[:, :count].mean(axis=1)
