"""One text against an opened index: its verbatim spans, their source passages, and HTML with
the copied characters marked. What the web app's Text tab shows, callable from a notebook::

    lookup = open_lookup("runs/spans")  # copyscope.analysis.texts: a spans run, or an index
    found = highlight(lookup, "Shall I compare thee to a summer's day? ...")
    found.spans, found.passages, found.heldout_p, found.html

The spans are exactly those of ``copyscope text spans`` (:func:`copyscope.text.spans.measure`:
maximal spans of at least ``min_length`` characters, infini-gram's creativity array); the
held-out judgement is that of :mod:`copyscope.text.control`: the share of held-out human chunks
of this text's length whose longest span is at least as long. The index is opened once,
memory-mapped, so a request costs the search of its own characters plus a little bookkeeping.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from copyscope.data.corpus import from_texts
from copyscope.detect import calibration
from copyscope.errors import CopyscopeError
from copyscope.text import control
from copyscope.text.control import HeldoutText
from copyscope.text.index import SuffixIndex
from copyscope.text.passages import Documents, Passage
from copyscope.text.sharded import ShardedIndex
from copyscope.text.spans import MIN_LENGTH, measure

MAX_BYTES = 1_000_000
"""The longest text one request searches (about a second of matching)."""


@dataclass
class TextLookup:
    """An opened index with the spans stage's settings and, when it had one, its held-out
    control (:func:`copyscope.analysis.texts.open_lookup` opens one from a spans run)."""

    index: SuffixIndex | ShardedIndex
    min_length: int = MIN_LENGTH
    heldout: HeldoutText | None = None
    heldout_q: float = control.HELDOUT_Q
    heldout_source: str | None = None

    def __post_init__(self) -> None:
        self.documents = Documents(self.index)
        self.index.matches(b"warm")  # builds the index's lookup tables once, not per request


@dataclass
class Highlighted:
    """One text's verbatim overlap with the corpus (see :func:`highlight`)."""

    text: str
    min_length: int
    longest_span: int
    copied_chars: int
    spans: pd.DataFrame
    """One row per maximal span: start, end, length (characters), count, source_id,
    source_offset, as spans.parquet has them."""
    passages: list[Passage]
    """The source passage of each span, in the same order."""
    heldout_p: float | None = None
    """Share of held-out human chunks of this length with a span at least as long (None: no
    control, or no held-out document that long)."""
    heldout_n: int = 0
    heldout_q: float = control.HELDOUT_Q

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def copied_share(self) -> float | None:
        return self.copied_chars / self.chars if self.chars else None

    @property
    def html(self) -> str:
        return to_html(self)

    def sentence(self) -> str:
        """The answer in one or two plain sentences."""
        if not self.chars:
            return "No text to search: paste or upload some."
        out = (f"{len(self.spans)} verbatim span(s) of at least {self.min_length} characters; "
               f"{self.copied_chars:,} of {self.chars:,} characters "
               f"({100 * (self.copied_share or 0):.1f}%) are copied; the longest match is "
               f"{self.longest_span:,} characters.")
        if self.heldout_p is None:
            return out
        verdict = "unusual" if self.heldout_p <= self.heldout_q else "not unusual"
        return (f"{out} {100 * self.heldout_p:.2f}% of {self.heldout_n:,} held-out human "
                f"chunks of this length have a match at least as long: {verdict} for human "
                f"text (flagged at {100 * self.heldout_q:g}% or less).")


def highlight(lookup: TextLookup, text: str) -> Highlighted:
    """The verbatim spans of ``text`` in the corpus, their passages and held-out judgement."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise CopyscopeError(f"the text is longer than {MAX_BYTES:,} bytes; search it in parts "
                             "or with `copyscope text spans`.")
    if not text:
        return Highlighted(text, lookup.min_length, 0, 0, pd.DataFrame(), [],
                           heldout_q=lookup.heldout_q)
    r = measure(lookup.index, from_texts([text], source="query"), lookup.min_length,
                novelty_n=())
    row = r.texts.iloc[0]
    spans = r.spans[["start", "end", "length", "count", "source_doc", "source_id",
                     "source_offset"]].reset_index(drop=True)
    passages = [lookup.documents.passage(int(s.source_doc), int(s.source_offset),
                                         int(s.length)) for s in spans.itertuples()]
    found = Highlighted(text, lookup.min_length, int(row["longest_span"]),
                        int(row["copied_chars"]), spans, passages, heldout_q=lookup.heldout_q)
    if lookup.heldout is not None:
        null = control.chunks(lookup.heldout, len(text), lookup.min_length)["longest_span"]
        found.heldout_n = len(null)
        if len(null):
            found.heldout_p = float(calibration.heldout_p(
                -np.array([found.longest_span]), -null.to_numpy())[0])
    return found


def to_html(found: Highlighted) -> str:
    """The text with every copied character inside a ``<mark>`` (each span's characters from its
    start to the next span's start, so marks never nest), numbered, and each span's source
    passage below it. Every piece of text is HTML-escaped."""
    text, pieces, at = found.text, [], 0
    starts = [int(s) for s in found.spans.get("start", [])]
    for k, s in enumerate(found.spans.itertuples()):
        end = min(int(s.end), starts[k + 1]) if k + 1 < len(starts) else int(s.end)
        pieces.append(html.escape(text[at:s.start]))
        pieces.append(f'<mark title="{html.escape(str(s.source_id))}, character '
                      f'{int(s.source_offset):,}">{html.escape(text[s.start:end])}</mark>'
                      f'<sup><a href="#copyscope-span-{k}">{k + 1}</a></sup>')
        at = end
    pieces.append(html.escape(text[at:]))
    sources = [
        f'<li id="copyscope-span-{k}"><strong>{k + 1}</strong>: {len(p.match):,} characters '
        f"(characters {int(s.start):,}–{int(s.end):,} of the text, {int(s.count)} occurrence(s) "
        f"in the corpus), from <code>{html.escape(p.doc_id)}</code> at character "
        f'{p.offset:,}:<div class="copyscope-passage">…{html.escape(p.before)}'
        f"<mark>{html.escape(p.match)}</mark>{html.escape(p.after)}…</div></li>"
        for k, (s, p) in enumerate(zip(found.spans.itertuples(), found.passages, strict=True))]
    listing = f'<ol class="copyscope-sources">{"".join(sources)}</ol>' if sources else ""
    return f'<div class="copyscope-text">{"".join(pieces)}</div>{listing}'


def read_text_file(path: str | Path) -> str:
    """An uploaded .txt file as text: UTF-8 (a byte-order mark is dropped), at most
    :data:`MAX_BYTES`; anything else is refused in one sentence."""
    path = Path(path)
    if path.stat().st_size > MAX_BYTES:
        raise CopyscopeError(f"{path.name} is larger than {MAX_BYTES:,} bytes; search it with "
                             "`copyscope text spans`.")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CopyscopeError(f"{path.name} is not UTF-8 text (undecodable byte at offset "
                             f"{e.start}); save it as UTF-8 and upload it again.") from e
