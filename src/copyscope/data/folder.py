"""A folder of PNG/JPEG images, read in file-name order (decoded by :mod:`copyscope.data.decode`).

Every header is read first: sizes must match and fit under the pixel cap and in memory before
any image is decoded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from copyscope.data.decode import decode_image, image_size
from copyscope.data.imageset import ImageSet
from copyscope.data.limits import check_memory
from copyscope.errors import CopyscopeError

SUFFIXES = {".png", ".jpg", ".jpeg"}


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def load_folder(folder: Path) -> ImageSet:
    files = image_files(folder)
    if not files:
        raise CopyscopeError(f"{folder} holds no PNG or JPEG images.")
    sizes = {image_size(f, str(f)) for f in files}
    if len(sizes) > 1:
        shown = sorted(f"{w}x{h}" for w, h in sizes)
        raise CopyscopeError(
            f"{folder} holds images of mixed sizes ({', '.join(shown[:4])}); all must match."
        )
    width, height = sizes.pop()
    check_memory(str(folder), len(files) * width * height * 3)
    arrays = [decode_image(f, str(f)) for f in files]
    rgb = any(a.ndim == 3 for a in arrays)
    if rgb:
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
    images = np.stack(arrays)
    if not rgb:
        images = images[..., None]
    return ImageSet(images, source=str(folder), names=[f.name for f in files])
