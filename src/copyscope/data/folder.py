"""A folder of PNG/JPEG images, read in file-name order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from copyscope.data.imageset import ImageSet
from copyscope.errors import CopyscopeError

SUFFIXES = {".png", ".jpg", ".jpeg"}
MAX_PIXELS = 4096 * 4096


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def decode_image(source: Path | bytes, where: str) -> np.ndarray:
    """Decode one image safely to uint8 (H, W) or (H, W, 3); alpha is dropped."""
    import io

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            if im.format not in {"PNG", "JPEG"}:
                raise CopyscopeError(f"{where} is a {im.format} image; only PNG and JPEG are read.")
            im.load()
            mode = "L" if im.mode in {"1", "L", "I", "I;16", "F", "LA"} else "RGB"
            return np.asarray(im.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise CopyscopeError(f"{where} is not a readable PNG/JPEG image.") from e


def load_folder(folder: Path) -> ImageSet:
    files = image_files(folder)
    if not files:
        raise CopyscopeError(f"{folder} holds no PNG or JPEG images.")
    arrays = [decode_image(f, str(f)) for f in files]
    shapes = {a.shape for a in arrays}
    if len({s[:2] for s in shapes}) > 1:
        sizes = sorted({f"{s[1]}x{s[0]}" for s in shapes})
        raise CopyscopeError(
            f"{folder} holds images of mixed sizes ({', '.join(sizes[:4])}); all must match."
        )
    rgb = any(a.ndim == 3 for a in arrays)
    if rgb:
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
    images = np.stack(arrays)
    if not rgb:
        images = images[..., None]
    return ImageSet(images, source=str(folder), names=[f.name for f in files])
