"""Storage in bits, read back for the report and the app: what ``copyscope compress measure``
wrote beside an audit (compression.parquet and compression.json), when it measured the very
model whose samples were audited.

The numbers are the measure stage's (see :mod:`copyscope.compress.stored` for stored bits);
this module only chooses what to show: the bits table against the classical compressors, the
membership ROC, the distribution of stored bits, and the training items the model stores most.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from copyscope.files import read_parquet
from copyscope.records import CompressionSummary, CompressRecord
from copyscope.rundir import RunDir

TABLE = "compression.parquet"
SCORES = {"bits": "bits (fewer: member)", "stored_bits": "stored bits (more: member)"}


@dataclass
class Storage:
    """A measured model's code lengths: the per-item table and the summary."""

    summary: CompressionSummary
    items: pd.DataFrame
    """compression.parquet: one row per coded item (set, item, label, bits_*, stored_bits...)."""

    @property
    def heldout_bits(self) -> np.ndarray:
        """The ideal code lengths of the held-out items, sorted: the null for a new image."""
        return np.sort(self.items.loc[self.items["set"] == "heldout", "bits_ideal"].to_numpy())

    def share_needing_more(self, bits: float) -> float:
        """The share of held-out items the model codes in more bits than ``bits``."""
        held = self.heldout_bits
        return float(len(held) - np.searchsorted(held, bits, side="right")) / max(1, len(held))

    def methods(self) -> pd.DataFrame:
        """Bits per dimension of the model and every classical compressor, per set: each item
        alone and the whole set together, raw and model-size-adjusted rates."""
        rows = []
        for name, rates in self.summary.rates.items():
            for method, r in rates.items():
                if isinstance(r, dict):
                    rows.append({"set": name, "method": method, **r})
        return pd.DataFrame(rows)

    def roc(self, score: str) -> tuple[np.ndarray, np.ndarray]:
        """(false-positive rate, true-positive rate) of telling training items from held-out
        items by ``score`` (one of :data:`SCORES`)."""
        from sklearn.metrics import roc_curve

        t = self.items
        value = -t["bits_ideal"].to_numpy() if score == "bits" else t[score].to_numpy()
        fpr, tpr, _ = roc_curve((t["set"] == "train").to_numpy(), value)
        return fpr, tpr

    def most_stored(self, n: int = 8) -> pd.DataFrame:
        """The training items with the most stored bits, most first."""
        train = self.items[self.items["set"] == "train"]
        return train.sort_values("stored_bits", ascending=False, kind="stable").head(n)


def read_storage(path: Path, model_sha256: str | None) -> Storage | None:
    """The measure written into run directory ``path``, if it measured the model with this
    content hash (the model whose samples the run audited); else None."""
    rundir = RunDir(Path(path))
    record = rundir.read(CompressRecord)
    if record is None or not record.complete or record.identity is None:
        return None
    if model_sha256 is not None and record.identity.model != model_sha256:
        return None
    summary = rundir.read(CompressionSummary)
    if summary is None or not rundir.file(TABLE).exists():
        return None
    return Storage(summary, read_parquet(rundir.file(TABLE)))
