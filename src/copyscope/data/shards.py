"""A folder of ``.npy`` shards: generated samples as ``copyscope sample`` writes them.

    <run>/samples/shard-00000.npy ...   uint8 (N, H, W) or (N, H, W, C), read in name order

A folder whose ``samples/`` subfolder holds shards (a run directory) names those samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from copyscope.data.arrays import load_npy
from copyscope.data.imageset import ImageSet
from copyscope.errors import CopyscopeError

SAMPLES_DIR = "samples"


def load_shards(folder: Path, source: str | None = None) -> ImageSet:
    """The images of every ``.npy`` shard in ``folder``, in file-name order."""
    shards = sorted(folder.glob("*.npy"))
    if not shards:
        raise CopyscopeError(f"{folder} holds no .npy sample shards yet.")
    parts = [load_npy(s).images for s in shards]
    if len({p.shape[1:] for p in parts}) > 1:
        raise CopyscopeError(f"{folder} holds shards of different image shapes.")
    return ImageSet(np.concatenate(parts), source=source or str(folder))
