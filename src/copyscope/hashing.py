"""Content hashes: what makes an input, a model or a parameter set *this* one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def sha256_bytes(*chunks: bytes | memoryview) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (used to key caches and partial work)."""
    text = json.dumps(obj, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def json_default(obj: Any) -> Any:
    """How NumPy values and paths are written to JSON."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON reads it back (tuples become lists, NumPy scalars plain numbers), so a
    value compares equal to its own round trip through a file."""
    return json.loads(json.dumps(obj, default=json_default))
