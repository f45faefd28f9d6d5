"""DDPM on small images with diffusers: a ``UNet2DModel`` and a ``DDPMScheduler``.

Ho, Jain & Abbeel (2020), *Denoising Diffusion Probabilistic Models*: a network learns to undo
the noise added at a random timestep of a fixed schedule. By default it predicts the velocity
v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho 2022), which on a CPU budget of a few hundred
steps learns far faster than the original epsilon target (still available, as is x0).
Sampling is either full ancestral DDPM over all T timesteps, or DDIM (Song, Meng & Ermon 2021,
*Denoising Diffusion Implicit Models*, eta = 0) over a configurable number of steps.
:func:`denoise` also samples the diffusers pipelines users bring (:mod:`.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import nn

from copyscope.models import FAMILIES
from copyscope.models.base import SamplingPlan, to_uint8, to_unit
from copyscope.progress import progress

DEFAULT_STEPS = FAMILIES["diffusion"].default_steps


@dataclass(frozen=True)
class DiffusionConfig:
    image_size: int = 28
    channels: int = 1
    block_out_channels: tuple[int, ...] = (16, 32, 32)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    attention: bool = False
    """Self-attention in the lowest-resolution block (as in the DDPM paper's 16x16 level)."""
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    prediction_type: str = "v_prediction"
    """What the UNet predicts: "epsilon" (the noise, Ho et al. 2020), "sample" (the clean image)
    or "v_prediction" (Salimans & Ho 2022, *Progressive Distillation for Fast Sampling*)."""
    lr: float = 1e-3
    grad_clip: float = 1.0


class Diffusion(nn.Module):
    """A DDPM: UNet2DModel noise predictor, DDPMScheduler noise schedule."""

    name: ClassVar[str] = "diffusion"
    Config: ClassVar[type] = DiffusionConfig

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        levels = len(config.block_out_channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if config.attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet = UNet2DModel(
            sample_size=config.image_size, in_channels=config.channels,
            out_channels=config.channels, layers_per_block=config.layers_per_block,
            block_out_channels=config.block_out_channels, down_block_types=tuple(down),
            up_block_types=tuple(up), norm_num_groups=config.norm_num_groups,
        )
        self.scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps,
                                       beta_schedule=config.beta_schedule,
                                       prediction_type=config.prediction_type)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"unet": torch.optim.Adam(self.unet.parameters(), lr=self.config.lr)}

    def train_step(self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        x = to_unit(batch)
        noise = torch.randn_like(x)
        t = torch.randint(0, self.config.num_train_timesteps, (len(x),), device=x.device)
        noisy = self.scheduler.add_noise(x, noise, t)
        target = {"epsilon": noise, "sample": x}.get(self.config.prediction_type)
        if target is None:  # v_prediction
            target = self.scheduler.get_velocity(x, noise, t)
        loss = F.mse_loss(self.unet(noisy, t).sample, target)
        opt = optimizers["unet"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.unet.parameters(), self.config.grad_clip)
        opt.step()
        return {"loss": loss.item()}

    def plan(self, steps: int | None = None, ancestral: bool = False) -> SamplingPlan:
        return plan(self.config.num_train_timesteps, steps, ancestral)

    def generate(self, n: int, generator: torch.Generator, plan: SamplingPlan | None = None
                 ) -> torch.Tensor:
        return denoise(self.unet, self.scheduler.config, n, generator, plan or self.plan())


def plan(timesteps: int, steps: int | None, ancestral: bool) -> SamplingPlan:
    """DDIM with ``steps`` steps (default 50), or ancestral DDPM over all ``timesteps``."""
    if ancestral:
        return SamplingPlan("ddpm", timesteps)
    return SamplingPlan(FAMILIES["diffusion"].sampler, steps or DEFAULT_STEPS)


def denoise(unet: UNet2DModel, scheduler_config: Any, n: int, generator: torch.Generator,
            plan: SamplingPlan, show: bool = False) -> torch.Tensor:
    """Generate ``n`` images from pure noise as ``plan`` says (DDIM, or ancestral DDPM over every
    training timestep). Returns uint8 (n, H, W, C)."""
    if plan.sampler == "ddpm":
        scheduler = DDPMScheduler.from_config(scheduler_config)
        scheduler.set_timesteps(scheduler.config.num_train_timesteps)
    else:
        scheduler = DDIMScheduler.from_config(scheduler_config)
        scheduler.set_timesteps(plan.steps)
    cfg = unet.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else tuple(cfg.sample_size)
    hw = (size, size) if isinstance(size, int) else size
    device = next(unet.parameters()).device
    x = torch.randn((n, cfg.in_channels, *hw), generator=generator,
                    device=generator.device).to(device)
    for t in progress(scheduler.timesteps, desc="denoise", show=show):
        prediction = unet(x, t).sample
        x = scheduler.step(prediction, t, x, generator=generator).prev_sample
    return to_uint8(x)
