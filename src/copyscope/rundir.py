"""The run directory: run.json and the stage records in it, completion checks, resumable chunks.

A run directory holds one run of each stage (train, sample, audit, analysis) and their
artifacts. Each stage writes its typed record (:mod:`copyscope.records`) through :class:`RunDir`,
which is also the one place that decides whether a stage is already complete for the same inputs
(:meth:`RunDir.done`). Long stages store finished chunks under ``.partial/<key>/`` and pick them
up again when the same stage is re-run with the same inputs (:func:`chunked`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from copyscope.errors import CopyscopeError
from copyscope.files import read_json, save_npz, write_json
from copyscope.progress import progress
from copyscope.records import FORMAT, Record

MANIFEST = "run.json"
PARTIAL = ".partial"
R = TypeVar("R", bound=Record)


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


def command_line() -> str:
    """The command that is running, shell-quoted so it can be pasted back into a shell
    (``python -m copyscope ...`` is written as the ``copyscope ...`` it stands for)."""
    name = Path(sys.argv[0]).name
    return shlex.join(["copyscope" if name == "__main__.py" else name, *sys.argv[1:]])


@dataclass(frozen=True)
class RunDir:
    """A run directory: ``run.json`` plus the stage artifacts beside it."""

    path: Path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def file(self, name: str) -> Path:
        return self.path / name

    def manifest(self) -> dict[str, Any]:
        """run.json as stored; a file of another format is refused before anything is written."""
        if not self.manifest_path.exists():
            return {}
        manifest = read_json(self.manifest_path)
        if not isinstance(manifest, dict):
            raise CopyscopeError(f"{self.manifest_path} is not a copyscope run.json.")
        version = manifest.get("format", FORMAT)
        if version != FORMAT:
            raise CopyscopeError(
                f"{self.manifest_path} has format {version!r}, which this copyscope does not "
                f"know (it reads format {FORMAT}); use the copyscope version that wrote it.")
        return manifest

    def read(self, kind: type[R]) -> R | None:
        """The record of stage ``kind`` in this run directory, or None when there is none."""
        if kind.file is not None:
            path = self.file(kind.file)
            return kind.from_json(read_json(path)) if path.exists() else None
        data = self.manifest().get("stages", {}).get(kind.stage)
        return None if data is None else kind.from_json(data)

    def write(self, record: Record) -> None:
        """Store ``record``: its own file, or its section of run.json (atomic read-modify-write)."""
        if record.file is not None:
            write_json(self.file(record.file), record.to_json())
            return
        manifest = self.manifest()
        manifest = {"format": FORMAT, "copyscope": manifest.get(
            "copyscope", versions().get("copyscope", "unknown")), **manifest}
        manifest.setdefault("stages", {})[record.stage] = record.to_json()
        write_json(self.manifest_path, manifest)

    def done(self, kind: type[R], key: Any) -> R | None:
        """The complete record of ``kind`` made from the same inputs (``key``), else None: the
        one test of "is this stage already done?"."""
        record = self.read(kind)
        if record is None or not record.complete or not record.made_from(key):
            return None
        return record

    def claim(self, kind: type[Record], identity: Any, force: bool) -> Record | None:
        """Make sure this folder may hold this run of ``kind``; return the previous record.

        The folder must be empty, hold a run of the same inputs (``identity``), or ``force`` must
        be set. ``force`` replaces the run whole (:meth:`replace`). A new run is recorded as
        started before any work, so an interrupted run is recognised when it resumes.
        """
        if self.path.exists() and not self.path.is_dir():
            raise CopyscopeError(f"{self.path} exists and is not a folder.")
        occupied = self.path.is_dir() and any(self.path.iterdir())
        if occupied and not self.manifest_path.exists() and not force:
            raise CopyscopeError(
                f"{self.path} is not empty and holds no {MANIFEST}; "
                "choose another --out or pass --force.")
        previous = self.read(kind)
        same = previous is not None and previous.made_from(identity)
        if previous is not None and not same:
            if not force:
                raise CopyscopeError(
                    f"{self.path} already holds a different {kind.stage} run ({MANIFEST}); "
                    "choose another --out or pass --force to replace it.")
            self.replace(kind)
        self.path.mkdir(parents=True, exist_ok=True)
        if not same:
            self.write(kind(identity=identity, status="started", started=now()))
        return previous

    def replace(self, kind: type[Record]) -> None:
        """Clear the way for a new run of ``kind``: its files (``kind.produces``), unfinished
        chunks, and the files and records of every stage made from it (``kind.dependents()``,
        e.g. the analysis tables and report.html of a replaced audit). Files go first, so an
        interruption leaves the old record, and the next ``--force`` clears again."""
        stale = [kind, *kind.dependents()]
        for name in [PARTIAL, *(n for k in stale for n in k.produces),
                     *(k.file for k in stale[1:] if k.file is not None)]:
            path = self.path / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        manifest = self.manifest()
        sections = manifest.get("stages", {})
        if any(k.stage in sections for k in stale[1:]):
            for k in stale[1:]:
                sections.pop(k.stage, None)
            write_json(self.manifest_path, manifest)

    def partial(self, key: str) -> Path:
        return self.path / PARTIAL / key

    def clear_partial(self, key: str) -> None:
        shutil.rmtree(self.partial(key), ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.path / PARTIAL).rmdir()


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
    determines the result (callers use :func:`copyscope.hashing.fingerprint`).
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
