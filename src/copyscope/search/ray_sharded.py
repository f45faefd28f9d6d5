"""The exact int8 search on a Ray cluster: the training set cut into shards, one per worker.

``fit`` cuts the indexed rows into ``workers`` contiguous shards and starts one Ray actor per
shard; an in-memory shard travels through the object store (zero-copy NumPy on the worker), a
shard of a :class:`~copyscope.data.store.RowStore` as the paths of its rows, which the worker
streams itself (so a cluster with shared storage never holds the set in one place). Each actor
runs :class:`~copyscope.search.exact.ExactSearcher` on its shard and returns every query's k
nearest rows by (distance, row); the driver merges the lists by (distance, global row)
(:func:`~copyscope.search.base.merge_topk`), which is exactly the list of one search over the
whole set: same neighbours, same distances, same ties.

Queries go out in rounds of :data:`QUERY_ROWS`, all submitted at once. An actor whose process
dies is restarted by Ray from its shard (kept by the object store) and its unfinished rounds
are run again (``max_restarts``, ``max_task_retries``), so a lost worker costs time, not
results. Without an address, a local cluster with one CPU per worker is started for the search
and shut down by :meth:`RaySearcher.close`.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Self

import numpy as np

from copyscope import cluster
from copyscope.progress import bar
from copyscope.search.base import Neighbours, merge_topk, query_k
from copyscope.search.exact import ExactSearcher, never_d2

QUERY_ROWS = 4096
RETRIES = 3
"""Restarts of a dead actor, and reruns of each of its unfinished rounds."""


class _Shard:
    """A Ray actor: the exact search over one shard of the indexed rows."""

    def __init__(self, rows: Any) -> None:
        import torch

        torch.set_num_threads(1)  # one CPU per worker
        self.searcher = ExactSearcher(device="cpu").fit(rows)

    def lists(self, q: np.ndarray, k: int, first_query_row: int | None
              ) -> tuple[np.ndarray, np.ndarray]:
        return self.searcher.lists(q, min(k, self.searcher.n), first_query_row)

    def pid(self) -> int:
        return os.getpid()


class RaySearcher:
    """Exact L2 k-NN over shards on Ray workers; identical to ``ExactSearcher``'s answers."""

    name = "ray"
    exact = True

    def __init__(self, workers: int = 2, address: str = "") -> None:
        cluster.check_workers(workers)
        self.workers, self.address = workers, address
        self.device = f"ray ({workers} workers{' at ' + address if address else ', local'})"
        self.actors: list[Any] = []

    def fit(self, x: Any) -> Self:
        self.n, self.dim = (int(v) for v in x.shape)
        self.ray, self.started = cluster.connect(self.address, self.workers)
        bounds = np.linspace(0, self.n, min(self.workers, self.n) + 1).astype(np.int64)
        remote = self.ray.remote(num_cpus=1, max_restarts=RETRIES,
                                 max_task_retries=RETRIES)(_Shard)
        self.offsets = bounds[:-1].tolist()
        # the searcher keeps the shards: a restarted actor is built from them again
        self.shards = [self._shard(x, int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        self.actors = [remote.remote(shard) for shard in self.shards]
        return self

    def _shard(self, x: Any, a: int, b: int) -> Any:
        if isinstance(x, np.ndarray) and not isinstance(x, np.memmap):
            return self.ray.put(np.ascontiguousarray(x[a:b], np.uint8))
        if hasattr(x, "view"):  # a RowStore: the worker reads its rows itself
            return x.view(a, b)
        return self.ray.put(np.ascontiguousarray(x[a:b], np.uint8))

    def search(self, q: Any, k: int, *, exclude_self: bool = False,
               show: bool = True) -> Neighbours:
        k = query_k(q, self.dim, self.n, k, exclude_self)
        m = int(q.shape[0])
        rounds = []
        for s in range(0, m, QUERY_ROWS):
            block = self.ray.put(np.ascontiguousarray(q[s : s + QUERY_ROWS], np.uint8))
            rounds.append([actor.lists.remote(block, k, s - a if exclude_self else None)
                           for actor, a in zip(self.actors, self.offsets, strict=True)])
        out_d2 = np.empty((m, k), np.int64)
        out_i = np.empty((m, k), np.int64)
        with bar(m, "search (ray)", show and m > QUERY_ROWS, unit="query") as pb:
            for s, refs in zip(range(0, m, QUERY_ROWS), rounds, strict=True):
                parts = [(d2, index + a) for (d2, index), a in
                         zip(self.ray.get(refs), self.offsets, strict=True)]
                d2, index = merge_topk(parts, k)
                out_d2[s : s + len(d2)], out_i[s : s + len(d2)] = d2, index
                pb.update(len(d2))
        assert (out_d2 < never_d2(self.dim)).all()  # every list filled with real rows
        return Neighbours(out_d2, out_i, self.dim)

    def pids(self) -> list[int]:
        """The worker processes' ids, one per shard."""
        return self.ray.get([actor.pid.remote() for actor in self.actors])

    def close(self) -> None:
        """Stop the workers, and the local cluster if this searcher started it."""
        if not hasattr(self, "ray"):
            return
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors, self.shards = [], []
        cluster.disconnect(self.ray, self.started)
