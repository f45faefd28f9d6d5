"""The measure stage on a text model's run (``copyscope compress measure`` dispatches here):
bits per byte of training and held-out text under the model and the classical compressors, as
in Delétang et al. (2023), *Language Modeling Is Compression*, Table 1, with membership scores
and the bits the model stores.

- **Chunks**: every document cut into 2,048-byte chunks (the rest of a document is left out),
  each coded on its own from an empty context: the model through the range coder
  (:func:`copyscope.compress.codec.code_lengths`, its actual coded length), gzip, bz2, LZMA and
  zstd on the chunk's bytes alone (:mod:`copyscope.compress.baselines`).
- **Whole files**: every document whole: the classical compressors on its bytes, the model's
  Σ -log2 p through its sliding window (a document is longer than a coded file's header can
  hold; the coder's overhead over Σ -log2 p is the chunks' ``coder_overhead``).
- **Raw and adjusted rates**: compressed over raw size, and with the model's size (its checkpoint
  file, in bits) added to what it compresses, over the bytes of the whole set (the price of
  sending the model once with that text); the classical compressors' code is not counted, as in
  the LMIC table.
- **Membership** (training chunks against held-out chunks, ROC AUC and TPR at 1% FPR,
  :func:`copyscope.compress.stored.membership`): the loss (bits of the chunk), the zlib ratio of
  Carlini et al. (2021), *Extracting Training Data from Large Language Models* (model bits over
  gzip bits), Min-K% of Shi et al. (2024) (:func:`copyscope.compress.stored.min_k`), and the
  stored bits of :mod:`copyscope.compress.stored` with LZMA's bits as the complexity.

    <out>/compression.parquet         one row per chunk: set, item, doc, id, offset, bits_model,
                                      bits_ideal, bits_gzip, bits_bz2, bits_lzma, bits_zstd,
                                      min_k, bits_expected, stored_bits, stored_p
    <out>/compression_files.parquet   one row per whole document coded by the model: set, doc,
                                      id, bytes, bits_ideal, bits_<compressor>
    <out>/compression.json            CompressionSummary (kind "text"): bits per byte and rates
    <out>/run.json                    stage "compress" (CompressRecord)
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from copyscope.compress.codec import code_lengths
from copyscope.compress.stored import MIN_K, membership, min_k, stored_bits
from copyscope.data.corpus import TextCorpus
from copyscope.errors import CopyscopeError
from copyscope.files import write_parquet
from copyscope.hashing import fingerprint
from copyscope.records import CompressIdentity, CompressionSummary, CompressRecord
from copyscope.rundir import RunDir, chunked, command_line, now, versions
from copyscope.stages.textrun import AUTO, TextRun, open_text_run
from copyscope.tensors import one_thread

CHUNK_BYTES = 2048
PART = 100  # chunks per resumable part
COMPRESSORS = ("gzip", "bz2", "lzma", "zstd")  # byte-stream compressors; no image formats
COMPLEXITY = "lzma"
METHODS = ("model", *COMPRESSORS)
TABLE, FILES, SUMMARY = "compression.parquet", "compression_files.parquet", "compression.json"


def chunk_starts(corpus: TextCorpus, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(doc, offset) of every whole chunk of ``size`` bytes (default CHUNK_BYTES) of every
    document, in corpus order."""
    size = CHUNK_BYTES if size is None else size
    per_doc = np.diff(corpus.offsets) // size  # (D,)
    doc = np.repeat(np.arange(len(per_doc)), per_doc)
    k = np.arange(len(doc)) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)
    return doc, k * size


def measure_text(run: Path, out: str | Path, heldout: str | None, train: str | None,
                 checkpoint: str | None, limit: int | None, files: int | None, seed: int,
                 batch: int, force: bool, show: bool
                 ) -> tuple[Path, pd.DataFrame, CompressionSummary]:
    """The text branch of :func:`copyscope.stages.measure.measure` (see the module docstring):
    ``limit`` chunks and ``files`` whole documents of each set at most, a seeded sample.
    Returns the output folder, the chunks' table and the summary."""
    tr = _open(run, heldout, train, checkpoint, limit, files)
    assert tr.heldout is not None
    sets = {"train": tr.train, "heldout": tr.heldout}
    identity = CompressIdentity(model=tr.loaded.sha256, train=tr.train.sha256,
                                heldout=tr.heldout.sha256, limit=limit, seed=seed, batch=batch,
                                chunk=CHUNK_BYTES, files=files)
    rundir = RunDir(Path(out))
    rundir.claim(CompressRecord, identity, force)
    started, began = now(), time.perf_counter()
    key = fingerprint(identity.__dict__)
    table, whole, coded_s = _chunks(tr, sets, rundir, key, identity, show)
    began_files = time.perf_counter()
    file_table = _files(tr, sets, rundir, key, identity, show)
    timings = {"chunks_coded": round(coded_s, 3),
               "files": round(time.perf_counter() - began_files, 3),
               "coder_bytes_per_s": round(len(table) * CHUNK_BYTES / coded_s, 1)}
    is_train = (table["set"] == "train").to_numpy()
    stored = stored_bits(table["bits_ideal"].to_numpy(), table[f"bits_{COMPLEXITY}"].to_numpy(
        dtype=float), np.zeros(len(table), np.int64), is_train, seed)
    table["bits_expected"], table["stored_bits"], table["stored_p"] = (
        stored.expected, stored.stored, stored.p)
    summary = _summary(tr, sets, table, file_table, whole, stored, run, is_train)
    write_parquet(rundir.file(TABLE), table)
    write_parquet(rundir.file(FILES), file_table)
    rundir.write(summary)
    for name in sets:
        rundir.clear_partial(f"compress-{name}-{key}")
        rundir.clear_partial(f"compress-files-{name}-{key}")
    rundir.write(CompressRecord(
        identity=identity, status="complete",
        model={"run": str(run), "family": tr.loaded.family,
               "checkpoint": str(tr.loaded.checkpoint), "checkpoint_sha256": tr.loaded.sha256},
        inputs={name: {**c.describe(), "chunks": int((table["set"] == name).sum()),
                       "files": int((file_table["set"] == name).sum())}
                for name, c in sets.items()},
        params={"limit": limit, "files": files, "seed": seed, "batch": batch,
                  "chunk_bytes": CHUNK_BYTES, "complexity": COMPLEXITY},
        outputs=[TABLE, FILES, SUMMARY], versions=versions(), command=command_line(),
        started=started, finished=now(),
        timings_s={"measure": round(time.perf_counter() - began, 3), **timings}))
    return rundir.path, table, summary


