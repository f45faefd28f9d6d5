"""What the model families share: their protocols, config checks and pixel conversions.

A family is a ``torch.nn.Module`` built from its config dataclass. What it can do is said by the
protocols it implements:

- :class:`Generator`: makes new images (every family; also a user's diffusers pipeline).
- :class:`Trainable`: learns by optimisation steps (diffusion, GAN, PixelCNN; a compressor
  used as a generator has nothing to optimise).
- :class:`DensityModel`: exact discrete likelihoods, symbol by symbol (the PixelCNN, gzip, the
  text LM): what an arithmetic coder and a likelihood test need. Coders depend on this protocol,
  never on a family.

A family models images (uint8 (N, H, W, C)) or texts: byte sequences, uint8 (N, L), whose
length is the data's, not the model's. A text family says so with ``kind = TEXT``
(:func:`data_kind`); its ``autoregress`` then takes the ``length`` to build and a ``prefix`` to
continue, and ``train_step`` gets windows of ``window`` bytes (B, window).

``state_dict()`` holds every weight a checkpoint stores. All randomness in ``train_step`` comes
from torch's global generator, which the training loop seeds per epoch, so a resumed run repeats
an uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from copyscope.errors import CopyscopeError

IMAGES, TEXT = "images", "text"
"""What a model's items are: the two data kinds."""


@dataclass(frozen=True)
class SamplingPlan:
    """How a generator will sample: the sampler's name (as run.json records it) and its steps."""

    sampler: str
    steps: int | None
    """The sampler's step count (DDIM or DDPM steps); None where sampling has no steps."""


@runtime_checkable
class Generator(Protocol):
    """Makes new images, all randomness drawn from a given ``torch.Generator``."""

    name: ClassVar[str]
    Config: ClassVar[type]
    config: Any

    def plan(self, steps: int | None = None, ancestral: bool = False) -> SamplingPlan:
        """The sampler and step count for the user's ``steps`` / ``ancestral`` choice (refused in
        one sentence where the family has no such choice)."""
        ...

    def generate(self, n: int, generator: torch.Generator, steps: int | None = None
                 ) -> torch.Tensor:
        """``n`` new images as uint8 (n, H, W, C), or texts as uint8 bytes (n, L); ``steps`` is
        the plan's step count."""
        ...


@runtime_checkable
class Trainable(Protocol):
    """Learns from uint8 batches by optimisation steps."""

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers ``train_step`` steps, by name (their state is part of resume state)."""
        ...

    def train_step(self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        """One optimisation step on a uint8 batch (B, C, H, W), or (B, window) byte windows for
        text; returns losses, ``loss`` first."""
        ...


@runtime_checkable
class DensityModel(Protocol):
    """An exact discrete distribution over uint8 symbols in a fixed order (raster order for
    images, byte order for text): what an arithmetic coder, a likelihood test and an
    autoregressive sampler need."""

    levels: ClassVar[int]
    """Symbols per position (256 for 8-bit pixels)."""

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """p(x_i = k | x_<i) at every position: x uint8 (B, C, H, W) -> float (B, H, W, levels);
        for text (B, L) -> (B, L, levels)."""
        ...

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats of each item: (B,)."""
        ...

    def autoregress(self, n: int, choose: Callable[[torch.Tensor], torch.Tensor]
                    ) -> torch.Tensor:
        """Build ``n`` items symbol by symbol in order: at each position ``choose`` receives the
        (n, levels) conditional probabilities and returns the (n,) symbols taken (a seeded draw
        when sampling, the decoder's symbol when decoding). Returns uint8 (n, H, W, C), or
        (n, L) for text."""
        ...


def data_kind(model: Any) -> str:
    """IMAGES or TEXT: what a model's items are (families that say nothing model images)."""
    return getattr(model, "kind", IMAGES)


def one_shot(name: str) -> Callable[[Any, int | None, bool], SamplingPlan]:
    """The ``plan`` of a family whose sampling has no steps to choose (GAN, PixelCNN)."""
    from copyscope.models import FAMILIES

    def plan(self: Any, steps: int | None = None, ancestral: bool = False) -> SamplingPlan:
        if steps is not None or ancestral:
            raise CopyscopeError(f"--steps and --ancestral apply to diffusion models only; "
                                 f"this is a {name}.")
        return SamplingPlan(FAMILIES[name].sampler, None)

    return plan


def make_config(cls: type, values: dict[str, Any] | None, where: str) -> Any:
    """Build a config dataclass from user values, naming any unknown key in one sentence."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CopyscopeError(f"{where}: unknown setting {unknown[0]!r} "
                             f"(known: {', '.join(sorted(known))}).")
    for f in dataclasses.fields(cls):
        if f.name in values and isinstance(f.default, tuple):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def to_unit(batch: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0-255 -> float in [-1, 1], the range the networks work in."""
    return batch.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (n, C, H, W) in [-1, 1] -> uint8 (n, H, W, C), rounding to the nearest level."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, else the resident set size."""
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)
