"""Training windows for a text model: byte windows of one length, drawn seeded per epoch, each
from inside one document (never across a document boundary).

An epoch is ``ceil(B / length)`` windows, at least one batch, where B is the bytes of the
documents at least ``length`` long (shorter ones cannot hold a window and are left out): the
model sees as many bytes per epoch as those documents hold, each byte once on average. Each
window's start is uniform over every valid start in every such document, drawn from a generator
seeded with (seed, epoch), so a resumed run draws the same windows as an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np

from copyscope.data.corpus import TextCorpus
from copyscope.errors import CopyscopeError

_KEY = 0x7E77  # separates this seed stream from the image batches'


def valid_starts(corpus: TextCorpus, length: int) -> np.ndarray:
    """int64 (D,): how many windows of ``length`` bytes start inside each document."""
    return np.maximum(np.diff(corpus.offsets) - length + 1, 0)


def windows_per_epoch(corpus: TextCorpus, length: int, batch_size: int) -> int:
    """Windows in one epoch (see the module docstring); one sentence if no document fits one."""
    starts = valid_starts(corpus, length)
    if not starts.any():
        raise CopyscopeError(f"{corpus.source}: no document is at least {length} bytes long, so "
                             "none holds a training window; use a shorter context.")
    usable = int(np.diff(corpus.offsets)[starts > 0].sum())
    return max(math.ceil(usable / length), batch_size)


def epoch_windows(corpus: TextCorpus, length: int, batch_size: int, seed: int, epoch: int
                  ) -> list[np.ndarray]:
    """The batches of epoch ``epoch``: each the int64 start offsets (in ``corpus.data``) of up to
    ``batch_size`` windows; read them with :func:`gather`."""
    count = windows_per_epoch(corpus, length, batch_size)
    first = draw(corpus, length, count, np.random.default_rng([seed, epoch, _KEY]))
    return [first[s : s + batch_size] for s in range(0, count, batch_size)]


def draw(corpus: TextCorpus, length: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """int64 (count,): start offsets (in ``corpus.data``) of ``count`` windows of ``length``
    bytes, each uniform over every start inside one document (drawn with replacement)."""
    starts = valid_starts(corpus, length)
    if not starts.any():
        raise CopyscopeError(f"{corpus.source}: no document is at least {length} bytes long.")
    pick = rng.integers(0, int(starts.sum()), count)  # (count,) over all valid starts
    ends = np.cumsum(starts)
    doc = np.searchsorted(ends, pick, side="right")  # (count,)
    return corpus.offsets[doc] + pick - (ends[doc] - starts[doc])


def gather(corpus: TextCorpus, first: np.ndarray, length: int) -> np.ndarray:
    """uint8 (B, length): the windows starting at ``first``."""
    return corpus.data[first[:, None] + np.arange(length)]
