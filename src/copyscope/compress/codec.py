"""Lossless coding with a model: range coding driven by its exact per-pixel conditionals.

Any :class:`~copyscope.models.base.DensityModel` is a lossless compressor (Shannon 1948; Delétang
et al. 2023, *Language Modeling Is Compression*, Sec. 2): an arithmetic coder spends
``-log2 p(x_i | x_<i)`` bits on symbol i, so an item costs about ``-log2 p(x)`` bits. The coder
here is ``constriction``'s range coder (Bamler 2022) with ``Categorical(perfect=False)`` models.

A range decoder needs bit-identical probabilities to the encoder's. Both therefore run through
the model's one autoregressive path (``autoregress``), in the same batch grouping and dtype: the
encoder answers each position with the known symbols (teacher forcing), the decoder with the
symbols it reads. A full-image forward pass would give slightly different floats and is never
used for coding. The stream is position-major inside each batch of ``batch`` images. Torch runs
on one thread while coding: the floats depend on the thread count (1 against 2 threads moved
probabilities by 3e-7 here, enough to derail a decode). The file carries the sha256 of the
pixels, so a decode whose floats still drift (another CPU's kernels, another library version) is
refused rather than returning wrong pixels.

Texts are byte sequences, uint8 (N, L), all N of one length L; the header records them as
images of shape (1, L, 1), a single row (so L is at most 65,535), and the model builds them with
``autoregress(n, choose, length=L)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from copyscope.compress.format import HEADER_BYTES, Header, pack, pixels_sha256, unpack
from copyscope.errors import CopyscopeError
from copyscope.models.base import TEXT, DensityModel, data_kind
from copyscope.progress import bar
from copyscope.tensors import one_thread

BATCH = 200
MAX_LENGTH = 65535  # the longest text a header's 2-byte width records
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


@dataclass(frozen=True)
class Encoded:
    """A coded file and what it cost."""

    data: bytes
    bits_ideal: float
    """Σ -log2 p(x_i | x_<i) over every pixel: what an ideal entropy coder would spend."""
    count: int

    @property
    def payload_bits(self) -> int:
        return 8 * (len(self.data) - HEADER_BYTES)

    @property
    def overhead(self) -> float:
        """Payload bits over the ideal, minus one (0.001 = 0.1% more than Σ -log2 p)."""
        return self.payload_bits / self.bits_ideal - 1.0


def image_shape(model: DensityModel) -> tuple[int, int, int]:
    """(H, W, C) of the images a model codes."""
    config = model.config  # type: ignore[attr-defined]
    return (config.image_size, config.image_size, config.channels)


def header_shape(model: DensityModel, items: np.ndarray) -> tuple[int, int, int]:
    """The shape a .cs header records: the model's (H, W, C), or (1, L, 1) for texts of L
    bytes."""
    return (1, items.shape[1], 1) if data_kind(model) == TEXT else image_shape(model)


def _autoregress(model: DensityModel, n: int, choose: Callable[[torch.Tensor], torch.Tensor],
                 shape: tuple[int, int, int]) -> torch.Tensor:
    """The model's one autoregressive pass over ``n`` items of the header's ``shape``."""
    if data_kind(model) == TEXT:
        return model.autoregress(n, choose, length=shape[1])  # type: ignore[call-arg]
    return model.autoregress(n, choose)


def check_images(model: DensityModel, images: np.ndarray, where: str) -> np.ndarray:
    """uint8 (N, H, W, C) images of the model's shape (texts: uint8 bytes (N, L)), else one
    sentence naming ``where``."""
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise CopyscopeError(f"{where} holds {a.dtype} values; the codec takes uint8 pixels "
                             "(0-255).")
    if data_kind(model) == TEXT:
        if a.ndim != 2 or len(a) == 0 or not 1 <= a.shape[1] <= MAX_LENGTH:
            raise CopyscopeError(f"{where} has shape {a.shape}; this model codes texts as bytes "
                                 f"(N, L), L from 1 to {MAX_LENGTH:,}.")
        return np.ascontiguousarray(a)
    if a.ndim == 3:
        a = a[..., None]
    shape = image_shape(model)
    if a.ndim != 4 or a.shape[1:] != shape or len(a) == 0:
        raise CopyscopeError(f"{where} has shape {a.shape}; this model codes images of shape "
                             f"(N, {', '.join(map(str, shape))}).")
    return np.ascontiguousarray(a)


def _teacher(images: np.ndarray, step: Callable[[np.ndarray, np.ndarray], None]
             ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``choose`` that hands ``step`` each position's probabilities (float64, normalised) and
    known symbols, and answers with the known symbols."""
    flat = images.reshape(len(images), -1)  # (n, H*W*C) in raster order
    position = iter(range(flat.shape[1]))

    def choose(probs: torch.Tensor) -> torch.Tensor:
        symbols = flat[:, next(position)].astype(np.int32)
        step(_normalised(probs), symbols)
        return torch.from_numpy(symbols)

    return choose


def _normalised(probs: torch.Tensor) -> np.ndarray:
    p = probs.detach().cpu().double().numpy()
    return p / p.sum(axis=1, keepdims=True)


