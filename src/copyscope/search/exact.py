"""Exact k-NN over uint8 vectors with an int8 matrix multiply: copyscope's default search.

Shifting pixels by 128 turns uint8 into int8 (q' = q - 128, x' = x - 128) without changing any
distance, so ||q - x||^2 = ||q'||^2 + ||x'||^2 - 2 q'.x'. Ranking the training items for one query
only needs s(x) = ||x'||^2 - 2 q'.x', and ``torch._int_mm`` computes q'.x' exactly in int32 (VNNI
on x86), several times the throughput of fp32 sgemm (measured in benchmarks/). Nothing
is rounded, so the ranking is the float64 brute-force ranking. Queries are processed in blocks
written into one reused output buffer (fresh 100 MB allocations cost more in page faults than
the multiply), and the top-k selection runs on each block as soon as it is computed, in two exact
stages: the minimum of each group of 16 columns, the k best groups, then top-k inside those k
groups only (the k-th smallest group minimum bounds the k-th smallest score, so nothing is
lost).

For d > 33,024 the int32 scores could overflow, and the search falls back to float64, which
is exact for any 8-bit image size.

Training sets larger than memory: a set that is not an in-memory array (a memory-mapped
``.npy``, a :class:`copyscope.data.store.RowStore`), or any set when ``block_rows`` is given, is
streamed: read and prepared one block of rows at a time on every search, each block searched
as above, and the blocks' top-k lists merged by (distance, index). Peak memory is then bounded
by the block, not the set, and the neighbours are those of the one-block search (tested).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch

from copyscope.progress import bar
from copyscope.search.base import Neighbours, merge_topk, query_k
from copyscope.tensors import default_device

INT8_MAX_DIM = (2**31 - 1) // 255**2 - 1
BUFFER_BYTES = 256 * 2**20
BLOCK_BYTES = 128 * 2**20
"""Training bytes prepared at once when a set is streamed (about 3x this is held in memory)."""
GROUP = 16


@dataclass
class _Block:
    """Training rows ready for the GEMM: shifted, transposed, with their norms."""

    xt: torch.Tensor
    """(D', n_cols) int8 (float64 beyond INT8_MAX_DIM), padded to whole groups."""
    c: torch.Tensor
    """(n_cols,) squared norms; padding columns get ``big`` and can never be nearest."""
    n: int
    """Real rows (the rest is padding)."""


class ExactSearcher:
    """Exact L2 k-NN (int8 GEMM + blocked top-k). See the module docstring for the algebra."""

    name = "int8"
    exact = True

    def __init__(self, device: str | torch.device | None = None,
                 buffer_bytes: int = BUFFER_BYTES, block_rows: int | None = None) -> None:
        self.device = torch.device(device if device is not None else default_device())
        self.buffer_bytes = buffer_bytes
        self.block_rows = block_rows

    def fit(self, x: Any) -> Self:
        """Index (N, D) uint8 rows: an array (prepared whole, unless ``block_rows`` is set) or
        anything else with ``shape`` and row slicing (streamed)."""
        self.n, self.dim = (int(v) for v in x.shape)
        self.int8 = self.dim <= INT8_MAX_DIM
        self.big = torch.iinfo(torch.int32).max if self.int8 else float("inf")
        in_memory = isinstance(x, np.ndarray) and not isinstance(x, np.memmap)
        if in_memory and self.block_rows is None:
            self.x, self.rows = None, self.n
            self._whole = self._prepare(np.ascontiguousarray(x, dtype=np.uint8))
        else:
            self.x, self._whole = x, None
            self.rows = self.block_rows or max(GROUP, BLOCK_BYTES // self.dim)
        return self

    @property
    def streamed(self) -> bool:
        return self._whole is None

    def blocks(self) -> Iterator[tuple[int, _Block]]:
        """(first row, prepared block) over the indexed set."""
        if self._whole is not None:
            yield 0, self._whole
            return
        for a in range(0, self.n, self.rows):
            yield a, self._prepare(np.ascontiguousarray(self.x[a : a + self.rows], np.uint8))

    def _prepare(self, x: np.ndarray) -> _Block:
        xt = torch.tensor(x, device=self.device)
        if self.int8:
            xs = _shift(xt, _pad8(self.dim))
            c = _norms(xs)
        else:
            xs = xt.to(torch.float64)
            c = (xs**2).sum(1)
        # pad to whole groups (and cuda's N % 8 == 0) with items that can never be nearest
        n_pad = (-len(x)) % GROUP
        if n_pad:
            xs = torch.cat([xs, xs.new_zeros(n_pad, xs.shape[1])])
            c = torch.cat([c, c.new_full((n_pad,), self.big)])
        # the CPU GEMMs read the transposed view as fast as a transposed copy (measured); cuBLAS
        # gets the layout it was written for
        return _Block(xs.t() if self.device.type == "cpu" else xs.t().contiguous(), c, len(x))

    def search(self, q: Any, k: int, *, exclude_self: bool = False,
               show: bool = True) -> Neighbours:
        k = query_k(q, self.dim, self.n, k, exclude_self)
        n_blocks = -(-self.n // self.rows)
        with bar(q.shape[0] * n_blocks, "search", show and (q.shape[0] > 4096 or n_blocks > 1),
                 unit="query") as pb:
            d2, index = self.lists(q, k, 0 if exclude_self else None, pb)
        return Neighbours(d2, index, self.dim)

    def lists(self, q: Any, k: int, first_query_row: int | None = None,
              pb: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Each (M, D) query's k nearest indexed rows by (distance, row): (M, k) int64 squared
        distances and rows. With ``first_query_row`` = r, query i is indexed row r + i and never
        returns itself (r may lie outside the index, as for a shard of a larger set: a query
        that is not indexed here excludes nothing); with fewer than k other rows the lists end
        in rows at a distance larger than any real one (255^2 D + 1), which a merge drops."""
        best: tuple[np.ndarray, np.ndarray] | None = None
        with torch.inference_mode():
            for a, block in self.blocks():
                excl = None if first_query_row is None else first_query_row - a
                d2, index = self._search_block(block, q, k, excl, pb)
                index += a
                best = (d2, index) if best is None else merge_topk([best, (d2, index)], k)
        assert best is not None
        return best

    def _search_block(self, block: _Block, q: Any, k: int, excl: int | None,
                      pb: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each query's k nearest rows of ``block`` by (distance, row), rows local to it. With
        ``excl`` set, query i is the block's row i + excl and never returns itself."""
        m_total, n_cols = int(q.shape[0]), block.xt.shape[1]
        kb = min(k, n_cols)
        item_bytes = 4 if self.int8 else 8
        rows = int(max(32, min(4096, self.buffer_bytes // (item_bytes * n_cols))))
        buf = torch.empty(min(rows, max(m_total, 17)) * n_cols, device=self.device,
                          dtype=torch.int32 if self.int8 else torch.float64)
        out_d2 = np.empty((m_total, kb), dtype=np.int64)
        out_i = np.empty((m_total, kb), dtype=np.int64)
        for s in range(0, m_total, rows):
            qb = torch.tensor(np.ascontiguousarray(q[s : s + rows], np.uint8), device=self.device)
            m = len(qb)
            scores, const = self._scores(block, qb, buf)
            own = torch.arange(m, device=self.device) + s + (excl or 0)  # (m,) own column
            if excl is not None:
                r = torch.nonzero((own >= 0) & (own < block.n)).flatten()
                scores[r, own[r]] = self.big
            v, i = _best(scores, kb, self.big)
            fake = i >= block.n  # padding, or (below) the query itself
            if excl is not None:
                fake |= i == own[:, None]
            d2 = v.masked_fill(fake, 0).to(torch.int64) + const[:, None]
            out_d2[s : s + m] = d2.masked_fill(fake, never_d2(self.dim)).cpu().numpy()
            out_i[s : s + m] = i.cpu().numpy()
            if pb is not None:
                pb.update(m)
        return out_d2, out_i

    def _scores(self, block: _Block, qb: torch.Tensor, buf: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Block scores s = ||x||^2 - 2 q.x and the per-query ||q||^2 that turns s into d2."""
        m, n_cols = len(qb), block.xt.shape[1]
        if self.int8:
            q8 = _shift(qb, block.xt.shape[0])
            rows = max(m, 17) if self.device.type == "cuda" else m
            if rows > m:  # cuda's int mm wants more than 16 rows
                q8 = torch.cat([q8, q8.new_zeros(rows - m, q8.shape[1])])
            out = buf[: rows * n_cols].view(rows, n_cols)
            torch._int_mm(q8, block.xt, out=out)
            scores = torch.add(block.c, out[:m], alpha=-2, out=out[:m])  # one pass: c - 2 q.x
            return scores, _norms(q8[:m]).to(torch.int64)
        qd = qb.to(torch.float64)
        out = buf[: m * n_cols].view(m, n_cols)
        torch.mm(qd, block.xt, out=out)
        scores = torch.add(block.c, out, alpha=-2, out=out)
        const = (qd**2).sum(1).round().to(torch.int64)
        # float64 scores are exact integers here; topk values convert to int64 without loss
        return scores, const

def never_d2(dim: int) -> int:
    """A squared distance larger than any between two uint8 vectors of ``dim`` entries."""
    return 255**2 * dim + 1


def _best(scores: torch.Tensor, k: int, big: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest scores per row and their columns, ordered by (score, column): a tie at
    the k-th place goes to the smaller column, so any split of the columns into blocks merges
    into the same lists. One more than k is selected; a row whose (k+1)-th score equals its
    k-th (a tie across the cut, rare; ties among ``big``, the columns that never count, do not
    matter) is redone by a stable sort of the whole row."""
    m, n = scores.shape
    if k >= n:
        v, i = scores, torch.arange(n, device=scores.device).expand(m, n)
    else:
        v, i = _smallest(scores, k + 1)
    o = i.argsort(dim=1)
    v, i = v.gather(1, o), i.gather(1, o)
    o = v.sort(dim=1, stable=True).indices  # by score, columns ascending within a tie
    v, i = v.gather(1, o), i.gather(1, o)
    if k < n:
        cut = (v[:, k] == v[:, k - 1]) & (v[:, k - 1] < big)
        for r in torch.nonzero(cut).flatten().tolist():
            vr, ir = scores[r].sort(stable=True)
            v[r, :k], i[r, :k] = vr[:k], ir[:k]
    return v[:, :k], i[:, :k]


def _smallest(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest scores per row and their columns (exact; two-stage when that is cheaper)."""
    m, n = scores.shape
    groups = n // GROUP
    if k * 4 > groups:
        return torch.topk(scores, k, dim=1, largest=False, sorted=False)
    minima = scores.view(m, groups, GROUP).amin(2)
    best = torch.topk(minima, k, dim=1, largest=False, sorted=False).indices
    cols = (best[:, :, None] * GROUP + torch.arange(GROUP, device=scores.device)).reshape(m, -1)
    v, j = torch.topk(scores.gather(1, cols), k, dim=1, largest=False, sorted=False)
    return v, cols.gather(1, j)


def _shift(x: torch.Tensor, width: int) -> torch.Tensor:
    """uint8 -> int8 by subtracting 128 (flipping the top bit), zero-padded to ``width``."""
    xs = x.view(torch.int8) ^ -128
    if width > xs.shape[1]:
        xs = torch.nn.functional.pad(xs, (0, width - xs.shape[1]))
    return xs


def _norms(xs: torch.Tensor, rows: int = 2048) -> torch.Tensor:
    """Exact int32 squared norms of int8 rows, a cache-sized block at a time (25x faster here
    than squaring the whole matrix in int32 at once)."""
    out = torch.empty(len(xs), dtype=torch.int32, device=xs.device)
    for a in range(0, len(xs), rows):
        b = xs[a : a + rows].to(torch.int16)  # 128^2 fits; the sum goes to int32
        out[a : a + rows] = b.mul_(b).sum(1, dtype=torch.int32)
    return out


def _pad8(d: int) -> int:
    return d + (-d) % 8
