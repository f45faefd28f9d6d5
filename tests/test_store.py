"""Training sets larger than memory: .npy stores read a block at a time give the same audit."""

from __future__ import annotations

import numpy as np
import pytest

from copyscope.data import load
from copyscope.data import store as store_module
from copyscope.data.store import RowStore, open_store
from copyscope.errors import CopyscopeError
from copyscope.search import make_searcher
from copyscope.stages.audit import audit
from copyscope.stages.audit_config import AuditConfig


@pytest.fixture
def shards(tmp_path, train60k):
    """mnist:train[:1000] as three shards of uneven size, (N, H, W) and (N, H, W, 1) mixed."""
    folder = tmp_path / "shards"
    folder.mkdir()
    np.save(folder / "a.npy", train60k[:300, ..., 0])
    np.save(folder / "b.npy", train60k[300:301])
    np.save(folder / "c.npy", train60k[301:1000, ..., 0])
    return folder


def test_a_store_reads_like_the_array(shards, train60k):
    x = train60k[:1000]
    s = open_store(shards)
    assert isinstance(s, RowStore) and s.shape == x.shape and len(s) == 1000
    assert np.array_equal(s[:], x) and np.array_equal(np.asarray(s), x)
    assert np.array_equal(s[295:305], x[295:305]) and np.array_equal(s[-3:], x[-3:])
    index = np.array([999, 0, 300, 300, 301, -1])
    assert np.array_equal(s[index], x[index]) and np.array_equal(s[7], x[7])
    mask = np.zeros(1000, bool)
    mask[[5, 300, 800]] = True
    assert np.array_equal(s[mask], x[mask]) and np.array_equal(s[::97], x[::97])
    flat = s.reshape(1000, -1)
    assert flat.shape == (1000, 784) and np.array_equal(flat[10:12], x[10:12].reshape(2, -1))
    assert np.array_equal(np.concatenate([b for _, b in s.blocks(333)]), x)


def test_a_shard_folder_is_a_spec_with_the_in_memory_hash(shards, train60k, tmp_path,
                                                         monkeypatch):
    images = load(str(shards))
    assert isinstance(images.images, RowStore)
    in_memory = load("mnist:train[:1000]")
    assert images.sha256 == in_memory.sha256 and images.image_shape == (28, 28, 1)
    assert np.array_equal(load(f"{shards}[10:20]").images, train60k[10:20])
    np.save(tmp_path / "big.npy", train60k[:50])
    assert isinstance(load(str(tmp_path / "big.npy")).images, np.ndarray)
    monkeypatch.setattr(store_module, "STREAM_BYTES", 1000)  # larger .npy files are streamed
    big = load(str(tmp_path / "big.npy"))
    assert isinstance(big.images, RowStore) and big.sha256 == load("mnist:train[:50]").sha256


def test_the_search_streams_a_store_and_finds_the_same_neighbours(shards, train60k, test10k,
                                                                  one_thread):
    x, q = train60k[:1000].reshape(1000, -1), test10k[:30].reshape(30, -1)
    streamed = make_searcher("int8", block_rows=128).fit(open_store(shards).reshape(1000, -1))
    assert streamed.streamed
    a = streamed.search(q, 10, show=False)
    b = make_searcher("int8").fit(x).search(q, 10, show=False)
    assert np.array_equal(a.d2, b.d2) and np.array_equal(a.index, b.index)


def test_an_audit_against_a_store_equals_the_in_memory_audit(shards, tmp_path, monkeypatch,
                                                             train60k, one_thread):
    monkeypatch.setattr("copyscope.search.exact.BLOCK_BYTES", 784 * 256)  # 4 blocks
    monkeypatch.setattr("copyscope.stages.audit.KMEANS_FIT_MAX", 600)  # cells on a subsample
    np.save(tmp_path / "whole.npy", train60k[:1000])  # the same images, read into memory
    args = dict(heldout="mnist:test[:300]", config=AuditConfig(cells=4), show=False)
    audit("mnist:test[300:420]", str(tmp_path / "whole.npy"), out=tmp_path / "a", **args)
    audit("mnist:test[300:420]", str(shards), out=tmp_path / "b", **args)
    for name in ("samples.parquet", "controls.parquet", "items.parquet", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize("case", ["mismatched", "truncated", "float", "not npy", "shape"])
def test_bad_stores_get_one_sentence_naming_the_file(case, tmp_path, run_cli):
    folder = tmp_path / "s"
    folder.mkdir()
    x = np.zeros((10, 28, 28), np.uint8)
    np.save(folder / "a.npy", x)
    expected = {"mismatched": "b.npy holds images of shape (14, 14, 1) but a.npy holds "
                "(28, 28, 1)", "truncated": "only 3,920 bytes follow it; the file is truncated",
                "float": "holds float32 pixels", "not npy": "b.npy is not a readable .npy",
                "shape": "has shape (10, 28, 28, 5)"}[case]
    if case == "mismatched":
        np.save(folder / "b.npy", np.zeros((10, 14, 14), np.uint8))
    elif case == "truncated":
        np.save(folder / "b.npy", x)
        data = (folder / "b.npy").read_bytes()
        (folder / "b.npy").write_bytes(data[: len(data) - 7840 // 2])
    elif case == "float":
        np.save(folder / "b.npy", x.astype(np.float32))
    elif case == "not npy":
        (folder / "b.npy").write_bytes(b"hello")
    else:
        np.save(folder / "b.npy", np.zeros((10, 28, 28, 5), np.uint8))
    with pytest.raises(CopyscopeError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        open_store(folder)
    code, out = run_cli("audit", "--samples", "mnist:test[:50]", "--train", str(folder),
                        "--heldout", "mnist:test[50:100]", "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in out and "b.npy" in out
    assert not (tmp_path / "run").exists()  # nothing half-written
