"""The analysis stage: a finished audit in; dataset-wide trend tables out, as Parquet.

Writes ``analysis/<table>.parquet`` into the run directory (see README, "The run directory") and
records an ``analysis`` section in run.json with its parameters, seed, versions and command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from copyscope.analysis import items, trends
from copyscope.analysis.audited import AuditedRun, open_audit
from copyscope.files import write_parquet
from copyscope.records import AnalysisRecord
from copyscope.rundir import RunDir, command_line, now, versions

FOLDER = "analysis"


@dataclass
class Analysis:
    """The trend tables of one run, as written to ``<run>/analysis/``."""

    run: AuditedRun
    tables: dict[str, pd.DataFrame]


def analyse(run: str | Path | AuditedRun, criterion: str | None = None, bins: int = 10,
            seed: int = 0) -> Analysis:
    """Compute every per-item and per-run table of a finished audit and write them as Parquet.

    ``criterion`` defaults to the run's own default; ``bins`` sets the outlierness and
    duplication bins; ``seed`` draws the equal-size subsamples of :func:`items.concentration`.
    """
    data = run if isinstance(run, AuditedRun) else open_audit(run)
    name = data.criterion(criterion)
    start = time.perf_counter()
    tables = {
        "rates": trends.rates(data),
        "concentration": items.concentration(data, name, seed),
        "counts": items.count_distribution(data, name),
        "classes": items.by_class(data, name),
        "outlierness": items.outlierness(data, name, bins),
        "duplication": items.duplication(data, name, bins),
        "associations": items.associations(data, name),
    }
    for table_name, table in tables.items():
        write_parquet(data.path / FOLDER / f"{table_name}.parquet", table)
    record = AnalysisRecord(
        status="complete", inputs={"audit": _plain_identity(data)},
        params={"criterion": name, "bins": bins}, seeds={"concentration_subsample": seed},
        versions=versions(), command=command_line(), finished=now(),
        timings_s={"analysis": round(time.perf_counter() - start, 3)},
        tables=[f"{FOLDER}/{t}.parquet" for t in tables])
    RunDir(data.path).write(record)
    data.analysis = AnalysisRecord.from_json(record.to_json())
    return Analysis(data, tables)


def _plain_identity(run: AuditedRun) -> dict[str, Any]:
    """The analysed audit's identity as run.json holds it."""
    return run.record.to_json()["identity"]
