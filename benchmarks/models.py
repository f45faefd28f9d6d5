"""Model families: speed on this machine and the scientific checks, printed as markdown.

    .venv/bin/python benchmarks/models.py speed [--n 250]      # needs the models/ checkpoints
    .venv/bin/python benchmarks/models.py science runs/demo    # after a study (copyscope run)
    .venv/bin/python benchmarks/models.py cost configs/study.toml  # after speed and the demo

``speed`` reads each family's 60,000-image training run (seconds per epoch, training steps per
second, peak memory of the training process) and samples its checkpoint in a fresh process at
the family's default sampler settings (samples per second, peak memory). ``science`` turns a
study's ``study.parquet`` and the runs' ``quality.json`` into the tables of benchmarks/RESULTS.md.
``cost`` estimates a study's CPU time here from those measurements: training steps times the
seconds per step of the same model under models/, samples over the family's samples per second
(``speed``), and audit seconds per sample as the demo measured them.
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


def train_speed(steps: int) -> None:
    """Seconds per training step measured now, in this process, with torch's default threads."""
    import time

    import numpy as np
    import torch

    from copyscope.data import load
    from copyscope.models import family_class

    images = torch.from_numpy(np.moveaxis(load("mnist:train[:64]").images, -1, 1).copy())
    print(f"\nTraining steps timed now (batch 64, {torch.get_num_threads()} threads, load "
          f"average {os.getloadavg()[0]:.1f}):\n")
    print("| family | s / step | s / epoch of 60,000 (938 steps) |")
    print("|---|---|---|")
    for family in SPEED:
        cls = family_class(family)
        torch.manual_seed(0)
        model = cls(cls.Config()).train()
        optimizers = model.configure_optimizers()
        model.train_step(images, optimizers)  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            model.train_step(images, optimizers)
        per_step = (time.perf_counter() - start) / steps
        print(f"| {family} | {per_step:.3f} | {938 * per_step:.0f} |")


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
    print(_markdown(pivot.map(lambda v: "—" if pd.isna(v) else f"{100 * v:.1f}%")
                    .rename_axis("model").reset_index()))
    print("\nEvery criterion, every model (copy rate; held-out FPR in the last row):\n")
    cols = ["model", "train_size", "samples", *(f"copy_rate_{c}" for c in CRITERIA), "ct",
            "nn_l2_median", "mean_confidence", "frechet_distance"]
    shown = main[[c for c in cols if c in main]].copy()
    for c in CRITERIA:
        shown[f"copy_rate_{c}"] = shown[f"copy_rate_{c}"].map(lambda v: f"{100 * v:.1f}%")
    fpr = {f"copy_rate_{c}": f"{100 * main[f'heldout_fpr_{c}'].iloc[0]:.2f}%" for c in CRITERIA}
    control = {"model": "held-out control (FPR)", **fpr,
               "nn_l2_median": main["heldout_nn_l2_median"].iloc[0]}
    shown = pd.concat([shown, pd.DataFrame([control])])
    print(_markdown(shown))
    sweep = table[table["model"].str.contains("@")]
    if len(sweep):
        print("\nEpoch sweep (every checkpoint audited):\n")
        last = table[table["model"] == sweep["model"].iloc[0].split("@")[0]]
        rows = pd.concat([sweep, last]).sort_values("epoch")
        cols = ["epoch", *(f"copy_rate_{c}" for c in CRITERIA), "nn_l2_median",
                "mean_confidence", "frechet_distance"]
        rows = rows[[c for c in cols if c in rows]].copy()
        for c in CRITERIA:
            rows[f"copy_rate_{c}"] = rows[f"copy_rate_{c}"].map(lambda v: f"{100 * v:.1f}%")
        print(_markdown(rows))
    print("\nSample quality: class histogram of the samples (classes 0-9):\n")
    print("| model | class histogram | mean confidence | Fréchet distance |")
    print("|---|---|---|---|")
    for r in main.itertuples():
        q = json.loads((Path(r.path) / "quality.json").read_text())
        print(f"| {r.model} | {' '.join(map(str, q['class_histogram']))} | "
              f"{q['mean_confidence']:.2f} | {q['frechet_distance']:.1f} |")


def cost(config: Path, speed_out: Path, demo: Path) -> None:
    from copyscope.seeds import epoch_batches
    from copyscope.study import read_study

    study = read_study(config)
    rate = {}
    for family, name in SPEED.items():
        stage = json.loads((speed_out / name / "run.json").read_text())["stages"]["sample"]
        rate[family] = stage["samples_per_s"] * stage["steps"] / study.steps if stage["steps"] \
            else stage["samples_per_s"]
    audits = [json.loads(p.read_text())["stages"]["audit"] for p in demo.glob("*/run.json")]
    per_sample = sum(a["timings_s"]["samples_search"] + a["timings_s"]["measures"]
                     + a["timings_s"]["data_copying"] for a in audits) / sum(
                         a["inputs"]["samples"]["n"] for a in audits)
    print("| model | training steps | training (h) | sampling (h) | audit (h) |")
    print("|---|---|---|---|---|")
    total = 0.0
    for m in study.models:
        done = json.loads((REPO / "models" / m.name / "run.json").read_text())["stages"]["train"]
        per_step = done["timings_s"]["train"] / done["steps_done"]
        size = m.train.size or 60000
        steps = m.train.epochs * len(epoch_batches(size, m.train.batch_size, 0, 0))
        points = 1 + (m.train.epochs // m.train.checkpoint_every - 1 if m.name in study.sweep
                      else 0)
        hours = [steps * per_step / 3600, points * m.samples / rate[m.train.family] / 3600,
                 points * m.samples * per_sample / 3600]
        total += sum(hours)
        print(f"| {m.name} | {steps:,} | {hours[0]:.2f} | {hours[1]:.2f} | {hours[2]:.2f} |")
    print(f"\nTotal: about {total:.1f} hours of this CPU.")


def _markdown(frame: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            if v != v:
                return ""
            return f"{int(v):,}" if v.is_integer() and abs(v) >= 1 else f"{v:.3g}"
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
    s.add_argument("--train-steps", type=int, default=20)
    c = sub.add_parser("science")
    c.add_argument("root", type=Path)
    k = sub.add_parser("cost")
    k.add_argument("config", type=Path)
    k.add_argument("--speed", type=Path, default=REPO / "benchmarks" / "out" / "models")
    k.add_argument("--demo", type=Path, default=REPO / "runs" / "demo")
    args = parser.parse_args()
    if args.what == "speed":
        speed(args.n, args.out)
        train_speed(args.train_steps)
    elif args.what == "science":
        science(args.root)
    else:
        cost(args.config, args.speed, args.demo)


if __name__ == "__main__":
    main()
