"""Classical lossless compressors behind one one-method protocol, with a registry.

As in DeepMind's language_modeling_is_compression (Delétang et al. 2023): each compressor is a
function from data to compressed bytes, so it can compress an item alone or a whole set at once
and its code length can be set beside a model's. Here the data are uint8 images (N, H, W, C).

- Byte-stream compressors see the images' raw bytes in raster order, concatenated, and write
  their bare streams (no file container, the fair comparison with the model's payload):
  ``gzip`` (DEFLATE level 9, gzip's algorithm without its 18-byte header and trailer), ``bz2``
  (level 9), ``lzma`` (LZMA2 preset 9 extreme, raw), ``zstd`` (level 19, no frame checksum or
  content size).
- Image formats see the images themselves: ``png`` (Pillow, ``optimize=True``) and ``webp``
  (Pillow, lossless, method 6, quality 100). A set is tiled into one near-square grid image,
  padded with black tiles (WebP allows 16,383 pixels a side); these files keep their headers,
  since the formats have no bare stream.
"""

from __future__ import annotations

import bz2
import io
import lzma
import math
import zlib
from collections.abc import Callable
from typing import Protocol

import numpy as np

from copyscope.errors import CopyscopeError


class Compressor(Protocol):
    def __call__(self, images: np.ndarray) -> bytes:
        """Compress uint8 images (N, H, W, C), all together, into bytes."""
        ...


def _deflate(data: bytes) -> bytes:
    coder = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return coder.compress(data) + coder.flush()


def _lzma(data: bytes) -> bytes:
    # the dictionary need not exceed the data: the same output, without allocating 64 MiB per item
    size = max(4096, min(1 << 26, 1 << max(0, len(data) - 1).bit_length()))
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": size}]
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=filters)


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=19, write_checksum=False,
                                    write_content_size=False).compress(data)


def _bytes(compress: Callable[[bytes], bytes]) -> Compressor:
    return lambda images: compress(np.ascontiguousarray(images).tobytes())


def tile(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> one grid image (rows*H, cols*W, C), cols = ceil(sqrt(N)), padded
    with black tiles."""
    n, h, w, c = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * cols, h, w, c), dtype=np.uint8)
    grid[:n] = images
    return grid.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def _image(fmt: str, **options: object) -> Compressor:
    def compress(images: np.ndarray) -> bytes:
        from PIL import Image

        grid = tile(images)
        buffer = io.BytesIO()
        Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(buffer, fmt,
                                                                            **options)
        return buffer.getvalue()

    return compress


COMPRESSORS: dict[str, Compressor] = {
    "gzip": _bytes(_deflate),
    "bz2": _bytes(lambda data: bz2.compress(data, 9)),
    "lzma": _bytes(_lzma),
    "zstd": _bytes(_zstd),
    "png": _image("PNG", optimize=True),
    "webp": _image("WEBP", lossless=True, quality=100, method=6),
}


def compressor(name: str) -> Compressor:
    if name not in COMPRESSORS:
        raise CopyscopeError(f"unknown compressor {name!r}; use one of {', '.join(COMPRESSORS)}.")
    return COMPRESSORS[name]


def bits_per_item(name: str, images: np.ndarray) -> np.ndarray:
    """int64 (N,): bits of each item compressed on its own."""
    compress = compressor(name)
    return np.array([8 * len(compress(images[i : i + 1])) for i in range(len(images))],
                    dtype=np.int64)


def bits_whole(name: str, images: np.ndarray) -> int:
    """Bits of the whole set compressed at once (concatenated, or tiled for image formats)."""
    return 8 * len(compressor(name)(images))
