"""Approximate search for 10M+ items: FAISS IVF over the exact uint8 pixels, exact distances.

An inverted-file index (Jégou, Douze & Schmid 2011, "Product Quantization for Nearest Neighbor
Search", §IV; FAISS, Johnson, Douze & Jégou 2019) cuts the space into ``nlist`` k-means cells
and searches only the ``nprobe`` cells nearest each query. Each row is stored exactly, as the
8-bit direct scalar quantizer without residuals holds the uint8 values themselves (IVF-Flat at a
quarter of float32's memory: one byte per pixel). FAISS ranks the candidates in float32; the
best ``k + RERANK`` are rescored with exact integer distances and ordered by (distance, index),
so every reported distance is exact. Only *which* neighbours are found is approximate, and the
audit measures it in every run: recall@1 and recall@k against the exact search on a seeded sample
of queries (:mod:`copyscope.search.recall`).

The coarse k-means is trained on one thread (its cells, and so the neighbours, would otherwise
depend on the thread count) on a sample of ``TRAIN_PER_CELL`` rows per cell drawn with
``SEED``. ``nlist`` 0 picks round(sqrt(N)), at least 39 rows per cell (FAISS's minimum).

GPU: where FAISS sees CUDA devices (the faiss-gpu build), the index is copied to all of them
for the search (``faiss.index_cpu_to_all_gpus``); the exact rescoring stays on the CPU copy.
This path is not tested here (no GPU build of FAISS on the project's machine).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Self

import numpy as np

from copyscope.progress import bar
from copyscope.search.base import Neighbours, query_k, sort_ties
from copyscope.search.exact import never_d2

RERANK = 16
"""Candidates beyond k rescored exactly."""
TRAIN_PER_CELL = 50
SEED = 0
ROWS = 65536
"""Rows added or searched at once (float32 copies of one block at a time)."""


class IvfSearcher:
    """IVF with exact codes and exact rescoring; ``exact`` is False: its recall is measured."""

    name = "ivf"
    exact = False

    def __init__(self, nlist: int = 0, nprobe: int = 16, gpu: bool | None = None) -> None:
        self.nlist, self.nprobe, self.gpu = nlist, nprobe, gpu

    def settings(self) -> dict[str, Any]:
        """What decides the neighbours it finds (a cache key, and what the audit reports)."""
        return {"index": "IVF,SQ8_direct", "nlist": self.cells, "nprobe": self.nprobe,
                "rerank": RERANK, "train_per_cell": TRAIN_PER_CELL, "seed": SEED}

    def fit(self, x: Any) -> Self:
        import faiss

        self.n, self.dim = (int(v) for v in x.shape)
        self.cells = self.nlist or max(1, min(round(math.sqrt(self.n)), self.n // 39))
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatL2(self.dim), self.dim, self.cells,
                                              faiss.ScalarQuantizer.QT_8bit_direct,
                                              faiss.METRIC_L2)
        index.by_residual = False  # store the pixels, not their offsets from a centroid
        index.cp.seed = SEED
        take = min(self.n, TRAIN_PER_CELL * self.cells)
        rows = np.sort(np.random.default_rng(SEED).choice(self.n, take, replace=False))
        with _one_thread(faiss):
            index.train(np.asarray(x[rows], np.float32))
        for a in range(0, self.n, ROWS):
            index.add(np.asarray(x[a : a + ROWS], np.float32))
        index.make_direct_map()  # exact rescoring reads the stored pixels back
        index.nprobe = min(self.nprobe, self.cells)
        self.index = index
        self.searching = _on_gpus(faiss, index) if self.gpu is not False else index
        self.device = "cuda" if self.searching is not index else "cpu"
        return self

    def search(self, q: Any, k: int, *, exclude_self: bool = False,
               show: bool = True) -> Neighbours:
        k = query_k(q, self.dim, self.n, k, exclude_self)
        m = int(q.shape[0])
        out_d2, out_i = np.empty((m, k), np.int64), np.empty((m, k), np.int64)
        with bar(m, "search (ivf)", show and m > ROWS, unit="query") as pb:
            for s in range(0, m, ROWS):
                block = np.ascontiguousarray(q[s : s + ROWS], np.uint8)
                own = s + np.arange(len(block)) if exclude_self else None
                d2, index = self._block(block, k, own)
                out_d2[s : s + len(block)], out_i[s : s + len(block)] = d2, index
                pb.update(len(block))
        return Neighbours(out_d2, out_i, self.dim)

    def _block(self, q: np.ndarray, k: int, own: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The k best of each query's candidates by exact distance (``own``: each query's own
        row, never returned); a query whose probed cells hold fewer than k other rows is
        searched again with twice the cells, up to all of them."""
        want = min(self.n, k + RERANK + (own is not None))
        _, index = self.searching.search(q.astype(np.float32), want)
        d2, index = self._exact(q, index, own)
        short = d2[:, k - 1] >= never_d2(self.dim)
        probe = self.searching.nprobe
        if short.any() and probe < self.cells:
            rows = np.flatnonzero(short)
            self.searching.nprobe = min(self.cells, 2 * probe)
            try:
                d2[rows, :k], index[rows, :k] = self._block(
                    q[rows], k, None if own is None else own[rows])
            finally:
                self.searching.nprobe = probe
        return d2[:, :k], index[:, :k]

    def _exact(self, q: np.ndarray, index: np.ndarray, own: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Exact squared distances of the candidates, ordered by (d2, index); FAISS's -1 and the
        query's own row get a distance larger than any real one (and index n)."""
        fake = index < 0
        if own is not None:
            fake |= index == own[:, None]
        safe = np.where(fake, 0, index)
        d2 = np.empty(index.shape, np.int64)
        step = max(1, 2**22 // max(1, index.shape[1] * self.dim))
        for a in range(0, len(q), step):
            ids = safe[a : a + step]
            rows = self.index.reconstruct_batch(ids.reshape(-1)).reshape(*ids.shape, self.dim)
            diff = rows.astype(np.int32) - q[a : a + step, None, :].astype(np.int32)  # exact
            d2[a : a + step] = np.einsum("mcd,mcd->mc", diff, diff, dtype=np.int64)
        d2[fake] = never_d2(self.dim)
        return sort_ties(d2, np.where(fake, self.n, safe))


@contextlib.contextmanager
def _one_thread(faiss: Any) -> Iterator[None]:
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _on_gpus(faiss: Any, index: Any) -> Any:
    """The index on every CUDA device FAISS sees, else the index itself."""
    if not hasattr(faiss, "index_cpu_to_all_gpus") or not hasattr(faiss, "get_num_gpus"):
        return index
    if faiss.get_num_gpus() < 1:
        return index
    return faiss.index_cpu_to_all_gpus(index)  # pragma: no cover - needs faiss-gpu and CUDA
