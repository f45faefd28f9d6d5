"""``copyscope compress``: a density model as a lossless compressor (encode, decode, measure)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from copyscope.cli.common import SPEC_HELP, console, say

if TYPE_CHECKING:
    from copyscope.records import CompressionSummary

Opt, Arg = typer.Option, typer.Argument
app = typer.Typer(help="Code images with a model (lossless, checkable by decoding) and measure "
                  "the bits it stores about its training items.", no_args_is_help=True)
RUN_HELP = "A training run directory of a density model (pixelcnn, gzip or textlm)."


@app.command("encode")
def encode_command(
    run: Annotated[Path, Arg(help=RUN_HELP)],
    images: Annotated[str, Opt("--images", "-i", help=f"Images to code: {SPEC_HELP}.")],
    out: Annotated[Path, Opt("--out", "-o", help="The .cs file to write.")],
    checkpoint: Annotated[str | None, Opt(help="Checkpoint, e.g. epoch-12 (default: newest).")]
    = None,
) -> None:
    """Code images into a .cs file that only this model decodes."""
    from copyscope.stages.coding import encode_file

    r = encode_file(run, images, out, checkpoint)
    say("{r.count:,} images in {r.bytes:,} bytes ({per:.1f} bits per image; Σ -log2 p = "
        "{ideal:.1f}, overhead {overhead:.3f}% + {header} header bytes; {rate:.1f} images/s): "
        "[bold]{r.path}[/]", r=r, per=r.payload_bits / r.count, ideal=r.bits_ideal / r.count,
        overhead=100 * r.overhead, header=r.header_bits // 8, rate=r.count / r.seconds)


@app.command("decode")
def decode_command(
    run: Annotated[Path, Arg(help=RUN_HELP)],
    file: Annotated[Path, Arg(help="A .cs file made by this run's model.")],
    out: Annotated[Path, Opt("--out", "-o", help="The .npy file to write (uint8).")],
) -> None:
    """Decode a .cs file bit-exactly (refused, with nothing written, if anything is off)."""
    from copyscope.stages.coding import decode_file

    r = decode_file(run, file, out)
    say("{r.count:,} images of shape {r.shape} decoded and checked ({rate:.1f} images/s): "
        "[bold]{r.path}[/]", r=r, rate=r.count / r.seconds)


@app.command("measure")
def measure_command(
    run: Annotated[Path, Arg(help=RUN_HELP)],
    out: Annotated[Path, Opt("--out", "-o", help="Folder for compression.parquet and "
                             "compression.json.")],
    heldout: Annotated[str | None, Opt(help=f"Held-out images: {SPEC_HELP}; the set the "
                                       "model's subset came from (mnist:train) gives its unseen "
                                       "rest (default mnist:test). For a text model: held-out "
                                       "text (default: its corpus's held-out split, e.g. "
                                       "shakespeare:heldout).")] = None,
    train: Annotated[str | None, Opt(help="Training items (default: the items the model was "
                                     "trained on, its train_indices.npy).")] = None,
    checkpoint: Annotated[str | None, Opt(help="Checkpoint (default: newest).")] = None,
    limit: Annotated[int | None, Opt(help="At most this many items of each set (a seeded, "
                                     "class-balanced sample; text: 2,048-byte chunks).")] = None,
    files: Annotated[int | None, Opt(help="Text only: at most this many whole documents of each "
                                     "set coded by the model (default: all).")] = None,
    seed: Annotated[int, Opt(help="Seed of --limit's sample and of the bootstrap.")] = 0,
    force: Annotated[bool, Opt("--force", help="Replace a different measure in --out.")] = False,
) -> None:
    """Code lengths of training and held-out items against gzip, bz2, LZMA, zstd, PNG and WebP
    (text: bits per byte on 2,048-byte chunks and whole files); membership; stored bits per
    training item."""
    from copyscope.stages.measure import measure

    r = measure(run, out, heldout=heldout, train=train, checkpoint=checkpoint, limit=limit,
                seed=seed, force=force, files=files)
    if r.summary.kind == "text":
        print_text_measure(r.summary, r.path)
        return
    s, rates = r.summary.stored_bits, r.summary.rates
    lo, hi = s["total_ci95"]
    held, model = rates["heldout"], rates["train"]["model"]["whole_bpd"]
    best = held["best_classical"]
    say("held-out: model {m:.3f} bit/dim, best classical ({best}) {b:.3f}; training items: model "
        "{t:.3f}. Stored: {s[total]:,.0f} bits in total (95% CI {lo:,.0f} to {hi:,.0f}), "
        "{s[per_item_mean]:.1f} per training item, against a model of {s[model_size_bits]:,} "
        "bits: [bold]{path}[/]", m=held["model"]["whole_bpd"], best=best,
        b=held[best]["whole_bpd"], t=model, s=s, lo=lo, hi=hi, path=r.path)


def print_text_measure(summary: CompressionSummary, path: Path) -> None:
    """A text model's bits per byte beside the classical compressors, and membership."""
    table = Table(title="Bits per byte (2,048-byte chunks, each alone | whole files)")
    for col in ("method", "training chunks", "held-out chunks", "training files",
                "held-out files"):
        table.add_column(col, justify="left" if col == "method" else "right")
    rates = summary.rates
    for method in ("model", "gzip", "bz2", "lzma", "zstd"):
        cells = [f"{rates[s][method][k]:.3f}" if rates[s][method][k] is not None else "-"
                 for k in ("chunk_bpb", "file_bpb") for s in ("train", "heldout")]
        table.add_row(method, cells[0], cells[1], cells[2], cells[3])
    console.print(table)
    auc = ", ".join(f"{k} {v['auc']:.3f} (TPR@1%FPR {v['tpr_at_1pct_fpr']:.3f})"
                    for k, v in (summary.membership or {}).items())
    gain = rates["heldout"]["model_vs_gzip"]
    say("Held-out chunks: the model needs {pct:.1f}% {word} bits than gzip. Membership AUC: "
        "{auc}. Written to [bold]{path}[/]", pct=100 * abs(gain),
        word="fewer" if gain >= 0 else "more", auc=auc, path=path)
