"""What every nearest-neighbour backend shares: the Searcher protocol and its result type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Self

import numpy as np


@dataclass
class Neighbours:
    """The k nearest items of each query, nearest first, ties broken by the smaller index.

    ``d2`` holds exact squared L2 distances in pixel units (0-255), as int64.
    """

    d2: np.ndarray
    index: np.ndarray
    dim: int

    @property
    def l2(self) -> np.ndarray:
        """Normalised L2: RMS pixel distance with pixels in [0, 1], i.e. ||a-b|| / (255 sqrt(d))."""
        return normalised_l2(self.d2, self.dim)

    def __len__(self) -> int:
        return len(self.d2)


def normalised_l2(d2: np.ndarray, dim: int) -> np.ndarray:
    return np.sqrt(d2.astype(np.float64) / dim) / 255.0


class Searcher(Protocol):
    """k-nearest-neighbour search under L2 over uint8 vectors.

    ``exact`` says whether the neighbours are those of an exhaustive search (ties by index):
    approximate backends (IVF) set it False, and the audit then measures their recall.
    """

    name: str
    exact: bool

    def fit(self, x: np.ndarray) -> Self:
        """Index the (N, D) uint8 reference vectors."""
        ...

    def search(
        self, q: np.ndarray, k: int, *, exclude_self: bool = False, show: bool = True
    ) -> Neighbours:
        """The k nearest indexed vectors of each (M, D) uint8 query.

        With ``exclude_self`` the queries are the indexed vectors themselves and query i never
        returns item i.
        """
        ...


def query_k(q: Any, dim: int, n: int, k: int, exclude_self: bool) -> int:
    """Check that ``q`` is an (M, dim) query block; return the k a search of n rows can give
    (one fewer when each query's own row is excluded)."""
    if len(q.shape) != 2 or q.shape[1] != dim:
        raise ValueError(f"queries must be (M, {dim}) uint8")
    return min(k, n - int(exclude_self))


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], k: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The k best of several (M, k_i) neighbour lists over disjoint items (global indices),
    ordered by (distance, index): the lists of an exhaustive search over all those items."""
    d2 = np.concatenate([p[0] for p in parts], axis=1)  # (M, sum k_i)
    index = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((index, d2), axis=1)[:, :k]
    return np.take_along_axis(d2, order, 1), np.take_along_axis(index, order, 1)


def sort_ties(d2: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each row by (distance, index) so equal distances come out in index order."""
    order = np.lexsort((index, d2), axis=1)
    return np.take_along_axis(d2, order, 1), np.take_along_axis(index, order, 1)


def exact_d2(q: np.ndarray, x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Exact squared distances between each query and the given candidate rows of ``x``."""
    out = np.empty(index.shape, dtype=np.int64)
    step = max(1, 2**22 // max(1, index.shape[1] * q.shape[1]))
    for s in range(0, len(q), step):
        diff = x[index[s : s + step]].astype(np.int32) - q[s : s + step, None, :].astype(np.int32)
        out[s : s + step] = np.einsum("mkd,mkd->mk", diff, diff, dtype=np.int64)
    return out
