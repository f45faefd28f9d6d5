"""The memorization floors of the committed diffusion models, on fresh samples.

    .venv/bin/python benchmarks/floors.py --seed 424242 [--n 200] [--steps 20]

For every committed ``models/ddpm-<size>`` (a finished training run), draws ``n`` samples at
``steps`` DDIM steps with a seed the demo never uses, audits them against all 60,000 training
images with the held-out control (default criterion, FPR 0.1%), and checks the floors of the
memorization issue: some size of 100 or more has at least half its samples flagged, the
60,000-image model at most 1%, and the copy rate never rises with the training-set size. The
table, the check and the commands go to benchmarks/RESULTS.md ("Memorization floors").
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

from results import cpu_name, replace_section

from copyscope.records import AuditSummary, TrainRecord
from copyscope.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
SECTION = "floors"
TITLE = "## Memorization floors: fresh samples of the committed diffusion models"


def models() -> list[tuple[int, Path]]:
    """The finished diffusion training runs under models/, smallest training set first."""
    found = []
    for path in (REPO / "models").glob("ddpm-*"):
        record = RunDir(path).read(TrainRecord)
        if record is not None and record.complete and record.family == "diffusion":
            found.append((int(record.train_size or 0), path))
    return sorted(found)


def run(cmd: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "copyscope", *cmd], check=True,
                   env={**os.environ, "COPYSCOPE_PROGRESS": "0"}, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "floors")
    args = parser.parse_args()
    rows, began = [], time.perf_counter()
    for size, path in models():
        out = args.out / path.name
        run(["sample", str(path), "-n", str(args.n), "--seed", str(args.seed), "--steps",
             str(args.steps), "--out", str(out), "--force"])
        run(["audit", "--samples", str(out), "--out", str(out), "--force"])
        s = RunDir(out).read(AuditSummary)
        assert s is not None
        trained = RunDir(path).read(TrainRecord)
        rows.append((size, path.name, trained.steps_done if trained else None, s))
    lines = [f"| model | training images | training steps | flagged (heldout, FPR "
             f"{100 * rows[0][3].heldout_fpr:.2f}%) [95% CI] | gu | carlini |",
             "|---|---|---|---|---|---|"]
    for size, name, steps, s in rows:
        c = s.criteria
        lines.append(f"| {name} | {size:,} | {steps or 0:,} | "
                     f"{_rate(s.copy_rate, s.copy_rate_ci95)} | {100 * c['gu'].copy_rate:.1f}% | "
                     f"{100 * c['carlini'].copy_rate:.1f}% |")
    rates = [s.copy_rate for _, _, _, s in rows]
    big = [s.copy_rate for size, _, _, s in rows if size >= 100]
    full = [s.copy_rate for size, _, _, s in rows if size >= 60000]
    checks = [
        ("some size of 100 or more has >= 50% flagged", bool(big) and max(big) >= 0.5),
        ("ddpm-60000 has <= 1% flagged", bool(full) and full[0] <= 0.01),
        ("the copy rate never rises with the training-set size",
         all(b <= a for a, b in itertools.pairwise(rates))),
    ]
    text = "\n".join([
        TITLE, "",
        f"Command: `.venv/bin/python benchmarks/floors.py --seed {args.seed} --n {args.n} "
        f"--steps {args.steps}` (each model: `copyscope sample models/ddpm-<size> -n {args.n} "
        f"--seed {args.seed} --steps {args.steps} --out DIR`, then `copyscope audit --samples DIR "
        "--out DIR`).",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f} (busy with background training); "
        f"{time.perf_counter() - began:.0f} s in all.", "", *lines, "",
        *[f"- {'met' if ok else 'NOT met'}: {what}" for what, ok in checks]])
    print(text)
    replace_section(REPO / "benchmarks" / "RESULTS.md", SECTION, text)


def _rate(rate: float, ci: list[float]) -> str:
    return f"{100 * rate:.1f}% [{100 * ci[0]:.1f}–{100 * ci[1]:.1f}]"


if __name__ == "__main__":
    main()
