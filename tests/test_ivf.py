"""Approximate search: IVF finds neighbours at exact distances, and its recall is measured right."""

from __future__ import annotations

import json

import numpy as np
import pytest

from copyscope.report import write_report
from copyscope.search import make_searcher
from copyscope.search.recall import measured, recall
from copyscope.stages.audit import audit
from copyscope.stages.audit_config import AuditConfig

D = 16
N_TRAP, N_NORMAL = 20, 60


def trap_set() -> tuple[np.ndarray, np.ndarray]:
    """Two clusters of 2,000 points, around 1.5 (A) and 201.5 (B) on every pixel, and 20 trap
    points at 110 (+ j on pixel 0), which k-means puts in B's cell. Trap query j, at 100 (+ j),
    is nearer A's centroid, so with one cell probed IVF searches only A, while its true k
    nearest are traps in B: it finds none of them. 60 other queries lie inside A and find all.
    So recall@1 = recall@k = 60 / 80 = 0.75 exactly."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (2000, D))
    b = rng.integers(200, 204, (2000, D))
    traps = np.full((N_TRAP, D), 110)
    traps[:, 0] += np.arange(N_TRAP)
    x = np.concatenate([a, b, traps]).astype(np.uint8)
    q_trap = np.full((N_TRAP, D), 100)
    q_trap[:, 0] += np.arange(N_TRAP)
    q = np.concatenate([q_trap, rng.integers(0, 4, (N_NORMAL, D))]).astype(np.uint8)
    return x, q


def test_recall_is_measured_right_on_a_set_built_to_have_recall_three_quarters():
    x, q = trap_set()
    ivf = make_searcher("ivf", nlist=2, nprobe=1).fit(x)
    exact = make_searcher("int8").fit(x)
    found = ivf.search(q, 5, show=False)
    truth = exact.search(q, 5, show=False)
    assert (truth.index[:N_TRAP] >= 4000).all()  # the true neighbours of trap queries: traps
    assert (found.index[:N_TRAP] < 2000).all()  # IVF found cluster A instead
    r = recall(found, truth, 5)
    assert r["at_1"] == pytest.approx(0.75) and r["at_k"] == pytest.approx(0.75)
    picks = np.arange(N_TRAP // 2, N_TRAP + 10)  # 10 traps and 10 normal queries
    assert measured(found, exact, q, picks, 5)["at_1"] == pytest.approx(0.5)
    full = ((q[:, None].astype(np.int64) - x[found.index].astype(np.int64)) ** 2).sum(-1)
    assert np.array_equal(found.d2, full)  # every reported distance is exact
    everything = make_searcher("ivf", nlist=2, nprobe=2).fit(x).search(q, 5, show=False)
    assert recall(everything, truth, 5) == {"at_1": 1.0, "at_k": 1.0, "k": 5}
    assert np.array_equal(everything.d2, truth.d2)


def test_ivf_excludes_the_query_itself_and_fills_short_cells(train60k):
    x = train60k[:1500].reshape(1500, -1)
    ivf = make_searcher("ivf", nlist=30, nprobe=1).fit(x)  # about 50 rows per cell
    nb = ivf.search(x, 60, exclude_self=True, show=False)  # more than one cell holds
    assert (nb.index != np.arange(1500)[:, None]).all() and (nb.index < 1500).all()
    exact = make_searcher("int8").fit(x).search(x, 60, exclude_self=True, show=False)
    assert (nb.d2 >= exact.d2).all()  # never nearer than the truth: distances are exact
    assert (np.diff(nb.d2, axis=1) >= 0).all()


def test_an_ivf_audit_reports_its_recall_and_an_exact_audit_does_not(tmp_path):
    args = ("mnist:test[500:650]", "mnist:train[:2000]", "mnist:test[:300]")
    cfg = AuditConfig(cells=5, backend="ivf", nprobe=2, recall_queries=100)
    result = audit(*args, out=tmp_path / "ivf", config=cfg, show=False)
    search = result.summary.search
    assert search is not None and search.backend == "ivf" and search.settings["nprobe"] == 2
    for kind in ("samples", "heldout", "train"):
        r = search.recall[kind]
        assert r["queries"] == 100 and r["k"] == 50 and 0 < r["at_k"] < 1 and 0 < r["at_1"] <= 1
    summary = json.loads((tmp_path / "ivf" / "summary.json").read_text())
    assert summary["search"]["recall"]["samples"]["at_1"] == search.recall["samples"]["at_1"]
    stage = json.loads((tmp_path / "ivf" / "run.json").read_text())["stages"]["audit"]
    assert stage["identity"]["config"]["nprobe"] == 2 and "recall" in stage["timings_s"]
    exact = audit(*args, out=tmp_path / "int8", config=AuditConfig(cells=5), show=False)
    assert exact.summary.search is None
    assert "search" not in json.loads((tmp_path / "int8" / "summary.json").read_text())
    stage = json.loads((tmp_path / "int8" / "run.json").read_text())["stages"]["audit"]
    assert "nprobe" not in stage["identity"]["config"] and "nprobe" not in stage["params"]
    more = audit(*args, config=AuditConfig(cells=5, backend="ivf", nprobe=64,
                                           recall_queries=100), show=False)
    assert more.summary.search.recall["samples"]["at_k"] == 1.0  # every cell: exhaustive
    assert more.samples["nn_l2"].equals(exact.samples["nn_l2"])
    write_report([tmp_path / "int8"], tmp_path / "exact.html", show=False)
    assert "recall@1" not in (tmp_path / "exact.html").read_text()
    write_report([tmp_path / "ivf", tmp_path / "int8"], tmp_path / "both.html", show=False)
    html = (tmp_path / "both.html").read_text()
    at_1 = f"{100 * search.recall['samples']['at_1']:.1f}%"
    badge = f'<span class="badge recall">approximate search: recall@1 {at_1} (samples)'
    assert html.count(badge) >= 12  # beside the answer, every rate table, figure and run row
    assert "false-positive rate [95% CI] " + badge in html and "<td>exact</td>" in html
