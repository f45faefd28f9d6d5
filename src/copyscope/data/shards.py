"""A folder of ``.npy`` shards: generated samples as ``copyscope sample`` writes them.

    <run>/samples/shard-00000.npy ...   uint8 (N, H, W) or (N, H, W, C), read in name order;
                                        texts: uint8 bytes (N, L), with beside each shard
    <run>/samples/shard-00000.jsonl     its texts, one {"text": ...} per line (a text SPEC)

A folder whose ``samples/`` subfolder holds shards (a run directory) names those samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from copyscope.data.arrays import load_npy
from copyscope.data.imageset import ImageSet
from copyscope.errors import CopyscopeError
from copyscope.files import atomic_path

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


def text_view(shard: Path) -> Path:
    """Write the texts of a shard of bytes (uint8 (N, L)) beside it as ``.jsonl``, one
    ``{"text": ...}`` per line: the bytes decoded as UTF-8, an undecodable byte (a character cut
    at the end, or a model's invalid sequence) replaced by U+FFFD. The raw bytes stay in the
    ``.npy``; this view is what text SPECs (``copyscope text spans --texts RUN``) read."""
    texts = np.load(shard)
    out = shard.with_suffix(".jsonl")
    lines = (json.dumps({"text": bytes(t).decode("utf-8", errors="replace")}, ensure_ascii=False)
             for t in texts)
    with atomic_path(out) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out
