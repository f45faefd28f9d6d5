"""Image sets larger than memory: uint8 rows on disk, read a block at a time.

    big.npy       one uint8 .npy: (N, H, W), (N, H, W, C) with C = 1 or 3, or square flat (N, D)
    shards/       a folder of such .npy files (and no images), read in file-name order

A :class:`RowStore` looks enough like an array for copyscope's search and audit (``shape``,
``dtype``, ``len``, indexing by an int, a slice, an index array or a mask, each of which reads
only those rows) but never holds the set: a slice is read with plain file reads into a new
array, scattered rows through a memory map opened for that one read, so resident memory stays
bounded by what one read returns. Every file's header is checked against its size, and the
shards' image shapes against each other, when the store is opened.

``load`` gives a shard folder as a store always, and a single ``.npy`` when it is larger than
:data:`STREAM_BYTES` (smaller ones are read into memory, the fastest for the search).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from copyscope.data.imageset import ImageSet
from copyscope.errors import CopyscopeError

STREAM_BYTES = 2 * 2**30
"""A single .npy larger than this is streamed from disk instead of read into memory."""
BLOCK_BYTES = 64 * 2**20
"""Bytes per read when a store is hashed or copied whole."""


@dataclass(frozen=True)
class _Part:
    """One .npy file of a store: where its pixels start and how many rows it holds."""

    path: Path
    offset: int
    n: int


class RowStore:
    """uint8 images in one or more .npy files, read on demand (see the module docstring)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, parts: list[_Part], row_shape: tuple[int, ...], source: str) -> None:
        self.parts, self.row_shape, self.source = parts, tuple(row_shape), source
        self.starts = np.cumsum([0] + [p.n for p in parts])  # (P + 1,) first row of each part
        self.row_bytes = math.prod(self.row_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.starts[-1]), *self.row_shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    def __len__(self) -> int:
        return int(self.starts[-1])

    def reshape(self, n: int, *row_shape: int) -> RowStore:
        """The same rows seen with another row shape (``reshape(n, -1)``: flat rows)."""
        shape = (self.row_bytes,) if tuple(row_shape) == (-1,) else tuple(row_shape)
        if n != len(self) or math.prod(shape) != self.row_bytes:
            raise ValueError(f"cannot view {self.shape} as {(n, *row_shape)}")
        return RowStore(self.parts, shape, self.source)

    def view(self, a: int, b: int) -> RowStore:
        """Rows a..b-1 as a store of their own (nothing is read)."""
        parts = []
        for j, part in enumerate(self.parts):
            first = int(self.starts[j])
            lo, hi = max(a, first) - first, min(b, first + part.n) - first
            if lo < hi:
                parts.append(_Part(part.path, part.offset + lo * self.row_bytes, hi - lo))
        return RowStore(parts, self.row_shape, f"{self.source}[{a}:{b}]")

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, int | np.integer):
            return self._rows(np.array([index]))[0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return self._range(start, max(start, stop))
            index = np.arange(start, stop, step)
        index = np.asarray(index)
        if index.dtype == np.bool_:
            if index.shape != (len(self),):
                raise IndexError(f"a mask over {self.source} needs {len(self)} entries")
            index = np.flatnonzero(index)
        return self._rows(index.astype(np.int64))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self._range(0, len(self))
        return whole if dtype is None else whole.astype(dtype)

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) over the store, ``rows`` at a time."""
        for a in range(0, len(self), rows):
            yield a, self._range(a, min(a + rows, len(self)))

    def sha256(self, *prefix: bytes) -> str:
        """SHA-256 of ``prefix`` then every pixel in order: the same digest as hashing the whole
        array at once (:attr:`ImageSet.sha256`), without holding it."""
        h = hashlib.sha256()
        for p in prefix:
            h.update(p)
        for _, block in self.blocks(max(1, BLOCK_BYTES // self.row_bytes)):
            h.update(block.data)
        return h.hexdigest()

    def _range(self, a: int, b: int) -> np.ndarray:
        """Rows a..b-1, read with file reads (no mapping stays behind)."""
        out = np.empty((b - a, *self.row_shape), np.uint8)
        flat = out.reshape(-1)
        for j, part in enumerate(self.parts):
            first = int(self.starts[j])
            lo, hi = max(a, first) - first, min(b, first + part.n) - first
            if lo >= hi:
                continue
            at = (first + lo - a) * self.row_bytes
            with open(part.path, "rb") as f:
                f.seek(part.offset + lo * self.row_bytes)
                _read_fully(f, memoryview(flat[at : at + (hi - lo) * self.row_bytes]), part.path)
        return out

    def _rows(self, index: np.ndarray) -> np.ndarray:
        """Scattered rows, through a memory map of each part that is closed after the read."""
        n = len(self)
        if len(index) and (index.min() < -n or index.max() >= n):
            raise IndexError(f"row index out of range for {self.source} ({n} rows)")
        index = np.where(index < 0, index + n, index)
        out = np.empty((len(index), *self.row_shape), np.uint8)
        part_of = np.searchsorted(self.starts, index, side="right") - 1
        for j in np.unique(part_of):
            part, sel = self.parts[j], part_of == j
            mm = np.memmap(part.path, np.uint8, "r", part.offset, (part.n, self.row_bytes))
            out[sel] = mm[index[sel] - self.starts[j]].reshape(-1, *self.row_shape)
            del mm
        return out


def _read_fully(f: Any, view: memoryview, path: Path) -> None:
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise CopyscopeError(f"{path} ended early while being read (it was truncated after "
                                 "copyscope opened it).")
        done += got


def open_store(path: str | Path) -> RowStore:
    """A store over one .npy file or a folder of .npy shards; headers checked against sizes and
    the shards' image shapes against each other (one sentence naming the file otherwise)."""
    path = Path(path)
    files = sorted(path.glob("*.npy")) if path.is_dir() else [path]
    if not files:
        raise CopyscopeError(f"{path} holds no .npy shards.")
    parts, shape = [], None
    for f in files:
        part, image_shape = _open_part(f)
        if shape is not None and image_shape != shape:
            raise CopyscopeError(
                f"{f} holds images of shape {image_shape} but {files[0].name} holds {shape}; "
                f"every shard in {path} must hold one image shape.")
        parts.append(part)
        shape = image_shape
    assert shape is not None
    return RowStore(parts, shape, str(path))


