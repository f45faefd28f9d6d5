"""k-extractability: does greedy decoding reproduce training text from a training prefix?

Carlini, Ippolito, Jagielski, Lee, Tramèr & Zhang (2023), *Quantifying Memorization Across
Neural Language Models* (arXiv 2022): a string s is extractable with k tokens of context if some
k-token prefix p with p || s in the training data makes the model produce s by greedy decoding.
Here tokens are bytes and s is the 50 bytes after p. Prompts are drawn at seeded positions of the
model's training documents (each a window of max(k) + 50 bytes inside one document), and every
prefix length k is cut from the same window, so the k's share their continuations. The same is
done on held-out text (documents the model never saw): its rate is the control, what greedy
decoding reproduces of unseen text by chance (common phrases, stage directions, duplicated
passages). Carlini et al. find extraction grows with how often the sequence is duplicated in the
training data, so each continuation is counted in the training text (a suffix-array index,
:mod:`copyscope.text.index`) and the rates are also given per occurrence bin.

    <out>/extraction.parquet   one row per prompt and prefix length: set (train/heldout), prompt,
                               doc, id, offset (of the continuation in its document),
                               prefix_bytes, count (occurrences of the continuation in the
                               training text), count_bin, extracted, matched (bytes reproduced
                               before the first miss), generated (UTF-8, undecodable bytes
                               replaced)
    <out>/extraction.json      ExtractionSummary: rates with Wilson 95% intervals
    <out>/run.json             stage "text_extract" (TextExtractRecord)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from copyscope.data import windows
from copyscope.data.corpus import TextCorpus
from copyscope.detect import calibration
from copyscope.errors import CopyscopeError
from copyscope.files import write_parquet
from copyscope.models.base import DensityModel
from copyscope.progress import bar
from copyscope.records import ExtractionSummary, TextExtractIdentity, TextExtractRecord
from copyscope.rundir import RunDir, command_line, now, versions
from copyscope.stages.textrun import AUTO, TextRun, open_text_run
from copyscope.text.index import SuffixIndex

PREFIXES = (32, 64, 128, 256)
SUFFIX = 50
PROMPTS = 500
BATCH = 100
BINS = ((0, 0, "0"), (1, 1, "1"), (2, 3, "2-3"), (4, 10, "4-10"), (11, None, ">10"))
"""Occurrence bins of a continuation in the training text: (low, high, name)."""
TABLE, SUMMARY = "extraction.parquet", "extraction.json"
_KEY = 0xE7


@dataclass(frozen=True)
class Extraction:
    path: Path
    table: pd.DataFrame
    summary: ExtractionSummary


def greedy(model: DensityModel, prefixes: np.ndarray, suffix: int, batch: int = BATCH,
           show: bool = False) -> np.ndarray:
    """Greedy continuations: uint8 (n, suffix), the most likely byte at every step (the lowest
    byte value on a tie) after each uint8 prefix (n, P), decoded ``batch`` prompts at a time."""
    out = [np.zeros((0, suffix), np.uint8)]
    progress = bar(len(prefixes), desc=f"greedy after {prefixes.shape[1]} bytes", show=show,
                   unit="prompt")
    with torch.inference_mode():
        for s in range(0, len(prefixes), batch):
            p = torch.from_numpy(np.ascontiguousarray(prefixes[s : s + batch]))
            x = model.autoregress(len(p), lambda probs: probs.argmax(-1),  # type: ignore[call-arg]
                                  length=p.shape[1] + suffix, prefix=p)
            out.append(x[:, p.shape[1]:].numpy())
            progress.update(len(p))
    progress.close()
    return np.concatenate(out)


def count_bin(count: np.ndarray) -> np.ndarray:
    """The name of each count's occurrence bin (:data:`BINS`)."""
    out = np.empty(len(count), dtype=object)
    for low, high, name in BINS:
        out[(count >= low) & (count <= (high if high is not None else np.inf))] = name
    return out


def extract(run: str | Path, out: str | Path, heldout: str | Path | TextCorpus | None = AUTO,
            prompts: int = PROMPTS, prefixes: tuple[int, ...] = PREFIXES, suffix: int = SUFFIX,
            seed: int = 0, batch: int = BATCH, checkpoint: str | None = None,
            force: bool = False, show: bool = True) -> Extraction:
    """Measure the k-extractability of a text model's training text (see the module docstring)
    against held-out text (``"auto"``: the built-in corpus's held-out split; None: no control)."""
    _check(prompts, prefixes, suffix, batch)
    started, clock = now(), time.perf_counter()
    tr = open_text_run(run, checkpoint, heldout)
    identity = TextExtractIdentity(
        model=tr.loaded.sha256, train=tr.train.sha256,
        heldout=tr.heldout.sha256 if tr.heldout is not None else None, prompts=prompts,
        prefixes=sorted(prefixes), suffix=suffix, seed=seed, batch=batch)
    rundir = RunDir(Path(out))
    rundir.claim(TextExtractRecord, identity, force)
    index = SuffixIndex.build(tr.train, show=False)
    sets = {"train": tr.train, **({"heldout": tr.heldout} if tr.heldout is not None else {})}
    table = pd.concat([_prompts(tr, name, corpus, index, set_no, identity, show)
                       for set_no, (name, corpus) in enumerate(sets.items())], ignore_index=True)
    summary = _summary(table, tr, identity)
    write_parquet(rundir.file(TABLE), table)
    rundir.write(summary)
    rundir.write(TextExtractRecord(
        identity=identity, status="complete",
        model={"run": str(run), "family": tr.loaded.family,
               "checkpoint": str(tr.loaded.checkpoint), "checkpoint_sha256": tr.loaded.sha256},
        inputs={name: corpus.describe() for name, corpus in sets.items()},
        params={"prompts": prompts, "prefixes": sorted(prefixes), "suffix": suffix,
                "seed": seed, "batch": batch, "decoding": "greedy (argmax, lowest byte on a tie)"},
        versions=versions(), command=command_line(), started=started, finished=now(),
        timings_s={"total": round(time.perf_counter() - clock, 3)}))
    return Extraction(rundir.path, table, summary)


