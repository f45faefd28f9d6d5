"""The index's inner loops, compiled with Numba: LCP array, pattern search, longest matches.

The text is the corpus's bytes with a separator byte (0xFF, never part of UTF-8) after every
document; ``sa`` its suffix array, ``isa`` the inverse, ``lcp[r]`` the longest common prefix of the
suffixes ranked r - 1 and r (``lcp[0] = 0``). A query never matches a separator, so no match
crosses a document boundary.

Longest matches (matching statistics; infini-gram's ``creativity``, Liu et al. 2024): for every
query position i, the longest prefix of ``query[i:]`` that occurs in the text. We keep the SA
interval of the current match ``query[i:i+d]`` and use the "shrink from the left" fact that
``query[i+1:i+d]`` occurs too (at one position after any occurrence of the match), so the match at
i + 1 is at least d - 1 long: its interval is found around ``isa[sa[lo] + 1]`` by widening while
``lcp >= d - 1`` (a block-minimum table makes that O(log n)), then narrowed one byte at a time by
binary search. Every position costs one widening and the narrowing steps total at most the query
length plus the widenings, so a query of L bytes takes O(L log n) steps however long its matches
are (Abouelhoda, Kurtz & Ohlebusch 2004, "Replacing suffix trees with enhanced suffix arrays").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

SEP = 0xFF
BLOCK = 64
"""LCP entries per block of the block-minimum table."""
MIN_RANGE = 1 << 16
"""Fewest bytes worth a thread of their own."""


def inverse_and_lcp(text: np.ndarray, sa: np.ndarray, threads: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The inverse suffix array and the LCP array, by the Φ algorithm.

    Kärkkäinen, Manzini & Puglisi (2009), "Permuted Longest-Common-Prefix Array", CPM: the LCP
    is computed in text order (PLCP, where each value is at least the previous one minus one)
    and then permuted into suffix-array order. Each of the three passes is cut into ``threads``
    ranges run at once (the kernels release the GIL); a PLCP range starts its running match at
    0, which costs at most one extra match per range and gives the same values, so the arrays
    do not depend on the thread count.
    """
    n = len(sa)
    isa = np.empty(n, sa.dtype)
    plcp = np.empty(n, sa.dtype)  # holds Φ first: the suffix ranked just before each suffix
    lcp = np.empty(n, sa.dtype)
    in_ranges(lambda lo, hi: _isa_and_phi(sa, isa, plcp, lo, hi), n, threads)
    in_ranges(lambda lo, hi: _plcp(text, plcp, lo, hi), n, threads)
    in_ranges(lambda lo, hi: _permute(plcp, sa, lcp, lo, hi), n, threads)
    return isa, lcp


