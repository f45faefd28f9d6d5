"""The two editions of Shakespeare's plays: near-duplicates, and how much of one lies verbatim in
the other (duplication is the strongest known driver of memorization; Lee et al. 2022, Kandpal et
al. 2022)."""

from __future__ import annotations

import pandas as pd

from copyscope.data import shakespeare
from copyscope.text.index import SuffixIndex
from copyscope.text.spans import measure


def duplication(works: list[str] | None = None, min_length: int = 50) -> pd.DataFrame:
    """How much of each Folio text lies verbatim in its modern edition (a pandas DataFrame).

    For every work with both editions (or the ones named in ``works``): the characters of each,
    the longest Folio passage found verbatim in the modern text, and the share of Folio
    characters inside passages of at least ``min_length`` characters found there (the copied
    share of :mod:`copyscope.text.spans`, with the modern edition alone as the corpus).
    """
    corpus = shakespeare.load("all")
    doc = {name: d for d, name in enumerate(corpus.ids)}
    rows = []
    for e in shakespeare.editions():
        if e["folio"] is None or (works is not None and e["work"] not in works):
            continue
        modern = corpus.select([doc[e["modern"]]])
        folio = corpus.select([doc[e["folio"]]])
        result = measure(SuffixIndex.build(modern, show=False), folio, min_length=min_length)
        t = result.texts.iloc[0]
        rows.append({"work": e["work"], "title": e["title"], "modern": e["modern"],
                     "folio": e["folio"], "modern_chars": modern.chars,
                     "folio_chars": int(t["chars"]), "longest_span": int(t["longest_span"]),
                     "spans": int(t["spans"]), "copied_share": float(t["copied_share"])})
    return pd.DataFrame(rows)
