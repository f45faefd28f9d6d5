"""Per-image evidence: neighbours, calibrated distances, pair measures and verdicts.

One row per query image, the same for generated samples, for held-out controls and for a
drawing in the web app, so a verdict means the same thing wherever it is shown.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from copyscope.audit_config import AuditConfig
from copyscope.data import ImageSet
from copyscope.detect import criteria
from copyscope.search import Neighbours
from copyscope.similarity import pair_measures


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


def verdicts(table: pd.DataFrame, cfg: AuditConfig) -> pd.DataFrame:
    """``table`` with ``copy_<criterion>`` for every criterion and ``is_copy`` for
    ``cfg.default``."""
    params = {"gu_threshold": cfg.gu_threshold, "heldout_q": cfg.heldout_q,
              "l2_threshold": cfg.l2_threshold}
    return criteria.apply(table, params, cfg.default)
