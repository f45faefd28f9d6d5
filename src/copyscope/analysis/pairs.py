"""The evidence for one claimed copy, as pictures and numbers: the pair view and the galleries.

:func:`pair_view` puts a generated sample beside its nearest training image, their absolute
difference and the nearest held-out image, with every measure the audit recorded for it.
:func:`top_copies` and :func:`most_regenerated` choose what the galleries show. Everything is read
from the run directory's tables and the audited images; nothing is searched again, so a view
takes milliseconds once :func:`copyscope.analysis.open_audit` has read the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from copyscope.analysis.audited import AuditedRun

Table = Literal["samples", "controls"]
PANELS = ("query", "train", "difference", "heldout")

# (column, label, format) of every measure a pair view reports; see README "Measures".
MEASURES: tuple[tuple[str, str, str], ...] = (
    ("nn_l2", "normalised L2 to the nearest training image", "{:.4f}"),
    ("nn2_l2", "normalised L2 to the second-nearest training image", "{:.4f}"),
    ("gu_ratio", "Gu et al. ratio nearest / second-nearest", "{:.3f}"),
    ("carlini", "Carlini et al. calibrated L2 (training item's neighbourhood)", "{:.3f}"),
    ("carlini_sample", "Carlini et al. calibrated L2 (sample's neighbourhood)", "{:.3f}"),
    ("heldout_p", "share of held-out images at least as close to training", "{:.4f}"),
    ("nn_heldout_l2", "normalised L2 to the nearest held-out image", "{:.4f}"),
    ("rmse", "RMSE", "{:.4f}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("ms_ssim", "MS-SSIM", "{:.4f}"),
    ("uiq", "UIQ", "{:.4f}"),
    ("sam", "SAM (radians)", "{:.4f}"),
)


@dataclass
class PairView:
    """One generated sample (or held-out image) and the evidence about it.

    ``panels`` maps ``query`` (the sample), ``train`` (its nearest training image),
    ``difference`` (their absolute pixel difference) and ``heldout`` (its nearest held-out image;
    for a held-out query, its nearest *other* held-out image) to uint8 H x W x C arrays.
    ``measures`` holds the raw values, ``verdicts`` the flag of each criterion.
    """

    table: Table
    index: int
    train_item: int
    heldout_item: int
    panels: dict[str, np.ndarray]
    captions: dict[str, str]
    measures: dict[str, float]
    verdicts: dict[str, bool]

    def lines(self) -> list[tuple[str, str]]:
        """(label, formatted value) for every measure, in the order of :data:`MEASURES`."""
        out = []
        for col, label, fmt in MEASURES:
            if col in self.measures:
                v = self.measures[col]
                out.append((label, "∞" if np.isinf(v) else fmt.format(v)))
        return out

    def flagged_by(self) -> list[str]:
        return [name for name, flag in self.verdicts.items() if flag]

    def strip(self, gap: int = 2) -> np.ndarray:
        """The four panels side by side on a white background, as one uint8 image."""
        return hstack([self.panels[p] for p in PANELS], gap)


def pair_view(run: AuditedRun, index: int, table: Table = "samples") -> PairView:
    """The pair view of sample ``index`` (or of held-out image ``index`` with ``table="controls"``).

    Reads one row of samples.parquet (controls.parquet) and four images; no search.
    """
    rows = run.samples if table == "samples" else run.controls
    row = rows.iloc[int(index)]
    query_images = run.images("samples" if table == "samples" else "heldout").images
    train, heldout = run.images("train").images, run.images("heldout").images
    t, h = int(row["nn_train"]), int(row["nn_heldout"])
    query = query_images[int(index)]
    diff = np.abs(query.astype(np.int16) - train[t].astype(np.int16)).astype(np.uint8)
    label = f" (label {int(row['nn_label'])})" if row["nn_label"] >= 0 else ""
    what = "sample" if table == "samples" else "held-out"
    captions = {
        "query": f"{what} #{int(index)}",
        "train": f"nearest training #{t}{label}",
        "difference": f"|difference|, max {int(diff.max())}/255",
        "heldout": f"nearest {'other ' if table == 'controls' else ''}held-out #{h}",
    }
    measures = {col: float(row[col]) for col, _, _ in MEASURES if col in row.index}
    verdicts = {c[len("copy_"):]: bool(row[c]) for c in rows.columns if c.startswith("copy_")}
    return PairView(table, int(index), t, h,
                    {"query": query, "train": train[t], "difference": diff,
                     "heldout": heldout[h]},
                    captions, measures, verdicts)


def top_copies(run: AuditedRun, n: int = 12, criterion: str | None = None) -> pd.DataFrame:
    """The flagged samples, closest to their training image first (at most ``n``; may be empty)."""
    name = run.criterion(criterion)
    flagged = run.samples[run.samples[f"copy_{name}"]]
    return flagged.sort_values(["nn_l2", "heldout_p"], kind="stable").head(n)


def strongest_copies(runs: Sequence[AuditedRun], n: int = 24, per_run: int = 3
                     ) -> pd.DataFrame:
    """The strongest copies across runs: samples flagged by their run's default criterion,
    closest to their training image first, at most ``per_run`` from each run (so one run that
    copies a single image cannot fill the gallery), the ``n`` closest of those. Columns: run
    (its index in ``runs``), name, sample, nn_train, nn_l2, heldout_p."""
    parts = []
    for i, run in enumerate(runs):
        top = top_copies(run, n).drop_duplicates("nn_train").head(per_run)
        parts.append(top[["sample", "nn_train", "nn_l2", "heldout_p"]].assign(run=i,
                                                                              name=run.name))
    if not parts:
        return pd.DataFrame(columns=["run", "name", "sample", "nn_train", "nn_l2", "heldout_p"])
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["nn_l2", "heldout_p"], kind="stable").head(n).reset_index(drop=True)


def closest(run: AuditedRun, n: int = 12, table: Table = "samples") -> pd.DataFrame:
    """The ``n`` rows of samples (or controls) closest to their nearest training image."""
    rows = run.samples if table == "samples" else run.controls
    return rows.sort_values("nn_l2", kind="stable").head(n)


@dataclass
class ItemView:
    """A training item and the generated samples whose nearest training image it is."""

    item: int
    row: dict[str, object]
    image: np.ndarray
    samples: pd.DataFrame
    sample_images: np.ndarray

    def strip(self, gap: int = 2) -> np.ndarray:
        """The training image, a wider gap, then its samples (copies first, closest first)."""
        return hstack([self.image, np.full_like(self.image[:, : 2 * gap], 255),
                       *self.sample_images], gap)


def most_regenerated(run: AuditedRun, n: int = 6, criterion: str | None = None) -> pd.DataFrame:
    """The training items most often regenerated: most copies, then most samples nearest.

    Only items that at least one sample lands on; at most ``n`` rows of items.parquet.
    """
    name = run.criterion(criterion)
    items = run.items[run.items["n_nearest"] > 0]
    return items.sort_values([f"n_copies_{name}", "n_nearest", "copying_score"],
                             ascending=False, kind="stable").head(n)


def item_view(run: AuditedRun, item: int, per_item: int = 8,
              criterion: str | None = None) -> ItemView:
    """Training item ``item`` with (up to ``per_item``) samples nearest to it, copies first."""
    name = run.criterion(criterion)
    s = run.samples[run.samples["nn_train"] == item]
    s = s.assign(_not_copy=~s[f"copy_{name}"]).sort_values(["_not_copy", "nn_l2"], kind="stable")
    s = s.drop(columns="_not_copy").head(per_item)
    images = run.images("samples").images[s["sample"].to_numpy()]
    return ItemView(int(item), run.items.iloc[int(item)].to_dict(),
                    run.images("train").images[int(item)], s, images)


def hstack(images: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """uint8 H x W x C images side by side with ``gap`` white columns between them."""
    h, _, c = images[0].shape
    white = np.full((h, gap, c), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, im in enumerate(images):
        parts += [white, im] if i else [im]
    return np.concatenate(parts, axis=1)
