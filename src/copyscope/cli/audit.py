"""``copyscope audit``: search every sample against the training set, judge against held-out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from copyscope.audit_config import AuditConfig
from copyscope.cli.common import SPEC_HELP, console
from copyscope.detect.criteria import CRITERIA

if TYPE_CHECKING:
    from copyscope.audit import Audit

_D = AuditConfig()
Opt = typer.Option


def audit_command(
    samples: Annotated[str, Opt("--samples", "-s", help=f"Generated images: {SPEC_HELP}.")],
    out: Annotated[Path, Opt("--out", "-o", help="Run directory to write.")],
    train: Annotated[str, Opt("--train", "-t", help=f"Training set: {SPEC_HELP}.")] = "mnist:train",
    heldout: Annotated[str, Opt(help="Held-out real images of the same distribution, never "
                                "trained on (the control).")] = "mnist:test",
    default: Annotated[str, Opt(help="Criterion behind is_copy: " + ", ".join(CRITERIA) + ".")]
    = _D.default,
    heldout_q: Annotated[float, Opt(help="False-positive rate of the held-out criterion.")]
    = _D.heldout_q,
    l2_threshold: Annotated[float, Opt(help="Absolute normalised-L2 threshold.")]
    = _D.l2_threshold,
    gu_threshold: Annotated[float, Opt(help="Gu et al. nearest/second ratio.")] = _D.gu_threshold,
    alpha: Annotated[float, Opt(help="Carlini et al. alpha.")] = _D.alpha,
    neighbours: Annotated[int, Opt(help="Carlini et al. neighbourhood size n.")] = _D.neighbours,
    cells: Annotated[int, Opt(help="k-means cells for Meehan et al.'s C_T.")] = _D.cells,
    seed: Annotated[int, Opt(help="Seed of the k-means cells.")] = _D.seed,
    backend: Annotated[str, Opt(help="Search backend: int8 (exact) or faiss.")] = _D.backend,
    force: Annotated[bool, Opt("--force", help="Replace a different run in --out.")] = False,
) -> None:
    """Audit generated samples: exact nearest training images, measures, verdicts, trends."""
    from copyscope.audit import audit

    cfg = AuditConfig(neighbours=neighbours, alpha=alpha, gu_threshold=gu_threshold,
                      heldout_q=heldout_q, l2_threshold=l2_threshold, default=default,
                      cells=cells, seed=seed, backend=backend)
    result = audit(samples, train=train, heldout=heldout, out=out, config=cfg, force=force)
    print_summary(result)


def print_summary(result: Audit) -> None:
    s = result.summary
    table = Table(title=f"{s['n_samples']:,} samples vs {s['n_train']:,} training images "
                  f"(control: {s['n_heldout']:,} held-out)")
    for col in ("criterion", "copies", "copy rate (95% CI)", "held-out false-positive rate"):
        table.add_column(col, justify="left" if col == "criterion" else "right")
    for name, c in s["criteria"].items():
        mark = " (default)" if name == s["default_criterion"] else ""
        table.add_row(name + mark, f"{c['copies']:,}", _rate(c["copy_rate"], c["copy_rate_ci95"]),
                      _rate(c["heldout_fpr"], c["heldout_fpr_ci95"]))
    console.print(table)
    ct = s["data_copying_ct"]
    if ct["C_T"] is not None:
        console.print(f"Meehan et al. C_T = {ct['C_T']:+.2f} over {ct['cells_used']} of "
                      f"{ct['cells']} cells (<< 0: samples closer to training than unseen data).")
    else:
        console.print(f"Meehan et al. C_T not computed: no k-means cell holds more than "
                      f"{ct['min_cell_samples']} samples (give more samples or fewer --cells).")
    mem = s["memorised_items"]
    console.print(f"Training items with unusually much generated mass nearby: {mem['n_flagged']}")
    if result.out is not None:
        console.print(f"Written to [bold]{result.out}[/]: samples.parquet, controls.parquet, "
                      "items.parquet, summary.json, run.json")


def _rate(rate: float, ci: list[float]) -> str:
    return f"{100 * rate:.2f}% ({100 * ci[0]:.2f}-{100 * ci[1]:.2f})"
