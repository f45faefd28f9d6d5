"""What the model families share: the Family and DensityModel protocols, config checks, pixel
conversions."""

from __future__ import annotations

import dataclasses
import resource
import sys
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from copyscope.errors import CopyscopeError


class Family(Protocol):
    """A generator family: built from its config, trained step by step, sampled in batches.

    Implementations are ``torch.nn.Module`` subclasses; ``state_dict()`` holds every weight a
    checkpoint stores. All randomness in ``train_step`` comes from torch's global generator, which
    the training loop seeds per epoch, so a resumed run repeats an uninterrupted one exactly.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    config: Any

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers ``train_step`` steps, by name (their state is part of resume state)."""
        ...

    def train_step(self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        """One optimisation step on a uint8 batch (B, C, H, W); returns losses, ``loss`` first."""
        ...

    def generate(self, n: int, generator: torch.Generator, steps: int | None = None
                 ) -> torch.Tensor:
        """``n`` new images as uint8 (n, H, W, C), all randomness drawn from ``generator``."""
        ...


@runtime_checkable
class DensityModel(Protocol):
    """An exact discrete distribution over uint8 symbols in a fixed order (raster order for
    images): what an arithmetic coder, a likelihood test and an autoregressive sampler need."""

    levels: ClassVar[int]  # 256

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """p(x_i = k | x_<i) at every position: x uint8 (B, C, H, W) -> float (B, H, W, levels)."""
        ...

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats of each item: (B,)."""
        ...

    def autoregress(self, n: int, choose: Callable[[torch.Tensor], torch.Tensor]
                    ) -> torch.Tensor:
        """Build n items symbol by symbol in order; at each position ``choose`` receives the
        (n, levels) conditional probabilities and returns the (n,) symbols taken (a seeded draw
        when sampling, the range decoder's symbol when decoding). Returns uint8 (n, H, W, C)."""
        ...


def is_trainable(model: Any) -> bool:
    """Whether a family learns by optimisation (``configure_optimizers`` and ``train_step``);
    a non-parametric family (gzip) instead keeps its training items (``fit``)."""
    return callable(getattr(model, "train_step", None))


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


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process: CUDA allocations on a GPU, else the resident set size."""
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)
