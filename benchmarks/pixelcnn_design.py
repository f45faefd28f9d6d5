"""Short PixelCNN design experiments: test bits/dim against single-core CPU time of training.

    nice -n 10 .venv/bin/python benchmarks/pixelcnn_design.py --name h32-logistic \\
        --set hidden=32 --set head=logistic --cpu-seconds 600 --out runs/design

Trains one configuration on a seeded class-balanced subset of mnist:train (``--size``, default all
60,000) with the training loop's own batches (``copyscope.seeds.epoch_batches``) on one
thread, stops after ``--cpu-seconds`` of training CPU time (evaluation is not counted), and every
``--eval-every`` CPU seconds records bits/dim on ``--test`` held-out digits of mnist:test (a seeded
sample) and on up to 2,000 of the training items. Writes ``<out>/<name>.json``; ``--table`` prints
every finished experiment under ``--out`` as markdown (``--write`` puts it, with each
experiment's curve, in the ``pixelcnn-design`` section of benchmarks/RESULTS.md). CPU seconds,
not wall seconds, because the machine is shared: the curves are what one free core would do.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from copyscope.cli.train import parse_settings
from copyscope.data import load
from copyscope.files import write_json
from copyscope.models.base import make_config
from copyscope.models.pixelcnn import GatedPixelCNN, PixelCNNConfig
from copyscope.seeds import derived_seed, epoch_batches
from copyscope.stages.train import INIT, subset_indices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import replace_section


def bits_per_dim(model: GatedPixelCNN, x: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    with torch.inference_mode():
        nats = sum(-model.log_prob(x[s : s + batch]).sum().item() for s in range(0, len(x), batch))
    model.train()
    return nats / math.log(2) / x[0].numel() / len(x)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.moveaxis(images, -1, 1).copy())  # (N, 1, H, W)


def experiment(name: str, settings: dict, size: int | None, cpu_seconds: float,
               eval_every: float, test_n: int, batch_size: int, out: Path) -> dict:
    torch.set_num_threads(1)
    config = make_config(PixelCNNConfig, settings, "--set")
    train = load("mnist:train")
    picked = subset_indices(train, size, 0)
    x = to_tensor(train.images[picked])
    test = load("mnist:test")
    test_x = to_tensor(test.images[np.random.default_rng(0).choice(len(test), test_n, False)])
    seen_x = x[:2000]
    torch.manual_seed(derived_seed(0, INIT))
    model = GatedPixelCNN(config).train()
    optimizers = model.configure_optimizers()
    curve, spent, step, epoch = [], 0.0, 0, 0
    next_eval = 0.0
    while spent < cpu_seconds:
        for idx in epoch_batches(len(x), batch_size, 0, epoch):
            if spent >= next_eval:
                curve.append({"cpu_s": round(spent, 1), "step": step, "epoch": epoch,
                              "test_bpd": round(bits_per_dim(model, test_x), 4),
                              "train_bpd": round(bits_per_dim(model, seen_x), 4)})
                print(name, curve[-1], flush=True)
                next_eval += eval_every
            began = time.process_time()
            model.train_step(x[torch.from_numpy(idx)], optimizers)
            spent += time.process_time() - began
            step += 1
            if spent >= cpu_seconds:
                break
        epoch += 1
    curve.append({"cpu_s": round(spent, 1), "step": step, "epoch": epoch,
                  "test_bpd": round(bits_per_dim(model, test_x), 4),
                  "train_bpd": round(bits_per_dim(model, seen_x), 4)})
    print(name, curve[-1], flush=True)
    result = {"name": name, "settings": settings, "size": len(x), "batch_size": batch_size,
              "parameters": sum(p.numel() for p in model.parameters()),
              "cpu_s_per_step": round(spent / step, 4), "test_n": test_n, "curve": curve,
              "load_average": os.getloadavg()[0]}
    write_json(out / f"{name}.json", result)
    return result


def reached(curve: list[dict], target: float, key: str = "step") -> str:
    """When test bits/dim first reached ``target`` (linear between evaluations), else —."""
    for before, after in itertools.pairwise(curve):
        if after["test_bpd"] <= target < before["test_bpd"]:
            w = (before["test_bpd"] - target) / (before["test_bpd"] - after["test_bpd"])
            return f"{before[key] + w * (after[key] - before[key]):,.0f}"
    return "—"


def table(out: Path) -> str:
    lines = ["| experiment | settings | training items | parameters | CPU s / step | steps | "
             "CPU s | test bit/dim | seen bit/dim | steps (CPU s) to 1.22 | to 1.20 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        last = r["curve"][-1]
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults"
        lines.append(f"| {r['name']} | {settings} | {r['size']:,} | {r['parameters']:,} | "
                     f"{r['cpu_s_per_step']:.3f} | {last['step']:,} | {last['cpu_s']:.0f} | "
                     f"{last['test_bpd']:.3f} | {last['train_bpd']:.3f} | "
                     + " | ".join(f"{reached(r['curve'], t)} ({reached(r['curve'], t, 'cpu_s')})"
                                  for t in (1.22, 1.20)) + " |")
    return "\n".join(lines)


def section(out: Path, summary: str) -> str:
    curves = []
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        points = "; ".join(f"{c['step']} steps / {c['cpu_s']:.0f} s: {c['test_bpd']:.3f} "
                           f"(seen {c['train_bpd']:.3f})" for c in r["curve"])
        curves.append(f"- {r['name']}: {points}")
    return "\n".join([
        "## PixelCNN design: test bits/dim against single-core CPU time",
        "",
        f"Written by `benchmarks/pixelcnn_design.py --write` on "
        f"{time.strftime('%Y-%m-%d')}; each experiment was run as",
        "",
        "    nice -n 10 .venv/bin/python benchmarks/pixelcnn_design.py --name NAME --set K=V ... "
        "--cpu-seconds S",
        "",
        "on a 2-core AMD EPYC busy with two background trainings (so by CPU seconds, one "
        "thread each). Test bits/dim on 2,000 seeded mnist:test digits (500 for the "
        "one-image runs), seen bits/dim on up to 2,000 of the training items.",
        "",
        summary,
        "",
        "Curves (training steps / training CPU seconds: test bits/dim):",
        "",
        *curves,
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name")
    ap.add_argument("--set", action="append", default=[], dest="settings")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--cpu-seconds", type=float, default=600)
    ap.add_argument("--eval-every", type=float, default=120)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("runs/design"))
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.table or args.write:
        text = table(args.out)
        if args.write:
            text = section(args.out, text)
            replace_section(Path(__file__).resolve().parent / "RESULTS.md", "pixelcnn-design",
                            text)
        print(text)
        return
    experiment(args.name, parse_settings(args.settings), args.size, args.cpu_seconds,
               args.eval_every, args.test, args.batch_size, args.out)


if __name__ == "__main__":
    main()
