"""Dataset-wide trends per training item: which training images get copied, how often, and why.

All counts come from the audit's tables; nothing is searched again. Every rate is given beside
the same rate measured on the held-out control (real images the model never saw), so a pattern
that unseen data shows too is not mistaken for memorisation.

- :func:`concentration`: how unevenly samples spread over the training items (Gini, top-k).
- :func:`count_distribution`: how many training items have exactly c samples nearest (the tail).
- :func:`by_class`: per class of the nearest training item.
- :func:`outlierness`: per decile of the item's mean distance to its k nearest other training
  items. Carlini et al. (2023), *Extracting Training Data from Diffusion Models*,
  report that outliers are memorised more.
- :func:`duplication`: per bin of the item's distance to its nearest other training item;
  the first bin holds the near-duplicates (closer than the held-out criterion's threshold).
- :func:`associations`: Mann-Whitney tests of those two item properties among copied items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from copyscope.analysis.audited import AuditedRun
from copyscope.detect.calibration import rate

TOP_K = (1, 10, 100)
PROPERTIES = {
    "knn_mean_l2": "outlierness: mean normalised L2 to the k nearest other training images",
    "nn_other_l2": "near-duplication: normalised L2 to the nearest other training image",
}


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when even, towards 1 when concentrated.

    G = sum_i (2i - n - 1) x_(i) / (n sum x) over the counts sorted ascending (i = 1..n), the
    sample Gini of Gini (1912) in the form of Damgaard & Weiner (2000). NaN when all are zero.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def concentration(run: AuditedRun, criterion: str | None = None, seed: int = 0) -> pd.DataFrame:
    """How unevenly generated samples (and copies) spread over the training items.

    One row per set of "draws" that each point at one training item: the samples' nearest items,
    the flagged copies' items, and the held-out images' nearest items (the control). Columns:
    ``draws``, ``distinct_items``, ``max_count``, ``gini`` over all training items and
    ``top_<k>``, the share of draws that go to the k most-hit items. Gini and top-k depend on the
    number of draws, so when samples and held-out images differ in number, the larger set is also
    given at the smaller set's size, subsampled without replacement with ``seed``.
    """
    name = run.criterion(criterion)
    n_items = len(run.items)
    s_nn = run.samples["nn_train"].to_numpy()
    h_nn = run.controls["nn_train"].to_numpy()
    sets = {
        "samples: nearest item": s_nn,
        f"samples: copies ({name})": s_nn[run.samples[f"copy_{name}"].to_numpy()],
        "held-out: nearest item (control)": h_nn,
    }
    m = min(len(s_nn), len(h_nn))
    rng = np.random.default_rng(seed)
    if len(s_nn) > m:
        sets[f"samples: nearest item, {m:,} drawn"] = rng.choice(s_nn, m, replace=False)
    if len(h_nn) > m:
        sets[f"held-out: nearest item, {m:,} drawn (control)"] = rng.choice(h_nn, m, replace=False)
    rows = []
    for label, nn in sets.items():
        counts = np.bincount(nn, minlength=n_items)
        top = np.sort(counts)[::-1]
        row = {"set": label, "draws": len(nn), "distinct_items": int((counts > 0).sum()),
               "max_count": int(top[0]) if len(top) else 0, "gini": gini(counts)}
        for k in TOP_K:
            row[f"top_{k}"] = float(top[:k].sum() / len(nn)) if len(nn) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def count_distribution(run: AuditedRun, criterion: str | None = None) -> pd.DataFrame:
    """Number of training items with exactly ``count`` samples / copies / held-out images nearest.

    The heavy tail: with no memorisation, samples land on training items roughly as often as
    unseen real images do; a model that regenerates particular items puts many samples on them.
    """
    name = run.criterion(criterion)
    items = run.items
    columns = {"samples_nearest": items["n_nearest"], f"copies_{name}": items[f"n_copies_{name}"],
               "heldout_nearest": items["n_heldout_nearest"]}
    top = int(max(c.max() for c in columns.values()))
    table = {"count": np.arange(top + 1)}
    for col, values in columns.items():
        table[f"items_{col}"] = np.bincount(values.to_numpy(), minlength=top + 1)
    return pd.DataFrame(table)


def by_class(run: AuditedRun, criterion: str | None = None) -> pd.DataFrame:
    """Per class of the nearest training item: where samples land and how often they are copies.

    Generated samples carry no label, so each sample is placed in the class of its nearest
    training image, and so is each held-out image (the control). ``copy_rate`` is the share of
    the samples landing in the class that are flagged, ``heldout_fpr`` the share of held-out
    images landing there that are flagged, each with a Wilson 95% interval. Empty when the
    training set has no labels.
    """
    name = run.criterion(criterion)
    if "label" not in run.items:
        return pd.DataFrame()
    train_labels = run.items["label"].to_numpy()
    rows = []
    for c in np.unique(train_labels):
        s = run.samples[run.samples["nn_label"] == c]
        h = run.controls[run.controls["nn_label"] == c]
        rows.append({"class": int(c), "train_items": int((train_labels == c).sum()),
                     **_landing(s, h, name, len(run.samples), len(run.controls))})
    table = pd.DataFrame(rows)
    table.insert(2, "share_train", table["train_items"] / len(train_labels))
    return table


def outlierness(run: AuditedRun, criterion: str | None = None, bins: int = 10) -> pd.DataFrame:
    """Per decile of training-item outlierness (``knn_mean_l2`` in items.parquet).

    Outlierness is the item's mean normalised L2 to its k nearest other training images (k is
    the audit's ``neighbours``), the neighbourhood Carlini et al. (2023) use to calibrate their
    distance. Note that the ``carlini`` criterion divides by this very quantity, so it flags
    samples near outliers more easily by construction; the control column shows how much.
    """
    values = run.items["knn_mean_l2"].to_numpy()
    edges = np.quantile(values, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    return _by_bins(run, which, edges[:-1], edges[1:], run.criterion(criterion))


def duplication(run: AuditedRun, criterion: str | None = None, bins: int = 10) -> pd.DataFrame:
    """Per bin of in-dataset near-duplication (``nn_other_l2``: distance to the nearest other item).

    The first bin holds the training items whose nearest other training image lies closer than
    the held-out criterion's threshold, i.e. pairs inside the training set that would be flagged
    as a copy of each other (``near_duplicate`` is True); the rest are split at the deciles.
    """
    values = run.items["nn_other_l2"].to_numpy()
    t = run.heldout_threshold
    deciles = np.quantile(values, np.linspace(0, 1, bins + 1))
    upper = np.unique(np.concatenate([[t], deciles[deciles > t]]))
    if len(upper) == 1:
        upper = np.array([t, t])
    above = np.clip(np.searchsorted(upper, values, side="right") - 1, 0, len(upper) - 2)
    which = np.where(values < t, 0, 1 + above)
    table = _by_bins(run, which, np.concatenate([[0.0], upper[:-1]]),
                     np.concatenate([[t], upper[1:]]), run.criterion(criterion))
    table.insert(3, "near_duplicate", table["bin"] == 0)
    return table


def associations(run: AuditedRun, criterion: str | None = None) -> pd.DataFrame:
    """Are copied training items more outlying / more duplicated than the rest?

    For each item property (:data:`PROPERTIES`) and each set of flagged items (the items copied by
    samples, and the items that held-out images are falsely flagged against, the control), a
    two-sided Mann-Whitney U test of the property among those items against all other training
    items. ``auc`` = U / (n1 n2) is the probability that a flagged item has the larger value than
    a random other item (0.5: no association). NaN where no item is flagged. The p-value is the
    normal approximation with tie correction: the exact null distribution costs time that grows
    with the 60,000 other items and is not needed at that size.
    """
    name = run.criterion(criterion)
    items = run.items
    flagged = {
        "samples: copied items": np.unique(
            run.samples.loc[run.samples[f"copy_{name}"], "nn_train"].to_numpy()),
        "held-out: falsely flagged items (control)": np.unique(
            run.controls.loc[run.controls[f"copy_{name}"], "nn_train"].to_numpy()),
    }
    rows = []
    for prop, meaning in PROPERTIES.items():
        values = items[prop].to_numpy()
        for label, index in flagged.items():
            inside = np.zeros(len(values), dtype=bool)
            inside[index] = True
            row = {"property": prop, "meaning": meaning, "set": label,
                   "flagged_items": int(inside.sum()), "median_flagged": float("nan"),
                   "median_all": float(np.median(values)), "auc": float("nan"),
                   "p_value": float("nan")}
            if 0 < inside.sum() < len(values):
                test = mannwhitneyu(values[inside], values[~inside], alternative="two-sided",
                                    method="asymptotic")
                row |= {"median_flagged": float(np.median(values[inside])),
                        "auc": float(test.statistic / (inside.sum() * (~inside).sum())),
                        "p_value": float(test.pvalue)}
            rows.append(row)
    return pd.DataFrame(rows)


def _by_bins(run: AuditedRun, which: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             name: str) -> pd.DataFrame:
    """Per bin of training items (``which[i]`` is item i's bin, covering ``[lo, hi)``)."""
    s_bin = which[run.samples["nn_train"].to_numpy()]
    h_bin = which[run.controls["nn_train"].to_numpy()]
    rows = []
    for b in range(len(lo)):
        s, h = run.samples[s_bin == b], run.controls[h_bin == b]
        rows.append({"bin": b, "lo": float(lo[b]), "hi": float(hi[b]),
                     "train_items": int((which == b).sum()),
                     **_landing(s, h, name, len(run.samples), len(run.controls))})
    table = pd.DataFrame(rows)
    table.insert(4, "share_train", table["train_items"] / len(which))
    return table


def _landing(s: pd.DataFrame, h: pd.DataFrame, name: str, n_s: int, n_h: int) -> dict:
    """Samples and held-out images landing in a group of training items, and their flag rates."""
    copies = rate(s[f"copy_{name}"].to_numpy())
    fpr = rate(h[f"copy_{name}"].to_numpy())
    return {
        "samples": len(s), "share_samples": len(s) / n_s,
        "heldout": len(h), "share_heldout": len(h) / n_h,
        "copies": copies["count"], "copy_rate": copies["rate"],
        "copy_ci_low": copies["ci95"][0], "copy_ci_high": copies["ci95"][1],
        "heldout_flagged": fpr["count"], "heldout_fpr": fpr["rate"],
        "fpr_ci_low": fpr["ci95"][0], "fpr_ci_high": fpr["ci95"][1],
    }
