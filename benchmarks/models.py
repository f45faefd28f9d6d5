"""Model families: speed on this machine and the scientific checks, printed as markdown.

    .venv/bin/python benchmarks/models.py speed [--n 250]      # needs the models/ checkpoints
    .venv/bin/python benchmarks/models.py science runs/demo    # after a study (copyscope run)

``speed`` reads each family's 60,000-image training run (seconds per epoch, training steps per
second, peak memory of the training process) and samples its checkpoint in a fresh process at
the family's default sampler settings (samples per second, peak memory). ``science`` turns a
study's ``study.parquet`` and the runs' ``quality.json`` into the tables of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd

from copyscope.detect.criteria import CRITERIA

REPO = Path(__file__).resolve().parents[1]
SPEED = {"diffusion": "ddpm-60000", "gan": "gan-60000", "pixelcnn": "pixelcnn-60000"}


def speed(n: int, out: Path) -> None:
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"load average at start {os.getloadavg()[0]:.1f}\n")
    print("| family | parameters | training: s / epoch (60,000 images) | steps / s | "
          "peak memory (train) | samples / s (default sampler) | peak memory (sample) |")
    print("|---|---|---|---|---|---|---|")
    for family, name in SPEED.items():
        train = json.loads((REPO / "models" / name / "run.json").read_text())["stages"]["train"]
        target = out / name
        subprocess.run([sys.executable, "-m", "copyscope", "sample", str(REPO / "models" / name),
                        "-n", str(n), "--out", str(target), "--force"], check=True,
                       env={**os.environ, "COPYSCOPE_PROGRESS": "0"}, stdout=subprocess.DEVNULL)
        stage = json.loads((target / "run.json").read_text())["stages"]["sample"]
        sampler = stage["sampler"] + (f" {stage['steps']} steps" if stage["steps"] else "")
        seconds = train["timings_s"]["train"]
        print(f"| {family} | {train['parameters']:,} | {train['timings_s']['per_epoch']:.0f} | "
              f"{train['steps_done'] / seconds:.2f} | {train['peak_memory_mb']:.0f} MB | "
              f"{stage['samples_per_s']:.1f} ({sampler}) | {stage['peak_memory_mb']:.0f} MB |")


def science(root: Path) -> None:
    table = pd.read_parquet(root / "study.parquet")
    main = table[~table["model"].str.contains("@")].copy()
    main["variant"] = main["model"].str.rsplit("-", n=1).str[0]
    default = main["default_criterion"].iloc[0]
    print(f"Copy rate by training-set size (criterion `{default}`; held-out false-positive rate "
          f"{100 * main[f'heldout_fpr_{default}'].iloc[0]:.2f}%):\n")
    pivot = main.pivot_table(index="variant", columns="train_size",
                             values=f"copy_rate_{default}", aggfunc="first")
    pivot.columns = [f"{int(c):,}" for c in pivot.columns]
    print(_markdown(pivot.map(lambda v: f"{100 * v:.1f}%").rename_axis("model").reset_index()))
    print("\nEvery criterion, every model (copy rate; held-out FPR in the last row):\n")
    cols = ["model", "train_size", "samples", *(f"copy_rate_{c}" for c in CRITERIA), "ct",
            "mean_confidence", "frechet_distance"]
    shown = main[[c for c in cols if c in main]].copy()
    for c in CRITERIA:
        shown[f"copy_rate_{c}"] = shown[f"copy_rate_{c}"].map(lambda v: f"{100 * v:.1f}%")
    fpr = {f"copy_rate_{c}": f"{100 * main[f'heldout_fpr_{c}'].iloc[0]:.2f}%" for c in CRITERIA}
    shown = pd.concat([shown, pd.DataFrame([{"model": "held-out control (FPR)", **fpr}])])
    print(_markdown(shown))
    sweep = table[table["model"].str.contains("@")]
    if len(sweep):
        print("\nEpoch sweep (every checkpoint audited):\n")
        last = table[table["model"] == sweep["model"].iloc[0].split("@")[0]]
        rows = pd.concat([sweep, last]).sort_values("epoch")
        cols = ["epoch", *(f"copy_rate_{c}" for c in CRITERIA), "mean_confidence",
                "frechet_distance"]
        print(_markdown(rows[[c for c in cols if c in rows]]))
    print("\nSample quality: class histogram of the samples (classes 0-9):\n")
    print("| model | class histogram | mean confidence | Fréchet distance |")
    print("|---|---|---|---|")
    for r in main.itertuples():
        q = json.loads((Path(r.path) / "quality.json").read_text())
        print(f"| {r.model} | {' '.join(map(str, q['class_histogram']))} | "
              f"{q['mean_confidence']:.2f} | {q['frechet_distance']:.1f} |")


def _markdown(frame: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--n", type=int, default=250)
    s.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "models")
    c = sub.add_parser("science")
    c.add_argument("root", type=Path)
    args = parser.parse_args()
    if args.what == "speed":
        speed(args.n, args.out)
    else:
        science(args.root)


if __name__ == "__main__":
    main()
