"""The held-out control for text: how much verbatim overlap unseen human writing has by chance.

Held-out documents (never in the index) go through exactly the same measures as the texts under
test, cut into chunks of the same length in characters, so a text is only ever compared with
human text of its own length: common phrases, quotations and stage directions give unseen text
some overlap with any large corpus, and longer texts have more chances to hit one. A text's
``heldout_p`` is the share of held-out chunks with at least as long a verbatim span; the text is
flagged when ``heldout_p <= q``. Scoring each held-out chunk the same way against the *other*
chunks (leave-one-out) gives the criterion's false-positive rate, exactly as for images
(:mod:`copyscope.detect.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from copyscope.cache import cached_arrays
from copyscope.data.corpus import TextCorpus
from copyscope.detect import calibration
from copyscope.text.index import SuffixIndex
from copyscope.text.sharded import ShardedIndex
from copyscope.text.spans import measure

HELDOUT_Q = 0.001
CHUNK_COLUMNS = ("chunk_chars", "doc", "id", "start", "longest_span", "copied_chars",
                 "copied_share", "heldout_p", "heldout_p_copied")


@dataclass(frozen=True)
class HeldoutText:
    """The per-character longest matches of every held-out document against the index."""

    creativity: np.ndarray
    """int64 (C,): longest match in characters at every held-out character."""
    char_offsets: np.ndarray
    """int64 (D + 1,): document d's characters are creativity[char_offsets[d]:...[d + 1]]."""
    ids: list[str]


def heldout_text(index: SuffixIndex | ShardedIndex, heldout: TextCorpus) -> HeldoutText:
    """Match the held-out documents whole (cached: it depends only on the two corpora)."""
    key = {"index": index.corpus_sha256, "doc_start": index.doc_start, "heldout": heldout.sha256}

    def compute() -> dict[str, np.ndarray]:
        r = measure(index, heldout, novelty_n=())
        return {"creativity": r.creativity, "char_offsets": r.char_offsets}

    arrays = cached_arrays("text-heldout", key, compute)
    return HeldoutText(arrays["creativity"], arrays["char_offsets"], list(heldout.ids))


def chunks(held: HeldoutText, chunk_chars: int, min_length: int) -> pd.DataFrame:
    """Every held-out document cut into whole chunks of ``chunk_chars`` characters (the rest of
    each document is left out), measured as a text of that length would be: a match is cut at
    the chunk's end."""
    per_doc = np.diff(held.char_offsets) // chunk_chars  # (D,) whole chunks per document
    doc = np.repeat(np.arange(len(per_doc)), per_doc)  # (K,)
    k_in_doc = np.arange(len(doc)) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)
    first = held.char_offsets[doc] + k_in_doc * chunk_chars  # (K,) first character of each
    within = np.arange(chunk_chars)  # (W,)
    reach_end = chunk_chars - within  # characters left in the chunk from each position
    c = np.minimum(held.creativity[first[:, None] + within], reach_end)  # (K, W)
    reach = np.where(c >= min_length, within + c, within)
    copied = (np.maximum.accumulate(reach, axis=1) > within).sum(axis=1) if len(doc) else \
        np.zeros(0, np.int64)
    return pd.DataFrame({
        "chunk_chars": chunk_chars, "doc": doc, "id": [held.ids[d] for d in doc],
        "start": k_in_doc * chunk_chars, "longest_span": c.max(axis=1, initial=0),
        "copied_chars": copied, "copied_share": copied / chunk_chars})


def judge(texts: pd.DataFrame, held: HeldoutText, min_length: int, q: float = HELDOUT_Q
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add the held-out comparison to a texts table; return it and the held-out chunks' table.

    Columns added: ``heldout_n`` (chunks of the text's length), ``heldout_p`` (share with a
    longest span at least as long), ``heldout_p_copied`` (share with at least as large a copied
    share), ``copy_heldout`` (heldout_p <= q), ``copy_min_length`` (a span of at least
    min_length characters: the absolute rule) and ``is_copy`` (the held-out verdict). The chunks'
    table carries the same columns, leave-one-out, so its flag rates are the false-positive rates.
    """
    out = texts.copy()
    out["heldout_n"] = 0
    out["heldout_p"] = np.nan
    out["heldout_p_copied"] = np.nan
    controls = []
    for length in sorted(set(out["chars"][out["chars"] > 0])):
        null = chunks(held, int(length), min_length)
        rows = (out["chars"] == length).to_numpy()
        out.loc[rows, "heldout_n"] = len(null)
        if len(null) == 0:
            continue
        # more overlap is closer to the corpus: negated, "at or below" counts "at least as much"
        longest, share = null["longest_span"].to_numpy(), null["copied_share"].to_numpy()
        out.loc[rows, "heldout_p"] = calibration.heldout_p(
            -out.loc[rows, "longest_span"].to_numpy(), -longest)
        out.loc[rows, "heldout_p_copied"] = calibration.heldout_p(
            -out.loc[rows, "copied_share"].to_numpy(), -share)
        null["heldout_p"] = calibration.heldout_p_loo(-longest)
        null["heldout_p_copied"] = calibration.heldout_p_loo(-share)
        controls.append(null)
    control = pd.concat(controls, ignore_index=True) if controls else pd.DataFrame(
        {c: [] for c in CHUNK_COLUMNS})
    for table in (out, control):
        table["copy_heldout"] = table["heldout_p"].to_numpy() <= q  # NaN (no chunks): False
        table["copy_min_length"] = table["longest_span"].to_numpy() >= min_length
        table["is_copy"] = table["copy_heldout"]
    return out, control
