"""``copyscope compress``: a density model as a lossless compressor (encode, decode, measure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from copyscope.cli.common import SPEC_HELP, say

Opt, Arg = typer.Option, typer.Argument
app = typer.Typer(help="Code images with a model (lossless, checkable by decoding) and measure "
                  "the bits it stores about its training items.", no_args_is_help=True)
RUN_HELP = "A training run directory of a density model (pixelcnn or gzip)."


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
    heldout: Annotated[str, Opt(help=f"Held-out images: {SPEC_HELP}; the set the model's "
                                "subset came from (mnist:train) gives its unseen rest.")]
    = "mnist:test",
    train: Annotated[str | None, Opt(help="Training items (default: the items the model was "
                                     "trained on, its train_indices.npy).")] = None,
    checkpoint: Annotated[str | None, Opt(help="Checkpoint (default: newest).")] = None,
    limit: Annotated[int | None, Opt(help="At most this many items of each set (a seeded, "
                                     "class-balanced sample).")] = None,
    seed: Annotated[int, Opt(help="Seed of --limit's sample and of the bootstrap.")] = 0,
    force: Annotated[bool, Opt("--force", help="Replace a different measure in --out.")] = False,
) -> None:
    """Code lengths of training and held-out items against gzip, bz2, LZMA, zstd, PNG and WebP;
    membership; stored bits per training item."""
    from copyscope.stages.measure import measure

    r = measure(run, out, heldout=heldout, train=train, checkpoint=checkpoint, limit=limit,
                seed=seed, force=force)
    s, rates = r.summary.stored_bits, r.summary.rates
    lo, hi = s["total_ci95"]
    held, model = rates["heldout"], rates["train"]["model"]["whole_bpd"]
    best = held["best_classical"]
    say("held-out: model {m:.3f} bit/dim, best classical ({best}) {b:.3f}; training items: model "
        "{t:.3f}. Stored: {s[total]:,.0f} bits in total (95% CI {lo:,.0f} to {hi:,.0f}), "
        "{s[per_item_mean]:.1f} per training item, against a model of {s[model_size_bits]:,} "
        "bits: [bold]{path}[/]", m=held["model"]["whole_bpd"], best=best,
        b=held[best]["whole_bpd"], t=model, s=s, lo=lo, hi=hi, path=r.path)
