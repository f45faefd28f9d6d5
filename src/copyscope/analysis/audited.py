"""A finished audit read back from its run directory: the tables, the records and the images.

Every analysis, figure and pair view takes an :class:`AuditedRun`. Opening one reads the Parquet
tables once; the images are loaded on first use from the SPECs recorded in run.json and checked
against the content hashes recorded there, so a figure can never show pictures other than the
ones that were audited. Nothing is searched again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from copyscope.analysis.bits import Storage, read_storage
from copyscope.data import ImageSet, load
from copyscope.detect.criteria import CRITERIA
from copyscope.errors import CopyscopeError
from copyscope.files import read_parquet
from copyscope.models import fact_names
from copyscope.records import (
    AnalysisRecord,
    AuditRecord,
    AuditSummary,
    QualityRecord,
    SampleRecord,
    check_table,
)
from copyscope.rundir import MANIFEST, RunDir

ImageRole = Literal["samples", "train", "heldout"]
TABLES = ("samples", "controls", "items")
FACTS = ("family", "train_size", *fact_names(), "checkpoint", "epoch", "steps", "seed")
"""What places a run in a comparison: the model behind its samples and how they were drawn."""


@dataclass
class AuditedRun:
    """One audited run, ready for analysis (see :func:`open_audit`)."""

    path: Path
    record: AuditRecord
    summary: AuditSummary
    samples: pd.DataFrame
    controls: pd.DataFrame
    items: pd.DataFrame
    sample: SampleRecord | None = None
    """How the samples were made, when ``copyscope sample`` made them."""
    analysis: AnalysisRecord | None = None
    label: str | None = None
    """The run's name among others (see :func:`open_audits`); its folder's name by default."""
    quality: QualityRecord | None = None
    """The samples' quality (classifier confidence, Fréchet distance), when it was measured for
    these very samples."""
    _images: dict[str, ImageSet] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.label or self.path.name

    @cached_property
    def facts(self) -> dict[str, Any]:
        """:data:`FACTS` from the sample record (None where the samples came from outside),
        with the run's name and path."""
        s = self.sample or SampleRecord()
        model = s.model or {}
        return {"name": self.name, "path": str(self.path),
                **{f: model.get(f) for f in ("family", "train_size", *fact_names())},
                "checkpoint": s.checkpoint, "epoch": s.epoch, "steps": s.steps, "seed": s.seed}

    @property
    def params(self) -> dict[str, Any]:
        return self.record.params or {}

    @property
    def inputs(self) -> dict[str, dict[str, Any]]:
        """samples, train and heldout as the audit recorded them (spec, n, shape, sha256)."""
        return self.record.inputs or {}

    @property
    def default_criterion(self) -> str:
        return self.summary.default_criterion

    def criterion(self, name: str | None) -> str:
        """``name``, or the run's default criterion when None; unknown names are refused."""
        name = name or self.default_criterion
        if name not in self.summary.criteria:
            known = ", ".join(self.summary.criteria)
            raise CopyscopeError(f"{self.path}: no criterion {name!r} in this run (has {known}).")
        return name

    def threshold(self, criterion: str) -> tuple[float, str] | None:
        """The nn_l2 threshold of a distance-threshold criterion, as (distance, comparison)."""
        c = CRITERIA[criterion]
        if c.threshold is None:
            return None
        from copyscope.stages.audit_config import AuditConfig

        return c.threshold(self.controls["nn_l2"].to_numpy(), AuditConfig(**self.params))

    @property
    def heldout_threshold(self) -> float:
        """The normalised-L2 distance below which the held-out criterion flags (strictly)."""
        found = self.threshold("heldout")
        assert found is not None
        return found[0]

    @cached_property
    def storage(self) -> Storage | None:
        """What ``copyscope compress measure`` found about the audited model, when it wrote
        into this run directory (storage in bits; see :mod:`copyscope.analysis.bits`)."""
        model = self.sample.checkpoint_sha256 if self.sample is not None else None
        return read_storage(self.path, model)

    def manifest(self) -> dict[str, Any]:
        """run.json as stored (for the report's reproducibility section)."""
        return RunDir(self.path).manifest()

    def images(self, role: ImageRole) -> ImageSet:
        """The audited ``samples``, ``train`` or ``heldout`` images, verified by content hash."""
        if role not in self._images:
            entry = self.inputs[role]
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


def open_audit(path: str | Path) -> AuditedRun:
    """Read a finished audit's run directory: run.json, summary.json and the Parquet tables.

    Refuses, with one sentence naming the file, a folder that is not a finished audit.
    """
    path = Path(path)
    if not path.is_dir():
        raise CopyscopeError(f"{path} is not a folder; give a run directory written by the audit.")
    rundir = RunDir(path)
    record = rundir.read(AuditRecord)
    if record is None:
        raise CopyscopeError(f"{path / MANIFEST} is missing or records no audit; run "
                             "`copyscope audit --out` on this folder first.")
    if not record.complete:
        raise CopyscopeError(f"{path}: the audit did not finish (run.json status "
                             f"{record.status!r}); run the same audit command again.")
    if not rundir.file(AuditSummary.file or "").exists():
        raise CopyscopeError(f"{path / 'summary.json'} is missing; run the audit again.")
    summary = rundir.read(AuditSummary)
    assert summary is not None
    tables = {}
    for name in TABLES:
        table_path = path / f"{name}.parquet"
        tables[name] = check_table(name, read_parquet(
            table_path, missing="is missing; run the audit again"), table_path)
    quality = rundir.read(QualityRecord)
    audited = record.identity.samples if record.identity else None
    if quality is not None and quality.samples_sha256 != audited:
        quality = None  # measured for other samples
    return AuditedRun(path, record, summary, **tables, sample=rundir.read(SampleRecord),
                      analysis=rundir.read(AnalysisRecord), quality=quality)


def open_audits(paths: Sequence[str | Path]) -> list[AuditedRun]:
    """Open each run once, named by its folder, or where two folders share a name, by every
    run's path below the folder they all share (``ddpm-300/epochs/epoch-0010``)."""
    opened = [open_audit(p) for p in dict.fromkeys(Path(p).resolve() for p in paths)]
    names = [r.name for r in opened]
    if len(set(names)) < len(names):
        common = Path(os.path.commonpath([r.path.parent for r in opened]))
        for run in opened:
            run.label = str(run.path.relative_to(common))
    return opened
