"""The self-contained HTML report: ``write_report(["runs/a", "runs/b"], "report.html")``."""

from copyscope.report.render import write_report

__all__ = ["write_report"]
