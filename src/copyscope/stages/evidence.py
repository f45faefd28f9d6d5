"""Per-image evidence: neighbours, calibrated distances, pair measures and verdicts.

One row per query image, the same for generated samples, for held-out controls and for a
drawing in the web app, so a verdict means the same thing wherever it is shown. A
:class:`Reference` holds what judging a new image needs (the training set and its exact search,
the held-out control, the audit's settings); the audit judges its samples with one, and the web
app judges a user's image with one rebuilt from a finished audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from copyscope.data import ImageSet
from copyscope.detect import calibration, criteria
from copyscope.search import Neighbours, Searcher
from copyscope.similarity import pair_measures
from copyscope.stages.audit_config import AuditConfig


@dataclass
class Reference:
    """The training set with its searcher, the held-out control, and the audit's settings.

    ``null_d2`` holds the exact squared nearest-training distance of every held-out image (the
    null distribution); ``train_knn_mean`` the mean normalised L2 of each training item to its
    n nearest other training items (the neighbourhood of Carlini et al.'s calibrated distance).
    """

    config: AuditConfig
    train: ImageSet
    searcher: Searcher
    heldout_searcher: Searcher
    null_d2: np.ndarray
    train_knn_mean: np.ndarray

    @property
    def k(self) -> int:
        return min(self.config.neighbours, len(self.train) - 1)

    def search(self, flat: np.ndarray) -> tuple[Neighbours, Neighbours]:
        """The k nearest training images and the nearest held-out image of each (M, D) query."""
        return (self.searcher.search(flat, self.k, show=False),
                self.heldout_searcher.search(flat, 1, show=False))

    def evidence(self, images: ImageSet, nb: Neighbours, near_heldout: Neighbours,
                 measures: bool = True) -> pd.DataFrame:
        """The audit's samples.parquet rows, verdicts included, for searched images."""
        p = calibration.heldout_p(nb.d2[:, 0], self.null_d2)
        table = evidence_table(images, nb, near_heldout, self.train, self.train_knn_mean, p,
                               self.config, "sample", measures)
        return criteria.apply(table, self.config)

    def judge(self, images: ImageSet, measures: bool = True) -> tuple[pd.DataFrame, Neighbours]:
        """Search and judge new images exactly as the audit judges its samples."""
        nb, near_heldout = self.search(images.flat)
        return self.evidence(images, nb, near_heldout, measures), nb


def evidence_table(images: ImageSet, nb: Neighbours, nb_heldout: Neighbours, train: ImageSet,
                   train_knn_mean: np.ndarray, heldout_p: np.ndarray, cfg: AuditConfig,
                   id_column: str, measures: bool = True) -> pd.DataFrame:
    """One row per query image: neighbours, calibrated distances and pair measures.

    ``measures=False`` leaves out the pair measures (no criterion reads them), for a caller that
    measures the image against more neighbours than the nearest anyway (the app's query).
    """
    l2 = nb.l2
    nn = nb.index[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        gu = l2[:, 0] / l2[:, 1]
        carlini = l2[:, 0] / (cfg.alpha * train_knn_mean[nn])
        carlini_sample = l2[:, 0] / (cfg.alpha * l2.mean(axis=1))
    table: dict[str, Any] = {id_column: np.arange(len(images))}
    if images.names is not None:
        table["name"] = images.names
    if images.labels is not None:
        table["label"] = images.labels
    table |= {
        "nn_train": nn,
        "nn_label": train.labels[nn] if train.labels is not None else np.full(len(nn), -1),
        "nn_l2": l2[:, 0],
        "nn2_train": nb.index[:, 1],
        "nn2_l2": l2[:, 1],
        "gu_ratio": gu,
        "carlini": carlini,
        "carlini_sample": carlini_sample,
        "heldout_p": heldout_p,
        "nn_heldout": nb_heldout.index[:, 0],
        "nn_heldout_l2": nb_heldout.l2[:, 0],
    }
    if measures:
        table |= pair_measures(images.images, train.images[nn], nb.d2[:, 0])
    return pd.DataFrame(table)
