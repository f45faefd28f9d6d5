"""The run directory: paths, the run.json manifest, atomic writes and resumable chunked work.

Every artifact is written to a temporary file in the same folder and renamed into place, so an
interrupted run never leaves a half-written file behind. Long stages store finished chunks under
``.partial/<key>/`` and pick them up again when the same stage is re-run with the same inputs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from copyscope.errors import CopyscopeError
from copyscope.progress import progress

MANIFEST = "run.json"
PARTIAL = ".partial"
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
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_parquet(path: Path, table: Any) -> None:
    """Write a pandas DataFrame as Parquet, atomically."""
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def sha256_bytes(*chunks: bytes | memoryview) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able object (used to key caches and partial work)."""
    text = json.dumps(obj, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    """Versions of Python and of the packages whose behaviour affects the numbers."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("copyscope", "numpy", "torch", "faiss-cpu", "scipy", "scikit-learn",
                "pytorch-msssim", "torchmetrics", "pyarrow", "diffusers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunDir:
    """A run directory (see DESIGN.md): ``run.json`` plus the stage artifacts beside it."""

    path: Path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def file(self, name: str) -> Path:
        return self.path / name

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {}
        try:
            return json.loads(self.manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CopyscopeError(f"{self.manifest_path} is not valid JSON ({e.msg}).") from e

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.manifest().get("stages", {}).get(name)

    def claim(self, stage: str, identity: dict[str, Any], force: bool) -> None:
        """Make sure ``path`` may hold this stage: empty, a run of the same inputs, or ``force``.

        ``identity`` is what makes a run *this* run (input hashes and parameters). A folder that
        already holds a different run of ``stage`` is refused unless ``force`` is set.
        """
        if self.path.exists() and not self.path.is_dir():
            raise CopyscopeError(f"{self.path} exists and is not a folder.")
        occupied = self.path.is_dir() and any(self.path.iterdir())
        if occupied and not self.manifest_path.exists() and not force:
            raise CopyscopeError(
                f"{self.path} is not empty and holds no {MANIFEST}; "
                "choose another --out or pass --force."
            )
        previous = self.stage(stage)
        if previous is not None and previous.get("identity") != identity:
            if not force:
                raise CopyscopeError(
                    f"{self.path} already holds a different {stage} run ({MANIFEST}); "
                    "choose another --out or pass --force to replace it."
                )
            shutil.rmtree(self.path / PARTIAL, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        if previous is None or previous.get("identity") != identity:
            # claimed before any work, so an interrupted run is recognised when it resumes
            self.record(stage, {"identity": identity, "status": "started", "started": now()})

    def record(self, stage: str, entry: dict[str, Any]) -> None:
        """Store ``entry`` as this stage's section of run.json (atomic read-modify-write)."""
        manifest = self.manifest()
        manifest.setdefault("copyscope", versions().get("copyscope", "unknown"))
        manifest.setdefault("stages", {})[stage] = entry
        write_json(self.manifest_path, manifest)

    def partial(self, key: str) -> Path:
        return self.path / PARTIAL / key

    def clear_partial(self, key: str) -> None:
        shutil.rmtree(self.partial(key), ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.path / PARTIAL).rmdir()


def run_info(path: Path) -> dict[str, Any]:
    """The facts that place a run in a comparison, read from its run.json.

    The ``sample`` stage written by ``copyscope sample`` carries ``model`` (family, train_size,
    dropout, the training run it came from), ``checkpoint``, ``epoch``, ``steps`` and ``seed``.
    Runs audited from outside samples have none of these and report None.
    """
    stages = RunDir(Path(path)).manifest().get("stages", {})
    sample = stages.get("sample", {})
    model = sample.get("model", {})
    audit = stages.get("audit", {})
    return {
        "name": Path(path).name,
        "path": str(path),
        "family": model.get("family"),
        "train_size": model.get("train_size"),
        "dropout": model.get("dropout"),
        "checkpoint": sample.get("checkpoint"),
        "epoch": sample.get("epoch"),
        "steps": sample.get("steps"),
        "seed": sample.get("seed"),
        "samples_spec": audit.get("inputs", {}).get("samples", {}).get("spec"),
        "audited": audit.get("status") == "complete",
    }


def command_line() -> str:
    """The command that is running, shell-quoted so it can be pasted back into a shell."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def chunked(
    n: int,
    chunk: int,
    compute: Callable[[slice], dict[str, np.ndarray]],
    store: Path | None = None,
    desc: str = "",
    show: bool = True,
) -> dict[str, np.ndarray]:
    """Run ``compute`` over ``range(n)`` in chunks and concatenate the arrays it returns.

    With ``store`` set, each finished chunk is saved there atomically and reused on the next call,
    so an interrupted stage resumes where it stopped. ``store`` must be keyed by everything that
    determines the result (callers use :func:`fingerprint`).
    """
    parts: list[dict[str, np.ndarray]] = []
    starts = range(0, n, chunk)
    for i in progress(starts, desc=desc, total=len(starts), show=show and len(starts) > 1,
                      unit="chunk"):
        piece = slice(i, min(i + chunk, n))
        done = store / f"{i // chunk:06d}.npz" if store is not None else None
        if done is not None and done.exists():
            with np.load(done) as z:
                parts.append({k: z[k] for k in z.files})
            continue
        result = compute(piece)
        if done is not None:
            save_npz(done, **result)
        parts.append(result)
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
