"""The measure stage: code lengths of training and held-out items under a model and the
classical compressors, membership, and the bits the model stores about each training item.

    <out>/compression.parquet   one row per item: set (train/heldout), item (index in its SPEC),
                                label, bits_model (actual coded length of the item alone),
                                bits_ideal (Σ -log2 p), bits_<compressor> for gzip, bz2, lzma,
                                zstd, png, webp (each item alone), min_k, bits_expected,
                                stored_bits and stored_p (see copyscope.compress.stored)
    <out>/compression.json      bits/dim per method and set (each item alone and the whole set),
                                raw and model-size-adjusted rates, membership, stored bits
    <out>/run.json              stage "compress" (CompressRecord): model, inputs with hashes,
                                settings, timings

A text model's run (trained on text) is measured in bits per byte on 2,048-byte chunks and whole
documents instead: :mod:`copyscope.stages.measure_text`.

Per-item coding runs chunk by chunk and each finished chunk is kept under ``.partial/``, so an
interrupted measure resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from copyscope.compress import baselines
from copyscope.compress.codec import BATCH, check_images, code_lengths
from copyscope.compress.stored import MIN_K, membership, min_k, stored_bits
from copyscope.data import ImageSet, load
from copyscope.errors import CopyscopeError
from copyscope.files import write_parquet
from copyscope.hashing import fingerprint
from copyscope.records import CompressIdentity, CompressionSummary, CompressRecord, TrainRecord
from copyscope.rundir import RunDir, chunked, command_line, now, versions
from copyscope.stages.coding import LoadedModel, open_model
from copyscope.stages.measure_text import measure_text
from copyscope.stages.textrun import is_text_run
from copyscope.stages.train import INDICES, subset_indices, trained_on

CHUNK = 1000
COMPLEXITY = "lzma"  # κ, the model-independent complexity stored bits are matched on
TABLE, SUMMARY = "compression.parquet", "compression.json"
METHODS = ("model", *baselines.COMPRESSORS)


@dataclass(frozen=True)
class MeasureResult:
    path: Path
    items: pd.DataFrame
    summary: CompressionSummary


def measure(run: str | Path, out: str | Path, heldout: str | None = None,
            train: str | None = None, checkpoint: str | None = None, limit: int | None = None,
            seed: int = 0, batch: int = BATCH, force: bool = False,
            show: bool = True, files: int | None = None) -> MeasureResult:
    """Measure a density model's code lengths on its training items and on held-out items
    (default mnist:test; for a text model, the held-out split of its corpus).

    ``train`` defaults to the items the model was trained on (its ``train_indices.npy``).
    ``heldout`` may be the very set the model's subset was drawn from (``mnist:train`` for a
    300-image model): its unseen rest is then the control, from the same source as the training
    items. ``limit`` keeps a seeded class-balanced sample of at most that many items of each set
    (text: chunks); ``files`` (text only) the number of whole documents per set the model codes.
    """
    run = Path(run)
    if is_text_run(run):
        return MeasureResult(*measure_text(run, out, heldout, train, checkpoint, limit, files,
                                           seed, batch, force, show))
    if files is not None:
        raise CopyscopeError("--files is for text runs; this run trained on images.")
    heldout = "mnist:test" if heldout is None else heldout
    loaded = open_model(run, checkpoint)
    sets = _sets(run, train, heldout, limit, seed)
    for name, (images, _) in sets.items():
        check_images(loaded.model, images.images, images.source or name)
    identity = CompressIdentity(model=loaded.sha256, train=sets["train"][0].sha256,
                                heldout=sets["heldout"][0].sha256, limit=limit, seed=seed,
                                batch=batch, chunk=CHUNK)
    out_run = RunDir(Path(out))
    if out_run.done(CompressRecord, identity) is not None:
        summary = out_run.read(CompressionSummary)
        if summary is not None and out_run.file(TABLE).exists():
            return MeasureResult(out_run.path, pd.read_parquet(out_run.file(TABLE)), summary)
    out_run.claim(CompressRecord, identity, force)
    started, began = now(), time.perf_counter()
    key = fingerprint(identity.__dict__)
    table, whole = _code(loaded, sets, out_run, key, batch, show)
    is_train = (table["set"] == "train").to_numpy()
    stored = stored_bits(table["bits_ideal"].to_numpy(), table[f"bits_{COMPLEXITY}"].to_numpy(
        dtype=float), table["label"].to_numpy(), is_train, seed)
    table["bits_expected"] = stored.expected
    table["stored_bits"] = stored.stored
    table["stored_p"] = stored.p
    dims = int(np.prod(sets["train"][0].image_shape))
    summary = _summary(table, whole, dims, stored, loaded, run, is_train)
    write_parquet(out_run.file(TABLE), table)
    out_run.write(summary)
    for name in sets:
        out_run.clear_partial(f"compress-{name}-{key}")
    out_run.write(CompressRecord(
        identity=identity, status="complete",
        model={"run": str(run), "family": loaded.family, "checkpoint": str(loaded.checkpoint),
               "checkpoint_sha256": loaded.sha256},
        inputs={name: {**images.describe(), "items": len(items)}
                for name, (images, items) in sets.items()},
        params={"limit": limit, "seed": seed, "batch": batch, "complexity": COMPLEXITY},
        outputs=[TABLE, SUMMARY], versions=versions(), command=command_line(),
        started=started, finished=now(),
        timings_s={"measure": round(time.perf_counter() - began, 3)}))
    return MeasureResult(out_run.path, table, summary)


def _sets(run: Path, train: str | None, heldout: str, limit: int | None, seed: int
          ) -> dict[str, tuple[ImageSet, np.ndarray]]:
    """The training and held-out items to code, each with its indices in its own SPEC."""
    sets = {"train": _training_items(run, train),
            "heldout": _unseen(run, load(heldout), INDICES)}
    if limit is not None:
        if limit < 1:
            raise CopyscopeError("Invalid measure setting: limit must be at least 1.")
        for name, (images, items) in sets.items():
            keep = subset_indices(images, min(limit, len(images)), seed)
            sets[name] = (images.select(keep), items[keep])
    return sets


def _code(loaded: LoadedModel, sets: dict[str, tuple[ImageSet, np.ndarray]], out: RunDir,
          key: str, batch: int, show: bool) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """Every item's code lengths (resumable, chunk by chunk) and each whole set's."""
    rows, whole = [], {}
    for name, (images, items) in sets.items():
        parts = chunked(len(images), CHUNK,
                        lambda piece, im=images: _chunk(loaded, im, piece, batch),
                        store=out.partial(f"compress-{name}-{key}"), desc=f"code {name}",
                        show=show)
        whole[name] = {"model": int(parts.pop("whole_bits").sum()),
                       **{c: baselines.bits_whole(c, images.images)
                          for c in baselines.COMPRESSORS}}
        labels = images.labels if images.labels is not None else np.full(len(images), -1)
        rows.append(pd.DataFrame({"set": name, "item": items.astype(np.int64),
                                  "label": labels.astype(np.int64), **parts}))
    return pd.concat(rows, ignore_index=True), whole


def _training_items(run: Path, train: str | None) -> tuple[ImageSet, np.ndarray]:
    """The model's own training items (its SPEC at its train_indices.npy), or a given SPEC."""
    if train is not None:
        images = load(train)
        return images, np.arange(len(images))
    try:
        seen = trained_on(run)
    except CopyscopeError as e:
        raise CopyscopeError(f"{e} Give --train.") from e
    if not isinstance(seen.data, ImageSet):
        raise CopyscopeError(f"{run} trained on text; this measures a model of images.")
    return seen.items, seen.indices


