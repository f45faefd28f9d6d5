"""Storage in bits across training-set sizes: what each committed PixelCNN stores of its items.

    .venv/bin/python benchmarks/stored.py [--limit 500] [--out /tmp/stored]

For every ``models/pixelcnn-<size>``, runs ``copyscope compress measure`` (the range coder's
actual code lengths) on the model's own training items and on unseen digits: the unseen rest of
mnist:train for a model trained on a subset (the cleaner control, see
:mod:`copyscope.compress.stored`), mnist:test for the 60,000-image model; ``--limit`` caps each
set at a seeded, class-balanced sample. Writes to benchmarks/RESULTS.md ("Storage in bits across
training-set sizes"): bits/dim of seen and unseen items, stored bits per item and in total with
its 95% interval beside the model's own size, how many items are stored at the 1% level, and how
well bits tell the model's items from unseen ones (ROC AUC, TPR at 1% FPR); plus the compression
issue's floor on the one-image model: its training image in at most 10% of the bits an unseen
digit needs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from results import cpu_name, replace_section

from copyscope.records import CompressionSummary, TrainRecord
from copyscope.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
SECTION = "stored"
TITLE = "## Storage in bits across training-set sizes (the committed PixelCNNs)"


def models() -> list[tuple[int, Path, TrainRecord]]:
    """The finished or in-training PixelCNN runs under models/, by training-set size."""
    found = []
    for path in (REPO / "models").glob("pixelcnn-*"):
        record = RunDir(path).read(TrainRecord)
        if record is not None and record.epochs_done:
            found.append((int(record.train_size or 0), path, record))
    return sorted(found, key=lambda m: m[0])


def measured(path: Path, size: int, out: Path, limit: int) -> CompressionSummary:
    heldout = "mnist:test" if size >= 60000 else "mnist:train"
    subprocess.run([sys.executable, "-m", "copyscope", "compress", "measure", str(path),
                    "--heldout", heldout, "--limit", str(limit), "--out", str(out), "--force"],
                   check=True, env={**os.environ, "COPYSCOPE_PROGRESS": "0"},
                   stdout=subprocess.DEVNULL)
    summary = RunDir(out).read(CompressionSummary)
    if summary is None:
        raise SystemExit(f"{out}: compress measure wrote no compression.json")
    return summary


def row(name: str, record: TrainRecord, s: CompressionSummary) -> str:
    train, held = s.rates["train"], s.rates["heldout"]
    stored, auc = s.stored_bits, (s.membership or {}).get("bits", {})
    lo, hi = stored["total_ci95"]
    width = record.identity.model["hidden"] if record.identity else "?"
    return (f"| {name} | {width} | {s.model['parameters']:,} | "
            f"{record.epochs_done:,} | {train['items']:,} / {held['items']:,} | "
            f"{train['ideal_bpd']:.3f} | {held['ideal_bpd']:.3f} | "
            f"{stored['per_item_mean']:,.0f} ({stored['per_item_median']:,.0f}) | "
            f"{stored['items_significant_at_1pct']:,} of {train['items']:,} | "
            f"{stored['total']:,.0f} [{lo:,.0f}, {hi:,.0f}] | {s.model['size_bits']:,} | "
            f"{auc.get('auc', float('nan')):.3f} | {100 * auc.get('tpr_at_1pct_fpr', 0):.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("/tmp/copyscope-stored"))
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    began, lines, one = time.perf_counter(), [], None
    for size, path, record in models():
        summary = measured(path, size, args.out / path.name, args.limit)
        lines.append(row(path.name, record, summary))
        if size == 1:
            one = summary
    floor = []
    if one is not None:
        seen, unseen = one.rates["train"]["ideal_bpd"], one.rates["heldout"]["ideal_bpd"]
        floor = [f"- The one-image model codes its training image in {seen:.4f} bit/dim, "
                 f"{100 * seen / unseen:.2f}% of the {unseen:.3f} bit/dim an unseen digit "
                 f"needs (floor: at most 10%): **{'met' if seen <= 0.1 * unseen else 'not met'}"
                 "**."]
    section = [
        TITLE, "",
        f"Written by `benchmarks/stored.py --limit {args.limit}` on {time.strftime('%Y-%m-%d')} "
        f"in {time.perf_counter() - began:.0f} s ({cpu_name()}). Each row is "
        f"`copyscope compress measure models/<run> --heldout H --limit {args.limit}` with H the "
        "unseen rest of mnist:train (mnist:test for the 60,000-image model). Bits are the "
        "ideal code lengths Σ -log2 p (the coded files are within a few dozen bits per item); "
        "stored bits per item = the bits an unseen digit of the same class and LZMA complexity "
        "needs minus the model's bits for the item (copyscope.compress.stored); the total's "
        "interval is the bootstrap over the held-out calibration.", "",
        "| model | width | parameters | epochs | items seen / unseen | seen bit/dim | "
        "unseen bit/dim | stored bits per item, mean (median) | items stored at p ≤ 1% | "
        "stored bits in total [95% CI] | model size, bits | membership AUC (bits) | "
        "TPR at 1% FPR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *lines, "", *floor]
    replace_section(args.results, SECTION, "\n".join(section))
    print("\n".join(section))


if __name__ == "__main__":
    main()
