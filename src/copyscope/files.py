"""Reading and writing files: atomically, and with one clear sentence when a file is unreadable.

Every artifact is written to a temporary file in the same folder and renamed into place, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from copyscope.errors import CopyscopeError
from copyscope.hashing import json_default

if TYPE_CHECKING:
    import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def read_json(path: Path, missing: str = "is missing") -> Any:
    """A JSON file's content; a missing or damaged file is one sentence naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise CopyscopeError(f"{path} {missing}.") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        reason = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise CopyscopeError(f"{path} is not valid JSON ({reason}).") from e


def write_parquet(path: Path, table: pd.DataFrame) -> None:
    """Write a pandas DataFrame as Parquet, atomically."""
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def read_parquet(path: Path, missing: str = "is missing") -> pd.DataFrame:
    import pandas as pd

    if not Path(path).exists():
        raise CopyscopeError(f"{path} {missing}.")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise CopyscopeError(f"{path} is not a readable Parquet file ({type(e).__name__}).") from e


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
