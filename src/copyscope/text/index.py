"""A suffix-array index over one corpus (or a slice of one), stored on disk and memory-mapped.

The indexed text is every document's bytes followed by a separator byte 0xFF, which never occurs
in UTF-8: a query (valid UTF-8) can never match it, so no match crosses a document boundary and
every match lies inside one document. The suffix array comes from ``pydivsufsort`` (libdivsufsort,
Mori); the inverse suffix array and LCP array built beside it let :meth:`SuffixIndex.matches`
compute the longest match at every query position in O(L log n) steps (see
:mod:`copyscope.text.kernels`).

On disk an index is a folder::

    index.json    format, corpus description and content hash, sizes, document numbering
    corpus.bin    the indexed text (uint8, documents and separators)
    sa.npy        suffix array (int32 below 2 GiB, else int64)
    isa.npy       its inverse
    lcp.npy       LCP array (lcp[r] = common prefix of the suffixes ranked r - 1 and r)
    starts.npy    int64 (D + 1,): document d is corpus.bin[starts[d]:starts[d + 1] - 1]
    ids.json      the documents' ids

One index covers one corpus slice. Its documents are numbered from ``doc_start``, so the
:class:`Matches` of several indexes over consecutive slices of one corpus (shards) combine with
:func:`merge_matches` into the answer for the whole corpus.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from copyscope.data.corpus import TextCorpus, require_text
from copyscope.errors import CopyscopeError
from copyscope.files import atomic_path, write_json
from copyscope.progress import bar
from copyscope.text import kernels

FORMAT = 1
SEP = kernels.SEP
FILES = ("corpus.bin", "sa.npy", "isa.npy", "lcp.npy", "starts.npy", "ids.json")


@dataclass(frozen=True)
class Matches:
    """For every byte i of a query: the longest prefix of ``query[i:]`` found in the index."""

    length: np.ndarray
    """int64 (L,): its length in bytes (0: not even the first byte occurs)."""
    doc: np.ndarray
    """int64 (L,): the document (numbered across shards) of one occurrence; -1 where length 0."""
    offset: np.ndarray
    """int64 (L,): the byte offset of that occurrence in its document; -1 where length 0."""
    count: np.ndarray
    """int64 (L,): how often ``query[i:i+length]`` occurs in the index (0 where length 0)."""


def merge_matches(parts: Sequence[Matches]) -> Matches:
    """The matches against the union of several indexes (shards) from each one's matches.

    The longest match over the union is the longest of any shard's; it occurs in every shard that
    reaches that length and in no other, so the counts of those shards add up, and the first such
    shard (in the order given) supplies the occurrence.
    """
    if not parts:
        raise ValueError("merge_matches needs at least one Matches")
    length = np.max([p.length for p in parts], axis=0)  # (S, L) -> (L,)
    count = np.zeros_like(length)
    doc = np.full_like(length, -1)
    offset = np.full_like(length, -1)
    for p in parts:
        best = (p.length == length) & (length > 0)
        count += np.where(best, p.count, 0)
        take = best & (doc < 0)
        doc[take], offset[take] = p.doc[take], p.offset[take]
    return Matches(length, doc, offset, count)


class SuffixIndex:
    """The suffix-array index of one corpus slice; build it with :meth:`build`, reopen with
    :meth:`open` (memory-mapped, so opening is instant and pages load on demand)."""

    def __init__(self, text: np.ndarray, sa: np.ndarray, isa: np.ndarray, lcp: np.ndarray,
                 starts: np.ndarray, ids: list[str], meta: dict[str, Any],
                 path: Path | None = None) -> None:
        self.text, self.sa, self.isa, self.lcp = text, sa, isa, lcp
        self.starts, self.ids, self.meta, self.path = starts, ids, meta, path
        self.doc_start = int(meta.get("doc_start", 0))

    def __len__(self) -> int:
        """Documents in the index."""
        return len(self.ids)

    @property
    def corpus_sha256(self) -> str:
        return str(self.meta["corpus"]["sha256"])

    @cached_property
    def _table(self) -> np.ndarray:
        return kernels.block_table(self.lcp)

    @cached_property
    def _bucket(self) -> np.ndarray:
        return kernels.buckets(self.text)

    @classmethod
    def build(cls, corpus: TextCorpus, path: str | Path | None = None, doc_start: int = 0,
              show: bool = True) -> SuffixIndex:
        """Index ``corpus`` (its documents numbered from ``doc_start``); with ``path``, store the
        index there (every file written atomically, index.json last) and return it opened."""
        import pydivsufsort

        require_text(corpus)
        timings = {}
        progress = bar(3, desc="index", show=show)
        start = time.perf_counter()
        text, starts = with_separators(corpus)
        sa = pydivsufsort.divsufsort(text)
        timings["suffix_array"] = time.perf_counter() - start
        progress.update(1)
        start = time.perf_counter()
        isa, lcp = kernels.inverse_and_lcp(text, sa)
        timings["inverse_and_lcp"] = time.perf_counter() - start
        progress.update(1)
        meta = {"format": FORMAT, "corpus": corpus.describe(), "documents": len(corpus),
                "bytes": len(text), "separator": SEP, "doc_start": int(doc_start),
                "sa_dtype": str(sa.dtype)}
        if path is None:
            progress.close()
            meta["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
            return cls(text, sa, isa, lcp, starts, list(corpus.ids), meta)
        start = time.perf_counter()
        path = Path(path)
        for name, array in (("sa.npy", sa), ("isa.npy", isa), ("lcp.npy", lcp),
                            ("starts.npy", starts)):
            with atomic_path(path / name) as tmp, open(tmp, "wb") as f:
                np.save(f, array)
        with atomic_path(path / "corpus.bin") as tmp:
            text.tofile(tmp)
        with atomic_path(path / "ids.json") as tmp:
            tmp.write_text(json.dumps(list(corpus.ids)))
        timings["write"] = time.perf_counter() - start
        meta["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        write_json(path / "index.json", meta)
        progress.update(1)
        progress.close()
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> SuffixIndex:
        """Open a stored index, memory-mapped; a missing or damaged index is one clear error."""
        path = Path(path)
        manifest = path / "index.json"
        if not manifest.is_file():
            raise CopyscopeError(f"{path} is not a copyscope text index (no index.json); build "
                                 "one with `copyscope text index`.")
        try:
            meta = json.loads(manifest.read_text())
            text = np.memmap(path / "corpus.bin", dtype=np.uint8, mode="r")
            arrays = [np.load(path / n, mmap_mode="r") for n in ("sa.npy", "isa.npy", "lcp.npy")]
            starts = np.load(path / "starts.npy")
            ids = json.loads((path / "ids.json").read_text())
        except (OSError, ValueError, json.JSONDecodeError) as e:
            raise CopyscopeError(f"{path}: the index is damaged ({e}); rebuild it with "
                                 "`copyscope text index --force`.") from e
        if meta.get("format") != FORMAT:
            raise CopyscopeError(f"{path} holds an index of format {meta.get('format')}; this "
                                 f"copyscope reads format {FORMAT}, so rebuild it.")
        n = int(meta["bytes"])
        sizes_ok = (len(text) == n and all(len(a) == n for a in arrays)
                    and len(starts) == len(ids) + 1 == int(meta["documents"]) + 1
                    and int(starts[-1]) == n and n > 0 and text[n - 1] == SEP)
        if not sizes_ok:
            raise CopyscopeError(f"{path}: the index files do not fit together (truncated or "
                                 "mixed up); rebuild it with `copyscope text index --force`.")
        sa, isa, lcp = (np.asarray(a) for a in arrays)  # plain ndarray views of the maps
        return cls(np.asarray(text), sa, isa, lcp, starts, ids, meta, path)

    def matches(self, query: bytes | np.ndarray) -> Matches:
        """The longest match in the index at every byte of ``query`` (uint8 or bytes).

        Separator bytes (0xFF) in the query match nothing: join several texts with them to
        query them at once.
        """
        q = np.frombuffer(query, np.uint8) if isinstance(query, bytes) else np.asarray(query)
        if q.dtype != np.uint8:
            raise ValueError("a query must be bytes or a uint8 array")
        table, bucket = self._table, self._bucket
        parts = kernels.in_ranges(lambda lo, hi: kernels.longest_matches(
            self.text, self.sa, self.isa, self.lcp, table, bucket, q, lo, hi), len(q))
        length, where, count = (np.concatenate([p[k] for p in parts]) for k in range(3))
        doc, offset = self.locate(where)
        return Matches(length, doc, offset, count)

    def locate(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Document number (from ``doc_start``) and byte offset in it of text positions (-1
        stays -1)."""
        position = np.asarray(position, np.int64)
        local = np.searchsorted(self.starts, position, side="right") - 1
        offset = position - self.starts[np.clip(local, 0, len(self.ids))]
        found = position >= 0
        return (np.where(found, local + self.doc_start, -1), np.where(found, offset, -1))

    def count(self, pattern: bytes) -> int:
        """How often ``pattern`` occurs in the index (never across a document boundary)."""
        lo, hi = kernels.find(self.text, self.sa, self._bucket,
                              np.frombuffer(pattern, np.uint8))
        return max(0, int(hi) - int(lo) + 1)

    def doc_ids(self, doc: np.ndarray) -> list[str]:
        """The ids of documents numbered from ``doc_start``."""
        return [self.ids[int(d) - self.doc_start] for d in doc]

    def document(self, doc: int) -> bytes:
        """The bytes of document ``doc`` (numbered from ``doc_start``)."""
        d = doc - self.doc_start
        return self.text[self.starts[d]:self.starts[d + 1] - 1].tobytes()

    def char_offsets(self, doc: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Byte offsets in documents turned into character offsets (-1 stays -1)."""
        doc, offset = np.asarray(doc, np.int64), np.asarray(offset, np.int64)
        out = np.full(len(doc), -1, np.int64)
        for d in np.unique(doc[doc >= 0]):
            rows = np.flatnonzero(doc == d)
            local = d - self.doc_start
            piece = self.text[self.starts[local]:self.starts[local + 1]]
            leads = np.concatenate([[0], np.cumsum((piece & 0xC0) != 0x80)])
            out[rows] = leads[offset[rows]]
        return out


def with_separators(corpus: TextCorpus) -> tuple[np.ndarray, np.ndarray]:
    """The corpus's bytes with 0xFF after every document, and each document's start in them."""
    lengths = np.diff(corpus.offsets)
    starts = corpus.offsets + np.arange(len(corpus) + 1)  # (D + 1,)
    text = np.full(corpus.nbytes + len(corpus), SEP, np.uint8)
    # byte k of document d moves d places right (one separator per earlier document)
    text[np.arange(corpus.nbytes) + np.repeat(np.arange(len(corpus)), lengths)] = corpus.data
    return text, starts
