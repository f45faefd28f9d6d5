"""A suffix-array index cut into shards: corpora whose index does not fit in memory at once.

Building a :class:`~copyscope.text.index.SuffixIndex` holds its text, suffix array, inverse and
LCP array in memory, about 13 bytes per corpus byte below 2 GiB (21 above). A
:class:`ShardedIndex` cuts the corpus into consecutive runs of whole documents of at most
``shard_bytes`` bytes each (a longer document gets a shard of its own) and builds and writes one
shard at a time, so building needs memory for one shard's arrays plus the corpus's bytes. A query
goes to every shard (each memory-mapped) and the answers are merged by
:func:`~copyscope.text.index.merge_matches`: the longest match at every position and its count
are those of one index over the whole corpus (tested); the occurrence reported is one of the
shard that reaches that length first, which may be another occurrence than one index reports.

On disk::

    index.json       {"format", "sharded": true, "shard_bytes", "shards": [...], corpus, sizes}
    shard-0000/ ...  a SuffixIndex each, its documents numbered from its first one
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from copyscope.data.corpus import TextCorpus, require_text
from copyscope.errors import CopyscopeError
from copyscope.files import write_json
from copyscope.progress import progress
from copyscope.text.index import FORMAT, Matches, SuffixIndex, merge_matches


class ShardedIndex:
    """Several SuffixIndex shards over consecutive document ranges, queried as one index."""

    doc_start = 0

    def __init__(self, shards: list[SuffixIndex], meta: dict[str, Any],
                 path: Path | None = None) -> None:
        self.shards, self.meta, self.path = shards, meta, path
        self.starts = np.array([s.doc_start for s in shards] + [int(meta["documents"])])

    def __len__(self) -> int:
        return int(self.meta["documents"])

    @property
    def corpus_sha256(self) -> str:
        return str(self.meta["corpus"]["sha256"])

    @classmethod
    def build(cls, corpus: TextCorpus, path: str | Path | None = None,
              shard_bytes: int = 2**30, show: bool = True) -> ShardedIndex:
        """Index ``corpus`` in shards of at most ``shard_bytes`` bytes of whole documents; with
        ``path``, every shard is written there as soon as it is built (index.json last)."""
        require_text(corpus)
        if shard_bytes < 1:
            raise CopyscopeError(f"shard_bytes must be at least 1, not {shard_bytes}.")
        bounds = shard_bounds(corpus.offsets, shard_bytes)
        shards = []
        for j, (a, b) in enumerate(progress(list(itertools.pairwise(bounds)),
                                            desc="index shards", show=show)):
            where = Path(path) / f"shard-{j:04d}" if path is not None else None
            shards.append(SuffixIndex.build(corpus.select(slice(int(a), int(b))), where,
                                            doc_start=int(a), show=False))
        meta = {"format": FORMAT, "sharded": True, "shard_bytes": shard_bytes,
                "shards": [f"shard-{j:04d}" for j in range(len(shards))],
                "corpus": corpus.describe(), "documents": len(corpus),
                "bytes": sum(int(s.meta["bytes"]) for s in shards),
                "timings_s": _timings(shards)}
        if path is not None:
            write_json(Path(path) / "index.json", meta)
            return cls.open(path)
        return cls(shards, meta)

    @classmethod
    def open(cls, path: str | Path) -> ShardedIndex:
        path = Path(path)
        try:
            meta = json.loads((path / "index.json").read_text())
        except (OSError, ValueError) as e:
            raise CopyscopeError(f"{path}: the index is damaged ({e}); rebuild it with "
                                 "`copyscope text index --force`.") from e
        shards = [SuffixIndex.open(path / name) for name in meta["shards"]]
        ends = [s.doc_start + len(s) for s in shards]
        if [s.doc_start for s in shards] != [0, *ends[:-1]] or ends[-1:] != [meta["documents"]]:
            raise CopyscopeError(f"{path}: the shards do not fit together (mixed up or missing); "
                                 "rebuild it with `copyscope text index --force`.")
        return cls(shards, meta, path)

    def matches(self, query: bytes | np.ndarray) -> Matches:
        return merge_matches([s.matches(query) for s in self.shards])

    def count(self, pattern: bytes) -> int:
        return sum(s.count(pattern) for s in self.shards)

    def _shard_of(self, doc: int) -> SuffixIndex:
        return self.shards[int(np.searchsorted(self.starts, doc, side="right")) - 1]

    def doc_ids(self, doc: np.ndarray) -> list[str]:
        return [self._shard_of(int(d)).doc_ids(np.array([d]))[0] for d in doc]

    def document(self, doc: int) -> bytes:
        return self._shard_of(doc).document(doc)

    def char_offsets(self, doc: np.ndarray, offset: np.ndarray) -> np.ndarray:
        doc, offset = np.asarray(doc, np.int64), np.asarray(offset, np.int64)
        out = np.full(len(doc), -1, np.int64)
        shard = np.searchsorted(self.starts, doc, side="right") - 1
        for j in np.unique(shard[doc >= 0]):
            rows = (shard == j) & (doc >= 0)
            out[rows] = self.shards[j].char_offsets(doc[rows], offset[rows])
        return out


def shard_bounds(offsets: np.ndarray, shard_bytes: int) -> np.ndarray:
    """Document numbers where shards start (and the end): consecutive documents while their
    bytes (with one separator each) stay within ``shard_bytes``; at least one per shard."""
    sizes = np.diff(offsets) + 1  # (D,) bytes of each document and its separator
    bounds, used = [0], 0
    for d, size in enumerate(sizes.tolist()):
        if used and used + size > shard_bytes:
            bounds.append(d)
            used = 0
        used += size
    return np.array([*bounds, len(sizes)])


def open_index(path: str | Path) -> SuffixIndex | ShardedIndex:
    """The index stored at ``path``, sharded or not."""
    manifest = Path(path) / "index.json"
    if manifest.is_file():
        try:
            sharded = bool(json.loads(manifest.read_text()).get("sharded"))
        except ValueError:
            sharded = False  # SuffixIndex.open says what is wrong with it
        if sharded:
            return ShardedIndex.open(path)
    return SuffixIndex.open(path)


def _timings(shards: list[SuffixIndex]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in shards:
        for k, v in s.meta.get("timings_s", {}).items():
            out[k] = round(out.get(k, 0.0) + v, 3)
    return out
