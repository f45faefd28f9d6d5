"""The text LM as a compressor and a generator, side by side with what a user would pick instead.

    nice -n 10 .venv/bin/python benchmarks/textlm.py --model models/textlm-shakespeare \\
        [--chunks 64] [--files 2] [--coded 4] [--texts 8]

In one run: (1) the measure stage itself (``copyscope compress measure MODEL --limit CHUNKS
--files FILES``): bits per byte of training and held-out text under the model and gzip, bz2,
LZMA and zstd, on 2,048-byte chunks and whole files, raw and adjusted for the model's size
(Delétang et al. 2023, Table 1); (2) the range coder on ``--coded`` held-out chunks coded
together, one thread: encode and decode bytes/s (the KV-cached autoregressive pass), beside the
model's parallel forward pass (Σ -log2 p, nothing coded), the same bytes recomputed window by
window without a cache (the first window of each chunk), and the classical compressors on the
same chunks; (3) generation: ``--texts`` texts of the model's length together, bytes/s, beside
gzip as a text generator (its context the model's training text). Writes the ``textlm`` section
of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from copyscope.compress import baselines
from copyscope.compress.codec import decode, encode
from copyscope.models.gzipmodel import GzipConfig, GzipModel
from copyscope.models.textlm import BOS
from copyscope.rundir import command_line, versions
from copyscope.stages import measure_text
from copyscope.stages.measure import measure
from copyscope.stages.textrun import open_text_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compress import cpu_name, timed
from results import replace_section

REPO = Path(__file__).resolve().parents[1]
METHODS = ("model", *measure_text.COMPRESSORS)


def bits_table(rates: dict, model_name: str) -> list[str]:
    """The LMIC-style table: bits per byte and rates for every method, both sets, both units."""
    def cell(r: dict, unit: str) -> str:
        bpb = r[f"{unit}_bpb"]
        if bpb is None:
            return "— | — | —"
        return (f"{bpb:.3f} | {100 * r[f'{unit}_raw_rate']:.1f}% | "
                f"{100 * r[f'{unit}_adjusted_rate']:.1f}%")

    groups = ("held-out chunks", "held-out files", "training chunks", "training files")
    lines = ["| method | " + " | ".join(f"{g}: bit/byte | raw | adjusted" for g in groups) + " |",
             "|---" * 13 + "|"]
    for method in METHODS:
        name = f"model: {model_name}" if method == "model" else method
        lines.append(f"| {name} | " + " | ".join(cell(rates[s][method], u)
                                                 for s in ("heldout", "train")
                                                 for u in ("chunk", "file")) + " |")
    return lines


def naive(model, x: torch.Tensor) -> None:
    """Byte by byte without a key/value cache over the first window (``context`` bytes): the
    network runs over the whole window so far for every byte."""
    bos = torch.full((len(x), 1), BOS, dtype=torch.long)
    with torch.inference_mode():
        for i in range(min(model.window, x.shape[1])):
            model(torch.cat([bos, x[:, :i].long()], 1))[:, -1].softmax(-1)


def coder_rows(model, sha: str, chunks: np.ndarray) -> tuple[list[tuple], bool, float]:
    """(step, wall s, CPU s, bytes) of every way to code the chunks, whether decoding was exact,
    and the coded file's overhead over Σ -log2 p."""
    x = torch.from_numpy(chunks)
    with torch.inference_mode():
        _, fwd_w, fwd_c = timed(lambda: model.log_prob(x))
    _, naive_w, naive_c = timed(lambda: naive(model, x))
    coded, enc_w, enc_c = timed(lambda: encode(model, sha, chunks, len(chunks), show=False))
    back, dec_w, dec_c = timed(lambda: decode(model, sha, coded.data, show=False))
    rows = [("parallel forward pass (Σ -log2 p, nothing coded)", fwd_w, fwd_c, chunks.size),
            (f"byte by byte without a KV cache (the first {model.window} bytes of each chunk)",
             naive_w, naive_c, len(chunks) * min(model.window, chunks.shape[1])),
            ("encode (KV-cached autoregressive pass + range coder)", enc_w, enc_c, chunks.size),
            ("decode (KV-cached autoregressive pass + range decoder)", dec_w, dec_c, chunks.size)]
    for name in measure_text.COMPRESSORS:
        _, w, c = timed(lambda name=name: baselines.bits_per_item(name, chunks))
        rows.append((f"{name} (each chunk alone)", w, c, chunks.size))
    return rows, bool(np.array_equal(back, chunks)), coded.overhead


def generation_rows(model, train_text: np.ndarray, texts: int, gzip_texts: int) -> list[tuple]:
    _, w, c = timed(lambda: model.generate(texts, torch.Generator().manual_seed(0)))
    length = model.config.length
    gz = GzipModel(GzipConfig(length=64))
    gz.fit(torch.from_numpy(train_text.copy()))
    _, gw, gc = timed(lambda: gz.generate(gzip_texts, torch.Generator().manual_seed(0)))
    return [(f"{texts} texts of {length} bytes, drawn together", w, c, texts * length),
            (f"gzip on the training text (Delétang et al. Sec. 3.4): {gzip_texts} texts of 64 "
             "bytes", gw, gc, gzip_texts * 64)]


