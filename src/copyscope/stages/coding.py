"""Encode and decode .cs files with a training run's model (``copyscope compress encode`` and
``decode``): the codec of :mod:`copyscope.compress.codec` on run directories and files."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copyscope.compress.codec import BATCH, decode, encode, read_header
from copyscope.compress.format import HEADER_BYTES
from copyscope.data import load
from copyscope.errors import CopyscopeError
from copyscope.files import atomic_path
from copyscope.models.base import DensityModel
from copyscope.models.checkpoints import checkpoints, model_hash
from copyscope.stages.train import CHECKPOINTS, load_model


@dataclass(frozen=True)
class LoadedModel:
    model: DensityModel
    checkpoint: Path
    sha256: str
    """The checkpoint's content hash (:func:`copyscope.models.checkpoints.model_hash`): the
    identity a .cs file records."""
    family: str


def open_model(run: str | Path, checkpoint: str | None = None, device: str = "cpu"
               ) -> LoadedModel:
    """A training run's model at a checkpoint (default: the newest), if it has exact
    likelihoods; otherwise one sentence naming the run."""
    model, path = load_model(Path(run), checkpoint, device)
    if not isinstance(model, DensityModel):
        raise CopyscopeError(f"{run} is a {model.name} model, which has no exact likelihood; "
                             "coding needs a density model (pixelcnn, gzip or textlm).")
    return LoadedModel(model, path, model_hash(path), model.name)


@dataclass(frozen=True)
class EncodeResult:
    path: Path
    count: int
    bytes: int
    bits_ideal: float
    header_bits: int
    payload_bits: int
    seconds: float

    @property
    def overhead(self) -> float:
        """Payload bits over Σ -log2 p, minus one."""
        return self.payload_bits / self.bits_ideal - 1.0


@dataclass(frozen=True)
class DecodeResult:
    path: Path
    count: int
    shape: tuple[int, int, int]
    seconds: float


def encode_file(run: str | Path, images: str, out: str | Path, checkpoint: str | None = None,
                batch: int = BATCH, show: bool = True) -> EncodeResult:
    """Code the images a SPEC names with the run's model into the .cs file ``out``."""
    loaded = open_model(run, checkpoint)
    data = load(images)
    began = time.perf_counter()
    coded = encode(loaded.model, loaded.sha256, data.images, batch, show)
    seconds = time.perf_counter() - began
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(coded.data)
    return EncodeResult(out, coded.count, len(coded.data), coded.bits_ideal, 8 * HEADER_BYTES,
                        coded.payload_bits, seconds)


def decode_file(run: str | Path, path: str | Path, out: str | Path, show: bool = True
                ) -> DecodeResult:
    """Decode a .cs file with the run's checkpoint that made it into the .npy ``out``
    (uint8 (N, H, W), or (N, H, W, C) for colour); nothing is written unless every pixel
    passes the file's checksum."""
    path = Path(path)
    if not path.is_file():
        raise CopyscopeError(f"{path} does not exist or is not a file.")
    data = path.read_bytes()
    header = read_header(data, str(path))
    loaded = open_model(run, _checkpoint_of(Path(run), header.model_sha256))
    began = time.perf_counter()
    images = decode(loaded.model, loaded.sha256, data, str(path), show)
    seconds = time.perf_counter() - began
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, images[..., 0] if images.shape[-1] == 1 else images)
    return DecodeResult(out, len(images), header.shape, seconds)


def _checkpoint_of(run: Path, sha256: str) -> str | None:
    """The run's checkpoint with this content hash (None: the newest, which the decoder then
    refuses by name if it is not the one)."""
    for p in reversed(checkpoints(run / CHECKPOINTS)):
        if model_hash(p) == sha256:
            return str(p)
    return None

