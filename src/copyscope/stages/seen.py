"""What the model saw: the training items a model was trained on, for an audit that knows it.

A model trained on a subset can only copy what it saw. The audit searches the whole training
set either way; knowing the subset adds, per sample, its nearest *seen* and nearest *unseen*
training image (a sample closer to an unseen image than to any seen one cannot be a copy of
what the model saw: a built-in negative control), and Meehan et al.'s C_T with T = the model's
own training set, as their paper defines it.

The subset comes from the samples' own run (``copyscope sample`` records the training run, whose
``train_indices.npy`` lists the items it saw) or from ``--seen SPEC`` for anyone else's model: a
``.npy`` of integer indices into the training set, or images, each of which must be a training
image (matched exactly by content).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copyscope.data import ImageSet, load
from copyscope.errors import CopyscopeError
from copyscope.hashing import sha256_bytes
from copyscope.records import SampleRecord, TrainRecord
from copyscope.rundir import MANIFEST, RunDir
from copyscope.stages.train import INDICES


@dataclass(frozen=True)
class Seen:
    """The training items a model saw: sorted indices into the training set, and where the
    list came from."""

    indices: np.ndarray
    source: str

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.indices.astype(np.int64).data)

    def mask(self, n: int) -> np.ndarray:
        """A boolean (n,) array, True for the seen items."""
        out = np.zeros(n, dtype=bool)
        out[self.indices] = True
        return out


def find_seen(samples: str | Path | ImageSet, train: ImageSet,
              seen: str | Path | np.ndarray | None) -> Seen | None:
    """The seen items given by ``seen`` (indices, an index file or images), else those of the
    samples' training run when it trained on this very training set, else None."""
    if seen is not None:
        return _given(seen, train)
    if isinstance(samples, ImageSet) or not (Path(samples) / MANIFEST).is_file():
        return None
    record = RunDir(Path(samples)).read(SampleRecord)
    run = Path((record.model or {}).get("run", "")) if record is not None else None
    trained = RunDir(run).read(TrainRecord) if run and (run / MANIFEST).is_file() else None
    if trained is None or (trained.inputs or {}).get("train", {}).get("sha256") != train.sha256:
        return None
    return _checked(np.load(run / INDICES, allow_pickle=False), len(train),
                    str(run / INDICES))


def _given(seen: str | Path | np.ndarray, train: ImageSet) -> Seen:
    if isinstance(seen, np.ndarray):
        return _checked(seen, len(train), "the given indices")
    path = Path(str(seen))
    if path.suffix == ".npy" and path.is_file():
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise CopyscopeError(f"{path} is not a readable .npy file.") from e
        if array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
            return _checked(array, len(train), str(path))
    return _matched(load(seen), train, str(seen))


def _checked(indices: np.ndarray, n: int, where: str) -> Seen:
    indices = np.asarray(indices)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer) or len(indices) == 0:
        raise CopyscopeError(f"{where} must hold a non-empty 1-d list of integer indices.")
    if indices.min() < 0 or indices.max() >= n:
        raise CopyscopeError(f"{where} holds indices from {indices.min()} to {indices.max()}; "
                             f"the training set has items 0 to {n - 1}.")
    return Seen(np.unique(indices.astype(np.int64)), where)


def _matched(images: ImageSet, train: ImageSet, where: str) -> Seen:
    """The training items equal, pixel for pixel, to the given images."""
    if images.image_shape != train.image_shape:
        raise CopyscopeError(f"{where}: the seen images have shape {images.image_shape} but the "
                             f"training images {train.image_shape}.")
    rows = {row.tobytes(): i for i, row in enumerate(train.flat)}
    found = [rows.get(row.tobytes(), -1) for row in images.flat]
    missing = sum(1 for i in found if i < 0)
    if missing:
        raise CopyscopeError(f"{where}: {missing:,} of its {len(images):,} images are not in the "
                             f"training set {train.source}; --seen lists training images.")
    return Seen(np.unique(np.asarray(found, dtype=np.int64)), where)