def load_store(path: str | Path) -> ImageSet:
    """The images of a store as an ImageSet that reads them on demand."""
    return ImageSet(open_store(path), source=str(path))  # type: ignore[arg-type]


def is_shard_folder(folder: Path) -> bool:
    """A folder of .npy files (a SPEC for a store)."""
    return folder.is_dir() and any(folder.glob("*.npy"))


def _open_part(path: Path) -> tuple[_Part, tuple[int, int, int]]:
    """The part of one .npy file and its image shape (H, W, C), its header checked."""
    shape, fortran, dtype, offset = _header(path)
    if dtype != np.uint8 or fortran:
        what = "Fortran-ordered" if fortran else f"{dtype}"
        raise CopyscopeError(f"{path} holds {what} pixels; a streamed set must be C-ordered "
                             "uint8 (0-255): convert it, e.g. np.save(path, x.astype(np.uint8)).")
    image = _image_shape(shape, path)
    expected = math.prod(shape)
    available = path.stat().st_size - offset
    if available < expected:
        raise CopyscopeError(
            f"{path}: its header says {shape} uint8 ({expected:,} bytes) but only "
            f"{available:,} bytes follow it; the file is truncated.")
    return _Part(path, offset, int(shape[0])), image


def _header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f)
            return tuple(shape), bool(fortran), np.dtype(dtype), f.tell()
    except (OSError, ValueError, SyntaxError) as e:
        raise CopyscopeError(f"{path} is not a readable .npy file (its header is damaged).") from e


def _image_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    if len(shape) == 2 and round(math.sqrt(shape[1])) ** 2 == shape[1]:
        side = round(math.sqrt(shape[1]))
        return (side, side, 1)
    if len(shape) == 3:
        return (shape[1], shape[2], 1)
    if len(shape) == 4 and shape[3] in (1, 3):
        return (shape[1], shape[2], shape[3])
    raise CopyscopeError(f"{path} has shape {shape}; a streamed set holds (N, H, W), "
                         "(N, H, W, C) with C = 1 or 3, or square flat (N, D) images.")
