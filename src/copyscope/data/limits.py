"""What an input file may ask for: declared sizes are checked before anything is allocated.

A header (.npy, an .npz member, IDX) states how many bytes of data follow. Before reading them,
the loaders check that

- the file can hold them: an uncompressed file must be at least that long, and a deflated one
  cannot expand more than deflate ever does (:data:`MAX_DEFLATE_RATIO`);
- decompression stays under the cap, ``COPYSCOPE_MAX_INFLATE`` (bytes, or with a unit: ``512M``,
  ``8G``; default :data:`DEFAULT_MAX_INFLATE`), so a small file cannot inflate without bound;
- the memory they need is available (Linux: MemAvailable in /proc/meminfo).

Uncompressed .npy and IDX files of at least :data:`MMAP_BYTES` of data are memory-mapped
(read-only) instead of read, so a large valid input costs no more memory than its pixels need.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from copyscope.errors import CopyscopeError

MAX_DEFLATE_RATIO = 1032
"""Deflate's largest possible expansion (each 258-byte match costs at least two bits; zlib's
technical details give 1032:1); a header claiming more is false."""
DEFAULT_MAX_INFLATE = 2 * 2**30
ENV = "COPYSCOPE_MAX_INFLATE"
MMAP_BYTES = 256 * 2**20
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def human(n: int | float) -> str:
    """Bytes in the largest binary unit that keeps a number >= 1: 3.9 GiB, 512 KiB, 17 bytes."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def max_inflate() -> int:
    """The decompression cap in bytes, from ``COPYSCOPE_MAX_INFLATE`` (default 2 GiB)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_INFLATE
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", text.lower())
    if not m:
        raise CopyscopeError(f"{ENV}={text!r} is not a size; write bytes or a size such as 512M "
                             "or 8G.")
    return int(float(m[1]) * _UNITS[m[2]])


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping, if the system says."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(where: str, needed: int) -> None:
    """Refuse, in one sentence, to allocate more than the memory available."""
    free = available_memory()
    if free is not None and needed > free:
        raise CopyscopeError(f"{where} needs {human(needed)} of memory to load, but only "
                             f"{human(free)} is available.")


def check_inflate(where: str, inflated: int, compressed: int) -> None:
    """Refuse data that claims to inflate past what ``compressed`` bytes can hold, or past the
    cap."""
    if inflated > MAX_DEFLATE_RATIO * max(compressed, 1) + 1024:
        raise CopyscopeError(
            f"{where} is corrupt: its header promises {human(inflated)} from {human(compressed)} "
            f"of compressed data, more than compression can ever expand ({MAX_DEFLATE_RATIO}:1).")
    cap = max_inflate()
    if inflated > cap:
        raise CopyscopeError(
            f"{where} inflates to {human(inflated)} from {human(compressed)}, past the cap of "
            f"{human(cap)} on decompressed data (set {ENV}, e.g. {ENV}=16G, to allow more).")


def check_declared(where: str, declared: int, present: int) -> None:
    """Refuse a header that promises more data bytes than follow it."""
    if declared > present:
        raise CopyscopeError(
            f"{where} is truncated or corrupt: its header promises {human(declared)} of data "
            f"but {human(present)} follow.")
