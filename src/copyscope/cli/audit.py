"""``copyscope audit``: search every sample against the training set, judge against held-out.

Its settings options are derived from :class:`copyscope.stages.audit_config.AuditConfig`'s
fields (name, default, help), so a new setting needs no edit here.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from copyscope.cli.common import SPEC_HELP, console, markup, say
from copyscope.stages.audit_config import AuditConfig

if TYPE_CHECKING:
    from copyscope.records import AuditSummary
    from copyscope.stages.audit import Audit

Opt = typer.Option


def audit_command(
    samples: Annotated[str, Opt("--samples", "-s", help=f"Generated images: {SPEC_HELP}.")],
    out: Annotated[Path, Opt("--out", "-o", help="Run directory to write.")],
    train: Annotated[str, Opt("--train", "-t", help=f"Training set: {SPEC_HELP}.")] = "mnist:train",
    heldout: Annotated[str, Opt(help="Held-out real images of the same distribution, never "
                                "trained on (the control).")] = "mnist:test",
    seen: Annotated[str | None, Opt(help="The training items the model saw: a .npy of indices "
                                    "into --train, or the images themselves (any SPEC). Default: "
                                    "read from the samples' training run, when there is one.")]
    = None,
    force: Annotated[bool, Opt("--force", help="Replace a different run in --out.")] = False,
    **settings: Any,
) -> None:
    """Audit generated samples: exact nearest training images, measures, verdicts, trends."""
    from copyscope.stages.audit import audit

    result = audit(samples, train=train, heldout=heldout, out=out,
                   config=AuditConfig(**settings), force=force, seen=seen)
    print_summary(result)


def _with_settings(command: Any) -> Any:
    """``command`` with one option per AuditConfig field in place of its ``**settings``."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                               annotation=Annotated[type(f.default), Opt(help=f.metadata["help"])])
             for f in fields(AuditConfig)]
    command.__signature__ = inspect.Signature([*own, *extra])
    return command


audit_command = _with_settings(audit_command)


def print_summary(result: Audit) -> None:
    s = result.summary
    table = Table(title=markup("{s.n_samples:,} samples vs {s.n_train:,} training images "
                               "(control: {s.n_heldout:,} held-out)", s=s))
    for col in ("criterion", "copies", "copy rate (95% CI)", "held-out false-positive rate"):
        table.add_column(col, justify="left" if col == "criterion" else "right")
    for name, c in s.criteria.items():
        mark = " (default)" if name == s.default_criterion else ""
        table.add_row(name + mark, f"{c.copies:,}", _rate(c.copy_rate, c.copy_rate_ci95),
                      _rate(c.heldout_fpr, c.heldout_fpr_ci95))
    console.print(table)
    ct = s.data_copying_ct
    if ct["C_T"] is not None:
        say("Meehan et al. C_T = {ct[C_T]:+.2f} over {ct[cells_used]} of {ct[cells]} cells "
            "(<< 0: samples closer to training than unseen data).", ct=ct)
    else:
        say("Meehan et al. C_T not computed: no k-means cell holds more than "
            "{ct[min_cell_samples]} samples (give more samples or fewer --cells).", ct=ct)
    say("Training items with unusually much generated mass nearby: {n}",
        n=s.memorised_items["n_flagged"])
    if s.seen is not None:
        print_seen(s)
    if result.out is not None:
        say("Written to [bold]{out}[/]: samples.parquet, controls.parquet, items.parquet, "
            "summary.json, run.json", out=result.out)


def print_seen(s: AuditSummary) -> None:
    """What the audit says about the items the model saw (a model copies only those)."""
    seen = s.seen
    assert seen is not None
    near = {k: v if k == "chance" else _rate(v["rate"], v["ci95"])
            for k, v in seen.nearest_is_seen.items()}
    say("The model saw {seen.n_seen:,} of the {s.n_train:,} training images ({seen.source}). "
        "Nearest training image is a seen one for {near[samples]} of samples and "
        "{near[heldout]} of held-out images ({chance:.2f}% of the training set is seen).",
        seen=seen, s=s, near=near, chance=100 * near["chance"])
    unseen = seen.flagged[s.default_criterion]["unseen"]
    say("Flagged by {default} but nearest to an unseen image (a copy of something the model "
        "never saw, so a false positive): {unseen:,}.", default=s.default_criterion,
        unseen=unseen)
    ct = seen.data_copying_ct
    if ct["C_T"] is not None:
        say("C_T with T = the seen images = {ct[C_T]:+.2f} over {ct[cells_used]} of {ct[cells]} "
            "cells holding {share:.0f}% of the samples.", ct=ct,
            share=100 * ct["samples_in_used_cells"])
    else:
        say("C_T with T = the seen images not computed: no cell of the seen images holds more "
            "than {ct[min_cell_samples]} samples.", ct=ct)


def _rate(rate: float, ci: list[float]) -> str:
    return f"{100 * rate:.2f}% ({100 * ci[0]:.2f}-{100 * ci[1]:.2f})"
