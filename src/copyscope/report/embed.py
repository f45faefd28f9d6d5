"""Figures as SVG data URIs, so the report is one file that opens offline."""

from __future__ import annotations

import base64
import io

import matplotlib
from matplotlib.figure import Figure


def svg_uri(fig: Figure) -> str:
    """A matplotlib figure as an SVG data URI (text drawn as paths: no fonts needed)."""
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "copyscope", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
