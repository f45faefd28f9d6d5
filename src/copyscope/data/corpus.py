"""TextCorpus: the one in-memory form every text loader produces.

All documents' UTF-8 bytes are concatenated in one uint8 array; document d is
``data[offsets[d]:offsets[d + 1]]``. The bytes are checked to be valid UTF-8 once, at
construction, so everything downstream (the suffix-array index, spans in characters) can work on
bytes and convert to characters without ever meeting a broken character.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from copyscope.errors import CopyscopeError
from copyscope.hashing import sha256_bytes


@dataclass
class TextCorpus:
    data: np.ndarray
    """uint8 (N,): every document's UTF-8 bytes, one after another."""
    offsets: np.ndarray
    """int64 (D + 1,): document d is data[offsets[d]:offsets[d + 1]]."""
    ids: list[str]
    """One name per document (file name, id column, row number)."""
    source: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.dtype != np.uint8 or self.data.ndim != 1:
            raise ValueError("TextCorpus.data must be a 1-d uint8 array")
        o = self.offsets
        if (o.dtype != np.int64 or o.ndim != 1 or len(o) < 1 or o[0] != 0
                or o[-1] != len(self.data) or np.any(np.diff(o) < 0)):
            raise ValueError("TextCorpus.offsets must be non-decreasing int64 from 0 to len(data)")
        if len(self.ids) != len(o) - 1:
            raise ValueError("TextCorpus.ids must have one entry per document")
        check_utf8(self.data, self.offsets, self.ids, self.source)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @cached_property
    def chars(self) -> int:
        """Characters in all documents (UTF-8 lead bytes; continuation bytes are 10xxxxxx)."""
        return int(np.count_nonzero((self.data & 0xC0) != 0x80))

    def document(self, d: int) -> bytes:
        return self.data[self.offsets[d]:self.offsets[d + 1]].tobytes()

    def text(self, d: int) -> str:
        return self.document(d).decode("utf-8")

    def texts(self) -> list[str]:
        return [self.text(d) for d in range(len(self))]

    @cached_property
    def sha256(self) -> str:
        """Content hash of the documents' bytes and boundaries (not of ids or file names)."""
        return sha256_bytes(np.ascontiguousarray(self.offsets).data,
                            np.ascontiguousarray(self.data).data)

    def select(self, index: slice | np.ndarray | Sequence[int], source: str | None = None
               ) -> TextCorpus:
        """The documents ``index`` picks, in that order, as a corpus of their own."""
        picked = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(
            index, dtype=np.int64)
        starts, ends = self.offsets[picked], self.offsets[picked + 1]
        lengths = ends - starts
        offsets = np.zeros(len(picked) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # byte k of the new corpus comes from starts[doc of k] + (k - offsets[doc of k])
        doc = np.repeat(np.arange(len(picked)), lengths)
        data = self.data[starts[doc] + np.arange(offsets[-1]) - offsets[doc]] if len(doc) else \
            np.zeros(0, np.uint8)
        return TextCorpus(np.ascontiguousarray(data, np.uint8), offsets,
                          [self.ids[i] for i in picked], source or self.source, dict(self.meta))

    def describe(self) -> dict[str, object]:
        return {"spec": self.source, "documents": len(self), "bytes": self.nbytes,
                "chars": self.chars, "sha256": self.sha256, **self.meta}


def from_texts(texts: Sequence[str], ids: Sequence[str] | None = None, source: str = "texts",
               meta: dict[str, object] | None = None) -> TextCorpus:
    """A corpus from Python strings (one document each), for loaders and notebook users."""
    encoded = []
    for d, t in enumerate(texts):
        if not isinstance(t, str):
            raise CopyscopeError(f"{source}: document {_name(ids, d)} is a "
                                 f"{type(t).__name__}, not text.")
        try:
            encoded.append(t.encode("utf-8"))
        except UnicodeEncodeError as e:
            raise CopyscopeError(
                f"{source}: document {_name(ids, d)} holds a character that is not valid "
                f"Unicode (a lone surrogate) at character {e.start}.") from e
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), np.uint8).copy()
    names = [str(i) for i in ids] if ids is not None else [str(d) for d in range(len(encoded))]
    return TextCorpus(data, offsets, names, source, dict(meta or {}))


def check_utf8(data: np.ndarray, offsets: np.ndarray, ids: Sequence[str], where: str) -> None:
    """Raise one sentence naming the document and byte offset of the first invalid UTF-8."""
    try:
        np.ascontiguousarray(data).tobytes().decode("utf-8")
    except UnicodeDecodeError as e:
        d = int(np.searchsorted(offsets, e.start, side="right")) - 1
        raise CopyscopeError(
            f"{where}: document {ids[d]!r} is not valid UTF-8 at byte {e.start - offsets[d]} "
            f"({e.reason}).") from e
    # a document boundary inside a character would split it between two documents
    cut = offsets[1:-1]
    cut = cut[cut < len(data)]
    if np.any((data[cut] & 0xC0) == 0x80):
        d = int(np.searchsorted(offsets, cut[(data[cut] & 0xC0) == 0x80][0], side="right")) - 1
        raise CopyscopeError(f"{where}: document {ids[d]!r} starts inside a UTF-8 character.")


def require_text(corpus: TextCorpus) -> TextCorpus:
    """Refuse a corpus with no documents or only empty ones."""
    if len(corpus) == 0:
        raise CopyscopeError(f"{corpus.source} holds no documents (the corpus is empty).")
    if corpus.nbytes == 0:
        raise CopyscopeError(f"{corpus.source}: all {len(corpus)} documents are empty.")
    return corpus


def _name(ids: Sequence[str] | None, d: int) -> str:
    return repr(str(ids[d])) if ids is not None else str(d)
