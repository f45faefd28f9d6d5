"""The text stages: index a corpus; find every text's verbatim spans and judge it against held-out.

Both write a run directory like the image audit: tables and a summary beside run.json, whose
stage record (TextIndexRecord, TextSpansRecord) holds the inputs with content hashes, the
parameters, versions, the command and timings.

    <out>/texts.parquet       one row per text (in input order)
    <out>/spans.parquet       one row per maximal verbatim span
    <out>/controls.parquet    one row per held-out chunk: the null distribution
    <out>/text_summary.json   TextSummary

Running a finished stage again with the same inputs reuses its result; a folder holding a
different run is refused unless ``force``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from copyscope.data.corpus import TextCorpus, require_text
from copyscope.data.spec import parse
from copyscope.data.textspec import load_corpus
from copyscope.detect import calibration
from copyscope.errors import CopyscopeError
from copyscope.files import write_parquet
from copyscope.records import (
    TextIndexIdentity,
    TextIndexRecord,
    TextSpansIdentity,
    TextSpansRecord,
    TextSummary,
)
from copyscope.rundir import RunDir, command_line, now, versions
from copyscope.text import control
from copyscope.text.index import FORMAT, SuffixIndex
from copyscope.text.sharded import ShardedIndex, open_index
from copyscope.text.spans import MIN_LENGTH, measure

Index = SuffixIndex | ShardedIndex
AUTO = "auto"
HELDOUT_OF = {"shakespeare:train": "shakespeare:heldout"}
"""The held-out corpus ``heldout="auto"`` picks for an index of a built-in training split."""


def auto_heldout(spec: str | None) -> str | None:
    """The held-out corpus of a built-in training split, or a slice of one (None otherwise)."""
    return HELDOUT_OF.get(parse(str(spec))[0]) if spec else None


@dataclass
class TextSpans:
    """What the spans stage produces; the same tables are written to the run directory."""

    texts: pd.DataFrame
    spans: pd.DataFrame
    controls: pd.DataFrame
    summary: TextSummary
    record: TextSpansRecord
    out: Path | None = None


def index_corpus(corpus: str | Path | TextCorpus, out: str | Path, column: str | None = None,
                 id_column: str | None = None, segments: bool = False, force: bool = False,
                 show: bool = True, shard_bytes: int | None = None) -> Index:
    """Build the suffix-array index of a corpus into the run directory ``out`` (or reuse it);
    with ``shard_bytes``, in shards of at most that many bytes each (text.sharded), which give
    the same answers (so an index of the same corpus is reused, sharded or not)."""
    started, clock = now(), time.perf_counter()
    c = require_text(load_corpus(corpus, column, id_column, segments))
    run = RunDir(Path(out))
    identity = TextIndexIdentity(corpus=c.sha256, format=FORMAT)
    if run.done(TextIndexRecord, identity) is not None:
        try:
            return open_index(run.path)
        except CopyscopeError:
            pass  # damaged: built again below
    run.claim(TextIndexRecord, identity, force)
    index: Index = SuffixIndex.build(c, run.path, show=show) if shard_bytes is None else \
        ShardedIndex.build(c, run.path, shard_bytes, show=show)
    run.write(TextIndexRecord(
        identity=identity, status="complete", inputs={"corpus": c.describe()},
        params={"column": column, "id_column": id_column, "segments": segments,
                **({"shard_bytes": shard_bytes} if shard_bytes is not None else {})},
        versions=_versions(), command=command_line(), started=started, finished=now(),
        timings_s={**index.meta["timings_s"], "total": round(time.perf_counter() - clock, 3)}))
    return index


def find_spans(index: str | Path | Index, texts: str | Path | TextCorpus,
               out: str | Path | None = None, column: str | None = None,
               id_column: str | None = None, min_length: int = MIN_LENGTH,
               heldout: str | Path | TextCorpus | None = AUTO,
               heldout_q: float = control.HELDOUT_Q, force: bool = False, show: bool = True
               ) -> TextSpans:
    """Every text's verbatim spans in the indexed corpus, judged against held-out human text.

    ``heldout`` is a corpus SPEC (never indexed), None for no control, or ``"auto"``: the
    held-out split for an index of ``shakespeare:train``, else none. Without a control the
    verdict ``is_copy`` falls back to the absolute rule (a span of at least ``min_length``).
    """
    if min_length < 1:
        raise CopyscopeError(f"min_length must be at least 1, not {min_length}.")
    if not 0 < heldout_q < 1:
        raise CopyscopeError(f"heldout_q must lie strictly between 0 and 1, not {heldout_q}.")
    started, clock = now(), time.perf_counter()
    ix = index if isinstance(index, SuffixIndex | ShardedIndex) else open_index(index)
    t = load_corpus(texts, column, id_column)
    if len(t) == 0:
        raise CopyscopeError(f"{t.source} holds no texts.")
    h = _heldout(ix, heldout)
    if h is not None and h.sha256 == ix.corpus_sha256:
        raise CopyscopeError(f"{h.source} is the indexed corpus itself; the control must be "
                             "text that was never indexed.")
    identity = TextSpansIdentity(index=ix.corpus_sha256, texts=t.sha256,
                                 heldout=h.sha256 if h is not None else None,
                                 min_length=min_length, heldout_q=heldout_q)
    run = RunDir(Path(out)) if out is not None else None
    if run is not None:
        run.claim(TextSpansRecord, identity, force)

    timings = {}
    tick = time.perf_counter()
    result = measure(ix, t, min_length)
    timings["spans"] = time.perf_counter() - tick
    tick = time.perf_counter()
    table, controls = _judge(result.texts, ix, h, min_length, heldout_q)
    timings["heldout"] = time.perf_counter() - tick
    summary = _summary(table, controls, ix, t, h, min_length, heldout_q)
    record = TextSpansRecord(
        identity=identity, status="complete",
        inputs={"index": {"path": str(ix.path) if ix.path else None, **ix.meta["corpus"]},
                "texts": t.describe(), "heldout": h.describe() if h is not None else None},
        params={"min_length": min_length, "heldout_q": heldout_q, "column": column,
                "id_column": id_column},
        versions=_versions(), command=command_line(), started=started, finished=now(),
        timings_s={**{k: round(v, 3) for k, v in timings.items()},
                   "total": round(time.perf_counter() - clock, 3)})
    if run is not None:
        write_parquet(run.file("texts.parquet"), table)
        write_parquet(run.file("spans.parquet"), result.spans)
        write_parquet(run.file("controls.parquet"), controls)
        run.write(summary)
        run.write(record)
    return TextSpans(table, result.spans, controls, summary, record,
                     run.path if run is not None else None)


def _judge(texts: pd.DataFrame, ix: Index, h: TextCorpus | None, min_length: int,
           heldout_q: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Verdicts against the held-out chunks, or by the absolute rule alone without a control."""
    if h is not None:
        return control.judge(texts, control.heldout_text(ix, h), min_length, heldout_q)
    table = texts.copy()
    table["copy_min_length"] = table["longest_span"].to_numpy() >= min_length
    table["is_copy"] = table["copy_min_length"]
    return table, pd.DataFrame()


