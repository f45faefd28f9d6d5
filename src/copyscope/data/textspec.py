"""Text SPEC strings: how users name a text corpus (or a set of texts) on the command line.

    shakespeare  shakespeare:train  shakespeare:heldout   the built-in corpus and its split by work
    folder/                                             every .txt file in it, in file-name order
    file.txt                                            one plain-text file, one document
    file.jsonl  file.csv  file.parquet                  a table: one document per row, text from
    file.jsonl:COLUMN                                   the 'text' column, the named one, or
                                                        TRANSCRIPTION for the transcripts shape
    runs/name/                                          a run directory's generated texts
                                                        (samples/*.jsonl, column 'text')

Like image SPECs, any of them may end in a Python slice of documents, e.g. ``corpus.jsonl[:1000]``.
The column may also be given apart (``column=``, ``--column``), with ``id_column`` naming each
document and ``segments=True`` splitting transcripts into their timed segments.
"""

from __future__ import annotations

from pathlib import Path

from copyscope.data import shakespeare
from copyscope.data.corpus import TextCorpus, from_texts
from copyscope.data.shards import SAMPLES_DIR
from copyscope.data.spec import parse
from copyscope.data.textfiles import (
    TABLE_SUFFIXES,
    load_table,
    load_txt_file,
    load_txt_folder,
)
from copyscope.errors import CopyscopeError

CORPORA = {"shakespeare": shakespeare.load}


def load_corpus(spec: str | Path | TextCorpus, column: str | None = None,
                id_column: str | None = None, segments: bool = False) -> TextCorpus:
    """Load the texts a SPEC names (a TextCorpus passes through unchanged)."""
    if isinstance(spec, TextCorpus):
        return spec
    text = str(spec)
    base, cut = parse(text)
    corpus = _load_base(base, column, id_column, segments)
    if cut is not None:
        corpus = corpus.select(cut, source=text)
        if len(corpus) == 0:
            raise CopyscopeError(f"{text} selects no documents (the slice is empty).")
    if base.partition(":")[0] not in CORPORA:
        # a file or folder: remember where it is, so a run reloads it from any directory
        corpus.meta["resolved"] = str(Path(base).resolve()) + text[len(base):]
    return corpus


def _load_base(base: str, column: str | None, id_column: str | None, segments: bool
               ) -> TextCorpus:
    name, _, split = base.partition(":")
    if name in CORPORA and not Path(base).exists():
        return CORPORA[name](split or "all")
    path = Path(base)
    if not path.exists() and ":" in base:
        head, _, tail = base.rpartition(":")
        if Path(head).suffix.lower() in TABLE_SUFFIXES:
            if column is not None and column != tail:
                raise CopyscopeError(f"{base} names column {tail!r} but --column says "
                                     f"{column!r}; give one.")
            path, column = Path(head), tail
    if not path.exists():
        if "/" not in base and not path.suffix:
            known = ", ".join(f"{c}, {c}:train, {c}:heldout" for c in CORPORA)
            raise CopyscopeError(f"{base} is not a known corpus (known: {known}) or a file.")
        raise CopyscopeError(f"{base} does not exist.")
    if path.is_dir():
        if (path / SAMPLES_DIR).is_dir() and (path / "run.json").exists():
            return load_run_texts(path)
        return load_txt_folder(path)
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return load_table(path, column, id_column, segments)
    if suffix == ".txt":
        return load_txt_file(path)
    raise CopyscopeError(f"{path} has an unknown format; give a folder of .txt files, a .txt, "
                         ".jsonl, .csv or .parquet file.")


def is_text_spec(spec: str | Path) -> bool:
    """Does a SPEC name text (a corpus, a text file or table, generated texts) rather than
    images? Decided by name and suffix alone, without loading anything."""
    base, _ = parse(str(spec))
    path = Path(base)
    if base.partition(":")[0] in CORPORA and not path.exists():
        return True
    if not path.exists() and ":" in base:
        path = Path(base.rpartition(":")[0])  # file.jsonl:COLUMN
    if path.is_dir():
        return any(path.glob("*.txt")) or any((path / SAMPLES_DIR).glob("*.jsonl"))
    return path.suffix.lower() in {".txt", *TABLE_SUFFIXES}


def load_run_texts(run: Path) -> TextCorpus:
    """The generated texts of a run directory: ``samples/*.jsonl`` shards in name order.

    This is where a text model's ``copyscope sample`` output plugs in: one JSON object per line
    with the generated text under ``text``.
    """
    shards = sorted((run / SAMPLES_DIR).glob("*.jsonl"))
    if not shards:
        raise CopyscopeError(f"{run / SAMPLES_DIR} holds no .jsonl text shards.")
    parts = [load_table(s, "text") for s in shards]
    texts = [t for p in parts for t in p.texts()]
    ids = [f"{s.stem}:{i}" for s, p in zip(shards, parts, strict=True) for i in p.ids]
    return from_texts(texts, ids, str(run))
