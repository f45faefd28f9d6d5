"""SPEC strings: how users name a set of images on the command line and in configs.

    mnist:train  mnist:test  mnist:train[:300]    a built-in dataset, optionally sliced
    path.npy  path.npz  path.npz:x_test           NumPy arrays (uint8 0-255 or float [0, 1])
    train-images-idx3-ubyte[.gz]                  an IDX file
    folder/                                       PNG/JPEG images, in file-name order
    folder/ with samples/*.npy                    generated samples in .npy shards (a run directory)
    folder/ of *.npy                              uint8 .npy shards, streamed from disk (data.store)
Any of them may end in a Python slice, e.g. ``samples.npy[1000:2000]``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from copyscope.data import mnist, store
from copyscope.data.arrays import load_npy, load_npz
from copyscope.data.folder import load_folder
from copyscope.data.idx import load_idx
from copyscope.data.imageset import ImageSet, to_uint8_images
from copyscope.data.shards import SAMPLES_DIR, load_shards
from copyscope.errors import CopyscopeError

DATASETS = {"mnist": mnist.load}
_SLICE = re.compile(r"^(?P<base>.*?)\[(?P<slice>[^\[\]]*)\]$")
_INT = re.compile(r"^\s*[+-]?[0-9]+\s*$")
SLICE_HELP = "a slice like [:300], [100:400] or [::2]"


def parse(spec: str) -> tuple[str, slice | None]:
    """Split a SPEC into its base and an optional slice of whole numbers.

    A name ending in ``[...]`` that exists as a file or folder is a name, not a slice. A slice
    with more than three parts, a part that is not a whole number, or a zero step is one
    sentence.
    """
    text = spec.strip()
    m = _SLICE.match(text)
    if not m or Path(text).exists():
        return text, None
    parts = m["slice"].split(":")
    if len(parts) == 1:
        raise CopyscopeError(f"{spec}: use {SLICE_HELP}, not a single index.")
    if len(parts) > 3:
        raise CopyscopeError(f"{spec}: a slice has at most three parts (start:stop:step); use "
                             f"{SLICE_HELP}.")
    bad = [p.strip() for p in parts if p.strip() and not _INT.match(p)]
    if bad:
        raise CopyscopeError(f"{spec}: slice bounds must be whole numbers, and {bad[0]!r} is "
                             f"not one; use {SLICE_HELP}.")
    cut = slice(*[int(p) if p.strip() else None for p in parts])
    if cut.step == 0:
        raise CopyscopeError(f"{spec}: a slice step cannot be zero; use {SLICE_HELP}.")
    return m["base"], cut


def load(spec: str | Path | ImageSet) -> ImageSet:
    """Load the images a SPEC names (an ImageSet passes through unchanged)."""
    if isinstance(spec, ImageSet):
        return spec
    text = str(spec)
    if "\x00" in text:
        raise CopyscopeError(f"{text!r} holds a NUL character, which no file name can hold.")
    base, cut = parse(text)
    try:
        images = _load_base(base)
    except OSError as e:  # unreadable, a name too long for the file system, ...
        raise CopyscopeError(f"{base} cannot be read ({e.strerror or e}).") from e
    if cut is not None:
        n = len(images)
        images = images.select(cut, source=text)
        if len(images) == 0:
            raise CopyscopeError(f"{text} selects no images: the slice is empty in a set of "
                                 f"{n:,} images.")
    name, _, split = base.partition(":")
    if not (name in DATASETS and split):
        # a file or folder: remember where it is, so a run reloads it from any directory
        images.meta["resolved"] = str(Path(base).resolve()) + text[len(base):]
    return images


def from_array(array: np.ndarray, source: str = "array") -> ImageSet:
    """Wrap an in-memory array (uint8 0-255 or float [0, 1]) for notebook users."""
    return ImageSet(to_uint8_images(array, source), source=source)


def _load_base(base: str) -> ImageSet:
    name, _, split = base.partition(":")
    if name in DATASETS and split:
        return DATASETS[name](split)
    path, key = Path(base), None
    if not path.exists() and ":" in base:
        head, _, tail = base.rpartition(":")
        if Path(head).suffix == ".npz":
            path, key = Path(head), tail
    if not path.exists():
        if name and split and not Path(name).exists() and "/" not in name:
            known = ", ".join(f"{d}:train" for d in DATASETS)
            raise CopyscopeError(f"{base} is not a known dataset (known: {known}) or a file.")
        raise CopyscopeError(f"{base} does not exist.")
    if path.is_dir():
        if (path / SAMPLES_DIR).is_dir():
            return load_shards(path / SAMPLES_DIR, source=str(path))
        if store.is_shard_folder(path):
            return store.load_store(path)
        return load_folder(path)
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() == ".npy":
        return store.load_store(path) if path.stat().st_size > store.STREAM_BYTES else \
            load_npy(path)
    if path.suffix.lower() == ".npz":
        return load_npz(path, key)
    if "idx" in path.name or suffixes.endswith("ubyte.gz") or path.name.endswith("ubyte"):
        return load_idx(path)
    if path.suffix.lower() in {".png", ".jpg", ".jpeg"}:
        raise CopyscopeError(f"{path} is a single image; put images in a folder and give that.")
    raise CopyscopeError(f"{path} has an unknown format; give .npy, .npz, IDX or an image folder.")
