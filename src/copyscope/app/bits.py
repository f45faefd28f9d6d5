"""Storage in bits in the app: what each loaded density model needs to code an image, against
what it needs for the unseen items its measure coded.

A run qualifies when ``copyscope compress measure`` wrote into it for the very model whose
samples it audited (:attr:`copyscope.analysis.audited.AuditedRun.storage`) and that model is
still on disk. Its bits for an image are the ideal code length -log2 p (the coder's actual
length is within a few dozen bits of it, as the measure's own table shows).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from copyscope.analysis.audited import AuditedRun
from copyscope.models import family_class
from copyscope.stages.train import load_model
from copyscope.tensors import to_nchw


def coders(runs: dict[str, AuditedRun]) -> dict[str, AuditedRun]:
    """The loaded runs whose density model was measured, is still on disk, and codes an image
    in one network pass (``parallel_log_prob``; gzip's likelihood takes a second an image, so
    its numbers stay in the report)."""
    found = {}
    for name, run in runs.items():
        sample = run.sample
        if run.storage is None or sample is None or not sample.checkpoint or not sample.model:
            continue
        fast = getattr(family_class(sample.model["family"]), "parallel_log_prob", False)
        if fast and Path(sample.checkpoint).is_file():
            found[name] = run
    return found


@lru_cache(maxsize=8)
def _model(run: str, checkpoint: str) -> torch.nn.Module:
    model, _ = load_model(Path(run), checkpoint)
    return model


def bits(run: AuditedRun, image: np.ndarray) -> float:
    """The ideal code length in bits of one uint8 (H, W, C) image under ``run``'s model."""
    sample = run.sample
    assert sample is not None and sample.model is not None and sample.checkpoint is not None
    model = _model(sample.model["run"], sample.checkpoint)
    with torch.inference_mode():
        nats = model.log_prob(to_nchw(image[None]))
    return float(-nats[0]) / math.log(2)


def item_bits(run: AuditedRun, item: int, image: np.ndarray) -> tuple[float, float | None]:
    """A training item's bits (measured, else computed now) and its stored bits when the
    measure coded it."""
    assert run.storage is not None
    rows = run.storage.items
    hit = rows[(rows["set"] == "train") & (rows["item"] == item)]
    if len(hit):
        return float(hit["bits_ideal"].iloc[0]), float(hit["stored_bits"].iloc[0])
    return bits(run, image), None


def lines(runs: dict[str, AuditedRun], image: np.ndarray, item: int | None = None) -> list[str]:
    """One sentence per measured model: its bits for the image against unseen items."""
    out = []
    for name, run in coders(runs).items():
        assert run.storage is not None
        b, stored = item_bits(run, item, image) if item is not None else (bits(run, image), None)
        need_more = run.storage.share_needing_more(b)
        held = len(run.storage.heldout_bits)
        text = (f"**{name}** codes this image in **{b:,.0f} bits**; {100 * need_more:.1f}% of "
                f"the {held:,} unseen items it was measured on need more")
        if stored is not None:
            text += f"; it stores **{stored:+,.0f} bits** about this training item"
        out.append(text + ".")
    return out
