"""IDX files (the original MNIST format, LeCun et al.), gzipped or not.

Format: 2 zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each
dimension as a big-endian uint32, then the data in C order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from copyscope.data.imageset import ImageSet, to_uint8_images
from copyscope.errors import CopyscopeError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise CopyscopeError(f"{path} is not an IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CopyscopeError(f"{path} is truncated (the IDX header is incomplete).")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise CopyscopeError(
            f"{path} is truncated or corrupt: the header promises {expected} data bytes "
            f"but {len(raw) - header} follow."
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def load_idx(path: Path) -> ImageSet:
    array = read_idx(path)
    if array.ndim < 3:
        raise CopyscopeError(f"{path} holds a {array.ndim}-d array (labels?), not images.")
    return ImageSet(to_uint8_images(array, str(path)), source=str(path))


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CopyscopeError(f"{path} cannot be read ({e.strerror}).") from e
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise CopyscopeError(f"{path} is a truncated or corrupt gzip file.") from e
    return data