def _unseen(run: Path, held: ImageSet, indices_name: str) -> tuple[ImageSet, np.ndarray]:
    """The held-out set and its item indices; given the very set the model's subset was drawn
    from (e.g. mnist:train for pixelcnn-300), its unseen rest: a control from the same source,
    and no training item is ever counted as held-out."""
    record = RunDir(run).read(TrainRecord)
    spec = (record.inputs or {}).get("train", {}) if record else {}
    items = np.arange(len(held))
    if spec.get("sha256") != held.sha256 or not (run / indices_name).is_file():
        return held, items
    items = np.setdiff1d(items, np.load(run / indices_name))
    if len(items) == 0:
        raise CopyscopeError(f"{held.source} holds only the model's own training items; give "
                             "another --heldout.")
    return held.select(items, source=f"{held.source} without the model's training items"), items


def _chunk(loaded: Any, images: ImageSet, piece: slice, batch: int) -> dict[str, np.ndarray]:
    x = images.images[piece]
    coded = code_lengths(loaded.model, x, batch, show=False)
    return {"bits_model": coded.bits_model, "bits_ideal": coded.bits_ideal,
            **{f"bits_{c}": baselines.bits_per_item(c, x) for c in baselines.COMPRESSORS},
            "min_k": min_k(coded.pixel_bits), "whole_bits": np.array([coded.whole_bits])}


