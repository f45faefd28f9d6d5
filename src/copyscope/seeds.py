"""Seed streams: every random choice is drawn from a generator seeded with (seed, keys...).

So a run interrupted anywhere and started again repeats an uninterrupted one exactly, and the
same seed gives the same numbers on any machine's CPU.
"""

from __future__ import annotations

import math

import numpy as np


def derived_seed(*keys: int) -> int:
    """A 32-bit seed for torch derived from non-negative integer keys (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch: a seeded permutation of the n items, repeated (each repetition
    shuffled anew) until it fills at least one batch, so a 1-image set still trains in batches."""
    rng = np.random.default_rng([seed, epoch])
    reps = max(1, math.ceil(batch_size / n))
    order = np.concatenate([rng.permutation(n) for _ in range(reps)])
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
