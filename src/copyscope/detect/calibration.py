"""Calibration against held-out real images, and confidence intervals for rates.

The held-out items were never trained on, so their nearest-training distances show how close
unseen real data comes to the training set by chance: the null distribution. A sample whose
nearest-training distance is at or below the q-quantile of that null is flagged, with
false-positive rate q by construction.
"""

from __future__ import annotations

import numpy as np


def heldout_p(d2: np.ndarray, null_d2: np.ndarray) -> np.ndarray:
    """Fraction of held-out items whose nearest-training distance is <= each given distance."""
    null = np.sort(null_d2)
    return np.searchsorted(null, d2, side="right") / len(null)


def heldout_p_loo(null_d2: np.ndarray) -> np.ndarray:
    """heldout_p of each held-out item against the *other* held-out items (leave-one-out).

    Scoring a held-out item against a null that contains itself would always count it; leaving it
    out makes the measured false-positive rate of the held-out criterion an honest estimate.
    """
    null = np.sort(null_d2)
    at_or_below = np.searchsorted(null, null_d2, side="right") - 1
    return at_or_below / max(1, len(null) - 1)


def rate(flags: np.ndarray) -> dict[str, float | int | list[float]]:
    """Count, rate and Wilson 95% interval of a boolean array."""
    n = len(flags)
    k = int(np.count_nonzero(flags))
    if n == 0:
        return {"n": 0, "count": 0, "rate": float("nan"), "ci95": [float("nan"), float("nan")]}
    from scipy.stats import binomtest  # ~1 s to import; the web app starts without it

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"n": n, "count": k, "rate": k / n, "ci95": [float(ci.low), float(ci.high)]}
