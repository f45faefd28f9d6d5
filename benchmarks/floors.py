"""The memorization study on fresh samples of the committed image models: floors, EMM, contrasts.

    .venv/bin/python benchmarks/floors.py --seed 424242 [--n 200] [--steps 20]

For every finished ``models/ddpm-<size>``, ``models/gan-<size>`` and ``models/gan-nodrop-<size>``
run, draws ``n`` samples with a seed the demo never uses (diffusion at ``steps`` DDIM steps),
audits them against all 60,000 training images with the held-out control (default criterion, FPR
0.1%; the audit knows each model's own training subset from its train_indices.npy), and writes
to benchmarks/RESULTS.md ("Memorization floors"):

- the copy rate per family and training-set size, with Wilson 95% intervals;
- the floors of the memorization issue, checked on the diffusion models: some size of 100 or more
  has at least half its samples flagged, the 60,000-image model at most 1%, and the copy rate
  never rises with the training-set size;
- each family's effective model memorization (Gu et al. 2023; :func:`copyscope.analysis.contrasts
  .emm`), and the Fisher exact test of every contrast at equal size (GAN against diffusion,
  dropout against none; :func:`copyscope.analysis.contrasts.contrasts`, Holm-adjusted).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from results import cpu_name, replace_section

from copyscope.analysis.audited import open_audits
from copyscope.analysis.contrasts import contrasts, emm, emm_sentence, rise
from copyscope.analysis.trends import compare, series
from copyscope.models.checkpoints import checkpoint_meta, find_checkpoint
from copyscope.records import TrainRecord
from copyscope.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
SECTION = "floors"
TITLE = "## Memorization floors, EMM and contrasts: fresh samples of the committed image models"
PATTERNS = ("ddpm-*", "gan-*")


def models() -> list[tuple[str, int, Path, TrainRecord]]:
    """The diffusion and GAN training runs under models/, (family, size, path, record); a run
    still in training is sampled at its newest committed checkpoint (the table says so)."""
    found = []
    for path in sorted({p for pattern in PATTERNS for p in (REPO / "models").glob(pattern)}):
        record = RunDir(path).read(TrainRecord)
        if record is not None and record.epochs_done and record.family in ("diffusion", "gan"):
            found.append((str(record.family), int(record.train_size or 0), path, record))
    return sorted(found, key=lambda m: (m[0], m[2].name.startswith("gan-nodrop"), m[1]))


def run(cmd: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "copyscope", *cmd], check=True,
                   env={**os.environ, "COPYSCOPE_PROGRESS": "0"}, stdout=subprocess.DEVNULL)


def audited(found: list[tuple[str, int, Path, TrainRecord]], args: argparse.Namespace
            ) -> list[Path]:
    """Sample and audit every model. Samples already drawn from the same checkpoint are kept;
    ``--force`` replaces those of an older checkpoint; every audit is computed afresh."""
    outs = []
    for family, _, path, _ in found:
        out = args.out / path.name
        steps = ["--steps", str(args.steps)] if family == "diffusion" else []
        run(["sample", str(path), "-n", str(args.n), "--seed", str(args.seed), *steps,
             "--out", str(out), "--force"])
        run(["audit", "--samples", str(out), "--out", str(out), "--force"])
        outs.append(out)
    return outs


def rate_table(table: pd.DataFrame, criterion: str) -> list[str]:
    """Copy rate per family setting (rows) and training-set size (columns)."""
    lines = series(table, "train_size", criterion)
    sizes = sorted({int(s) for line in lines.values() for s in line["train_size"]})
    out = ["| setting | " + " | ".join(f"{s:,}" for s in sizes) + " |",
           "|---|" + "---|" * len(sizes)]
    for label, line in lines.items():
        by = {int(r["train_size"]): r for r in line.to_dict("records")}
        out.append(f"| {label} | " + " | ".join(
            _rate(by[s]) if s in by else "—" for s in sizes) + " |")
    return out


def floors(table: pd.DataFrame, criterion: str) -> list[tuple[str, bool]]:
    """The issue's floors, on the diffusion line."""
    lines = series(table, "train_size", criterion)
    line = next((v for k, v in lines.items() if k.split(",")[0] == "diffusion"), None)
    if line is None:
        return [("a diffusion model was audited", False)]
    rates = dict(zip(line["train_size"].astype(int), line["copy_rate"], strict=True))
    big = [r for s, r in rates.items() if s >= 100]
    up = rise(line)
    return [
        ("some size of 100 or more has >= 50% flagged", bool(big) and max(big) >= 0.5),
        ("ddpm-60000 has <= 1% flagged", 60000 in rates and rates[60000] <= 0.01),
        ("the copy rate never rises with the training-set size", up["rise_sizes"] is None),
        ("the copy rate does not rise beyond chance (one-sided Fisher exact test of every pair "
         "of sizes, Holm, 5%" + ("" if up["rise_p"] is None else
                                f"; largest rise {up['rise_sizes'][0]:,} -> "
                                f"{up['rise_sizes'][1]:,}: p = {up['rise_p']:.2g}") + ")",
         not up["rises_significantly"]),
    ]


