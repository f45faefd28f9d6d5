"""NumPy .npy / .npz files of images (and labels, when an .npz carries them)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from copyscope.data.imageset import ImageSet, to_uint8_images
from copyscope.errors import CopyscopeError

IMAGE_KEYS = ("images", "x", "samples", "arr_0")


def load_npy(path: Path) -> ImageSet:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):
            raise CopyscopeError(f"{path} holds Python objects; save plain numeric arrays.") from e
        raise CopyscopeError(f"{path} is not a readable .npy file (truncated or corrupt).") from e
    except (OSError, EOFError) as e:
        raise CopyscopeError(f"{path} is not a readable .npy file (truncated or corrupt).") from e
    return ImageSet(to_uint8_images(array, str(path)), source=str(path))


def load_npz(path: Path, key: str | None = None) -> ImageSet:
    """Load images from an .npz: the named array, or the only one, or one called images/x/samples.

    Keras-style files (x_train, y_train, x_test, y_test) need the key: ``mnist.npz:x_train``; the
    matching ``y_*`` array becomes the labels.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if key is None:
                key = _pick_key(path, names)
            if key not in names:
                raise CopyscopeError(
                    f"{path} has no array named {key!r} (it has {', '.join(names)})."
                )
            array = z[key]
            label_key = _label_key(key, names)
            labels = z[label_key] if label_key else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
        raise CopyscopeError(f"{path} is not a readable .npz file (truncated or corrupt).") from e
    images = to_uint8_images(array, f"{path}:{key}")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        labels = None
    return ImageSet(images, None if labels is None else labels.astype(np.int64), source=str(path))


def _pick_key(path: Path, names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    for k in IMAGE_KEYS:
        if k in names:
            return k
    raise CopyscopeError(
        f"{path} holds several arrays ({', '.join(names)}); name one, e.g. {path}:{names[0]}."
    )


def _label_key(key: str, names: list[str]) -> str | None:
    for candidate in (key.replace("x", "y", 1), "labels", "y"):
        if candidate != key and candidate in names:
            return candidate
    return None
