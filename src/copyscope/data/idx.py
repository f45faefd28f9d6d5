"""IDX files (the original MNIST format, LeCun et al.), gzipped or not.

Format: 2 zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each
dimension as a big-endian uint32, then the data in C order.

The header is read and checked before the data (:mod:`copyscope.data.limits`): the declared size
must fit in the file (or, gzipped, within deflate's ratio and the decompression cap) and in the
memory available. A large uncompressed file of bytes is memory-mapped.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from copyscope.data.imageset import ImageSet, to_uint8_images
from copyscope.data.limits import (
    MMAP_BYTES,
    check_declared,
    check_inflate,
    check_memory,
    human,
)
from copyscope.errors import CopyscopeError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 16 * 2**20


def read_idx(path: Path) -> np.ndarray:
    """The array an IDX file holds, in native byte order (read-only when memory-mapped)."""
    size = _size(path)
    with _opened(path) as (f, gzipped):
        dtype, shape, header = _header(f, path)
        nbytes = math.prod(shape) * dtype.itemsize
        if gzipped:
            check_inflate(str(path), header + nbytes, size)
        else:
            _check_length(path, nbytes, size - header)
        if not gzipped and dtype.itemsize == 1 and nbytes >= MMAP_BYTES:
            return np.memmap(path, dtype=dtype, mode="r", offset=header, shape=shape)
        check_memory(str(path), nbytes)
        data = _read_exactly(f, path, nbytes)
        if f.read(1):
            raise CopyscopeError(f"{path} is truncated or corrupt: more data follows than the "
                                 f"header promises ({human(nbytes)}).")
    array = data.view(dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def load_idx(path: Path) -> ImageSet:
    array = read_idx(path)
    if array.ndim < 3:
        raise CopyscopeError(f"{path} holds a {array.ndim}-d array (labels?), not images.")
    return ImageSet(to_uint8_images(array, str(path)), source=str(path))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as e:
        raise CopyscopeError(f"{path} cannot be read ({e.strerror}).") from e


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[IO[bytes], bool]]:
    """The file's data stream (inflated as it is read when gzipped) and whether it is gzipped;
    errors of the stream are one sentence."""
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            with (gzip.GzipFile(fileobj=raw) if gzipped else raw) as f:
                yield f, gzipped
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise CopyscopeError(f"{path} is a truncated or corrupt gzip file.") from e
    except OSError as e:
        raise CopyscopeError(f"{path} cannot be read ({e.strerror or e}).") from e


def _header(f: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and header length, from the magic number and the dimensions."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _TYPES:
        raise CopyscopeError(f"{path} is not an IDX file (bad magic number).")
    ndim = magic[3]
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise CopyscopeError(f"{path} is truncated (the IDX header is incomplete).")
    shape = struct.unpack(f">{ndim}I", dims)
    return np.dtype(_TYPES[magic[2]]), shape, 4 + 4 * ndim


def _check_length(path: Path, nbytes: int, present: int) -> None:
    check_declared(str(path), nbytes, present)
    if present > nbytes:
        raise CopyscopeError(f"{path} is truncated or corrupt: the header promises {nbytes} data "
                             f"bytes but {present} follow.")


def _read_exactly(f: IO[bytes], path: Path, nbytes: int) -> np.ndarray:
    """``nbytes`` bytes from ``f`` into one buffer, a chunk at a time."""
    out = np.empty(nbytes, np.uint8)
    view, done = memoryview(out), 0
    while done < nbytes:
        chunk = f.read(min(_CHUNK, nbytes - done))
        if not chunk:
            raise CopyscopeError(f"{path} is truncated or corrupt: the header promises "
                                 f"{nbytes} data bytes but {done} follow.")
        view[done : done + len(chunk)] = chunk
        done += len(chunk)
    return out
