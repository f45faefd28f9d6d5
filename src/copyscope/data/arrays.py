"""NumPy .npy / .npz files of images (and labels, when an .npz carries them).

Every header is read and checked before its data (:mod:`copyscope.data.limits`): Python objects
(pickles) are refused without being read, the declared size must fit in the file, an .npz member
within deflate's ratio and the decompression cap, and the data in the memory available. Large
.npy files are memory-mapped.
"""

from __future__ import annotations

import math
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from copyscope.data.imageset import ImageSet, to_uint8_images
from copyscope.data.limits import MMAP_BYTES, check_declared, check_inflate, check_memory
from copyscope.errors import CopyscopeError

IMAGE_KEYS = ("images", "x", "samples", "arr_0")
ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError,
               RuntimeError, ValueError, struct.error, UnicodeDecodeError)
"""What zipfile raises for damaged, truncated, encrypted or oddly compressed archives."""


def load_npy(path: Path) -> ImageSet:
    """The images of an .npy file, memory-mapped when its data is at least MMAP_BYTES."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            dtype, shape, _ = npy_header(f, where, "npy")
            offset, size = f.tell(), path.stat().st_size
    except OSError as e:
        raise CopyscopeError(f"{path} cannot be read ({e.strerror}).") from e
    nbytes = math.prod(shape) * dtype.itemsize
    check_declared(where, nbytes, size - offset)
    mapped = nbytes >= MMAP_BYTES
    check_memory(where, (0 if mapped else nbytes) + (0 if dtype == np.uint8 else math.prod(shape)))
    try:
        array = np.load(path, mmap_mode="r" if mapped else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CopyscopeError(f"{path} is not a readable .npy file (truncated or corrupt).") from e
    return ImageSet(to_uint8_images(array, where), source=where)


def npy_header(f: IO[bytes], where: str, kind: str) -> tuple[np.dtype, tuple[int, ...], bool]:
    """The dtype, shape and Fortran order an .npy header declares, checked; ``f`` is left at the
    first data byte. Python objects are refused here, before any of them is read."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}[version]
        shape, fortran, dtype = read(f)
    except (ValueError, KeyError, TypeError, SyntaxError, tokenize.TokenError, RecursionError,
            MemoryError, OverflowError, EOFError, struct.error, UnicodeDecodeError) as e:
        raise CopyscopeError(f"{where} is not a readable .{kind} file (truncated or corrupt: "
                             "its header is not a NumPy array header).") from e
    if dtype.hasobject:
        raise CopyscopeError(f"{where} holds Python objects (a pickle), which copyscope never "
                             "loads; save plain numeric arrays.")
    if any(d < 0 for d in shape):
        raise CopyscopeError(f"{where} is corrupt: its header declares the shape {shape}.")
    return dtype, tuple(int(d) for d in shape), bool(fortran)


def load_npz(path: Path, key: str | None = None) -> ImageSet:
    """Load images from an .npz: the named array, or the only one, or one called images/x/samples.

    Keras-style files (x_train, y_train, x_test, y_test) need the key: ``mnist.npz:x_train``; the
    matching ``y_*`` array becomes the labels.
    """
    try:
        with zipfile.ZipFile(path) as z:
            names = [n.removesuffix(".npy") for n in z.namelist()]
            if key is None:
                key = _pick_key(path, names)
            if key not in names:
                raise CopyscopeError(
                    f"{path} has no array named {key!r} (it has {', '.join(names)})."
                )
            array = read_member(z, path, key)
            label_key = _label_key(key, names)
            labels = read_member(z, path, label_key) if label_key else None
    except ZIP_ERRORS as e:
        raise CopyscopeError(f"{path} is not a readable .npz file (truncated or corrupt).") from e
    images = to_uint8_images(array, f"{path}:{key}")
    if labels is not None and not _usable_labels(labels, len(images)):
        labels = None
    return ImageSet(images, None if labels is None else labels.astype(np.int64), source=str(path))


def read_member(z: zipfile.ZipFile, path: Path, key: str) -> np.ndarray:
    """Array ``key`` of an open .npz, its sizes checked before it is inflated."""
    info = z.getinfo(key + ".npy" if key + ".npy" in z.namelist() else key)
    where = f"{path}:{key}"
    if info.header_offset + info.compress_size > path.stat().st_size:
        raise CopyscopeError(f"{where} is truncated: the archive ends before this array does.")
    if info.compress_type != zipfile.ZIP_STORED:
        check_inflate(where, info.file_size, info.compress_size)
    with z.open(info) as f:
        dtype, shape, _ = npy_header(f, where, "npz")
        nbytes = math.prod(shape) * dtype.itemsize
        check_declared(where, nbytes, info.file_size - f.tell())
        check_memory(where, nbytes + (0 if dtype == np.uint8 else math.prod(shape)))
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)


def _usable_labels(labels: np.ndarray, n: int) -> bool:
    """One whole number per image (other arrays beside the images are not labels)."""
    if labels.ndim != 1 or len(labels) != n or labels.dtype.kind not in "biuf":
        return False
    return labels.dtype.kind != "f" or bool(np.isfinite(labels).all())


def _pick_key(path: Path, names: list[str]) -> str:
    if not names:
        raise CopyscopeError(f"{path} holds no arrays.")
    if len(names) == 1:
        return names[0]
    for k in IMAGE_KEYS:
        if k in names:
            return k
    raise CopyscopeError(
        f"{path} holds several arrays ({', '.join(names)}); name one, e.g. {path}:{names[0]}."
    )


def _label_key(key: str, names: list[str]) -> str | None:
    for candidate in (key.replace("x", "y", 1), "labels", "y"):
        if candidate != key and candidate in names:
            return candidate
    return None
