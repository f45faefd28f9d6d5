"""``copyscope train``: train a generator family on a seeded subset of a training set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from copyscope.cli.common import SPEC_HELP, say
from copyscope.errors import CopyscopeError
from copyscope.models import FAMILIES

Opt = typer.Option


def train_command(
    family: Annotated[str, Opt("--family", "-f", help="Model family: " + ", ".join(FAMILIES)
                               + ".")],
    out: Annotated[Path, Opt("--out", "-o", help="Run directory to write (checkpoints/, "
                             "run.json).")],
    train: Annotated[str, Opt("--train", "-t", help=f"Training set: {SPEC_HELP}; for a text "
                              "family (textlm, or gzip given text) a text corpus: shakespeare, "
                              "shakespeare:train, a folder of .txt files, .txt, .jsonl, .csv, "
                              ".parquet.")] = "mnist:train",
    size: Annotated[int | None, Opt(help="Train on a seeded, class-balanced subset of this many "
                                    "images, or documents of a corpus (default: all of "
                                    "--train).")] = None,
    epochs: Annotated[int, Opt(help="Epochs (passes over the subset); more than a finished run "
                               "had continues it.")] = 1,
    batch_size: Annotated[int, Opt(help="Images (or text windows) per step.")] = 64,
    seed: Annotated[int, Opt(help="Seed of the subset and of every random choice.")] = 0,
    checkpoint_every: Annotated[int, Opt(help="Save a checkpoint every N epochs (and after "
                                         "the last).")] = 1,
    setting: Annotated[list[str] | None, Opt(
        "--set", help="A family setting KEY=VALUE, repeatable, e.g. --set dropout=0.0 or "
        "--set block_out_channels=[32,64,64].")] = None,
    device: Annotated[str | None, Opt(help="cuda or cpu (default: cuda where present).")] = None,
    force: Annotated[bool, Opt("--force", help="Replace a different run in --out.")] = False,
) -> None:
    """Train a model; an interrupted run resumes from its newest checkpoint when run again."""
    from copyscope.records import TrainRecord
    from copyscope.rundir import RunDir
    from copyscope.stages.train import TrainConfig
    from copyscope.stages.train import train as train_model

    config = TrainConfig(family=family, train=train, size=size, epochs=epochs,
                         batch_size=batch_size, seed=seed, checkpoint_every=checkpoint_every,
                         model=parse_settings(setting or []))
    path = train_model(config, out, device=device, force=force)
    record = RunDir(path).read(TrainRecord)
    assert record is not None and record.steps_done is not None
    items = "documents" if (record.inputs or {}).get("kind") == "text" else "images"
    say("trained {family} on {r.train_size:,} {items} for {r.epochs_done} epochs "
        "({r.steps_done:,} steps, final loss {r.final_loss:.4f}): [bold]{path}[/]",
        family=family, r=record, items=items, path=path)


def parse_settings(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; values are read as JSON where they parse (numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CopyscopeError(f"--set {item!r}: write KEY=VALUE, e.g. --set dropout=0.0.")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
