"""The user-wide cache under ``$COPYSCOPE_HOME`` (default ``~/.cache/copyscope``).

Results that depend only on datasets (not on a model), such as the training set's own nearest
neighbours or its k-means cells, are computed once and reused by every audit against that set.
Entries are keyed by content hashes and parameters, so a stale entry is never picked up.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from copyscope.files import save_npz
from copyscope.hashing import fingerprint


def home() -> Path:
    return Path(os.environ.get("COPYSCOPE_HOME", Path.home() / ".cache" / "copyscope"))


def cached_arrays(
    kind: str, key: dict[str, Any], compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Load ``kind`` for ``key`` from the cache, or compute it and store it atomically."""
    path = home() / "cache" / f"{kind}-{fingerprint(key)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            path.unlink(missing_ok=True)  # a damaged entry is recomputed, never trusted
    arrays = compute()
    save_npz(path, **arrays)
    return arrays
