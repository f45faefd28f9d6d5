"""ImageSet: the one in-memory form every loader produces.

Images are uint8, shape (N, H, W, C) with C = 1 (grayscale) or 3 (RGB), pixel values 0-255.
Float inputs in [0, 1] are quantised to 8 bits (round(x * 255)) at the boundary, so every
distance downstream is an exact integer computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from copyscope.errors import CopyscopeError
from copyscope.hashing import sha256_bytes


@dataclass
class ImageSet:
    images: np.ndarray
    """uint8 (N, H, W, C), or a RowStore reading them from disk on demand (data.store)."""
    labels: np.ndarray | None = None
    source: str = ""
    names: list[str] | None = None
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError("ImageSet.images must be uint8 with shape (N, H, W, C)")
        for what in ("labels", "names"):
            value = getattr(self, what)
            if value is not None and len(value) != len(self.images):
                raise ValueError(f"ImageSet.{what} must have one entry per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def dim(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def flat(self) -> np.ndarray:
        """(N, H*W*C) uint8 view, the vectors the search works on (for a set streamed from disk,
        a :class:`~copyscope.data.store.RowStore` of flat rows)."""
        if not isinstance(self.images, np.ndarray):
            return self.images.reshape(len(self), -1)
        return np.ascontiguousarray(self.images).reshape(len(self), -1)

    @cached_property
    def sha256(self) -> str:
        """Content hash of the pixels and shape (not of the file they came from); a set
        streamed from disk is hashed block by block to the same digest."""
        shape = np.asarray(self.images.shape, dtype=np.int64).tobytes()
        if not isinstance(self.images, np.ndarray):
            return self.images.sha256(shape)
        return sha256_bytes(shape, np.ascontiguousarray(self.images).data)

    def select(self, index: slice | np.ndarray, source: str | None = None) -> ImageSet:
        labels = None if self.labels is None else self.labels[index]
        names = None if self.names is None else np.asarray(self.names, dtype=object)[index].tolist()
        return ImageSet(np.ascontiguousarray(self.images[index]), labels,
                        source or self.source, names, dict(self.meta))

    def describe(self) -> dict[str, object]:
        return {"spec": self.source, "n": len(self), "shape": list(self.image_shape),
                "sha256": self.sha256, **self.meta}


def to_uint8_images(array: np.ndarray, where: str) -> np.ndarray:
    """Validate an array of images and return it as uint8 (N, H, W, C).

    Accepts (N, H, W), (N, H, W, C) and (N, C, H, W) with C in {1, 3}, and flat (N, D) when D is a
    square (one grayscale channel). Integers must lie in 0-255, floats in [0, 1] and be finite.
    ``where`` names the input in error messages.
    """
    a = np.asarray(array)
    if a.size == 0 or a.ndim == 0 or len(a) == 0:
        raise CopyscopeError(f"{where} holds no images (the array is empty).")
    a = _to_nhwc(a, where)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        raise CopyscopeError(f"{where} holds booleans; give uint8 in 0-255 or floats in [0, 1].")
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise CopyscopeError(
                f"{where} holds integers from {lo} to {hi}; integer pixels must lie in 0-255."
            )
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        return _quantise(a, where)
    raise CopyscopeError(f"{where} has dtype {a.dtype}; give uint8 in 0-255 or floats in [0, 1].")


def _quantise(a: np.ndarray, where: str) -> np.ndarray:
    """Floats in [0, 1] as uint8 round(x * 255), a block of images at a time (so a large or
    memory-mapped input needs no float64 copy of itself)."""
    lo, hi = float(a.min()), float(a.max())  # NaN propagates to both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = "NaN" if np.isnan(lo) or np.isnan(hi) else "infinite"
        raise CopyscopeError(f"{where} holds {bad} values; every pixel must be finite.")
    if lo < 0.0 or hi > 1.0:
        raise CopyscopeError(
            f"{where} holds floats from {lo:g} to {hi:g}; float pixels must lie in [0, 1] "
            "(scale 0-255 data to uint8 instead)."
        )
    out = np.empty(a.shape, np.uint8)
    step = max(1, 2**22 // max(1, a[0].size))
    for s in range(0, len(a), step):
        out[s : s + step] = np.rint(a[s : s + step].astype(np.float64) * 255.0)
    return out


def _to_nhwc(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 2:
        side = round(float(np.sqrt(a.shape[1])))
        if side * side != a.shape[1]:
            raise CopyscopeError(
                f"{where} has shape {a.shape}; flat rows must be square grayscale images "
                "(give (N, H, W) or (N, H, W, C) otherwise)."
            )
        return a.reshape(len(a), side, side, 1)
    if a.ndim == 3:
        return a[..., None]
    if a.ndim == 4:
        if a.shape[-1] in (1, 3):
            return a
        if a.shape[1] in (1, 3):
            return np.moveaxis(a, 1, -1)
    raise CopyscopeError(
        f"{where} has shape {a.shape}; expected (N, H, W) or (N, H, W, C) with C = 1 or 3."
    )
