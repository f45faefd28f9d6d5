"""Nearest-neighbour search over the training set.

Backends implement the :class:`Searcher` protocol and are imported on first use, so that
importing copyscope (and starting the CLI) does not pay for torch, FAISS or Ray. Every backend
but ``ivf`` is exhaustive; ``ivf`` is approximate (``exact`` False), and an audit measures its
recall against the exact search (:mod:`copyscope.search.recall`).
"""

from __future__ import annotations

import importlib
from typing import Any

from copyscope.search.base import Neighbours, Searcher, normalised_l2

BACKENDS = {"int8": "copyscope.search.exact:ExactSearcher",
            "faiss": "copyscope.search.faiss_flat:FaissSearcher",
            "ray": "copyscope.search.ray_sharded:RaySearcher",
            "ivf": "copyscope.search.faiss_ivf:IvfSearcher"}
LOCAL = ("int8", "faiss")
"""Backends that search in this process, exhaustively."""
SAME_AS = {"ray": "int8"}
"""Backends whose answers are another backend's, bit for bit (an audit's identity names that
one, so a run may be resumed with either)."""


def aux_backend(backend: str) -> str:
    """The backend of an audit's smaller searches (held-out set, k-means cells, seen subsets):
    the training set's own when it runs locally, else the exact int8 search."""
    return backend if backend in LOCAL else "int8"


def check_backend(backend: str, **options: Any) -> None:
    """Fail early, before an audit writes anything, when a backend cannot run here (Ray not
    installed, a cluster address that does not answer)."""
    if backend == "ray":
        from copyscope import cluster

        cluster.check(options.get("address", ""), options.get("workers", 1))


def make_searcher(backend: str = "int8", **kw: Any) -> Searcher:
    """A new, unfitted searcher of the named backend (see BACKENDS)."""
    module, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module), cls)(**kw)


__all__ = ["BACKENDS", "SAME_AS", "Neighbours", "Searcher", "aux_backend", "check_backend",
           "make_searcher", "normalised_l2"]
