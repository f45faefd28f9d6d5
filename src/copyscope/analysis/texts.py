"""A text run read back for the report and the app: what the text stages wrote into one folder.

A text run is any folder holding at least one of: ``text_summary.json`` with its tables
(``copyscope text spans``: texts.parquet, spans.parquet, controls.parquet), ``extraction.json``
(``copyscope text extract``) or a ``compression.json`` of kind "text" (``copyscope compress
measure`` on a text model). Each piece is optional; a reader shows what is there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from copyscope.data.textspec import load_corpus
from copyscope.errors import CopyscopeError
from copyscope.files import read_json, read_parquet
from copyscope.records import (
    CompressionSummary,
    ExtractionSummary,
    TextSpansRecord,
    TextSummary,
)
from copyscope.rundir import RunDir

if TYPE_CHECKING:
    from copyscope.text.highlight import TextLookup

SPAN_TABLES = ("texts", "spans", "controls")


@dataclass
class TextResults:
    """One folder's text results (see :func:`open_text_results`); a missing piece is None."""

    path: Path
    summary: TextSummary | None = None
    record: TextSpansRecord | None = None
    texts: pd.DataFrame | None = None
    """texts.parquet: one row per generated text, with its held-out comparison."""
    spans: pd.DataFrame | None = None
    controls: pd.DataFrame | None = None
    """controls.parquet: the held-out chunks, measured as the texts are (the null)."""
    extraction: ExtractionSummary | None = None
    compression: CompressionSummary | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.path.name


def is_text_results(path: str | Path) -> bool:
    """Does this folder hold any text stage's results (and no image audit)?"""
    path = Path(path)
    if (path / "summary.json").is_file():
        return False  # an image audit
    if (path / TextSummary.file).is_file() or (path / ExtractionSummary.file).is_file():
        return True
    compression = path / (CompressionSummary.file or "")
    return compression.is_file() and read_json(compression).get("kind") == "text"


def open_text_results(path: str | Path) -> TextResults:
    """Read every text result in ``path``; a folder with none is refused in one sentence."""
    path = Path(path)
    if not path.is_dir() or not is_text_results(path):
        raise CopyscopeError(f"{path} holds no text results (text_summary.json, extraction.json "
                             "or a text compression.json); run `copyscope text spans`, `text "
                             "extract` or `compress measure` with --out there first.")
    run = RunDir(path)
    out = TextResults(path, extraction=run.read(ExtractionSummary))
    compression = run.read(CompressionSummary)
    out.compression = compression if compression is not None and compression.kind == "text" \
        else None
    out.summary = run.read(TextSummary)
    if out.summary is not None:
        out.record = run.read(TextSpansRecord)
        out.texts, out.spans, out.controls = (
            read_parquet(path / f"{t}.parquet", missing="is missing; run `copyscope text spans` "
                         "again") for t in SPAN_TABLES)
    return out


def open_text_results_all(paths: Sequence[str | Path]) -> list[TextResults]:
    """Each folder once; two folders of one name are told apart by their parent's name."""
    opened = [open_text_results(p) for p in dict.fromkeys(Path(p).resolve() for p in paths)]
    names = [r.name for r in opened]
    for r in opened:
        if names.count(r.name) > 1:
            r.label = f"{r.path.parent.name}/{r.path.name}"
    return opened


def open_lookup(path: str | Path, min_length: int | None = None) -> TextLookup:
    """Open the index of a ``copyscope text spans`` run directory (with its min_length and its
    held-out control) or an index folder itself (no control); ``min_length`` overrides."""
    from copyscope.text import control  # the index's kernels load Numba: only when asked
    from copyscope.text.highlight import TextLookup
    from copyscope.text.sharded import open_index
    from copyscope.text.spans import MIN_LENGTH

    path = Path(path)
    record = RunDir(path).read(TextSpansRecord) if (path / "run.json").is_file() else None
    if record is None or not record.complete:
        return TextLookup(open_index(path), min_length or MIN_LENGTH)
    where = (record.inputs or {}).get("index", {}).get("path")
    if not where:
        raise CopyscopeError(f"{path / 'run.json'} names no index; give the index folder.")
    index = open_index(where)
    if record.identity is not None and index.corpus_sha256 != record.identity.index:
        raise CopyscopeError(f"{where} now holds another corpus than the one {path} was "
                             "measured against (content hash differs).")
    params = record.params or {}
    lookup = TextLookup(index, min_length or int(params.get("min_length", MIN_LENGTH)),
                        heldout_q=float(params.get("heldout_q", control.HELDOUT_Q)))
    held = (record.inputs or {}).get("heldout")
    if held:
        corpus = load_corpus(held["spec"])
        if corpus.sha256 != held["sha256"]:
            raise CopyscopeError(f"{held['spec']} has changed since {path} was measured "
                                 "(content hash differs).")
        lookup.heldout = control.heldout_text(index, corpus)  # cached on disk after the first
        lookup.heldout_source = corpus.source
    return lookup
