"""Data-copying statistics beyond per-sample verdicts.

``meehan_ct``: the C_T test of Meehan, Chaudhuri & Dasgupta (2020), "A Non-Parametric Test to
Detect Data-Copying in Generative Models", AISTATS. The instance space is cut into cells by
k-means on the training set. In each cell, the distances from held-out items (P_n) and from
generated samples (Q_m) to their nearest training item *in that cell* are compared with a
Mann-Whitney U test, Z-scored under the null as in the authors' code (mean nm/2 - 1/2 with the
continuity correction, variance nm(n+m+1)/12). C_T averages the cell Z-scores weighted by the
held-out share of each cell, over the cells holding more than ``min_cell_samples`` generated
samples (their tau). C_T << 0 means samples sit closer to the training set than unseen real data
does (data-copying); C_T >> 0 means under-fitting.

``item_copying``: a per-training-item score in the spirit of Bhattacharjee, Dasgupta & Chaudhuri
(2023), "Data-Copying in Generative Models: A Formal Framework", ICML: data-copying is the model
putting far more mass than the data distribution in a region close to a training point. The
region of item i is the set of points whose nearest training item is i and lies within radius r
(default: the held-out 5% quantile of nearest-training distance). With g_i generated samples
and h_i held-out items in it, the held-out mass is bounded conservatively by (h_i + 1)/(L + 1);
``copying_score`` is g_i/M divided by that bound, and ``copying_p`` the exact one-sided binomial
probability of at least g_i samples under it. An item is flagged when copying_p is below
alpha / N (Bonferroni over all N training items).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import binom, mannwhitneyu

from copyscope.search import Searcher


def zu(l_samples: np.ndarray, l_heldout: np.ndarray) -> float:
    """Meehan et al.'s Z-scored Mann-Whitney U of generated vs held-out distances."""
    m, n = len(l_samples), len(l_heldout)
    u = mannwhitneyu(l_samples, l_heldout, alternative="less").statistic
    return float((u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12))


def meehan_ct(
    train: np.ndarray, train_cells: np.ndarray,
    heldout: np.ndarray, heldout_cells: np.ndarray,
    samples: np.ndarray, sample_cells: np.ndarray,
    n_cells: int, min_cell_samples: int,
    make_searcher: Callable[[], Searcher],
) -> dict[str, object]:
    """C_T over k-means cells; all arrays flat uint8, cells as integer labels."""
    m, n = len(samples), len(heldout)
    per_cell = []
    for cell in range(n_cells):
        t, h, s = (train_cells == cell), (heldout_cells == cell), (sample_cells == cell)
        row = {"cell": cell, "n_train": int(t.sum()), "n_heldout": int(h.sum()),
               "n_samples": int(s.sum()), "z_u": None, "used": False}
        if row["n_samples"] > min_cell_samples and row["n_heldout"] > 0 and row["n_train"] > 0:
            searcher = make_searcher().fit(train[t])
            l_h = searcher.search(heldout[h], 1, show=False).d2[:, 0]
            l_s = searcher.search(samples[s], 1, show=False).d2[:, 0]
            row["z_u"] = zu(np.sqrt(l_s), np.sqrt(l_h))
            row["used"] = True
        per_cell.append(row)
    used = [r for r in per_cell if r["used"]]
    weights = np.array([r["n_heldout"] / n for r in used])
    c_t = float(weights @ np.array([r["z_u"] for r in used]) / weights.sum()) if used else None
    return {"C_T": c_t, "cells": n_cells, "cells_used": len(used),
            "samples_in_used_cells": sum(r["n_samples"] for r in used) / m if m else 0.0,
            "min_cell_samples": min_cell_samples, "n_samples": m, "n_heldout": n,
            "per_cell": per_cell}


def item_copying(
    n_items: int, sample_nn: np.ndarray, sample_d2: np.ndarray,
    heldout_nn: np.ndarray, heldout_d2: np.ndarray, radius_d2: float, alpha: float,
) -> dict[str, np.ndarray]:
    """Per training item: generated and held-out counts near it, score, p-value and flag."""
    m, n = len(sample_nn), len(heldout_nn)
    g = np.bincount(sample_nn[sample_d2 <= radius_d2], minlength=n_items)
    h = np.bincount(heldout_nn[heldout_d2 <= radius_d2], minlength=n_items)
    bound = (h + 1) / (n + 1)
    p = np.where(g > 0, binom.sf(g - 1, m, bound), 1.0)
    return {"near_samples": g, "near_heldout": h, "copying_score": (g / m) / bound,
            "copying_p": p, "copying_flag": (g > 0) & (p < alpha / n_items)}