def in_ranges(job: Callable[[int, int], object], n: int, threads: int = 0) -> list:
    """``job(lo, hi)`` over ``threads`` (0: this process's CPUs) consecutive ranges covering
    range(n), at once in threads; the results in range order."""
    threads = threads or len(os.sched_getaffinity(0))
    cuts = np.linspace(0, n, max(1, min(threads, n // MIN_RANGE + 1)) + 1).astype(np.int64)
    if len(cuts) == 2:
        return [job(0, n)]
    with ThreadPoolExecutor(len(cuts) - 1) as pool:
        return list(pool.map(job, cuts[:-1].tolist(), cuts[1:].tolist()))


@numba.njit(cache=True, nogil=True)
def _isa_and_phi(sa: np.ndarray, isa: np.ndarray, phi: np.ndarray, lo: int, hi: int) -> None:
    for r in range(lo, hi):
        isa[sa[r]] = r
        phi[sa[r]] = sa[r - 1] if r > 0 else -1


@numba.njit(cache=True, nogil=True)
def _plcp(text: np.ndarray, plcp: np.ndarray, lo: int, hi: int) -> None:
    """PLCP over text positions [lo, hi), in place of Φ."""
    n = len(text)
    h = 0
    for i in range(lo, hi):
        j = plcp[i]
        if j < 0:
            plcp[i] = 0
            h = 0
            continue
        while i + h < n and j + h < n and text[i + h] == text[j + h]:
            h += 1
        plcp[i] = h
        if h > 0:
            h -= 1


@numba.njit(cache=True, nogil=True)
def _permute(plcp: np.ndarray, sa: np.ndarray, lcp: np.ndarray, lo: int, hi: int) -> None:
    for r in range(lo, hi):
        lcp[r] = plcp[sa[r]]


def block_table(lcp: np.ndarray) -> np.ndarray:
    """table[k, b] = min(lcp) over blocks b .. b + 2^k - 1 (a sparse table of block minima)."""
    blocks = -(-len(lcp) // BLOCK)
    padded = np.zeros(blocks * BLOCK, lcp.dtype)  # padding reads as lcp 0: the end of the array
    padded[: len(lcp)] = lcp
    levels = max(1, int(blocks).bit_length())
    table = np.zeros((levels, blocks), lcp.dtype)
    table[0] = padded.reshape(blocks, BLOCK).min(axis=1)
    for k in range(1, levels):
        w = 1 << (k - 1)
        table[k, : blocks - w] = np.minimum(table[k - 1, : blocks - w], table[k - 1, w:])
    return table


def buckets(text: np.ndarray) -> np.ndarray:
    """int64 (257,): suffixes starting with byte c have ranks buckets[c] .. buckets[c + 1] - 1."""
    out = np.zeros(257, np.int64)
    np.cumsum(np.bincount(text, minlength=256), out=out[1:])
    return out


@numba.njit(cache=True, nogil=True)
def _widen_left(lcp: np.ndarray, table: np.ndarray, r0: int, ell: int) -> int:
    """The first rank of the interval around r0 whose suffixes share ell bytes (ell >= 1)."""
    j = r0
    first = (r0 // BLOCK) * BLOCK
    while j >= first:
        if lcp[j] < ell:
            return j
        j -= 1
    b = r0 // BLOCK  # blocks [b - w, b) are skipped while their minimum is >= ell
    for k in range(table.shape[0] - 1, -1, -1):
        w = 1 << k
        if b - w >= 0 and table[k, b - w] >= ell:
            b -= w
    j = b * BLOCK - 1  # block b - 1 holds an lcp < ell (block 0 holds lcp[0] = 0)
    while lcp[j] >= ell:
        j -= 1
    return j


@numba.njit(cache=True, nogil=True)
def _widen_right(lcp: np.ndarray, table: np.ndarray, r0: int, ell: int) -> int:
    """The last rank of the interval around r0 whose suffixes share ell bytes (ell >= 1)."""
    n = len(lcp)
    j = r0 + 1
    end = min((r0 // BLOCK + 1) * BLOCK, n)
    while j < end:
        if lcp[j] < ell:
            return j - 1
        j += 1
    if j >= n:
        return n - 1
    b = j // BLOCK
    blocks = table.shape[1]
    for k in range(table.shape[0] - 1, -1, -1):
        w = 1 << k
        if b + w <= blocks and table[k, b] >= ell:
            b += w
    if b >= blocks:
        return n - 1
    j = b * BLOCK
    while j < n and lcp[j] >= ell:
        j += 1
    return j - 1


@numba.njit(cache=True, nogil=True)
def _narrow(text: np.ndarray, sa: np.ndarray, lo: int, hi: int, d: int, c: int
            ) -> tuple[int, int]:
    """The sub-interval of [lo, hi] (suffixes sharing d bytes) whose byte d is c; empty: lo > hi.

    The shared d bytes hold no separator and the text ends with one, so byte d of every suffix
    in the interval exists.
    """
    if hi - lo < 8:  # short intervals: a scan beats a binary search
        a = -1
        b = -2
        for r in range(lo, hi + 1):
            if text[sa[r] + d] == c:
                if a < 0:
                    a = r
                b = r
            elif a >= 0:
                break
        return (a, b) if a >= 0 else (1, 0)
    left, right = lo, hi + 1
    while left < right:  # first rank whose byte d is >= c
        m = (left + right) >> 1
        if text[sa[m] + d] >= c:
            right = m
        else:
            left = m + 1
    a = left
    if a > hi or text[sa[a] + d] != c:
        return 1, 0
    step = 1  # gallop from a: the new interval is usually far smaller than [lo, hi]
    while a + step <= hi and text[sa[a + step] + d] == c:
        left = a + step
        step <<= 1
    right = min(a + step, hi + 1)
    while left < right:  # first rank whose byte d is > c (byte d is c at left)
        m = (left + right) >> 1
        if text[sa[m] + d] > c:
            right = m
        else:
            left = m + 1
    return a, left - 1


@numba.njit(cache=True, nogil=True)
def find(text: np.ndarray, sa: np.ndarray, bucket: np.ndarray, pattern: np.ndarray
         ) -> tuple[int, int]:
    """The SA interval [lo, hi] of the suffixes starting with ``pattern`` (lo > hi: none)."""
    if len(pattern) == 0:
        return 0, len(sa) - 1
    c = pattern[0]
    if c == SEP:
        return 1, 0
    lo, hi = bucket[c], bucket[c + 1] - 1
    for d in range(1, len(pattern)):
        if lo > hi:
            break
        c = pattern[d]
        if c == SEP:
            return 1, 0
        lo, hi = _narrow(text, sa, lo, hi, d, c)
    return lo, hi


@numba.njit(cache=True, nogil=True)
def longest_matches(text: np.ndarray, sa: np.ndarray, isa: np.ndarray, lcp: np.ndarray,
                    table: np.ndarray, bucket: np.ndarray, query: np.ndarray, first: int,
                    stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every query byte i in [first, stop): the longest prefix of query[i:] in the text
    (which may run past ``stop``), one text position where it occurs (the first in suffix order;
    -1 if none) and its number of occurrences. A range starts with an empty match, so ranges
    can be computed apart and give what one pass gives.

    A separator byte in the query matches nothing, so several texts can be queried at once,
    joined by separators, without a match running from one into the next.
    """
    q = len(query)
    length = np.zeros(stop - first, np.int64)
    where = np.full(stop - first, -1, np.int64)
    count = np.zeros(stop - first, np.int64)
    d = 0
    lo = 0
    hi = 0
    for i in range(first, stop):
        while i + d < q:
            c = query[i + d]
            if c == SEP:
                break
            if d == 0:
                a, b = bucket[c], bucket[c + 1] - 1
            else:
                a, b = _narrow(text, sa, lo, hi, d, c)
            if a > b:
                break
            lo, hi = a, b
            d += 1
        if d == 0:
            continue
        length[i - first] = d
        where[i - first] = sa[lo]
        count[i - first] = hi - lo + 1
        d -= 1
        if d > 0:  # query[i+1:i+1+d] occurs one byte after sa[lo]: widen around that suffix
            r0 = isa[sa[lo] + 1]
            lo = _widen_left(lcp, table, r0, d)
            hi = _widen_right(lcp, table, r0, d)
    return length, where, count
