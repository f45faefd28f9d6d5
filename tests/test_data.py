"""Loading: built-in MNIST, arrays, IDX, image folders and run directories."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from copyscope.data import from_array, load, mnist
from copyscope.errors import CopyscopeError


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    raw = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def test_mnist_is_verified_and_sliceable():
    train = load("mnist:train")
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
    assert list(train.labels[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    part = load("mnist:train[:300]")
    assert len(part) == 300 and np.array_equal(part.images, train.images[:300])
    assert len(load("mnist:test[100:400:3]")) == 100


def test_mnist_rebuilds_from_idx_files_and_rejects_altered_ones(tmp_path, train60k, test10k):
    labels_train, labels_test = load("mnist:train").labels, load("mnist:test").labels
    for name, arr in [("train-images-idx3-ubyte", train60k[..., 0]),
                      ("train-labels-idx1-ubyte", labels_train),
                      ("t10k-images-idx3-ubyte", test10k[..., 0]),
                      ("t10k-labels-idx1-ubyte", labels_test)]:
        write_idx(tmp_path / f"{name}.gz", arr, gz=True)
    arrays = mnist._from_idx_folder(tmp_path)
    mnist.verify(arrays, str(tmp_path))
    arrays["train_images"] = arrays["train_images"].copy()
    arrays["train_images"][0, 0, 0] ^= 1
    with pytest.raises(CopyscopeError, match="does not match the reference MNIST"):
        mnist.verify(arrays, str(tmp_path))


def test_the_mnist_unpickler_refuses_anything_but_numpy_arrays():
    evil = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError):
        mnist._NumpyOnlyUnpickler(io.BytesIO(evil)).load()


@pytest.mark.parametrize("shape", [(5, 16, 16), (5, 16, 16, 1), (5, 16, 16, 3), (5, 3, 16, 16),
                                   (5, 256)])
def test_npy_shapes(tmp_path, shape):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    images = load(tmp_path / "a.npy").images
    assert images.ndim == 4 and images.shape[0] == 5 and images.shape[-1] in (1, 3)


def test_floats_in_unit_range_are_quantised_to_bytes():
    a = np.array([[[0.0, 1.0], [0.5, 1 / 255]]] * 3, dtype=np.float32)
    images = from_array(np.repeat(np.repeat(a, 8, 1), 8, 2)).images
    assert images.dtype == np.uint8 and images.max() == 255 and set(np.unique(images)) == {
        0, 1, 128, 255}


def test_npz_keys_and_keras_style_labels(tmp_path):
    x = np.zeros((4, 12, 12), np.uint8)
    np.savez(tmp_path / "one.npz", x)
    assert len(load(tmp_path / "one.npz")) == 4
    np.savez(tmp_path / "keras.npz", x_train=x, y_train=np.arange(4), x_test=x[:2],
             y_test=np.arange(2))
    chosen = load(f"{tmp_path / 'keras.npz'}:x_test")
    assert len(chosen) == 2 and list(chosen.labels) == [0, 1]
    with pytest.raises(CopyscopeError, match="several arrays"):
        load(tmp_path / "keras.npz")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files(tmp_path, gz, test10k):
    path = write_idx(tmp_path / ("x-idx3-ubyte" + (".gz" if gz else "")), test10k[:50, ..., 0], gz)
    assert np.array_equal(load(path).images, test10k[:50])
    assert len(load(f"{path}[10:20]")) == 10


def test_image_folder_keeps_names_and_promotes_to_rgb(tmp_path):
    Image.fromarray(np.full((14, 14), 200, np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((14, 14, 3), np.uint8)).save(tmp_path / "a.jpg")
    images = load(tmp_path)
    assert images.names == ["a.jpg", "b.png"] and images.images.shape == (2, 14, 14, 3)
    assert images.images[1].min() == 200


def test_run_directory_is_a_samples_spec(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "run.json").write_text("{}")
    np.save(tmp_path / "samples" / "shard-00000.npy", np.zeros((3, 12, 12), np.uint8))
    np.save(tmp_path / "samples" / "shard-00001.npy", np.ones((2, 12, 12), np.uint8))
    images = load(tmp_path)
    assert len(images) == 5 and images.images[3:].min() == 1