def _heldout_class_means(bits: np.ndarray, labels: np.ndarray, is_train: np.ndarray
                         ) -> np.ndarray:
    """Per item, the mean bits of the held-out items of its class (leaving a held-out item
    itself out), the class-conditional membership baseline."""
    out = np.full(len(bits), bits[~is_train].mean())
    for c in np.unique(labels):
        held = ~is_train & (labels == c)
        total, count = bits[held].sum(), held.sum()
        if count:
            out[is_train & (labels == c)] = total / count
        if count > 1:
            out[held] = (total - bits[held]) / (count - 1)
    return out


def _summary(table: pd.DataFrame, whole: dict[str, dict[str, int]], dims: int, stored: Any,
             loaded: Any, run: Path, is_train: np.ndarray) -> CompressionSummary:
    model_bits = 8 * loaded.checkpoint.stat().st_size
    parameters = sum(int(np.prod(p.shape)) for p in loaded.model.state_dict().values())
    rates: dict[str, Any] = {}
    for name in ("train", "heldout"):
        part = table[table["set"] == name]
        raw_bits = 8 * dims * len(part)
        rates[name] = {"items": len(part), "ideal_bpd": float(part["bits_ideal"].mean() / dims)}
        for method in METHODS:
            w = whole[name][method]
            rates[name][method] = {
                "item_bpd": float(part[f"bits_{method}"].mean() / dims),
                "whole_bpd": w / (dims * len(part)),
                "raw_rate": w / raw_bits,
                "adjusted_rate": (w + (model_bits if method == "model" else 0)) / raw_bits,
            }
        best = min(baselines.COMPRESSORS, key=lambda c: rates[name][c]["whole_bpd"])
        rates[name]["best_classical"] = best
        rates[name]["model_advantage"] = (rates[name][best]["whole_bpd"]
                                          / rates[name]["model"]["whole_bpd"])
    bits = table["bits_ideal"].to_numpy()
    class_mean = _heldout_class_means(bits, table["label"].to_numpy(), is_train)
    scores = {
        "bits": -bits,
        "zlib_ratio": -bits / table["bits_gzip"].to_numpy(),
        "class_calibrated": class_mean - bits,
        "stored_bits": stored.stored,
        f"min_{round(100 * MIN_K)}pct": -table["min_k"].to_numpy(),
    }
    both = is_train.any() and (~is_train).any()
    train_rows = table[is_train]
    return CompressionSummary(
        model={"run": str(run), "family": loaded.family, "checkpoint": str(loaded.checkpoint),
               "checkpoint_sha256": loaded.sha256, "parameters": parameters,
               "size_bits": model_bits},
        dims=dims,
        rates=rates,
        coder_overhead={
            "per_item_bits_mean": float((table["bits_model"] - table["bits_ideal"]).mean()),
            "whole_vs_ideal": float(sum(whole[s]["model"] for s in whole) / bits.sum() - 1),
        },
        membership={k: membership(v, is_train) for k, v in scores.items()} if both else None,
        stored_bits={
            "definition": "bits an unseen item of the same class and complexity needs (held-out "
                          f"line per class on {COMPLEXITY} bits) minus the model's bits for the "
                          "item; see copyscope.compress.stored",
            "complexity": COMPLEXITY,
            "per_item_mean": float(train_rows["stored_bits"].mean()),
            "per_item_median": float(train_rows["stored_bits"].median()),
            "heldout_mean": float(table.loc[~is_train, "stored_bits"].mean()),
            "total": stored.total,
            "total_ci95": list(stored.total_ci),
            "items_significant_at_1pct": int((train_rows["stored_p"] <= 0.01).sum()),
            "model_size_bits": model_bits,
            "total_over_model_size": stored.total / model_bits,
            "capacity_bits_at_3_6_per_parameter": 3.6 * parameters,
            "residual_sd": stored.residual_sd,
        })
