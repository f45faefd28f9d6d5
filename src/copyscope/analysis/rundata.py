"""A finished audit read back from its run directory: the tables, the summary and the images.

Every analysis, figure and pair view takes a :class:`RunData`. Opening one reads the Parquet
tables once; the images are loaded on first use from the SPECs recorded in run.json and checked
against the content hashes recorded there, so a figure can never show pictures other than the
ones that were audited. Nothing is searched again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from copyscope.data import ImageSet, load
from copyscope.errors import CopyscopeError
from copyscope.run import MANIFEST, RunDir, run_info

ImageRole = Literal["samples", "train", "heldout"]
TABLES = ("samples", "controls", "items")


@dataclass
class RunData:
    """One audited run, ready for analysis (see :func:`open_run`)."""

    path: Path
    manifest: dict[str, Any]
    summary: dict[str, Any]
    samples: pd.DataFrame
    controls: pd.DataFrame
    items: pd.DataFrame
    _images: dict[str, ImageSet] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def info(self) -> dict[str, Any]:
        """The facts that place the run in a comparison (:func:`copyscope.run.run_info`)."""
        return run_info(self.path)

    @property
    def audit(self) -> dict[str, Any]:
        """The audit stage of run.json: inputs with hashes, parameters, seeds, versions."""
        return self.manifest["stages"]["audit"]

    @property
    def params(self) -> dict[str, Any]:
        return self.audit["params"]

    @property
    def default_criterion(self) -> str:
        return str(self.summary["default_criterion"])

    def criterion(self, name: str | None) -> str:
        """``name``, or the run's default criterion when None; unknown names are refused."""
        name = name or self.default_criterion
        if name not in self.summary["criteria"]:
            known = ", ".join(self.summary["criteria"])
            raise CopyscopeError(f"{self.path}: no criterion {name!r} in this run (has {known}).")
        return name

    @property
    def heldout_threshold(self) -> float:
        """The normalised-L2 distance below which the held-out criterion flags (strictly).

        The criterion flags a distance d when the fraction of held-out images at or below d is at
        most q; that fraction first exceeds q at the held-out distance with rank floor(q n)
        (0-based, the largest count j with j / n <= q), so exactly the distances below it are
        flagged.
        """
        null = np.sort(self.controls["nn_l2"].to_numpy())
        n = len(null)
        j = int(np.searchsorted(np.arange(n + 1) / n, self.params["heldout_q"], side="right")) - 1
        return float(null[j]) if j < n else float("inf")

    def images(self, role: ImageRole) -> ImageSet:
        """The audited ``samples``, ``train`` or ``heldout`` images, verified by content hash."""
        if role not in self._images:
            entry = self.audit["inputs"][role]
            spec = entry.get("resolved", entry["spec"])
            try:
                images = load(spec)
            except CopyscopeError as e:
                raise CopyscopeError(
                    f"{self.path}: cannot reload the audited {role} images from {spec!r} ({e})"
                ) from e
            if images.sha256 != entry["sha256"]:
                raise CopyscopeError(
                    f"{self.path}: the {role} images at {spec!r} have changed since the audit "
                    "(content hash differs from run.json)."
                )
            self._images[role] = images
        return self._images[role]


def open_run(path: str | Path) -> RunData:
    """Read a finished audit's run directory: run.json, summary.json and the Parquet tables.

    Refuses, with one sentence naming the file, a folder that is not a finished audit.
    """
    path = Path(path)
    if not path.is_dir():
        raise CopyscopeError(f"{path} is not a folder; give a run directory written by the audit.")
    manifest = RunDir(path).manifest()
    audit = manifest.get("stages", {}).get("audit")
    if audit is None:
        raise CopyscopeError(f"{path / MANIFEST} is missing or records no audit; run "
                             "`copyscope audit --out` on this folder first.")
    if audit.get("status") != "complete":
        raise CopyscopeError(f"{path}: the audit did not finish (run.json status "
                             f"{audit.get('status')!r}); run the same audit command again.")
    summary_path = path / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except FileNotFoundError as e:
        raise CopyscopeError(f"{summary_path} is missing; run the audit again.") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CopyscopeError(f"{summary_path} is not valid JSON.") from e
    tables = {name: _read_table(path / f"{name}.parquet") for name in TABLES}
    return RunData(path, manifest, summary, **tables)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise CopyscopeError(f"{path} is missing; run the audit again.")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise CopyscopeError(f"{path} is not a readable Parquet file ({type(e).__name__}).") from e
