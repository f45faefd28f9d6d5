"""The corpus passage around a verbatim span: what the report and the app show beside a copy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from copyscope.text.index import SuffixIndex
from copyscope.text.sharded import ShardedIndex

CONTEXT = 120
"""Characters of the source document shown on each side of a span."""


@dataclass(frozen=True)
class Passage:
    """A span's occurrence in its source document, with the text around it."""

    doc: int
    doc_id: str
    offset: int
    """Character offset of the span in the document."""
    before: str
    match: str
    after: str


class Documents:
    """An index's documents decoded on first use and kept (a request's spans often share one)."""

    def __init__(self, index: SuffixIndex | ShardedIndex) -> None:
        self.index = index
        self._decoded: dict[int, str] = {}

    def text(self, doc: int) -> str:
        if doc not in self._decoded:
            self._decoded[doc] = self.index.document(doc).decode("utf-8")
        return self._decoded[doc]

    def passage(self, doc: int, offset: int, length: int, context: int = CONTEXT) -> Passage:
        """The span of ``length`` characters at character ``offset`` of document ``doc``."""
        text = self.text(doc)
        return Passage(doc, self.index.doc_ids(np.array([doc]))[0], offset,
                       text[max(0, offset - context):offset], text[offset:offset + length],
                       text[offset + length:offset + length + context])