def seen_table(runs: list) -> list[str]:
    """Per model, what the audit says knowing its training subset: how often a sample's nearest
    training image is one the model saw (against held-out digits and chance), and Meehan et
    al.'s C_T with T = the seen items."""
    out = ["| model | nearest is seen: samples [95% CI] | held-out digits | chance | "
           "C_T (seen) | cells used |", "|---|---|---:|---:|---:|---:|"]
    for r in runs:
        seen = r.summary.seen
        if seen is None:
            continue
        near, ct = seen.nearest_is_seen, seen.data_copying_ct
        s = near["samples"]
        ct_value = "—" if ct.get("C_T") is None else f"{ct['C_T']:+.1f}"
        out.append(f"| {r.name} | {100 * s['rate']:.1f}% [{100 * s['ci95'][0]:.1f}–"
                   f"{100 * s['ci95'][1]:.1f}] | {100 * near['heldout']['rate']:.2f}% | "
                   f"{100 * near['chance']:.2f}% | {ct_value} | "
                   f"{ct.get('cells_used', 0)} of {ct.get('cells', 0)} |")
    return out


def contrast_table(table: pd.DataFrame, criterion: str) -> list[str]:
    out = ["| size | A | copies A [95% CI] | B | copies B [95% CI] | A − B | Fisher p | Holm p |",
           "|---:|---|---|---|---|---:|---:|---:|"]
    for r in contrasts(table, criterion).sort_values(["a", "b", "train_size"]).to_dict("records"):
        out.append(
            f"| {r['train_size']:,} | {r['a']} | {_counts(r, 'a')} | {r['b']} | "
            f"{_counts(r, 'b')} | {100 * r['difference']:+.1f} pts | {r['p_fisher']:.2g} | "
            f"{r['p_holm']:.2g} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "floors")
    args = parser.parse_args()
    began = time.perf_counter()
    found = models()
    runs = open_audits(audited(found, args))
    table = compare(runs)
    criterion = runs[0].default_criterion
    fpr = runs[0].summary.heldout_fpr
    trained = [f"| {p.name} | {size:,} | {r.steps_done or 0:,} | {r.epochs_done or 0:,} | "
               f"{_loss(p)} | {'complete' if r.complete else 'in training'} |"
               for _, size, p, r in found]
    text = "\n".join([
        TITLE, "",
        f"Command: `.venv/bin/python benchmarks/floors.py --seed {args.seed} --n {args.n} "
        f"--steps {args.steps}` (each model: `copyscope sample models/<model> -n {args.n} "
        f"--seed {args.seed} [--steps {args.steps} for diffusion] --out DIR`, then "
        "`copyscope audit --samples DIR --out DIR`).",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; {time.perf_counter() - began:.0f} s in all.", "",
        f"Copy rate by the {criterion} criterion (held-out false-positive rate "
        f"{100 * fpr:.2f}% on unseen test digits), [Wilson 95% interval]:", "",
        *rate_table(table, criterion), "",
        "Floors (diffusion):", "",
        *[f"- {'met' if ok else 'NOT met'}: {what}" for what, ok in floors(table, criterion)], "",
        "Effective model memorization (Gu et al. 2023: the largest training-set size with at "
        "least 90% of samples flagged):", "",
        *[f"- {emm_sentence(r)}" for r in emm(table, criterion).to_dict("records")], "",
        "What the audit adds knowing each model's training subset: the share of samples whose "
        "nearest training image is one the model saw (a copy needs it; held-out digits and the "
        "seen share of the training set say what chance gives), and C_T with T = the seen "
        "images (Meehan et al. 2020; strongly negative: samples sit closer to the seen images "
        "than unseen digits do; — where no k-means cell holds the 20 samples C_T needs, as 200 "
        "samples over 50 cells leave none):", "", *seen_table(runs), "",
        "Contrasts at equal training-set size (two-sided Fisher exact test; Holm over all rows):",
        "", *contrast_table(table, criterion), "",
        "The models (training steps and final loss from their run.json):", "",
        "| model | training images | steps | epochs | loss (last epoch) | status |",
        "|---|---:|---:|---:|---:|---|",
        *trained])
    print(text)
    replace_section(REPO / "benchmarks" / "RESULTS.md", SECTION, text)


def _loss(path: Path) -> str:
    """The loss of the run's newest checkpoint (its last epoch's mean)."""
    return f"{checkpoint_meta(find_checkpoint(path / 'checkpoints')).loss:.4f}"


def _rate(r: dict) -> str:
    return (f"{100 * r['copy_rate']:.1f}% [{100 * r['copy_ci_low']:.1f}–"
            f"{100 * r['copy_ci_high']:.1f}]")


def _counts(r: dict, side: str) -> str:
    return (f"{int(r[f'copies_{side}'])}/{int(r[f'n_samples_{side}'])} "
            f"({100 * r[f'copy_rate_{side}']:.1f}% [{100 * r[f'copy_ci_low_{side}']:.1f}–"
            f"{100 * r[f'copy_ci_high_{side}']:.1f}])")


if __name__ == "__main__":
    main()
