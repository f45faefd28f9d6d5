"""A user's drawing or photo turned into an image the training set can be searched with.

MNIST digits are white (255) on black (0), 28x28, and were made by LeCun et al.'s recipe
(LeCun, Bottou, Bengio & Haffner 1998; the MNIST database page): each digit was size-normalised
to fit a 20x20 box preserving its aspect ratio, anti-aliased, and placed in the 28x28 field so
that its centre of mass lies at the centre. :func:`to_training_format` applies the same recipe:

1. Files and drawings are decoded by :mod:`copyscope.data.decode` (PNG/JPEG only, the pixel cap
   checked from the header before decoding, 16-bit scaled by ``>> 8``); transparency is
   composited onto black for uploaded files and onto white for the drawing canvas (the paper it
   shows). Colour becomes grey by ITU-R 601 luminance (Pillow's ``L``).
2. Polarity: if the median of the outermost pixels is above mid-grey, the image is dark ink on
   light paper and is inverted, so the digit is white on black like MNIST.
3. An image that already has the training images' size is used as it is after step 2, so an
   exported training image finds itself at distance 0.
4. Otherwise the background level (the border median) is subtracted and the contrast stretched
   so the brightest ink is 255; the ink's bounding box (pixels above 10% of that) is cropped,
   resized with Lanczos anti-aliasing so its longer side is 20/28 of the training side, and
   placed so its centre of mass is at the centre of the field (shifted back inside if needed).

Training sets in colour are matched by resizing the whole image to their size (steps 1-2 and 4's
recipe are MNIST's and only apply to grayscale sets).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from copyscope.data.decode import WHITE, decode_image, flatten
from copyscope.errors import CopyscopeError

BOX = 20 / 28
INK = 0.1


def read_upload(path: str | Path) -> np.ndarray:
    """Decode an uploaded file safely (PNG/JPEG only, pixel cap): uint8 (H, W) or (H, W, 3)."""
    return decode_image(Path(path), Path(path).name)


def read_drawing(path: str | Path) -> np.ndarray:
    """Decode the drawing canvas's PNG the same way, its transparent paper as white."""
    return decode_image(Path(path), "the drawing", background=WHITE)


def to_training_format(image: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``image`` (uint8 H x W, H x W x 3 or H x W x 4) as a uint8 image of ``shape`` (H, W, C)."""
    h, w, c = shape
    image = np.asarray(image)
    if (image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1
            or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4))):
        raise CopyscopeError("the query is not an 8-bit grayscale or colour image.")
    image = flatten(image, WHITE)  # an RGBA / LA array is a drawing: transparent is paper
    if c == 3:
        rgb = Image.fromarray(image).convert("RGB")
        return np.asarray(rgb.resize((w, h), Image.Resampling.LANCZOS))
    gray = np.asarray(Image.fromarray(image).convert("L"), dtype=np.float64)
    background = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    if background > 127.5:
        gray, background = 255.0 - gray, 255.0 - background
    if gray.shape == (h, w):
        return np.rint(gray).astype(np.uint8)[..., None]
    return _centre(gray - background, h, w)[..., None]


def _centre(ink: np.ndarray, h: int, w: int) -> np.ndarray:
    """MNIST's recipe on white-on-black ``ink`` (float, background 0): box, resize, centre."""
    ink = np.clip(ink, 0.0, None)
    peak = ink.max()
    if peak <= 0:
        raise CopyscopeError("the query image is blank: draw or upload a digit.")
    ink = ink * (255.0 / peak)
    rows, cols = np.nonzero(ink > INK * 255.0)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = max(1, round(BOX * min(h, w)))
    scale = side / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = Image.fromarray(np.rint(crop).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    digit = np.asarray(small, dtype=np.float64)
    mass = digit.sum()
    r_c = (digit.sum(1) @ np.arange(digit.shape[0])) / mass
    c_c = (digit.sum(0) @ np.arange(digit.shape[1])) / mass
    top = int(np.clip(round((h - 1) / 2 - r_c), 0, h - digit.shape[0]))
    left = int(np.clip(round((w - 1) / 2 - c_c), 0, w - digit.shape[1]))
    field = np.zeros((h, w))
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.rint(field).astype(np.uint8)
