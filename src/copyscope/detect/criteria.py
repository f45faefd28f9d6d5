"""Copy criteria: each turns the per-sample evidence into a yes/no verdict, with its source.

Every criterion is applied to the generated samples and, identically, to the held-out real
images; the held-out flag rate is that criterion's false-positive rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Criterion:
    name: str
    rule: str
    citation: str
    flag: Callable[[Mapping[str, np.ndarray], dict[str, float]], np.ndarray]
    """The verdict of each row, from the evidence's columns and the audit's parameters."""


CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in [
        Criterion(
            "gu",
            "nn_l2 / nn2_l2 < gu_threshold (default 1/3): far closer to one training image than "
            "to any other",
            "Gu, Du, Pang, Li, Lin & Wang (2023), On Memorization in Diffusion Models, "
            "arXiv:2310.02664",
            lambda t, p: t["nn_l2"] < p["gu_threshold"] * t["nn2_l2"],
        ),
        Criterion(
            "carlini",
            "carlini <= 1, where carlini = nn_l2 / (alpha * mean l2 from the nearest training "
            "item to its n nearest other training items), alpha = 0.5, n = 50",
            "Carlini, Hayes, Nasr, Jagielski, Sehwag, Tramèr, Balle, Ippolito & Wallace (2023), "
            "Extracting Training Data from Diffusion Models, USENIX Security, Sec. 4.2 "
            "(neighbourhood of the training item)",
            lambda t, p: t["carlini"] <= 1.0,
        ),
        Criterion(
            "carlini_sample",
            "carlini_sample <= 1, the same ratio with the mean l2 from the sample to its n "
            "nearest training items, as in the paper's Eq. 1",
            "Carlini et al. (2023), Extracting Training Data from Diffusion Models, Sec. 4.2, "
            "Eq. 1 (neighbourhood of the generated sample)",
            lambda t, p: t["carlini_sample"] <= 1.0,
        ),
        Criterion(
            "heldout",
            "heldout_p <= heldout_q (default 0.001): closer to the training set than all but a "
            "fraction q of unseen real images",
            "held-out calibration; the null distribution of nearest-training distances of real "
            "images the model never saw, as in Meehan, Chaudhuri & Dasgupta (2020)",
            lambda t, p: t["heldout_p"] <= p["heldout_q"],
        ),
        Criterion(
            "l2",
            "nn_l2 <= l2_threshold (default 0.025), RMS pixel distance with pixels in [0, 1]",
            "absolute threshold on normalised L2, set by the user",
            lambda t, p: t["nn_l2"] <= p["l2_threshold"],
        ),
    ]
}


def apply(table: pd.DataFrame, params: dict[str, float], default: str) -> pd.DataFrame:
    """``table`` with one boolean ``copy_<criterion>`` column per criterion and ``is_copy`` for
    the default. The rules run on NumPy columns and the flags join the table in one step (pandas
    operations one at a time cost the app's one-row query 4 ms)."""
    import pandas as pd

    columns = {c: table[c].to_numpy() for c in table.columns}
    flags = {f"copy_{c.name}": np.asarray(c.flag(columns, params), dtype=bool)
             for c in CRITERIA.values()}
    flags["is_copy"] = flags[f"copy_{default}"]
    return pd.concat([table, pd.DataFrame(flags, index=table.index)], axis=1)
