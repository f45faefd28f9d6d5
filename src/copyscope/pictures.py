"""Pictures as data URIs: one PNG encoder for the report and the web app."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def png_uri(image: np.ndarray, optimize: bool = True) -> str:
    """A uint8 H x W (x C, C = 1 or 3) image as a PNG data URI at its own resolution.

    ``optimize`` makes the file smaller and takes longer (the report optimizes; the app's
    per-request thumbnails do not, and take zlib's fastest level)."""
    array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(
        buf, format="PNG", optimize=optimize, compress_level=9 if optimize else 1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
