"""A text model's training run as the text stages read it: the model, the documents it trained
on (its training SPEC at its ``train_indices.npy``, checked against run.json's hash), and
held-out text it never saw (the control)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from copyscope.data.corpus import TextCorpus, require_text
from copyscope.data.textspec import load_corpus
from copyscope.errors import CopyscopeError
from copyscope.models.base import TEXT, data_kind
from copyscope.records import TrainRecord
from copyscope.rundir import RunDir
from copyscope.stages.coding import LoadedModel, open_model
from copyscope.stages.text import AUTO, auto_heldout
from copyscope.stages.train import trained_on


@dataclass(frozen=True)
class TextRun:
    loaded: LoadedModel
    train: TextCorpus
    """The documents the model trained on."""
    heldout: TextCorpus | None
    """Text it never saw, or None (no control)."""


def is_text_run(run: str | Path) -> bool:
    """Did this training run train on text (its train record says so)?"""
    record = RunDir(Path(run)).read(TrainRecord)
    return record is not None and (record.inputs or {}).get("kind") == TEXT


def open_text_run(run: str | Path, checkpoint: str | None = None,
                  heldout: str | Path | TextCorpus | None = AUTO) -> TextRun:
    """The run's text model, training documents and held-out text (``"auto"``: the held-out
    split of a built-in corpus the model trained on, e.g. shakespeare:heldout)."""
    run = Path(run)
    loaded = open_model(run, checkpoint)
    if data_kind(loaded.model) != TEXT:
        raise CopyscopeError(f"{run} is a {loaded.family} model of images; this needs a model "
                             "trained on text.")
    seen = trained_on(run)
    train, spec = require_text(seen.items), seen.spec
    held = None
    if isinstance(heldout, str) and heldout == AUTO:
        auto = auto_heldout(spec)
        held = require_text(load_corpus(auto)) if auto else None
    elif heldout is not None:
        held = require_text(load_corpus(heldout))
    if held is not None and held.sha256 == train.sha256:
        raise CopyscopeError(f"{held.source} is the model's training text itself; the control "
                             "must be text it never saw.")
    return TextRun(loaded, train, held)
