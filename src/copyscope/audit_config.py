"""Parameters of an audit, kept free of heavy imports so the CLI starts fast."""

from __future__ import annotations

from dataclasses import dataclass

from copyscope.detect.criteria import CRITERIA
from copyscope.errors import CopyscopeError
from copyscope.search import BACKENDS


@dataclass(frozen=True)
class AuditConfig:
    """Parameters of an audit. Defaults follow the cited papers; all are recorded in run.json."""

    neighbours: int = 50
    """n, the neighbourhood size of Carlini et al.'s calibrated l2."""
    alpha: float = 0.5
    """alpha of Carlini et al.'s calibrated l2."""
    gu_threshold: float = 1 / 3
    """Gu et al.'s nearest / second-nearest ratio threshold."""
    heldout_q: float = 0.001
    """False-positive rate of the held-out criterion."""
    l2_threshold: float = 0.025
    """Absolute normalised-L2 threshold."""
    default: str = "heldout"
    """The criterion behind ``is_copy``."""
    cells: int = 50
    """k-means cells for Meehan et al.'s C_T."""
    min_cell_samples: int = 20
    """C_T uses cells holding more than this many samples."""
    near_q: float = 0.05
    """Held-out quantile of nearest-training distance that sets the per-item region radius."""
    item_alpha: float = 0.05
    """Family-wise level of the per-item test (Bonferroni over training items)."""
    seed: int = 0
    """Seed of the k-means cells (the only random choice in an audit)."""
    backend: str = "int8"
    """Search backend: int8 (exact, fastest) or faiss (IndexFlatL2, exact distances recomputed)."""
    chunk: int = 4096
    """Samples per resumable chunk."""

    def validate(self) -> None:
        checks = [
            (self.neighbours >= 1, "neighbours must be at least 1"),
            (self.alpha > 0, "alpha must be positive"),
            (0 < self.gu_threshold < 1, "gu_threshold must lie in (0, 1)"),
            (0 < self.heldout_q < 1, "heldout_q must lie in (0, 1)"),
            (0 < self.l2_threshold < 1, "l2_threshold must lie in (0, 1)"),
            (self.default in CRITERIA,
             f"default must be one of {', '.join(CRITERIA)}"),
            (self.cells >= 1, "cells must be at least 1"),
            (self.min_cell_samples >= 0, "min_cell_samples must be >= 0"),
            (0 < self.near_q < 1, "near_q must lie in (0, 1)"),
            (0 < self.item_alpha < 1, "item_alpha must lie in (0, 1)"),
            (self.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}"),
            (self.chunk >= 1, "chunk must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise CopyscopeError(f"Invalid audit setting: {message}.")
