"""The study's answer across runs: effective model memorization and contrasts between settings.

:func:`emm` follows Gu, Du, Pang, Li, Lin & Wang (2023), *On Memorization in Diffusion Models*
(TMLR 2025), Sec. 3: the effective model memorization of a model and training procedure is the
largest training-set size |D| at which the memorization ratio (the share of generated samples
flagged) is at least 1 - epsilon, with epsilon = 0.1. A study trains on a grid of sizes, so EMM is
bracketed: at least the largest size on the grid that reaches 90%, below the next size that does
not. Gu et al. flag with their nearest / second-nearest ratio (the ``gu`` criterion); any criterion
of the table can be used, and the held-out false-positive rate says what each one costs.

:func:`contrasts` compares two model settings trained on the same number of images (a GAN against
a diffusion model, dropout against none): the copy counts in a two-sided Fisher exact test, each
rate with its Wilson 95% interval (as the audit computes them), and Holm's correction over all the
contrasts of the table, since many are read together.

:func:`rise` asks whether a setting's copy rate *rises* with the training-set size, which
memorization should not do: every pair of sizes with a higher rate at the larger one is tested
one-sided (Fisher exact, more copies at the larger size), Holm-adjusted over the setting's pairs.
With a criterion calibrated to a false-positive rate, a model that copies nothing still has a
flag now and then (0.1% of 200 samples: 0.2 flags on average), so "the rate is higher" and "the
rate rises beyond chance" are told apart.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from copyscope.analysis.trends import series

EPSILON = 0.1


def emm(table: pd.DataFrame, criterion: str, epsilon: float = EPSILON) -> pd.DataFrame:
    """One row per model setting: the EMM bracket (``emm_at_least``, ``emm_below``) under
    ``criterion`` from :func:`copyscope.analysis.trends.compare`'s table, each size's last
    checkpoint. ``emm_at_least`` is None when no size reaches 1 - epsilon, ``emm_below`` None
    when every size does."""
    rows = []
    for label, line in series(table, "train_size", criterion).items():
        line = line.sort_values("train_size")
        sizes = line["train_size"].astype(int).to_numpy()
        met = line["copy_rate"].to_numpy() >= 1 - epsilon
        reached = sizes[met]
        at_least = int(reached.max()) if len(reached) else None
        above = sizes[(sizes > (at_least or 0)) & ~met]
        best = line.loc[line["copy_rate"].idxmax()]
        up = rise(line)
        rows.append({**up,
            "setting": label, "criterion": criterion, "threshold": 1 - epsilon,
            "sizes": ", ".join(f"{s:,}" for s in sizes), "emm_at_least": at_least,
            "emm_below": int(above.min()) if len(above) else None,
            "monotone": up["rise_sizes"] is None,
            "max_rate": float(best["copy_rate"]), "max_rate_size": int(best["train_size"])})
    return pd.DataFrame(rows, dtype=object)


def emm_sentence(row: dict[str, Any]) -> str:
    """One setting's EMM bracket and trend in words."""
    pct = f"{100 * row['threshold']:.0f}%"
    if row["emm_at_least"] is None:
        bracket = (f"no training-set size reaches {pct} flagged (most: "
                   f"{100 * row['max_rate']:.1f}% at {_images(row['max_rate_size'])}), so its "
                   "EMM lies below the smallest size trained")
    elif row["emm_below"] is None:
        bracket = f"every training-set size trained reaches {pct} flagged"
    else:
        bracket = (f"at least {pct} of samples are flagged up to {_images(row['emm_at_least'])} "
                   f"but not at {row['emm_below']:,}: its EMM lies between them")
    if row["monotone"]:
        trend = "the copy rate never rises with more training images"
    else:
        verdict = "beyond chance" if row["rises_significantly"] else "within chance"
        trend = (f"the copy rate rises from {100 * row['rise_rates'][0]:.1f}% at "
                 f"{row['rise_sizes'][0]:,} to {100 * row['rise_rates'][1]:.1f}% at "
                 f"{row['rise_sizes'][1]:,} images, {verdict} (one-sided Fisher exact test, "
                 f"Holm p = {row['rise_p']:.2g})")
    return f"{row['setting']}: {bracket}; {trend} (sizes {row['sizes']})."


def rise(line: pd.DataFrame, alpha: float = 0.05) -> dict[str, Any]:
    """Whether one setting's copy rate rises with the training-set size (``line``: one row per
    size with ``copies`` and ``n_samples``). Every pair of sizes a < b with a higher rate at b gets
    a one-sided Fisher exact test (more copies at b), Holm-adjusted over those pairs; returns the
    pair with the smallest adjusted p (``rise_sizes``, ``rise_rates``, ``rise_p``; None where the
    rate never rises) and ``rises_significantly`` at ``alpha``."""
    from scipy.stats import fisher_exact

    rows = line.sort_values("train_size").to_dict("records")
    pairs = [(a, b) for a, b in itertools.combinations(rows, 2)
             if b["copies"] / b["n_samples"] > a["copies"] / a["n_samples"]]
    if not pairs:
        return {"rise_sizes": None, "rise_rates": None, "rise_p": None,
                "rises_significantly": False}
    p = holm(np.array([fisher_exact([[b["copies"], b["n_samples"] - b["copies"]],
                                     [a["copies"], a["n_samples"] - a["copies"]]],
                                    alternative="greater").pvalue for a, b in pairs]))
    a, b = pairs[int(np.argmin(p))]
    return {"rise_sizes": (int(a["train_size"]), int(b["train_size"])),
            "rise_rates": (a["copies"] / a["n_samples"], b["copies"] / b["n_samples"]),
            "rise_p": float(p.min()), "rises_significantly": bool(p.min() < alpha)}


def _images(n: int) -> str:
    return "1 training image" if n == 1 else f"{n:,} training images"


def contrasts(table: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """Every pair of model settings at every training-set size both were trained on: copy rates
    with Wilson intervals, the difference, and a two-sided Fisher exact test (Holm-adjusted)."""
    from scipy.stats import fisher_exact

    lines = series(table, "train_size", criterion)
    rows = []
    for (a, la), (b, lb) in itertools.combinations(lines.items(), 2):
        both = la.merge(lb, on="train_size", suffixes=("_a", "_b"))
        for r in both.to_dict("records"):
            p = fisher_exact([[r["copies_a"], r["n_samples_a"] - r["copies_a"]],
                              [r["copies_b"], r["n_samples_b"] - r["copies_b"]]]).pvalue
            rows.append({
                "train_size": int(r["train_size"]), "a": a, "b": b, "criterion": criterion,
                **{f"{k}_{s}": r[f"{k}_{s}"] for s in "ab"
                   for k in ("run", "copies", "n_samples", "copy_rate", "copy_ci_low",
                             "copy_ci_high")},
                "difference": r["copy_rate_a"] - r["copy_rate_b"], "p_fisher": float(p)})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm(out["p_fisher"].to_numpy())
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of ``p`` (Holm 1979), in the input order."""
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]).clip(max=1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out
