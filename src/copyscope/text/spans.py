"""Verbatim overlap of texts with a corpus: per-character longest matches, copied spans, novelty.

For every character of a text, the length (in characters) of the longest substring starting
there that occurs in the corpus: infini-gram's ``creativity`` array (Liu, Min, Zettlemoyer, Choi
& Hajishirzi 2024, "Infini-gram: Scaling Unbounded n-gram Language Models to a Trillion Tokens").
From it, per text:

- ``longest_span``: its maximum, the longest passage found verbatim in the corpus;
- the maximal verbatim spans of at least ``min_length`` characters (default 50, the threshold of
  Lee, Ippolito, Nystrom, Zhang, Eck, Callison-Burch & Carlini 2022, "Deduplicating Training
  Data Makes Language Models Better"), each with one source document, its character offset
  there, and how often the span occurs in the corpus; a span is maximal when the span starting
  one character earlier does not contain it;
- ``copied_chars`` / ``copied_share``: the characters inside such spans;
- the n-gram novelty curve: for each n, the share of the text's character n-grams that occur
  nowhere in the corpus, i.e. of positions whose longest match is shorter than n (the n-novelty
  of Merrill, Smith & Elazar 2024, "Evaluating n-Gram Novelty of Language Models Using
  Rusty-DAWG", computed here over characters).

The index works on UTF-8 bytes; lengths are converted to characters here: a byte match that ends
inside a multi-byte character counts only the characters it holds completely, so a span never
splits a character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from copyscope.data.corpus import TextCorpus
from copyscope.text.index import SEP, Matches, with_separators

MIN_LENGTH = 50
NOVELTY_N = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50, 64, 100, 128, 256)
"""The n of the novelty curve, in characters (texts.parquet columns novel_<n>)."""


class Matcher(Protocol):
    """What :func:`measure` needs of an index: a SuffixIndex, or shards merged behind one."""

    def matches(self, query: np.ndarray) -> Matches: ...

    def count(self, pattern: bytes) -> int: ...

    def char_offsets(self, doc: np.ndarray, offset: np.ndarray) -> np.ndarray: ...

    def doc_ids(self, doc: np.ndarray) -> list[str]: ...


@dataclass
class SpanResult:
    """Per-text measures, per-span rows, and the per-character longest matches behind them."""

    texts: pd.DataFrame
    """One row per text, in input order."""
    spans: pd.DataFrame
    """One row per maximal span of at least min_length characters."""
    creativity: np.ndarray
    """int64 (C,): longest match in characters at every character of every text, concatenated."""
    char_offsets: np.ndarray
    """int64 (T + 1,): text t's characters are creativity[char_offsets[t]:char_offsets[t + 1]]."""
    min_length: int = MIN_LENGTH

    def of(self, t: int) -> np.ndarray:
        """The creativity array of text t."""
        return self.creativity[self.char_offsets[t]:self.char_offsets[t + 1]]


def measure(index: Matcher, texts: TextCorpus, min_length: int = MIN_LENGTH,
            novelty_n: tuple[int, ...] = NOVELTY_N) -> SpanResult:
    """Search every position of every text in ``index`` and measure the verbatim overlap."""
    if min_length < 1:
        raise ValueError("min_length must be at least 1")
    query, starts = with_separators(texts)
    m = index.matches(query)
    creativity, char_pos, char_offsets, cut = _to_chars(query, starts, m.length)
    t_of_char = np.repeat(np.arange(len(texts)), np.diff(char_offsets))  # (C,)
    local = np.arange(len(creativity)) - char_offsets[t_of_char]  # char index within its text
    chars = np.diff(char_offsets)

    longest = np.zeros(len(texts), np.int64)
    np.maximum.at(longest, t_of_char, creativity)
    covered = _covered(creativity, min_length)
    copied = _segment_sums(covered, char_offsets)

    first = (creativity >= min_length) & ((local == 0) | (np.roll(creativity, 1) != creativity + 1))
    s = np.flatnonzero(first)  # global char index of every span's first character
    spans = _span_rows(index, query, m, s, t_of_char[s], local[s], creativity[s],
                       char_pos[s], cut[s], texts.ids)

    table = pd.DataFrame({
        "text": np.arange(len(texts)), "id": texts.ids, "chars": chars,
        "bytes": np.diff(texts.offsets), "longest_span": longest, "spans":
        np.bincount(t_of_char[s], minlength=len(texts)), "copied_chars": copied,
        "copied_share": _share(copied, chars)})
    for n in novelty_n:
        valid = local <= (chars[t_of_char] - n)  # an n-gram starts here and ends inside the text
        novel = _segment_sums(valid & (creativity < n), char_offsets)
        table[f"novel_{n}"] = _share(novel, np.maximum(chars - n + 1, 0))
    return SpanResult(table, spans, creativity, char_offsets, min_length)


def _to_chars(query: np.ndarray, starts: np.ndarray, length: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Byte match lengths at every byte -> character match lengths at every character.

    Returns the creativity array (C,), each character's byte position in the query (C,), each
    text's first character (T + 1,), and whether a character's byte match ended inside a
    character (C,; its count must then be taken again for the shorter span).
    """
    lead = ((query & 0xC0) != 0x80) & (query != SEP)  # (Q,): a character starts here
    before = np.concatenate([[0], np.cumsum(lead)])  # (Q + 1,): characters before each byte
    char_pos = np.flatnonzero(lead)  # (C,)
    end = char_pos + length[char_pos]  # first byte after each match (never past a separator)
    padded = np.concatenate([query, [SEP]])
    cut = (padded[end] & 0xC0) == 0x80  # the match ends inside a multi-byte character
    creativity = before[end] - before[char_pos] - cut
    return creativity, char_pos, before[starts], cut


def _covered(creativity: np.ndarray, min_length: int) -> np.ndarray:
    """Characters inside some match of at least min_length characters (C,)."""
    idx = np.arange(len(creativity))
    reach = np.where(creativity >= min_length, idx + creativity, idx)
    # a match never runs past its text, so the running maximum cannot leak into the next text
    return np.maximum.accumulate(reach) > idx if len(idx) else np.zeros(0, bool)


def _segment_sums(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    total = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return total[offsets[1:]] - total[offsets[:-1]]


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(whole > 0, part / np.maximum(whole, 1), np.nan)


def _span_rows(index: Matcher, query: np.ndarray, m: Matches, s: np.ndarray, text: np.ndarray,
               start: np.ndarray, length: np.ndarray, byte_pos: np.ndarray, cut: np.ndarray,
               ids: list[str]) -> pd.DataFrame:
    doc, offset = m.doc[byte_pos], m.offset[byte_pos]
    count = m.count[byte_pos].copy()
    for k in np.flatnonzero(cut):  # the span is shorter than the byte match: count it afresh
        end = byte_pos[k] + m.length[byte_pos[k]]
        while (query[end] & 0xC0) == 0x80:
            end -= 1
        count[k] = index.count(query[byte_pos[k]:end].tobytes())
    return pd.DataFrame({
        "text": text, "id": [ids[t] for t in text], "start": start, "end": start + length,
        "length": length, "source_doc": doc,
        "source_id": index.doc_ids(doc),
        "source_offset": index.char_offsets(doc, offset), "count": count})