def _open(run: Path, heldout: str | None, train: str | None, checkpoint: str | None,
          limit: int | None, files: int | None) -> TextRun:
    """The run's model, training documents and held-out text, after checking the settings."""
    if train is not None:
        raise CopyscopeError("--train is for image runs; a text run is measured on the "
                             "documents it trained on.")
    if (limit is not None and limit < 1) or (files is not None and files < 0):
        raise CopyscopeError("Invalid measure setting: limit must be at least 1 and files at "
                             "least 0.")
    tr = open_text_run(run, checkpoint, AUTO if heldout is None else heldout)
    if tr.heldout is None:
        raise CopyscopeError(f"{run} trained on {tr.train.source}, which has no built-in "
                             "held-out split; give --heldout (text the model never saw).")
    return tr


def _sample(n: int, limit: int | None, seed: int, set_no: int, key: int) -> np.ndarray:
    """A seeded sample of at most ``limit`` of ``n`` items, in order (all without a limit)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, key, set_no]).choice(n, limit, replace=False))


def _chunks(tr: TextRun, sets: dict[str, TextCorpus], out: RunDir, key: str,
            identity: CompressIdentity, show: bool
            ) -> tuple[pd.DataFrame, dict[str, int], float]:
    """Every sampled chunk's code lengths (resumable, part by part) and each set's chunks coded
    as one stream; the seconds spent coding."""
    rows, whole, seconds = [], {}, 0.0
    for set_no, (name, corpus) in enumerate(sets.items()):
        doc, offset = chunk_starts(corpus)
        if len(doc) == 0:
            raise CopyscopeError(f"{corpus.source} has no document of {CHUNK_BYTES:,} bytes or "
                                 "more, so no chunk to measure.")
        pick = _sample(len(doc), identity.limit, identity.seed, set_no, 0xC4)
        doc, offset = doc[pick], offset[pick]
        x = corpus.data[(corpus.offsets[doc] + offset)[:, None] + np.arange(CHUNK_BYTES)]
        began = time.perf_counter()
        parts = chunked(len(x), PART, lambda piece, x=x: _code(tr, x[piece], identity.batch),
                        store=out.partial(f"compress-{name}-{key}"), desc=f"code {name}",
                        show=show)
        seconds += time.perf_counter() - began
        whole[name] = int(parts.pop("whole_bits").sum())
        rows.append(pd.DataFrame({"set": name, "item": pick.astype(np.int64), "doc": doc,
                                  "id": [corpus.ids[d] for d in doc], "offset": offset,
                                  **parts}))
    return pd.concat(rows, ignore_index=True), whole, seconds


def _code(tr: TextRun, x: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    from copyscope.compress import baselines

    coded = code_lengths(tr.loaded.model, x, batch, show=False)
    return {"bits_model": coded.bits_model, "bits_ideal": coded.bits_ideal,
            **{f"bits_{c}": baselines.bits_per_item(c, x) for c in COMPRESSORS},
            "min_k": min_k(coded.pixel_bits), "whole_bits": np.array([coded.whole_bits])}


def _files(tr: TextRun, sets: dict[str, TextCorpus], out: RunDir, key: str,
           identity: CompressIdentity, show: bool) -> pd.DataFrame:
    """Whole documents: the model's Σ -log2 p and each compressor's bits (resumable, file by
    file)."""
    from copyscope.compress import baselines

    rows = []
    for set_no, (name, corpus) in enumerate(sets.items()):
        pick = _sample(len(corpus), identity.files, identity.seed, set_no, 0xF1)

        def one(piece: slice, corpus: TextCorpus = corpus, pick: np.ndarray = pick
                ) -> dict[str, np.ndarray]:
            data = np.frombuffer(corpus.document(int(pick[piece][0])), np.uint8)[None]
            with torch.inference_mode(), one_thread():
                nats = -tr.loaded.model.log_prob(torch.from_numpy(data.copy())).sum().item()
            return {"bits_ideal": np.array([nats / math.log(2)]),
                    **{f"bits_{c}": np.array([baselines.bits_whole(c, data)])
                       for c in COMPRESSORS}}

        parts = chunked(len(pick), 1, one, store=out.partial(f"compress-files-{name}-{key}"),
                        desc=f"files {name}", show=show) or {
            "bits_ideal": np.zeros(0), **{f"bits_{c}": np.zeros(0, np.int64) for c in COMPRESSORS}}
        rows.append(pd.DataFrame({"set": name, "doc": pick.astype(np.int64),
                                  "id": [corpus.ids[d] for d in pick],
                                  "bytes": np.diff(corpus.offsets)[pick], **parts}))
    return pd.concat(rows, ignore_index=True)


def _rates(part: pd.DataFrame, files: pd.DataFrame, whole: int, set_bytes: int,
           model_bits: int) -> dict[str, Any]:
    """One set's bits per byte and LMIC rates for every method."""
    chunk_bytes = CHUNK_BYTES * len(part)
    file_bytes = int(files["bytes"].sum())
    out: dict[str, Any] = {"chunks": len(part), "chunk_bytes": CHUNK_BYTES,
                           "files": len(files), "file_bytes": file_bytes, "set_bytes": set_bytes,
                           "ideal_bpb": float(part["bits_ideal"].sum() / chunk_bytes),
                           "model_one_stream_bpb": whole / chunk_bytes}
    for method in METHODS:
        chunk_bpb = float(part[f"bits_{method}"].sum() / chunk_bytes)
        column = "bits_ideal" if method == "model" else f"bits_{method}"
        file_bpb = float(files[column].sum() / file_bytes) if file_bytes else None
        extra = model_bits / (8 * set_bytes) if method == "model" else 0.0
        out[method] = {"chunk_bpb": chunk_bpb, "file_bpb": file_bpb,
                       "chunk_raw_rate": chunk_bpb / 8,
                       "chunk_adjusted_rate": chunk_bpb / 8 + extra,
                       "file_raw_rate": None if file_bpb is None else file_bpb / 8,
                       "file_adjusted_rate": None if file_bpb is None else file_bpb / 8 + extra}
    best = min(COMPRESSORS, key=lambda c: out[c]["chunk_bpb"])
    out["best_classical"] = best
    out["model_advantage"] = out[best]["chunk_bpb"] / out["model"]["chunk_bpb"]
    out["model_vs_gzip"] = 1.0 - out["model"]["chunk_bpb"] / out["gzip"]["chunk_bpb"]
    return out