def speed_table(rows: list[tuple]) -> list[str]:
    return ["| what | wall s | CPU s | bytes/s (wall) | bytes per CPU second |",
            "|---|---|---|---|---|",
            *[f"| {name} | {w:.2f} | {c:.2f} | {n / w:,.0f} | {n / c:,.0f} |"
              for name, w, c, n in rows]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "textlm-shakespeare")
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--coded", type=int, default=4)
    ap.add_argument("--texts", type=int, default=8)
    ap.add_argument("--gzip-texts", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "textlm-measure")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    result, m_wall, m_cpu = timed(lambda: measure(args.model, args.out, limit=args.chunks,
                                                  files=args.files, show=False))
    s = result.summary
    tr = open_text_run(args.model)
    model = tr.loaded.model
    held = result.items[result.items["set"] == "heldout"].head(args.coded)
    doc = held["doc"].to_numpy()
    first = tr.heldout.offsets[doc] + held["offset"].to_numpy()
    chunks = tr.heldout.data[first[:, None] + np.arange(measure_text.CHUNK_BYTES)]
    coder, exact, overhead = coder_rows(model, tr.loaded.sha256, chunks)
    generation = generation_rows(model, tr.train.data, args.texts, args.gzip_texts)
    load_end = os.getloadavg()
    lines = section(args, s, m_wall, m_cpu, coder, exact, overhead, generation,
                    (load_start, load_end))
    replace_section(args.results, "textlm", "\n".join(lines))
    print("\n".join(lines))


def section(args, s, m_wall, m_cpu, coder, exact, overhead, generation, loads) -> list[str]:
    rates, model = s.rates, s.model
    shown = (args.model.resolve().relative_to(REPO) if args.model.resolve().is_relative_to(REPO)
             else args.model)
    held = rates["heldout"]
    return [
        "## Text LM: bits per byte, the coder and generation (CPU)",
        "",
        f"Written by `benchmarks/textlm.py` on {dt.date.today().isoformat()}.",
        "",
        f"    {command_line()}",
        "",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores, torch on 1 thread; "
        f"{platform.platform()}. **Busy machine**: background trainings and other sessions' "
        "jobs used both cores throughout (this benchmark ran at nice 10), so wall times are "
        "several times the CPU times given beside them.",
        f"- Load average (1, 5, 15 min) at the start {', '.join(f'{v:.2f}' for v in loads[0])}, "
        f"at the end {', '.join(f'{v:.2f}' for v in loads[1])}",
        f"- Libraries: {', '.join(f'{k} {v}' for k, v in versions().items() if k != 'platform')}"
        f", constriction {metadata.version('constriction')}, zstandard "
        f"{metadata.version('zstandard')}",
        f"- Model: `{shown}` ({model['family']}, {model['parameters']:,} parameters, checkpoint "
        f"{model['size_bits'] / 8 / 2**20:.2f} MiB, sha256 {model['checkpoint_sha256'][:12]}…)",
        "",
        f"### Bits per byte (lower is better): {held['chunks']} held-out and "
        f"{rates['train']['chunks']} training chunks of 2,048 bytes, {held['files']} + "
        f"{rates['train']['files']} whole files",
        "",
        *bits_table(rates, shown.name if isinstance(shown, Path) else str(shown)),
        "",
        f"Raw rate = compressed / raw size; adjusted adds the model's checkpoint "
        f"({model['size_bits']:,} bits) to its compressed size over the whole set "
        f"({held['set_bytes']:,} held-out, {rates['train']['set_bytes']:,} training bytes), as "
        "in Delétang et al.'s Table 1. Chunks are coded alone from an empty context (the model "
        "through the range coder, so its bits include termination); files are whole documents "
        "(the model's Σ -log2 p through its sliding window; the classical compressors' bare "
        f"streams). On held-out chunks the model needs {held['model']['chunk_bpb']:.3f} bit/byte "
        f"against gzip's {held['gzip']['chunk_bpb']:.3f}: "
        f"{100 * held['model_vs_gzip']:.1f}% fewer (the floor is 25%). The measure stage took "
        f"{m_wall:.0f} s wall, {m_cpu:.0f} s CPU. Membership AUC (training against held-out "
        "chunks): " + ", ".join(f"{k} {v['auc']:.3f} (TPR at 1% FPR {v['tpr_at_1pct_fpr']:.3f})"
                                for k, v in (s.membership or {}).items()) + ".",
        "",
        f"### The range coder on {args.coded} held-out chunks "
        "(coded together, 1 thread)",
        "",
        *speed_table(coder),
        "",
        f"- Decoded bit-exact: {exact}; the coded payload is {100 * overhead:.3f}% over "
        "Σ -log2 p. Without the cache every byte reruns the network over its whole window "
        "so far; with it, each byte is one token's pass over the cached keys and values.",
        "",
        "### Generation",
        "",
        *speed_table(generation),
    ]


if __name__ == "__main__":
    main()