def _ideal_bits(p: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """-log2 p of each symbol; a probability that underflowed float32 to zero counts as the
    smallest float32, 2^-149 (the coder itself never spends more than about 24 bits on it)."""
    return -np.log2(np.maximum(p[np.arange(len(symbols)), symbols], 2.0**-149))


def encode(model: DensityModel, model_sha256: str, images: np.ndarray, batch: int = BATCH,
           show: bool = True) -> Encoded:
    """Code uint8 images (N, H, W, C) of the model's shape into one .cs file's bytes."""
    images = check_images(model, images, "the images to encode")
    encoder = constriction.stream.queue.RangeEncoder()
    ideal = 0.0

    def step(p: np.ndarray, symbols: np.ndarray) -> None:
        nonlocal ideal
        encoder.encode(symbols, _CATEGORICAL, p)
        ideal += float(_ideal_bits(p, symbols).sum())

    progress = bar(len(images), desc="encode", show=show, unit="img")
    with torch.inference_mode(), one_thread():
        for s in range(0, len(images), batch):
            part = images[s : s + batch]
            _autoregress(model, len(part), _teacher(part, step), header_shape(model, images))
            progress.update(len(part))
    progress.close()
    payload = encoder.get_compressed().astype("<u4").tobytes()
    header = Header(model_sha256, len(images), header_shape(model, images), batch,
                    pixels_sha256(images))
    return Encoded(pack(header, payload), ideal, len(images))


def read_header(data: bytes, where: str = "the file") -> Header:
    return unpack(data, where)[0]


def decode(model: DensityModel, model_sha256: str, data: bytes, where: str = "the file",
           show: bool = True) -> np.ndarray:
    """The uint8 images (N, H, W, C) (texts: (N, L)) a .cs file holds, bit-exact, or one
    sentence saying why not:
    not a .cs file, another format version, truncated or corrupt, made by another model, or
    decoded pixels that fail the file's checksum."""
    header, payload = unpack(data, where)
    if header.model_sha256 != model_sha256:
        raise CopyscopeError(f"{where} was made by another model (checkpoint sha256 "
                             f"{header.model_sha256[:12]}…, not {model_sha256[:12]}…); decode it "
                             "with the model that encoded it.")
    text = data_kind(model) == TEXT
    if text and (header.shape[0], header.shape[2]) != (1, 1):
        raise CopyscopeError(f"{where} holds images of shape {header.shape}; this model codes "
                             "texts.")
    if not text and header.shape != image_shape(model):
        raise CopyscopeError(f"{where} holds images of shape {header.shape}; this model codes "
                             f"{image_shape(model)}.")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)

    def choose(probs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(decoder.decode(_CATEGORICAL, _normalised(probs)).astype(np.int64))

    parts = []
    progress = bar(header.count, desc="decode", show=show, unit="img")
    try:
        with torch.inference_mode(), one_thread():
            for s in range(0, header.count, header.batch):
                n = min(header.batch, header.count - s)
                parts.append(_autoregress(model, n, choose, header.shape).numpy())
                progress.update(n)
    except (ValueError, RuntimeError) as e:
        raise CopyscopeError(f"{where} is corrupt: its payload does not decode ({e}).") from e
    finally:
        progress.close()
    images = np.concatenate(parts)
    if pixels_sha256(images) != header.pixels_sha256:
        raise CopyscopeError(f"{where} decoded to pixels that fail its checksum: this machine "
                             "computes the model's probabilities differently from the one that "
                             "encoded it (or the file was altered), so no output is written.")
    return images


@dataclass(frozen=True)
class CodeLengths:
    """Per item: the actual length of the item coded alone, and the ideal -log2 p."""

    bits_model: np.ndarray
    """int64 (N,): 32 x the range coder's words for the item on its own, termination included."""
    bits_ideal: np.ndarray
    """float64 (N,): Σ -log2 p(x_i | x_<i) under the same probabilities."""
    pixel_bits: np.ndarray
    """float32 (N, D): -log2 p(x_i | x_<i) of every symbol."""
    whole_bits: int
    """32 x the words of all N items coded as one stream (what ``encode`` writes as payload)."""


def code_lengths(model: DensityModel, images: np.ndarray, batch: int = BATCH,
                 show: bool = True) -> CodeLengths:
    """Code every item on its own (batched through the model, one range coder per item) and all
    of them as one stream, through the same path as :func:`encode`."""
    images = check_images(model, images, "the images to measure")
    coded = np.zeros(len(images), dtype=np.int64)
    pixel_bits = np.zeros((len(images), images[0].size), dtype=np.float32)
    ideal = np.zeros(len(images), dtype=np.float64)
    whole = constriction.stream.queue.RangeEncoder()
    progress = bar(len(images), desc="code lengths", show=show, unit="img")
    with torch.inference_mode(), one_thread():
        for s in range(0, len(images), batch):
            part = images[s : s + batch]
            encoders = [constriction.stream.queue.RangeEncoder() for _ in part]
            position = iter(range(part[0].size))

            def step(p: np.ndarray, symbols: np.ndarray, s: int = s, encoders=encoders,
                     position=position) -> None:
                bits = _ideal_bits(p, symbols)
                ideal[s : s + len(symbols)] += bits
                pixel_bits[s : s + len(symbols), next(position)] = bits
                whole.encode(symbols, _CATEGORICAL, p)
                for k, encoder in enumerate(encoders):
                    encoder.encode(symbols[k : k + 1], _CATEGORICAL, p[k : k + 1])

            _autoregress(model, len(part), _teacher(part, step), header_shape(model, images))
            coded[s : s + len(part)] = [32 * len(e.get_compressed()) for e in encoders]
            progress.update(len(part))
    progress.close()
    return CodeLengths(coded, ideal, pixel_bits, 32 * len(whole.get_compressed()))
