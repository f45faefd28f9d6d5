"""The analysis stage: a finished audit in; dataset-wide trend tables out, as Parquet.

Writes ``analysis/<table>.parquet`` into the run directory (see README, "The run directory") and
records an ``analysis`` section in run.json with its parameters, seed, versions and command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from copyscope.analysis import items, trends
from copyscope.analysis.rundata import RunData, open_run
from copyscope.run import RunDir, command_line, now, versions, write_parquet

FOLDER = "analysis"


@dataclass
class Analysis:
    """The trend tables of one run, as written to ``<run>/analysis/``."""

    run: RunData
    tables: dict[str, pd.DataFrame]


def analyse(run: str | Path | RunData, criterion: str | None = None, bins: int = 10,
            seed: int = 0) -> Analysis:
    """Compute every per-item and per-run table of a finished audit and write them as Parquet.

    ``criterion`` defaults to the run's own default; ``bins`` sets the outlierness and
    duplication bins; ``seed`` draws the equal-size subsamples of :func:`items.concentration`.
    """
    data = run if isinstance(run, RunData) else open_run(run)
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
    RunDir(data.path).record("analysis", {
        "status": "complete",
        "inputs": {"audit": data.audit["identity"]},
        "params": {"criterion": name, "bins": bins},
        "seeds": {"concentration_subsample": seed},
        "versions": versions(),
        "command": command_line(),
        "finished": now(),
        "timings_s": {"analysis": round(time.perf_counter() - start, 3)},
        "tables": [f"{FOLDER}/{t}.parquet" for t in tables],
    })
    data.manifest = RunDir(data.path).manifest()
    return Analysis(data, tables)
