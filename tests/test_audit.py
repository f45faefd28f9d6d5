"""The audit's science: planted copies are found, the control is calibrated, runs repeat."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from copyscope import rundir as run_module
from copyscope.data import from_array
from copyscope.detect.criteria import CRITERIA
from copyscope.stages.audit import audit
from copyscope.stages.audit_config import AuditConfig

N_EXACT, N_NOISY, N_REPEAT = 25, 25, 30


@pytest.fixture(scope="module")
def planted(train60k, test10k, tmp_path_factory):
    """Copies of known training images mixed into unseen real digits, audited against all 60k."""
    rng = np.random.default_rng(0)
    sources = rng.choice(60000, N_EXACT + N_NOISY + 1, replace=False)
    exact = train60k[sources[:N_EXACT]].astype(np.float64) / 255
    noisy = train60k[sources[N_EXACT:-1]].astype(np.float64) / 255
    noisy = np.clip(noisy + rng.normal(0, 0.015, noisy.shape), 0, 1)
    repeated = np.repeat(train60k[sources[-1:]].astype(np.float64) / 255, N_REPEAT, axis=0)
    real = test10k[5000:7000].astype(np.float64) / 255
    samples = from_array(np.concatenate([exact, noisy, repeated, real]), "planted")
    out = tmp_path_factory.mktemp("planted") / "run"
    result = audit(samples, "mnist:train", "mnist:test[:5000]", out=out, show=False)
    return result, sources, out


def test_planted_copies_are_flagged_and_point_at_their_source(planted):
    result, sources, _ = planted
    s = result.samples
    n = N_EXACT + N_NOISY
    assert np.array_equal(s["nn_train"][:n], sources[:-1])
    assert (s["nn_train"][n : n + N_REPEAT] == sources[-1]).all()
    exact, noisy = s.iloc[:N_EXACT], s.iloc[N_EXACT:n]
    for name in CRITERIA:
        assert exact[f"copy_{name}"].all(), name
    for name in ("heldout", "gu", "carlini", "carlini_sample"):
        assert noisy[f"copy_{name}"].all(), name
    assert (exact["ssim"] == 1).all() and np.isinf(exact["psnr"]).all()
    assert (noisy["nn_l2"] > 0).all() and (noisy["ssim"] < 1).all()


def test_unseen_real_digits_are_rarely_flagged(planted):
    result, _, _ = planted
    real = result.samples.iloc[N_EXACT + N_NOISY + N_REPEAT :]
    assert real["is_copy"].mean() < 0.01
    fpr = result.summary.criteria["heldout"].heldout_fpr
    assert fpr == pytest.approx(0.001, abs=0.0015)


def test_items_and_summary_record_the_planted_copies(planted):
    _, sources, out = planted
    items = pd.read_parquet(out / "items.parquet")
    assert len(items) == 60000
    assert (items.loc[sources[:N_EXACT], "n_copies"] >= 1).all()
    assert items.loc[sources[-1], "n_nearest"] == N_REPEAT
    assert items.loc[sources[-1], "copying_flag"]
    assert items["copying_flag"].sum() == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 2080
    assert summary["copies"] >= N_EXACT + N_NOISY + N_REPEAT
    for c in summary["criteria"].values():
        assert 0 <= c["heldout_fpr"] < 0.01 and len(c["heldout_fpr_ci95"]) == 2
    assert summary["data_copying_ct"]["cells_used"] > 0
    assert summary["data_copying_ct"]["C_T"] is not None
    assert summary["duplicates"]["heldout_exact_in_train"] == 0
    manifest = json.loads((out / "run.json").read_text())["stages"]["audit"]
    assert manifest["inputs"]["train"]["sha256"] and manifest["seeds"]["kmeans_cells"] == 0
    assert set(manifest["timings_s"]) >= {"train_neighbours", "samples_search", "measures"}
    controls = pd.read_parquet(out / "controls.parquet")
    assert len(controls) == 5000 and "copy_heldout" in controls


def test_heldout_criterion_flags_unseen_real_images_at_the_stated_rate():
    q = 0.05
    result = audit("mnist:test[4000:8000]", "mnist:train[:5000]", "mnist:test[:4000]",
                   config=AuditConfig(heldout_q=q), show=False)
    flagged = int(result.samples["copy_heldout"].sum())
    assert binomtest(flagged, 4000, q).pvalue > 0.001, flagged
    loo = result.summary.criteria["heldout"].heldout_fpr
    assert loo == pytest.approx(q, abs=0.01)


def test_same_inputs_give_identical_parquet_files(tmp_path):
    args = ("mnist:test[500:700]", "mnist:train[:2000]", "mnist:test[:400]")
    cfg = AuditConfig(cells=5)
    audit(*args, out=tmp_path / "a", config=cfg, show=False)
    audit(*args, out=tmp_path / "b", config=cfg, show=False)
    for name in ("samples.parquet", "controls.parquet", "items.parquet", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_an_interrupted_audit_resumes_from_finished_chunks(tmp_path, monkeypatch):
    args = ("mnist:test[500:900]", "mnist:train[:1000]", "mnist:test[:300]")
    cfg = AuditConfig(chunk=100, cells=4)
    clean = audit(*args, config=cfg, show=False).samples
    calls = []
    real_chunked = run_module.chunked

    def failing_measures(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("copyscope.stages.evidence.pair_measures", failing_measures)
    with pytest.raises(KeyboardInterrupt):
        audit(*args, out=tmp_path / "r", config=cfg, show=False)
    assert not (tmp_path / "r" / "samples.parquet").exists()
    stored = list((tmp_path / "r" / ".partial").rglob("*.npz"))
    assert len(stored) == 4
    monkeypatch.undo()

    def counting(n, chunk, compute, store=None, **kw):
        def wrapped(piece):
            calls.append(piece)
            return compute(piece)
        return real_chunked(n, chunk, wrapped, store, **kw)

    monkeypatch.setattr("copyscope.stages.audit.chunked", counting)
    resumed = audit(*args, out=tmp_path / "r", config=cfg, show=False).samples
    assert calls == []  # every search chunk came from disk
    pd.testing.assert_frame_equal(resumed, clean)
    assert not (tmp_path / "r" / ".partial").exists()


def test_chunked_work_is_stored_and_reused(tmp_path):
    seen = []

    def compute(piece):
        seen.append(piece.start)
        if piece.start == 20 and len(seen) == 3:
            raise RuntimeError("interrupted")
        return {"x": np.arange(piece.start, piece.stop)}

    with pytest.raises(RuntimeError):
        run_module.chunked(35, 10, compute, tmp_path, show=False)
    result = run_module.chunked(35, 10, compute, tmp_path, show=False)
    assert seen == [0, 10, 20, 20, 30]
    assert np.array_equal(result["x"], np.arange(35))