def _check(prompts: int, prefixes: tuple[int, ...], suffix: int, batch: int) -> None:
    checks = [(prompts >= 1, "prompts must be at least 1"),
              (len(prefixes) >= 1 and min(prefixes) >= 1, "prefix lengths must be at least 1"),
              (suffix >= 1, "the suffix must be at least 1 byte"),
              (batch >= 1, "batch must be at least 1")]
    for ok, message in checks:
        if not ok:
            raise CopyscopeError(f"Invalid extraction setting: {message}.")


def _prompts(tr: TextRun, name: str, corpus: TextCorpus, index: SuffixIndex, set_no: int,
             identity: TextExtractIdentity, show: bool) -> pd.DataFrame:
    """Every prompt of one set at every prefix length, decoded greedily and scored."""
    longest, suffix = max(identity.prefixes), identity.suffix
    if not windows.valid_starts(corpus, longest + suffix).any():
        raise CopyscopeError(f"{corpus.source}: no document is at least {longest + suffix} bytes "
                             f"long, a prompt of {longest} bytes and its continuation of "
                             f"{suffix}.")
    rng = np.random.default_rng([identity.seed, _KEY, set_no])
    first = windows.draw(corpus, longest + suffix, identity.prompts, rng)  # (n,)
    window = windows.gather(corpus, first, longest + suffix)  # (n, longest + suffix)
    truth = window[:, longest:]  # (n, suffix)
    doc = np.searchsorted(corpus.offsets, first, side="right") - 1
    count = np.array([index.count(t.tobytes()) for t in truth], dtype=np.int64)
    rows = []
    for k in identity.prefixes:
        generated = greedy(tr.loaded.model, window[:, longest - k : longest], suffix,
                           identity.batch, show)
        miss = generated != truth  # (n, suffix)
        rows.append(pd.DataFrame({
            "set": name, "prompt": np.arange(len(first)), "doc": doc,
            "id": [corpus.ids[d] for d in doc], "offset": first + longest - corpus.offsets[doc],
            "prefix_bytes": k, "count": count, "count_bin": count_bin(count),
            "extracted": ~miss.any(axis=1),
            "matched": np.where(miss.any(axis=1), miss.argmax(axis=1), suffix),
            "generated": [bytes(g).decode("utf-8", errors="replace") for g in generated]}))
    return pd.concat(rows, ignore_index=True)


def _rate(flags: np.ndarray, matched: np.ndarray) -> dict[str, object]:
    r = calibration.rate(flags)
    return {"n": r["n"], "extracted": r["count"], "rate": r["rate"], "ci95": r["ci95"],
            "matched_mean": float(matched.mean()) if len(matched) else None}


def _summary(table: pd.DataFrame, tr: TextRun, identity: TextExtractIdentity
             ) -> ExtractionSummary:
    by_prefix: dict[str, dict[str, dict[str, object]]] = {}
    by_count: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    for (name, k), part in table.groupby(["set", "prefix_bytes"], sort=False):
        flags, matched = part["extracted"].to_numpy(bool), part["matched"].to_numpy()
        by_prefix.setdefault(str(name), {})[str(k)] = _rate(flags, matched)
        bins = part["count_bin"].to_numpy()
        by_count.setdefault(str(name), {})[str(k)] = {
            b: _rate(flags[bins == b], matched[bins == b]) for _, _, b in BINS
            if (bins == b).any()}
    return ExtractionSummary(
        definition=f"greedy decoding after a k-byte prefix taken from the text reproduces the "
                   f"next {identity.suffix} bytes exactly (Carlini et al. 2022, "
                   "k-extractability, with bytes for tokens)",
        prompts={name: int(len(part) // len(identity.prefixes))
                 for name, part in table.groupby("set", sort=False)},
        prefixes=list(identity.prefixes), suffix=identity.suffix,
        model_context=(window - 1) if (window := getattr(tr.loaded.model, "window", None))
        else None,
        by_prefix=by_prefix, by_count=by_count, count_bins=[b for _, _, b in BINS])