def _summary(tr: TextRun, sets: dict[str, TextCorpus], table: pd.DataFrame,
             files: pd.DataFrame, whole: dict[str, int], stored: Any, run: Path,
             is_train: np.ndarray) -> CompressionSummary:
    loaded = tr.loaded
    model_bits = 8 * loaded.checkpoint.stat().st_size
    parameters = sum(int(np.prod(p.shape)) for p in loaded.model.state_dict().values())
    rates = {name: _rates(table[table["set"] == name], files[files["set"] == name],
                          whole[name], corpus.nbytes, model_bits)
             for name, corpus in sets.items()}
    bits = table["bits_ideal"].to_numpy()
    scores = {"loss": -bits, "zlib_ratio": -bits / table["bits_gzip"].to_numpy(),
              f"min_{round(100 * MIN_K)}pct": -table["min_k"].to_numpy(),
              "stored_bits": stored.stored}
    train_rows = table[is_train]
    return CompressionSummary(
        model={"run": str(run), "family": loaded.family, "checkpoint": str(loaded.checkpoint),
               "checkpoint_sha256": loaded.sha256, "parameters": parameters,
               "size_bits": model_bits},
        dims=CHUNK_BYTES, rates=rates,
        coder_overhead={
            "per_item_bits_mean": float((table["bits_model"] - table["bits_ideal"]).mean()),
            "whole_vs_ideal": float(sum(whole.values()) / bits.sum() - 1)},
        membership={k: membership(v, is_train) for k, v in scores.items()},
        stored_bits={
            "definition": "bits an unseen chunk of the same complexity needs (held-out line on "
                          f"{COMPLEXITY} bits) minus the model's bits for the chunk; see "
                          "copyscope.compress.stored",
            "complexity": COMPLEXITY,
            "per_item_mean": float(train_rows["stored_bits"].mean()),
            "heldout_mean": float(table.loc[~is_train, "stored_bits"].mean()),
            "total": stored.total, "total_ci95": list(stored.total_ci),
            "items_significant_at_1pct": int((train_rows["stored_p"] <= 0.01).sum()),
            "model_size_bits": model_bits,
            "total_over_model_size": stored.total / model_bits},
        kind="text")
