"""``write_report``: one self-contained HTML file from one or more run directories.

The page is rendered from the Jinja2 template ``templates/report.html.j2`` (package data); every
figure and picture is embedded as a data URI and the style sheet is inline, so the file opens
offline, from anywhere, with no server and no external request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from copyscope.analysis.audited import open_audits
from copyscope.analysis.stage import analyse
from copyscope.analysis.texts import is_text_results, open_text_results_all
from copyscope.detect.criteria import CRITERIA
from copyscope.errors import CopyscopeError
from copyscope.files import atomic_path
from copyscope.progress import progress
from copyscope.report.sections import comparison_section, is_missing, run_section
from copyscope.report.text import text_section
from copyscope.rundir import command_line, now, versions

TEMPLATE = "report.html.j2"
DETAIL_RUNS = 3
"""Up to this many runs, each run's section is complete. A larger comparison keeps every table,
each run's core figure and its strongest copies, and leaves out what grows with the number of
runs but repeats what is there: the per-item trend figures (their tables stay), the complete
run.json (its commands, seeds, hashes and versions stay), and beyond :data:`COMPACT`'s counts
of gallery cards. ``copyscope report RUN`` shows everything for one run."""
COMPACT = {"top": 6, "regenerated": 3, "controls": 2}


def write_report(runs: Sequence[str | Path], out: str | Path, top: int = 12,
                 per_item: int = 8, show: bool = True) -> Path:
    """Analyse each run (writing its ``analysis/`` tables) and write the report to ``out``.

    One run gives a report on that run; several give a comparison report that opens with the
    answer across runs, then a section per run (with its per-item trend figures for up to
    :data:`DETAIL_RUNS` runs). Text runs (folders the text stages wrote into, see
    :mod:`copyscope.analysis.texts`) get the text section (:mod:`copyscope.report.text`),
    beside any image audits.
    ``top`` is the number of flagged copies shown, ``per_item`` the number of samples shown beside
    each most-regenerated training item.
    """
    if not runs:
        raise CopyscopeError("Give at least one run directory to report on.")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise CopyscopeError(f"{out}: the report is an HTML file; give a name ending in .html.")
    texts = open_text_results_all([r for r in runs if is_text_results(r)])
    data = open_audits([r for r in runs if not is_text_results(r)])
    detail = len(data) <= DETAIL_RUNS
    top = top if detail else min(top, COMPACT["top"])
    sections = [run_section(analyse(d), top, per_item, COMPACT["regenerated"] if not detail
                            else 6, COMPACT["controls"] if not detail else 4, detail)
                for d in progress(data, desc="report", total=len(data), show=show)]
    text_sections = [text_section(t, top) for t in texts]
    html = render({
        "title": _title(sections + text_sections),
        "runs": sections,
        "texts": text_sections,
        "comparison": comparison_section(data) if len(data) > 1 else None,
        "criteria": CRITERIA,
        "generated": now(),
        "command": command_line(),
        "versions": versions(),
    })
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out


def render(context: dict[str, Any]) -> str:
    """The report's HTML for a context built by :func:`write_report`."""
    env = Environment(loader=PackageLoader("copyscope.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters |= {"pct": pct, "num": num, "pvalue": pvalue}
    env.tests["missing"] = is_missing
    return env.get_template(TEMPLATE).render(**context)


def pct(value: float | None, digits: int = 2) -> str:
    """0.0123 -> '1.23%'; missing values -> '–'."""
    return "–" if is_missing(value) else f"{100 * value:.{digits}f}%"


def num(value: float | int | None, spec: str = ".4f") -> str:
    if is_missing(value):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return format(value, spec)


def pvalue(value: float | None) -> str:
    if is_missing(value):
        return "–"
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def _title(sections: list[dict[str, Any]]) -> str:
    if len(sections) == 1:
        return f"copyscope report: {sections[0]['name']}"
    return f"copyscope comparison report: {len(sections)} runs"
