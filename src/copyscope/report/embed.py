"""Images and figures as data URIs, so the report is one file that opens offline."""

from __future__ import annotations

import base64
import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image


def svg_uri(fig: Figure) -> str:
    """A matplotlib figure as an SVG data URI (text drawn as paths: no fonts needed)."""
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "copyscope", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_uri(image: np.ndarray) -> str:
    """A uint8 H x W x C image (C = 1 or 3) as a PNG data URI at its own resolution."""
    array = image[..., 0] if image.shape[-1] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
