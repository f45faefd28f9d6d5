"""How much of the exact answer an approximate search found: recall@1 and recall@k.

Both compare exact distances, so a different item at the same distance counts as found (ties are
as near as the item exact search listed). For each query, with the approximate lists' exact
distances ``d̂`` and the exact search's ``d``:

    recall@1 = share of queries with d̂_1 = d_1 (a true nearest item was found)
    recall@k = mean over queries of |{j <= k : d̂_j <= d_k}| / k (found items that belong to a
               true k-nearest list)

An approximate search only ever misses items (its distances are exact), so both lie in [0, 1]
and are 1 exactly when every list is the exact one up to ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from copyscope.search.base import Neighbours, Searcher


def recall(found: Neighbours, exact: Neighbours, k: int) -> dict[str, float]:
    """recall@1 and recall@k of ``found`` against ``exact`` on the same queries."""
    k = min(k, found.d2.shape[1], exact.d2.shape[1])
    at_1 = found.d2[:, 0] == exact.d2[:, 0]
    at_k = (found.d2[:, :k] <= exact.d2[:, k - 1 : k]).sum(axis=1) / k
    return {"at_1": float(at_1.mean()), "at_k": float(at_k.mean()), "k": k}


def measured(found: Neighbours, exact_searcher: Searcher, queries: Any, picks: np.ndarray,
             k: int, exclude_self: bool = False) -> dict[str, Any]:
    """Recall of ``found`` (every query's lists) on the queries ``picks``, searched again with
    ``exact_searcher`` (fitted on the same indexed rows)."""
    rows = np.asarray(queries[picks]) if len(picks) else np.zeros((0, found.dim), np.uint8)
    if exclude_self:  # the queries are indexed rows: exclusion needs their own positions
        exact = _exact_self(exact_searcher, rows, picks, k)
    else:
        exact = exact_searcher.search(rows, k, show=False)
    chosen = Neighbours(found.d2[picks], found.index[picks], found.dim)
    return {**recall(chosen, exact, k), "queries": len(picks)}


def _exact_self(searcher: Any, rows: np.ndarray, picks: np.ndarray, k: int) -> Neighbours:
    """The exact k nearest *other* indexed rows of the indexed rows ``picks``: k + 1 searched,
    the query's own row dropped (or the last, when a tie at distance 0 kept it out)."""
    nb = searcher.search(rows, k + 1, show=False)
    is_self = nb.index == picks[:, None]
    drop = np.where(is_self.any(1, keepdims=True), is_self, np.arange(k + 1) == k)
    return Neighbours(nb.d2[~drop].reshape(len(rows), k), nb.index[~drop].reshape(len(rows), k),
                      nb.dim)
