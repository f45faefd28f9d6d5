"""``copyscope report``: one self-contained HTML report from one or more run directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from copyscope.cli.common import say
from copyscope.errors import CopyscopeError


def report_command(
    runs: Annotated[list[Path], typer.Argument(help="Run directories written by the audit; "
                                                    "several give a comparison report.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="HTML file to write (default: RUN/report.html for a single run).")]
    = None,
    top: Annotated[int, typer.Option(help="Flagged copies shown in the gallery.")] = 12,
    per_item: Annotated[int, typer.Option(help="Samples shown beside each most-regenerated "
                                                "training item.")] = 8,
) -> None:
    """Write the report: the answer in numbers, method, data, results, control, limitations."""
    from copyscope.report import write_report

    if out is None:
        if len(runs) > 1:
            raise CopyscopeError("Several runs give one comparison report; name it with --out.")
        out = runs[0] / "report.html"
    path = write_report(runs, out, top=top, per_item=per_item)
    say("Report written to [bold]{path}[/] (self-contained; open it in any browser). Analysis "
        "tables: {tables}", path=path, tables=", ".join(str(Path(r) / "analysis") for r in runs))
