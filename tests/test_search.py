"""The search is exact: it must agree with a float64 brute force, ties broken by index."""

from __future__ import annotations

import numpy as np
import pytest

from copyscope.search import make_searcher, normalised_l2
from copyscope.search.exact import INT8_MAX_DIM, ExactSearcher


def brute_force(q: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    qd, xd = q.astype(np.float64), x.astype(np.float64)
    d2 = (qd**2).sum(1)[:, None] + (xd**2).sum(1)[None] - 2 * qd @ xd.T
    order = np.lexsort((np.broadcast_to(np.arange(len(x)), d2.shape), d2), axis=1)[:, :k]
    return np.take_along_axis(d2, order, 1).round().astype(np.int64), order


@pytest.mark.parametrize("backend", ["int8", "faiss"])
def test_matches_float64_brute_force_on_the_full_mnist_training_set(backend, train60k, test10k):
    x = train60k.reshape(60000, -1)
    q = test10k[:300].reshape(300, -1)
    nb = make_searcher(backend).fit(x).search(q, 50, show=False)
    d2, index = brute_force(q, x, 50)
    assert np.array_equal(nb.index[:, 0], index[:, 0])
    assert np.array_equal(nb.d2, d2)
    untied = np.diff(d2, axis=1, prepend=-1, append=np.iinfo(np.int64).max)
    untied = (untied[:, :-1] != 0) & (untied[:, 1:] != 0)
    assert np.array_equal(nb.index[untied], index[untied])


@pytest.mark.parametrize("shape", [(37, 13, 11, 3), (70, 12, 12, 1)])
def test_odd_sizes_rgb_and_single_queries(shape):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, shape, dtype=np.uint8).reshape(shape[0], -1)
    q = rng.integers(0, 256, (5, x.shape[1]), dtype=np.uint8)
    searcher = ExactSearcher().fit(x)
    d2, index = brute_force(q, x, 7)
    nb = searcher.search(q, 7, show=False)
    assert np.array_equal(nb.d2, d2) and np.array_equal(nb.index, index)
    one = searcher.search(q[:1], 3, show=False)
    assert np.array_equal(one.index, index[:1, :3])


@pytest.mark.parametrize("backend", ["int8", "faiss"])
def test_exclude_self_and_ties_go_to_the_smaller_index(backend):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (40, 64), dtype=np.uint8)
    x[30] = x[3]  # exact duplicate pair
    nb = make_searcher(backend).fit(x).search(x, 4, exclude_self=True, show=False)
    assert (nb.index != np.arange(40)[:, None]).all()
    assert nb.index[3, 0] == 30 and nb.index[30, 0] == 3 and nb.d2[3, 0] == 0
    xd = x.astype(np.float64)
    d2 = ((xd[:, None] - xd[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)  # an item is never its own neighbour
    assert np.array_equal(nb.d2, np.sort(d2, axis=1)[:, :4].astype(np.int64))
    dup = make_searcher(backend).fit(x).search(x[[3]], 2, show=False)
    assert list(dup.index[0]) == [3, 30]  # equal distance 0: smaller index first


@pytest.mark.parametrize("backend", ["int8", "faiss"])
@pytest.mark.parametrize("shape", [(3, 63), (3, 65), (64,), (2, 8, 8)])
def test_queries_of_the_wrong_shape_are_refused(backend, shape):
    searcher = make_searcher(backend).fit(np.zeros((10, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(M, 64\)"):
        searcher.search(np.zeros(shape, dtype=np.uint8), 1, show=False)


def test_float64_fallback_beyond_the_int8_range():
    rng = np.random.default_rng(3)
    d = INT8_MAX_DIM + 5
    x = rng.integers(0, 256, (20, d), dtype=np.uint8)
    x[7] = 255
    q = np.zeros((2, d), dtype=np.uint8)  # distance to x[7] = 255^2 d overflows int32
    searcher = ExactSearcher().fit(x)
    assert not searcher.int8
    nb = searcher.search(q, 20, show=False)
    d2, index = brute_force(q, x, 20)
    assert np.array_equal(nb.d2, d2) and np.array_equal(nb.index, index)
    assert nb.d2.max() == 255**2 * d


def test_normalised_l2_is_rms_pixel_distance():
    assert normalised_l2(np.array([255**2 * 784]), 784)[0] == pytest.approx(1.0)
    assert normalised_l2(np.array([0]), 784)[0] == 0.0


def test_a_tie_at_the_kth_place_goes_to_the_smaller_index():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (300, 64), dtype=np.uint8)
    q = rng.integers(0, 256, (6, 64), dtype=np.uint8)
    _, index = brute_force(q, x[:290], 6)
    x[290:296] = x[index[:, 5]]  # each query's 6th nearest twice: a tie across the cut at k = 6
    d2, index = brute_force(q, x, 6)
    nb = ExactSearcher().fit(x).search(q, 6, show=False)
    assert np.array_equal(nb.d2, d2) and np.array_equal(nb.index, index)


@pytest.mark.parametrize("rows", [7, 64, 250])
def test_a_streamed_search_equals_the_in_memory_search(rows, train60k, test10k, one_thread):
    """Blocks of training rows searched one at a time and merged give the one-block answer,
    self-exclusion and ties at every place included."""
    x = train60k[:600].reshape(600, -1).copy()
    x[500:510] = x[:10]  # exact duplicates across blocks
    x[570:575] = x[3]
    q = np.concatenate([test10k[:40].reshape(40, -1), x[:5], x[500:502]])
    whole = ExactSearcher().fit(x)
    streamed = ExactSearcher(block_rows=rows).fit(x)
    assert streamed.streamed and not whole.streamed
    for k in (1, 7, 50):
        a, b = whole.search(q, k, show=False), streamed.search(q, k, show=False)
        assert np.array_equal(a.d2, b.d2) and np.array_equal(a.index, b.index)
    a = whole.search(x, 9, exclude_self=True, show=False)
    b = streamed.search(x, 9, exclude_self=True, show=False)
    assert np.array_equal(a.d2, b.d2) and np.array_equal(a.index, b.index)
    assert (b.index != np.arange(600)[:, None]).all()
