"""Figures as SVG data URIs, so the report is one file that opens offline."""

from __future__ import annotations

import base64
import io
import re

import matplotlib
from matplotlib.figure import Figure

PATH = re.compile(rb'd="([^"]*)"')
DECIMALS = re.compile(rb"(\d\.\d)\d+")


def svg_uri(fig: Figure) -> str:
    """A matplotlib figure as an SVG data URI. Text stays text (drawn in the reader's sans-serif
    font), which keeps a figure several times smaller than text drawn as paths."""
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "copyscope", "svg.fonttype": "none",
                                "font.family": "sans-serif",
                                "font.sans-serif": ["Arial", "Helvetica", "DejaVu Sans"]}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    # path coordinates to a tenth of a point, finer than any screen draws (six decimals double
    # the file); text and every other attribute are left as they are
    svg = PATH.sub(lambda m: b'd="' + DECIMALS.sub(rb"\1", m[1]) + b'"', buf.getvalue())
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
