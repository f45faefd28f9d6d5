"""gzip as a conditional generative model, its context the training images or text.

Delétang, Ruoss, Duquenne, Catt, Genewein, Mattern, Grau-Moya, Wenliang, Aitchison, Orseau,
Hutter & Veness (2023), *Language Modeling Is Compression*, Sec. 3.4: any compressor C with code
length ℓ_C defines a predictive distribution

    ρ̂(b | x_<i) = 2^(ℓ_C(x_<i) - ℓ_C(x_<i b)) / Σ_b' 2^(ℓ_C(x_<i) - ℓ_C(x_<i b'))

over the next byte b, and so a sampler and an arithmetic coder like any model's. Here x_<i is the
training subset's images (the "weights": nothing is optimised, ``fit`` keeps them) followed by
the pixels generated so far, and C is DEFLATE at level 9 (gzip's algorithm, raw stream). ℓ is
counted in whole bytes, as a compressor reports it, so ρ̂ ∝ 2^(-8 Δbytes).

Given a text corpus instead (a 1-d uint8 byte string: the training documents one after another),
the same model is a byte-level text model (``kind`` TEXT): it generates texts of ``length``
bytes, codes byte sequences of any length, and continues a ``prefix`` (prompting).

Tractability: the compressor's state after the context is kept and copied
(``zlib.compressobj().copy()``), so each of the 256 candidates costs one copy, one byte and one
final flush. Each image row (each 64 bytes of text) ends with a ``Z_SYNC_FLUSH``: it keeps
DEFLATE's 32 KiB window (the context stays matchable) but bounds the data a final flush
re-encodes to one row, which makes a candidate about ten times cheaper. A window of 32 KiB also
means gzip can only copy from the last 41 images of its context (32,768 / 784 bytes), or the last
32 KiB of its training text: that is gzip's own limit, not this code's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from copyscope.models.base import IMAGES, TEXT, SamplingPlan, one_shot
from copyscope.progress import progress

LEVELS = 256
TEXT_ROW = 64  # bytes of text between sync flushes
_CANDIDATES = [bytes((b,)) for b in range(LEVELS)]


@dataclass(frozen=True)
class GzipConfig:
    image_size: int = 28
    channels: int = 1
    level: int = 9
    """zlib compression level (9: gzip -9, Python's gzip.compress default)."""
    length: int = 512
    """Bytes of each generated text (a text context only)."""


class GzipModel(nn.Module):
    """DensityModel and Generator, but not Trainable: ``fit`` stores the training items, which
    the checkpoint holds as the uint8 buffer ``context``: images (N, H, W, C), or text bytes
    (N,)."""

    name: ClassVar[str] = "gzip"
    Config: ClassVar[type] = GzipConfig
    plan = one_shot("gzip")
    levels: ClassVar[int] = LEVELS

    def __init__(self, config: GzipConfig) -> None:
        super().__init__()
        self.config = config
        s = config.image_size
        self.register_buffer("context", torch.zeros(0, s, s, config.channels, dtype=torch.uint8))

    @property
    def kind(self) -> str:
        """TEXT when the context is a byte string, else IMAGES."""
        return TEXT if self.context.dim() == 1 else IMAGES

    @property
    def _row(self) -> int:
        """Bytes between sync flushes: an image row, or TEXT_ROW bytes of text."""
        return TEXT_ROW if self.kind == TEXT else self.config.image_size * self.config.channels

    def fit(self, items: torch.Tensor) -> float:
        """Keep uint8 training images (N, C, H, W), or a text's bytes (N,), as the context;
        returns the bits per pixel (byte) DEFLATE needs for them (the "training loss")."""
        self.context = (items.cpu() if items.dim() == 1
                        else items.permute(0, 2, 3, 1).contiguous().cpu())  # (N, H, W, C)
        data = self.context.numpy().tobytes()
        coder = zlib.compressobj(self.config.level, zlib.DEFLATED, -15, 9)
        return 8 * len(coder.compress(data) + coder.flush()) / max(1, len(data))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        stored = state_dict.get(prefix + "context")
        if stored is not None:  # the context's length is the training set's, not the config's
            self.context = torch.empty_like(stored)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _start(self) -> Any:
        """The compressor after the whole context, flushed to a byte boundary."""
        coder = zlib.compressobj(self.config.level, zlib.DEFLATED, -15, 9)
        coder.compress(self.context.numpy().tobytes())
        coder.flush(zlib.Z_SYNC_FLUSH)
        return coder

    @staticmethod
    def _next(coder: Any) -> np.ndarray:
        """ρ̂(b | everything ``coder`` has seen) for b = 0..255, float64 (256,)."""
        lengths = np.empty(LEVELS)
        for b, byte in enumerate(_CANDIDATES):
            c = coder.copy()
            lengths[b] = len(c.compress(byte)) + len(c.flush())
        weights = np.exp2(-8.0 * (lengths - lengths.min()))
        return weights / weights.sum()

    def _advance(self, coder: Any, position: int, symbol: int) -> None:
        coder.compress(_CANDIDATES[symbol])
        if (position + 1) % self._row == 0:
            coder.flush(zlib.Z_SYNC_FLUSH)  # end of a row

    def _shape(self, length: int | None) -> tuple[int, ...]:
        """The shape of one item: (H, W, C) for images, (length,) for text."""
        if self.kind == TEXT:
            return (self.config.length if length is None else length,)
        s, c = self.config.image_size, self.config.channels
        return (s, s, c)

    def autoregress(self, n: int, choose: Callable[[torch.Tensor], torch.Tensor],
                    length: int | None = None, prefix: torch.Tensor | None = None,
                    show: bool = False) -> torch.Tensor:
        """Build ``n`` images byte by byte in raster order, or texts of ``length`` bytes
        continuing ``prefix`` (n, P) (see DensityModel)."""
        shape = self._shape(length)
        size = int(np.prod(shape))
        start = self._start()
        coders = [start.copy() for _ in range(n)]
        out = np.zeros((n, size), dtype=np.uint8)
        given = 0 if prefix is None else prefix.shape[1]
        if given:
            out[:, :given] = prefix.cpu().numpy()
            for coder, row in zip(coders, out, strict=True):
                for k in range(given):
                    self._advance(coder, k, int(row[k]))
        for k in progress(range(given, size), desc="bytes", show=show):
            probs = torch.from_numpy(np.stack([self._next(coder) for coder in coders]))
            symbols = choose(probs).cpu().numpy()
            out[:, k] = symbols
            for coder, symbol in zip(coders, symbols, strict=True):
                self._advance(coder, k, int(symbol))
        return torch.from_numpy(out.reshape(n, *shape))

    @staticmethod
    def _flat(x: torch.Tensor) -> torch.Tensor:
        """Items in coding order: images (B, C, H, W) -> (B, H*W*C); texts (B, L) stay."""
        return x.cpu() if x.dim() == 2 else x.permute(0, 2, 3, 1).reshape(len(x), -1).cpu()

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """ρ̂(x_i = k | x_<i) at every position: x uint8 (B, 1, H, W) -> float64 (B, H, W, 256),
        or texts (B, L) -> (B, L, 256), through ``autoregress`` answered with x's own bytes."""
        flat = self._flat(x)
        seen: list[torch.Tensor] = []

        def teacher(probs: torch.Tensor) -> torch.Tensor:
            seen.append(probs)
            return flat[:, len(seen) - 1]

        self.autoregress(len(x), teacher, **({"length": x.shape[1]} if x.dim() == 2 else {}))
        return torch.stack(seen, dim=1).reshape(len(x), *x.shape[2 if x.dim() == 4 else 1:],
                                                LEVELS)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats of each uint8 image (B, C, H, W), or text (B, L), under
        ρ̂."""
        probs = self.conditionals(x).reshape(len(x), -1, LEVELS)  # (B, D, 256)
        return probs.gather(2, self._flat(x)[..., None].long())[..., 0].log().sum(1)

    def generate(self, n: int, generator: torch.Generator, plan: SamplingPlan | None = None,
                 show: bool = False) -> torch.Tensor:
        """Sample byte by byte, every draw from ``generator``."""
        def draw(probs: torch.Tensor) -> torch.Tensor:
            return torch.multinomial(probs, 1, generator=generator)[:, 0]

        return self.autoregress(n, draw, show=show)
