"""Short text-LM design experiments: held-out bits per byte against single-core CPU time.

    nice -n 10 .venv/bin/python benchmarks/textlm_design.py --name d192 --set dim=192 \\
        --train shakespeare:train --cpu-seconds 1200 --out runs/textlm-design

Trains one ``textlm`` configuration with the training stage's own windows
(``copyscope.data.windows``, seeded per epoch) on one thread and stops after ``--cpu-seconds`` of
training CPU time (evaluation is not counted). Every ``--eval-every`` CPU seconds it records bits
per byte (Σ -log2 p over 2,048-byte chunks, each coded from scratch as the measure stage codes
them) on ``--chunks`` seeded chunks of ``--heldout`` and of the training text, gzip's bits per
byte on the same held-out chunks, and the greedy extraction rate at 32-byte prefixes (50 bytes
must follow exactly; ``--prompts`` seeded training positions). Writes ``<out>/<name>.json``;
``--write`` puts every finished experiment under ``--out`` in the ``textlm-design`` section of
benchmarks/RESULTS.md. ``--time-steps N`` only times N training steps of the configuration on
random windows (after one warm-up step) and writes ``<out>/time-<name>.json``: the seconds per
step of candidate sizes. CPU seconds, not wall seconds, because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from copyscope.cli.train import parse_settings
from copyscope.compress import baselines
from copyscope.data import windows
from copyscope.data.textspec import load_corpus
from copyscope.files import write_json
from copyscope.models.base import make_config
from copyscope.models.textlm import TextLM, TextLMConfig
from copyscope.seeds import derived_seed
from copyscope.stages.extract import greedy
from copyscope.stages.train import INIT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import replace_section

CHUNK, PREFIX, SUFFIX = 2048, 32, 50


def chunks(spec: str, n: int) -> np.ndarray:
    corpus = load_corpus(spec)
    first = windows.draw(corpus, CHUNK, n, np.random.default_rng([0, 0xC4]))
    return windows.gather(corpus, first, CHUNK)


def bits_per_byte(model: TextLM, x: np.ndarray) -> float:
    model.eval()
    with torch.inference_mode():
        nats = -model.log_prob(torch.from_numpy(x)).sum().item()
    model.train()
    return nats / math.log(2) / x.size


def extraction(model: TextLM, prompts: np.ndarray) -> float:
    model.eval()
    generated = greedy(model, prompts[:, :PREFIX], SUFFIX)
    model.train()
    return float(np.mean(np.all(generated == prompts[:, PREFIX:], axis=1)))


def evaluate(model, held, seen, prompts, spent, step, epoch) -> dict:
    return {"cpu_s": round(spent, 1), "step": step, "epoch": epoch,
            "heldout_bpb": round(bits_per_byte(model, held), 4),
            "train_bpb": round(bits_per_byte(model, seen), 4),
            "extracted_32": round(extraction(model, prompts), 4)}


def experiment(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    settings = parse_settings(args.set or [])
    config = make_config(TextLMConfig, settings, "--set")
    corpus = load_corpus(args.train)
    held, seen = chunks(args.heldout, args.chunks), chunks(args.train, args.chunks)
    starts = windows.draw(corpus, PREFIX + SUFFIX, args.prompts, np.random.default_rng([0, 0xE7]))
    prompts = windows.gather(corpus, starts, PREFIX + SUFFIX)
    torch.manual_seed(derived_seed(0, INIT))
    model = TextLM(config).train()
    optimizers = model.configure_optimizers()
    curve, spent, step, epoch, next_eval = [], 0.0, 0, 0, 0.0
    while spent < args.cpu_seconds:
        torch.manual_seed(derived_seed(0, epoch, 0x7024))
        for first in windows.epoch_windows(corpus, config.context, args.batch_size, 0, epoch):
            if spent >= next_eval:
                curve.append(evaluate(model, held, seen, prompts, spent, step, epoch))
                print(args.name, curve[-1], flush=True)
                next_eval += args.eval_every
            began = time.process_time()
            batch = torch.from_numpy(windows.gather(corpus, first, config.context))
            model.train_step(batch, optimizers)
            spent += time.process_time() - began
            step += 1
            if spent >= args.cpu_seconds:
                break
        epoch += 1
    curve.append(evaluate(model, held, seen, prompts, spent, step, epoch))
    print(args.name, curve[-1], flush=True)
    gzip = float(baselines.bits_per_item("gzip", held).sum() / held.size)
    result = {"name": args.name, "settings": settings, "train": args.train,
              "train_bytes": corpus.nbytes, "heldout": args.heldout,
              "batch_size": args.batch_size, "parameters": sum(p.numel() for p in
                                                               model.parameters()),
              "cpu_s_per_step": round(spent / step, 4), "chunks": args.chunks,
              "prompts": args.prompts, "gzip_heldout_bpb": round(gzip, 4), "curve": curve,
              "load_average": os.getloadavg()[0]}
    write_json(args.out / f"{args.name}.json", result)
    return result


def step_time(args: argparse.Namespace) -> dict:
    """CPU seconds per training step of one configuration (random windows, one thread)."""
    torch.set_num_threads(1)
    config = make_config(TextLMConfig, parse_settings(args.set or []), "--set")
    torch.manual_seed(0)
    model = TextLM(config).train()
    optimizers = model.configure_optimizers()
    batch = torch.randint(0, 256, (args.batch_size, config.context), dtype=torch.uint8)
    model.train_step(batch, optimizers)
    began = time.process_time()
    for _ in range(args.time_steps):
        model.train_step(batch, optimizers)
    seconds = (time.process_time() - began) / args.time_steps
    result = {"name": args.name, "settings": parse_settings(args.set or []),
              "batch_size": args.batch_size, "context": config.context,
              "parameters": sum(p.numel() for p in model.parameters()),
              "cpu_s_per_step": round(seconds, 4),
              "cpu_us_per_byte": round(1e6 * seconds / (args.batch_size * config.context), 1)}
    write_json(args.out / f"time-{args.name}.json", result)
    print(result)
    return result


def time_table(out: Path) -> str:
    lines = ["| configuration | settings | parameters | batch × context | CPU s / step | "
             "CPU µs / byte | CPU hours per epoch of shakespeare:train (8.07 MB) |",
             "|---|---|---|---|---|---|---|"]
    for path in sorted(out.glob("time-*.json")):
        r = json.loads(path.read_text())
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults"
        lines.append(f"| {r['name']} | {settings} | {r['parameters']:,} | "
                     f"{r['batch_size']} × {r['context']} | {r['cpu_s_per_step']:.3f} | "
                     f"{r['cpu_us_per_byte']:.0f} | "
                     f"{8071732 * r['cpu_us_per_byte'] / 1e6 / 3600:.2f} |")
    return "\n".join(lines)


def table(out: Path) -> str:
    lines = ["| experiment | training text | settings | parameters | CPU s / step | steps | "
             "epochs | CPU s | held-out bit/byte | vs gzip | training bit/byte | "
             "extracted at 32 bytes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(out.glob("[!t]*.json")):
        r = json.loads(path.read_text())
        last = r["curve"][-1]
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "defaults"
        lines.append(
            f"| {r['name']} | {r['train']} ({r['train_bytes']:,} B) | {settings} | "
            f"{r['parameters']:,} | {r['cpu_s_per_step']:.3f} | {last['step']:,} | "
            f"{last['epoch']} | {last['cpu_s']:.0f} | {last['heldout_bpb']:.3f} | "
            f"{1 - last['heldout_bpb'] / r['gzip_heldout_bpb']:+.0%} | {last['train_bpb']:.3f} | "
            f"{last['extracted_32']:.0%} of {r['prompts']} |")
    return "\n".join(lines)


def section(out: Path) -> str:
    curves = []
    for path in sorted(out.glob("[!t]*.json")):
        r = json.loads(path.read_text())
        points = "; ".join(f"{c['step']} / {c['cpu_s']:.0f} s: {c['heldout_bpb']:.3f} (train "
                           f"{c['train_bpb']:.3f}, extracted {c['extracted_32']:.0%})"
                           for c in r["curve"])
        curves.append(f"- {r['name']}: {points}")
    return "\n".join([
        "## Text LM design: held-out bits per byte against single-core CPU time",
        "",
        f"Written by `benchmarks/textlm_design.py --write` on {time.strftime('%Y-%m-%d')}; each "
        "experiment was run as",
        "",
        "    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/textlm_design.py "
        "--name NAME --train SPEC --set K=V ... --cpu-seconds S",
        "",
        "on a 2-core AMD EPYC busy with background trainings (wall time about 3x the CPU "
        "time; the CPU seconds are what one free core would take). Bits per byte: Σ -log2 p "
        "over 2,048-byte chunks (each coded from scratch, as `copyscope compress measure` "
        "codes them) of shakespeare:heldout (held-out works) and of the training text; gzip "
        "on the same held-out chunks for the floor (the LM must be at least 25% better). "
        "Extraction: greedy decoding after a 32-byte training prefix reproduces the next 50 "
        "bytes exactly.",
        "",
        "Seconds per training step (`--time-steps 4`; 4 layers unless said):",
        "",
        time_table(out),
        "",
        table(out),
        "",
        "Curves (steps / CPU s: held-out bit/byte):",
        "",
        *curves,
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name")
    ap.add_argument("--set", action="append")
    ap.add_argument("--train", default="shakespeare:train")
    ap.add_argument("--heldout", default="shakespeare:heldout")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cpu-seconds", type=float, default=1200)
    ap.add_argument("--eval-every", type=float, default=300)
    ap.add_argument("--chunks", type=int, default=24)
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("runs/textlm-design"))
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--time-steps", type=int, default=0)
    ap.add_argument("--results", type=Path,
                    default=Path(__file__).resolve().parent / "RESULTS.md")
    args = ap.parse_args()
    if args.write:
        replace_section(args.results, "textlm-design", section(args.out))
        print(section(args.out))
        return
    if args.time_steps:
        step_time(args)
        return
    experiment(args)


if __name__ == "__main__":
    main()
