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


@pytest.fixture(scope="module")
def seen_audit(train60k, test10k, tmp_path_factory):
    """A "model" that saw training items 0-99 and regenerates 40 of them exactly, plus copies
    of 10 items it never saw and 150 unseen real digits."""
    rng = np.random.default_rng(5)
    seen = np.arange(100)
    copied, never = rng.choice(100, 40, replace=False), rng.choice(np.arange(100, 3000), 10)
    real = test10k[9000:9150]
    samples = np.concatenate([train60k[copied], train60k[never], real])
    out = tmp_path_factory.mktemp("seen") / "run"
    np.save(out.parent / "seen.npy", seen)
    result = audit(from_array(samples, "seen-samples"), "mnist:train[:3000]",
                   "mnist:test[:1000]", out=out, seen=str(out.parent / "seen.npy"), show=False)
    return result, copied, never


def test_each_sample_knows_its_nearest_seen_and_unseen_training_image(seen_audit, train60k):
    result, copied, never = seen_audit
    s = result.samples
    train = train60k[:3000].reshape(3000, -1).astype(np.int64)
    flat = np.concatenate([train60k[copied], train60k[never]]).reshape(50, -1).astype(np.int64)
    d2 = ((flat[:, None] - train[None]) ** 2).sum(-1)  # brute force, (50, 3000)
    assert np.array_equal(s["nn_seen"][:50], d2[:, :100].argmin(1))
    assert np.array_equal(s["nn_unseen"][:50], 100 + d2[:, 100:].argmin(1))
    assert (s["nn_seen_l2"][:40] == 0).all() and (s["nn_unseen_l2"][40:50] == 0).all()
    assert set(result.items.loc[result.items["seen"], "item"]) == set(range(100))


def test_copies_of_unseen_items_are_counted_as_false_positives(seen_audit):
    result, _, _ = seen_audit
    seen = result.summary.seen
    assert seen.n_seen == 100 and seen.n_unseen == 2900
    assert seen.flagged["heldout"] == {"seen": 40, "unseen": 10}
    near = seen.nearest_is_seen
    assert near["samples"]["count"] == 40 + int(
        (result.samples["nn_train"][50:] < 100).sum())
    assert near["chance"] == pytest.approx(100 / 3000)
    assert seen.data_copying_ct["cells"] == 50
    assert result.record.identity.seen == result.record.inputs["seen"]["sha256"]


def test_seen_items_may_be_named_by_their_images_and_bad_lists_are_refused(tmp_path, train60k):
    from copyscope.data import load
    from copyscope.errors import CopyscopeError
    from copyscope.stages.seen import find_seen

    train = load("mnist:train[:3000]")
    np.save(tmp_path / "imgs.npy", train60k[[5, 7, 2999]])
    assert list(find_seen("x", train, str(tmp_path / "imgs.npy")).indices) == [5, 7, 2999]
    np.save(tmp_path / "far.npy", np.array([1, 3000]))
    with pytest.raises(CopyscopeError, match="items 0 to 2999"):
        find_seen("x", train, str(tmp_path / "far.npy"))
    np.save(tmp_path / "alien.npy", train60k[[3000]])
    with pytest.raises(CopyscopeError, match="not in the training set"):
        find_seen("x", train, str(tmp_path / "alien.npy"))
