"""One PNG or JPEG decoded faithfully to uint8 pixels: the image folders' and the web app's reader.

The rules, in order:

1. Only PNG and JPEG are read. The size comes from the header, and an image of more than
   :data:`MAX_PIXELS` pixels (width x height) is refused before any pixel is decoded.
2. 16-bit samples keep their high byte (``v >> 8``), as Pillow already does for 16-bit colour
   PNGs, so grey and colour 16-bit images agree; the usual 8 -> 16-bit widening ``257 k`` maps
   back to ``k`` exactly. Bilevel images become 0 and 255.
3. Transparency (an alpha channel, or a PNG's transparent colour) is composited onto a
   background, ``c a / 255 + b (255 - a) / 255`` rounded: black (``b = 0``) for files, the
   background of MNIST-style training sets (white ink on black), so a transparent pixel is no
   ink; the web app's drawing canvas is composited onto white, the paper it shows.
4. A palette image or one with transparency (P, LA, RGBA) whose three colour channels are
   equal at every pixel is grayscale, so grey digits saved as palette or RGBA PNGs match a
   grayscale training set. Plain RGB and JPEG colour stay colour (a folder holding any colour
   image is read as colour).

The result is uint8 (H, W) for grayscale or (H, W, 3) for colour.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from copyscope.errors import CopyscopeError

MAX_PIXELS = 4096 * 4096
BLACK, WHITE = 0, 255
FORMATS = {"PNG", "JPEG"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_GREY_IF_EQUAL = {"P", "PA", "LA", "La", "RGBA", "RGBa"}
_DAMAGED = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error,
            zlib.error, IndexError, KeyError, TypeError)
"""What Pillow raises for damaged or truncated image data."""


@contextlib.contextmanager
def opened(source: Path | bytes, where: str, max_pixels: int = MAX_PIXELS
           ) -> Iterator[Image.Image]:
    """The image with its header read and checked (format, pixel count); nothing decoded."""
    try:
        with warnings.catch_warnings():  # Pillow's own, looser bomb warning: checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError as e:
        raise CopyscopeError(f"{where} has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; "
                             f"images of at most {max_pixels:,} pixels are read.") from e
    except _DAMAGED as e:
        raise CopyscopeError(f"{where} is not a readable PNG/JPEG image.") from e
    with im:
        if im.format not in FORMATS:
            raise CopyscopeError(f"{where} is a {im.format} image; only PNG and JPEG are read.")
        width, height = im.size
        if width * height > max_pixels:
            raise CopyscopeError(f"{where} is {width:,} x {height:,} = {width * height:,} "
                                 f"pixels; images of at most {max_pixels:,} pixels are read.")
        yield im


def image_size(source: Path | bytes, where: str, max_pixels: int = MAX_PIXELS
               ) -> tuple[int, int]:
    """(width, height) from the header alone, checked against the pixel cap."""
    with opened(source, where, max_pixels) as im:
        return im.size


def decode_image(source: Path | bytes, where: str, max_pixels: int = MAX_PIXELS,
                 background: int = BLACK) -> np.ndarray:
    """Decode one image by the module's rules: uint8 (H, W) or (H, W, 3)."""
    with opened(source, where, max_pixels) as im:
        try:
            im.load()
            pixels = _pixels(im)
        except _DAMAGED as e:
            raise CopyscopeError(f"{where} is not a readable PNG/JPEG image.") from e
        grey = im.mode in _GREY_IF_EQUAL or "transparency" in im.info
    return flatten(pixels, background, grey)


def _pixels(im: Image.Image) -> np.ndarray:
    """uint8 (H, W), (H, W, 2), (H, W, 3) or (H, W, 4): grey or colour, with alpha if any."""
    transparent = im.info.get("transparency")
    if im.mode in _SIXTEEN_BIT:
        wide = np.asarray(im).astype(np.int64)
        grey = (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
        if isinstance(transparent, int):
            return np.dstack([grey, np.where(wide == transparent, 0, 255).astype(np.uint8)])
        return grey
    has_alpha = "A" in im.getbands() or transparent is not None
    if im.mode in ("1", "L") and not has_alpha:
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))


def flatten(pixels: np.ndarray, background: int = BLACK, grey: bool = True) -> np.ndarray:
    """uint8 (H, W[, 1|2|3|4]) as (H, W) or (H, W, 3): alpha composited onto ``background``;
    with ``grey``, equal colour channels as grey (rules 3 and 4 of the module)."""
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        alpha = pixels[..., -1:].astype(np.uint32)
        colour = pixels[..., :-1].astype(np.uint32)
        pixels = ((colour * alpha + background * (255 - alpha) + 127) // 255).astype(np.uint8)
    if grey and pixels.ndim == 3 and pixels.shape[2] == 3 and (
            (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()):
        pixels = pixels[..., :1]
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    return np.ascontiguousarray(pixels)
