"""``copyscope run``: train -> sample -> audit for every model of a study file, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from copyscope.cli.common import console, markup, say
from copyscope.detect.criteria import CRITERIA
from copyscope.models import fact_names

if TYPE_CHECKING:
    import pandas as pd


def run_command(
    config: Annotated[Path, typer.Argument(help="Study file (TOML), e.g. configs/study.toml.")],
    only: Annotated[list[str] | None, typer.Option(help="Run only this model (repeatable).")]
    = None,
    force: Annotated[bool, typer.Option("--force", help="Replace different runs in the way.")]
    = False,
) -> None:
    """Run a study; finished stages are skipped, so running it again resumes it."""
    from copyscope.files import read_parquet
    from copyscope.study import TEXT_TABLE, read_study, run_study

    study = read_study(config)
    table = run_study(study, only=only, force=force)
    if not table.empty:
        print_table(table)
    if (study.out / TEXT_TABLE).is_file():
        print_text_table(read_parquet(study.out / TEXT_TABLE))
    if study.quality and not table.empty:
        from copyscope.stages.quality import heldout_floor

        floor = heldout_floor(study.heldout)
        say("What real digits reach ({heldout}, one half against the other): classifier "
            "confidence {f.mean_confidence:.2f}, Fréchet distance {f.frechet_distance:.1f}.",
            heldout=study.heldout, f=floor)
    if study.note:
        say("{note}", note=study.note.strip())
    say("Run directories and study.parquet under [bold]{out}[/]", out=study.out)


def print_table(table: pd.DataFrame) -> None:
    """| model | family | training size | family facts | samples | copy rate per criterion |
    held-out FPR | quality |."""
    out = Table(title="Copies among generated samples (each searched against every training "
                "image); copy rate per criterion", box=box.SIMPLE_HEAD, pad_edge=False)
    out.add_column("model", no_wrap=True)
    out.add_column("family", no_wrap=True)
    for col in ("training\nsize", *fact_names(), "samples", *CRITERIA, "held-out\nFPR"):
        out.add_column(col, justify="right")
    quality = "mean_confidence" in table
    if quality:
        out.add_column("classifier\nconfidence", justify="right")
        out.add_column("Fréchet\ndistance", justify="right")
    for r in table.to_dict("records"):
        cells = [markup("{m}", m=r["model"]), r["family"],
                 f"{r['train_size']:,}" if _known(r["train_size"]) else "-",
                 *[f"{r[f]:g}" if _known(r.get(f)) else "-" for f in fact_names()],
                 f"{r['samples']:,}"]
        cells += [f"{100 * r[f'copy_rate_{c}']:.1f}%" for c in CRITERIA]
        default = r["default_criterion"]
        cells.append(f"{100 * r[f'heldout_fpr_{default}']:.2f}%")
        if quality:
            cells += [f"{r['mean_confidence']:.2f}", f"{r['frechet_distance']:.1f}"]
        out.add_row(*cells)
    console.print(out)
    first = table.iloc[0]
    fprs = ", ".join(f"{c} {100 * first[f'heldout_fpr_{c}']:.2f}%" for c in CRITERIA)
    say("Held-out false-positive rate per criterion (unseen real digits flagged): {fprs}; the "
        "FPR column shows the default criterion ({default}).", fprs=fprs,
        default=first["default_criterion"])


def print_text_table(table: pd.DataFrame) -> None:
    """| model | texts | copied share | flagged | held-out FPR | extracted (train / held-out) by
    prefix length | held-out bits per byte, model and gzip | membership AUC |."""
    prefixes = [int(c.rsplit("_", 1)[1]) for c in table.columns if c.startswith("train_extr")]
    out = Table(title="Text models: verbatim spans of their texts in the training corpus, "
                "k-extractability, bits per byte", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("model", "texts", "copied\nshare", "flagged", "held-out\nFPR",
                *[f"extracted\n{k} B (held-out)" for k in prefixes], "held-out bit/B\n(gzip)",
                "membership\nAUC"):
        out.add_column(col, justify="left" if col == "model" else "right")
    for r in table.to_dict("records"):
        out.add_row(markup("{m}", m=r["model"]), f"{r['texts']:,}", _pct(r["copied_share"]),
                    _pct(r["flagged"]), _pct(r["heldout_fpr"]),
                    *[f"{_pct(r[f'train_extracted_{k}'])} ({_pct(r[f'heldout_extracted_{k}'])})"
                      for k in prefixes],
                    f"{r['heldout_bpb']:.2f} ({r['gzip_bpb']:.2f})"
                    if _known(r.get("heldout_bpb")) else "-",
                    f"{r['membership_auc']:.3f}" if _known(r.get("membership_auc")) else "-")
    console.print(out)


def _pct(value: object) -> str:
    return f"{100 * value:.1f}%" if _known(value) else "-"


def _known(value: object) -> bool:
    return value is not None and value == value  # None, or NaN from a parquet round trip
