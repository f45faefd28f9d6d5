"""Text corpora from files: a folder of .txt files, one .txt file, JSONL, CSV and Parquet tables.

Tables need the column that holds the text (``column``); ``id_column`` names each document
(default: the row number). The transcripts shape of shared/context/003 (CHANNEL_NAME, URL, TITLE,
DESCRIPTION, TRANSCRIPTION, SEGMENTS) is recognised: TRANSCRIPTION is the text and URL the id
unless told otherwise. With ``segments=True`` each transcript's SEGMENTS (a JSON list of
``{start, end, text}``) is parsed and every segment becomes one document, named
``URL@start-end`` (seconds), so a copied passage can be cited with its time. The index is better
built on whole transcripts (the default): a segment lasts a few seconds, and a match never crosses
a document boundary.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from copyscope.data.corpus import TextCorpus, from_texts
from copyscope.errors import CopyscopeError

TABLE_SUFFIXES = (".jsonl", ".csv", ".parquet")
TRANSCRIPT = {"text": "TRANSCRIPTION", "id": "URL", "segments": "SEGMENTS"}
DEFAULT_COLUMN = "text"


def load_txt_folder(folder: Path) -> TextCorpus:
    """Every ``*.txt`` file of a folder (not recursive), in file-name order; ids are file names."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
    if not files:
        raise CopyscopeError(f"{folder} holds no .txt files.")
    chunks = [f.read_bytes() for f in files]
    offsets = np.zeros(len(chunks) + 1, np.int64)
    np.cumsum([len(c) for c in chunks], out=offsets[1:])
    data = np.frombuffer(b"".join(chunks), np.uint8).copy()
    return TextCorpus(data, offsets, [f.name for f in files], str(folder))


def load_txt_file(path: Path) -> TextCorpus:
    """One plain-text file as a one-document corpus."""
    data = np.frombuffer(path.read_bytes(), np.uint8).copy()
    return TextCorpus(data, np.array([0, len(data)], np.int64), [path.name], str(path))


def load_table(path: Path, column: str | None = None, id_column: str | None = None,
               segments: bool = False) -> TextCorpus:
    """A JSONL, CSV or Parquet table: one document per row (or per segment, see above)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        columns, rows = _read_parquet(path)
    else:
        text = _decode_file(path)
        columns, rows = _read_jsonl(path, text) if suffix == ".jsonl" else _read_csv(path, text)
    if not rows:
        raise CopyscopeError(f"{path} holds no rows (the corpus is empty).")
    transcripts = TRANSCRIPT["text"] in columns
    if column is None:
        column = DEFAULT_COLUMN if DEFAULT_COLUMN in columns else (
            TRANSCRIPT["text"] if transcripts else None)
    if column is None or column not in columns:
        what = f"no column {column!r}" if column else "no 'text' column"
        raise CopyscopeError(f"{path} has {what}; its columns are {', '.join(columns)} "
                             "(choose one with --column).")
    if id_column is None and transcripts and TRANSCRIPT["id"] in columns:
        id_column = TRANSCRIPT["id"]
    if id_column is not None and id_column not in columns:
        raise CopyscopeError(f"{path} has no id column {id_column!r}; its columns are "
                             f"{', '.join(columns)}.")
    texts = _column(path, rows, column, text=True)
    ids = (_column(path, rows, id_column, text=False) if id_column is not None
           else [str(r) for r in range(len(texts))])
    meta: dict[str, Any] = {"column": column}
    if id_column is not None:
        meta["id_column"] = id_column
    if segments:
        if TRANSCRIPT["segments"] not in columns:
            raise CopyscopeError(f"{path} has no {TRANSCRIPT['segments']} column to split into "
                                 f"segments; its columns are {', '.join(columns)}.")
        seg = _column(path, rows, TRANSCRIPT["segments"], text=True)
        texts, ids = _split_segments(path, seg, ids)
        meta["segments"] = True
    return from_texts(texts, ids, str(path), meta)


def _decode_file(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise CopyscopeError(f"{path} is not valid UTF-8 at byte {e.start} (line {line}: "
                             f"{e.reason}).") from e


def _read_jsonl(path: Path, text: str) -> tuple[list[str], list[dict[str, Any]]]:
    rows, columns = [], {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CopyscopeError(f"{path}: line {n} is not valid JSON ({e.msg}).") from e
        if not isinstance(row, dict):
            raise CopyscopeError(f"{path}: line {n} is a JSON {type(row).__name__}, not an "
                                 "object with named fields.")
        columns.update(dict.fromkeys(row))
        rows.append(row)
    return list(columns), rows


def _read_csv(path: Path, text: str) -> tuple[list[str], list[dict[str, Any]]]:
    import pandas as pd

    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise CopyscopeError(f"{path} is not a readable CSV file ({str(e).strip()}).") from e
    return [str(c) for c in table.columns], table.to_dict("records")


def _read_parquet(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise CopyscopeError(f"{path} is not a readable Parquet file ({e}).") from e
    return table.column_names, table.to_pylist()


def _column(path: Path, rows: list[dict[str, Any]], column: str, text: bool) -> list[str]:
    values = []
    for r, row in enumerate(rows):
        v = row.get(column)
        if v is None:
            raise CopyscopeError(f"{path}: row {r} has no value in column {column!r}.")
        if text and not isinstance(v, str):
            raise CopyscopeError(f"{path}: column {column!r} is not text (row {r} holds "
                                 f"{type(v).__name__} values).")
        values.append(v if isinstance(v, str) else str(v))
    return values


def _split_segments(path: Path, segments: list[str], ids: list[str]
                    ) -> tuple[list[str], list[str]]:
    texts, names = [], []
    for r, (raw, doc) in enumerate(zip(segments, ids, strict=True)):
        try:
            parsed = json.loads(raw)
            parts = [(float(s["start"]), float(s["end"]), s["text"]) for s in parsed]
        except (json.JSONDecodeError, TypeError, KeyError, ValueError) as e:
            raise CopyscopeError(f"{path}: row {r} has SEGMENTS that are not a JSON list of "
                                 "{start, end, text}.") from e
        for start, end, t in parts:
            texts.append(t)
            names.append(f"{doc}@{start:g}-{end:g}")
    return texts, names
