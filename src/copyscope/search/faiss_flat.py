"""FAISS IndexFlatL2 behind the Searcher protocol: the usual choice, kept as a backend and baseline.

FAISS ranks in float32; the distances of the candidates it returns are recomputed exactly here so
downstream measures are identical whichever backend found the neighbours.
"""

from __future__ import annotations

from typing import Self

import numpy as np

from copyscope.search.base import Neighbours, exact_d2, query_k, sort_ties


class FaissSearcher:
    name = "faiss"
    exact = True

    def fit(self, x: np.ndarray) -> Self:
        import faiss

        self.x = np.ascontiguousarray(x, dtype=np.uint8)
        self.n, self.dim = self.x.shape
        self.index = faiss.IndexFlatL2(self.dim)
        self.index.add(self.x.astype(np.float32))
        return self

    def search(self, q: np.ndarray, k: int, *, exclude_self: bool = False,
               show: bool = True) -> Neighbours:
        q = np.asarray(q)
        k = query_k(q, self.dim, self.n, k, exclude_self)
        queries = np.ascontiguousarray(q, dtype=np.float32)
        _, index = self.index.search(queries, k + int(exclude_self))
        if exclude_self:
            rows = np.arange(len(q))[:, None]
            is_self = index == rows
            drop = np.where(is_self.any(1, keepdims=True), is_self, np.arange(k + 1) == k)
            index = index[~drop].reshape(len(q), k)
        d2, index = sort_ties(exact_d2(np.asarray(q, np.uint8), self.x, index), index)
        return Neighbours(d2, index.astype(np.int64), self.dim)
