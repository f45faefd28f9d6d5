"""Copy criteria: each turns the per-sample evidence into a yes/no verdict, with its source.

A criterion is one object: its name, its rule in words, its citation, the audit settings it reads
(fields of :class:`copyscope.stages.audit_config.AuditConfig`) and the rule itself. Everything
else (the verdict columns, the summary, the CLI options, the report's method section, the
comparison notes) is derived from :data:`CRITERIA`. Every criterion is applied to the generated
samples and, identically, to the held-out real images; the held-out flag rate is that criterion's
false-positive rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Criterion:
    name: str
    rule: str
    citation: str
    params: tuple[str, ...]
    """The audit settings the rule reads."""
    flag: Callable[[Columns, Any], np.ndarray]
    """The verdict of each row, from the evidence's columns and the audit's settings."""
    threshold: Callable[[np.ndarray, Any], tuple[float, str]] | None = None
    """For a rule that is a threshold on ``nn_l2`` alone: (distance, comparison) from the
    held-out images' nearest-training distances and the settings (the report draws it)."""


def _heldout_threshold(null_l2: np.ndarray, cfg: Any) -> tuple[float, str]:
    """The distance below which ``heldout_p <= q`` holds: the rule flags a distance d when the
    fraction of held-out images at or below d is at most q, which first fails at the held-out
    distance of rank floor(q n) (0-based), so exactly the distances below it are flagged."""
    null = np.sort(null_l2)
    n = len(null)
    j = int(np.searchsorted(np.arange(n + 1) / n, cfg.heldout_q, side="right")) - 1
    return (float(null[j]) if j < n else float("inf")), "<"


CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in [
        Criterion(
            "gu",
            "nn_l2 / nn2_l2 < gu_threshold (default 1/3): far closer to one training image than "
            "to any other",
            "Gu, Du, Pang, Li, Lin & Wang (2023), On Memorization in Diffusion Models, "
            "arXiv:2310.02664",
            ("gu_threshold",),
            lambda t, c: t["nn_l2"] < c.gu_threshold * t["nn2_l2"],
        ),
        Criterion(
            "carlini",
            "carlini <= 1, where carlini = nn_l2 / (alpha * mean l2 from the nearest training "
            "item to its n nearest other training items), alpha = 0.5, n = 50",
            "Carlini, Hayes, Nasr, Jagielski, Sehwag, Tramèr, Balle, Ippolito & Wallace (2023), "
            "Extracting Training Data from Diffusion Models, USENIX Security, Sec. 4.2 "
            "(neighbourhood of the training item)",
            ("alpha", "neighbours"),
            lambda t, c: t["carlini"] <= 1.0,
        ),
        Criterion(
            "carlini_sample",
            "carlini_sample <= 1, the same ratio with the mean l2 from the sample to its n "
            "nearest training items, as in the paper's Eq. 1",
            "Carlini et al. (2023), Extracting Training Data from Diffusion Models, Sec. 4.2, "
            "Eq. 1 (neighbourhood of the generated sample)",
            ("alpha", "neighbours"),
            lambda t, c: t["carlini_sample"] <= 1.0,
        ),
        Criterion(
            "heldout",
            "heldout_p <= heldout_q (default 0.001): closer to the training set than all but a "
            "fraction q of unseen real images",
            "held-out calibration; the null distribution of nearest-training distances of real "
            "images the model never saw, as in Meehan, Chaudhuri & Dasgupta (2020)",
            ("heldout_q",),
            lambda t, c: t["heldout_p"] <= c.heldout_q,
            _heldout_threshold,
        ),
        Criterion(
            "l2",
            "nn_l2 <= l2_threshold (default 0.025), RMS pixel distance with pixels in [0, 1]",
            "absolute threshold on normalised L2, set by the user",
            ("l2_threshold",),
            lambda t, c: t["nn_l2"] <= c.l2_threshold,
            lambda null, c: (c.l2_threshold, "≤"),
        ),
    ]
}


def criterion_params() -> tuple[str, ...]:
    """Every setting some criterion reads, in criterion order."""
    return tuple(dict.fromkeys(p for c in CRITERIA.values() for p in c.params))


def apply(table: pd.DataFrame, config: Any) -> pd.DataFrame:
    """``table`` with one boolean ``copy_<criterion>`` column per criterion and ``is_copy`` for
    ``config.default``. The rules run on NumPy columns and the flags join the table in one step
    (pandas operations one at a time are slow on the app's one-row queries)."""
    import pandas as pd

    columns = {c: table[c].to_numpy() for c in table.columns}
    flags = {f"copy_{c.name}": np.asarray(c.flag(columns, config), dtype=bool)
             for c in CRITERIA.values()}
    flags["is_copy"] = flags[f"copy_{config.default}"]
    return pd.concat([table, pd.DataFrame(flags, index=table.index)], axis=1)