def _heldout(ix: Index, heldout: str | Path | TextCorpus | None) -> TextCorpus | None:
    if heldout is None:
        return None
    if isinstance(heldout, str) and heldout == AUTO:
        spec = auto_heldout(ix.meta["corpus"].get("spec"))
        return require_text(load_corpus(spec)) if spec else None
    return require_text(load_corpus(heldout))


def _summary(table: pd.DataFrame, controls: pd.DataFrame, ix: Index, t: TextCorpus,
             h: TextCorpus | None, min_length: int, q: float) -> TextSummary:
    chars = int(table["chars"].sum())
    copied = int(table["copied_chars"].sum())
    criteria = {}
    for name in ("heldout", "min_length"):
        if f"copy_{name}" not in controls and name == "heldout":
            continue
        flags = table[f"copy_{name}"].to_numpy(bool)
        c = calibration.rate(flags)
        entry = {"copies": c["count"], "copy_rate": c["rate"], "copy_rate_ci95": c["ci95"]}
        if f"copy_{name}" in controls:
            f = calibration.rate(controls[f"copy_{name}"].to_numpy(bool))
            entry |= {"heldout_fpr": f["rate"], "heldout_fpr_ci95": f["ci95"]}
        criteria[name] = entry
    novelty = {c.removeprefix("novel_"): _mean(table[c]) for c in table if c.startswith("novel_")}
    return TextSummary(
        n_texts=len(table), chars=chars, min_length=min_length, heldout_q=q,
        index={"corpus": ix.meta["corpus"].get("spec"), "documents": len(ix),
               "sha256": ix.corpus_sha256},
        texts=t.source, heldout=h.source if h is not None else None,
        heldout_chunks=len(controls),
        copied_chars=copied, copied_share=copied / chars if chars else None,
        longest_span={"max": int(table["longest_span"].max()),
                      "median": float(table["longest_span"].median())},
        texts_with_spans=int((table["spans"] > 0).sum()),
        default_criterion="heldout" if "heldout" in criteria else "min_length",
        criteria=criteria, novelty=novelty)


def _versions() -> dict[str, str]:
    """The run directory's versions, plus the libraries behind the index and the matching."""
    out = versions()
    for pkg in ("pydivsufsort", "numba"):
        out[pkg] = metadata.version(pkg)
    return out


def _mean(column: pd.Series) -> float | None:
    values = column.to_numpy(float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None
