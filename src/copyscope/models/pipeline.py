"""Diffusers pipeline directories that users bring: ``save_pretrained`` output of a pipeline with a
``UNet2DModel`` (``unet/``) and a scheduler config (``scheduler/``), read from local files only.

A loaded pipeline is a :class:`copyscope.models.base.Generator` like any family, sampled with the
diffusion family's DDIM / ancestral DDPM sampler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from copyscope.errors import CopyscopeError
from copyscope.hashing import sha256_bytes
from copyscope.models.base import SamplingPlan

UNET, SCHEDULER = "unet", "scheduler"


class Pipeline:
    """A user's diffusers pipeline as a Generator: its UNet and its scheduler's config."""

    name: ClassVar[str] = "pipeline"

    def __init__(self, unet: Any, scheduler_config: dict[str, Any]) -> None:
        self.unet = unet
        self.scheduler_config = scheduler_config

    def plan(self, steps: int | None = None, ancestral: bool = False) -> SamplingPlan:
        from copyscope.models.diffusion import plan

        return plan(self.scheduler_config["num_train_timesteps"], steps, ancestral)

    def generate(self, n: int, generator: torch.Generator, plan: SamplingPlan | None = None
                 ) -> torch.Tensor:
        from copyscope.models.diffusion import denoise

        return denoise(self.unet, self.scheduler_config, n, generator, plan or self.plan())


def is_pipeline(path: Path) -> bool:
    path = Path(path)
    return (path / UNET / "config.json").is_file() and (
        path / SCHEDULER / "scheduler_config.json").is_file()


def load_pipeline(path: Path, device: str = "cpu") -> Pipeline:
    """The pipeline's UNet (eval mode) and scheduler config; never reaches a hub."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = Path(path)
    try:
        unet = UNet2DModel.from_pretrained(path, subfolder=UNET, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise CopyscopeError(f"{path / UNET} does not hold a loadable UNet2DModel ({_first(e)})."
                             ) from e
    try:
        scheduler_config = DDPMScheduler.load_config(path, subfolder=SCHEDULER,
                                                     local_files_only=True)
    except (OSError, ValueError) as e:
        raise CopyscopeError(f"{path / SCHEDULER} does not hold a readable scheduler config "
                             f"({_first(e)}).") from e
    return Pipeline(unet.to(device).eval(), dict(scheduler_config))


def pipeline_hash(path: Path) -> str:
    """Content hash of the UNet's files and the scheduler config: what makes the model."""
    files = sorted(p for sub in (UNET, SCHEDULER) for p in (Path(path) / sub).rglob("*")
                   if p.is_file())
    return sha256_bytes(*(f.relative_to(path).as_posix().encode() + f.read_bytes()
                          for f in files))


def _first(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
