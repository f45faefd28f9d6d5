"""Each copy criterion at its boundary, and Meehan et al.'s C_T against its definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from copyscope.detect import criteria
from copyscope.detect.datacopying import meehan_ct
from copyscope.search import make_searcher
from copyscope.stages.audit_config import AuditConfig

CFG = AuditConfig(gu_threshold=0.25, heldout_q=0.01, l2_threshold=0.05)


def flags(**columns: list[float]) -> dict[str, np.ndarray]:
    base = {"nn_l2": [0.1], "nn2_l2": [0.2], "carlini": [2.0], "carlini_sample": [2.0],
            "heldout_p": [0.5]}
    n = len(next(iter(columns.values())))
    table = pd.DataFrame({k: np.asarray(columns.get(k, v * n), dtype=float)
                          for k, v in base.items()})
    out = criteria.apply(table, CFG)
    return {c: out[f"copy_{c}"].tolist() for c in criteria.CRITERIA}


def test_gu_flags_strictly_below_its_ratio():
    f = flags(nn_l2=[0.0249, 0.025, 0.0251], nn2_l2=[0.1, 0.1, 0.1])
    assert f["gu"] == [True, False, False]


@pytest.mark.parametrize("column", ["carlini", "carlini_sample"])
def test_carlini_flags_at_and_below_one(column):
    f = flags(**{column: [0.999, 1.0, 1.001]})
    assert f[column] == [True, True, False]


def test_heldout_flags_at_and_below_q():
    assert flags(heldout_p=[0.009, 0.01, 0.011])["heldout"] == [True, True, False]


def test_l2_flags_at_and_below_its_threshold():
    assert flags(nn_l2=[0.0499, 0.05, 0.0501], nn2_l2=[1.0] * 3)["l2"] == [True, True, False]


def test_is_copy_follows_the_default_criterion():
    table = pd.DataFrame({"nn_l2": [0.01], "nn2_l2": [1.0], "carlini": [5.0],
                          "carlini_sample": [5.0], "heldout_p": [0.5]})
    for name in criteria.CRITERIA:
        out = criteria.apply(table, AuditConfig(default=name))
        assert out["is_copy"].tolist() == out[f"copy_{name}"].tolist()


def test_every_criterion_declares_settings_the_config_has():
    known = set(AuditConfig.__dataclass_fields__)
    for c in criteria.CRITERIA.values():
        assert set(c.params) <= known and c.citation and c.rule


def reference_ct(train, t_cells, heldout, h_cells, samples, s_cells, n_cells, tau):
    """C_T from Meehan, Chaudhuri & Dasgupta (2020), Sec. 3, written out independently: in each
    cell with more than tau samples, the Mann-Whitney U of the samples' against the held-out
    images' distances to the nearest training point in the cell, Z-scored under the null with
    mean mn/2 and variance mn(m+n+1)/12; C_T is the held-out-mass-weighted mean of the Z."""
    zs, weights = [], []
    for c in range(n_cells):
        t, h, s = train[t_cells == c], heldout[h_cells == c], samples[s_cells == c]
        if len(s) <= tau or len(h) == 0 or len(t) == 0:
            continue

        def nearest(q: np.ndarray, t: np.ndarray = t) -> np.ndarray:
            return np.sqrt(((q[:, None].astype(float) - t[None].astype(float)) ** 2)
                           .sum(-1)).min(1)

        m, n = len(s), len(h)
        u = mannwhitneyu(nearest(s), nearest(h), alternative="less").statistic
        zs.append((u - m * n / 2 + 0.5) / np.sqrt(m * n * (m + n + 1) / 12))
        weights.append(n / len(heldout))
    return float(np.dot(weights, zs) / np.sum(weights))


def ct(train, heldout, samples, n_cells=3):
    cells = lambda x: np.minimum(x[:, 0] // (256 // n_cells), n_cells - 1)  # noqa: E731
    return (meehan_ct(train, cells(train), heldout, cells(heldout), samples, cells(samples),
                      n_cells, 20, lambda: make_searcher("int8"))["C_T"],
            reference_ct(train, cells(train), heldout, cells(heldout), samples, cells(samples),
                         n_cells, 20))


def test_ct_matches_its_definition_and_detects_copies():
    rng = np.random.default_rng(0)
    draw = lambda n: rng.integers(0, 256, (n, 16), dtype=np.uint8)  # noqa: E731
    train, heldout = draw(600), draw(600)
    copies = train[rng.choice(600, 300)]  # exact copies of training points
    got, want = ct(train, heldout, copies)
    assert got == pytest.approx(want, abs=1e-12)
    assert got < -10  # data-copying: far below 0

    fresh = draw(300)  # new draws from the held-out distribution
    got, want = ct(train, heldout, fresh)
    assert got == pytest.approx(want, abs=1e-12)
    assert abs(got) < 3  # no copying: close to 0
