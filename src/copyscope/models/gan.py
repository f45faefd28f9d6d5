"""DCGAN for small grayscale images, with dropout in the discriminator.

Radford, Metz & Chintala (2016), *Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks*: transposed-convolution generator with batch norm and ReLU,
strided-convolution discriminator with LeakyReLU, Adam (lr 2e-4, beta1 0.5), the non-saturating
loss of Goodfellow et al. (2014). Sized for 28x28 MNIST as in the TensorFlow DCGAN tutorial, whose
discriminator applies dropout 0.3 after each convolution: ``dropout`` sets that rate, so a GAN with
dropout can be compared with one without (the reference study's "less dropout, more copying?").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from copyscope.models.base import SamplingPlan, one_shot, to_uint8, to_unit


@dataclass(frozen=True)
class GANConfig:
    image_size: int = 28
    channels: int = 1
    latent_dim: int = 64
    width: int = 16
    """Channels of the discriminator's first layer; the generator uses 4x and 2x this."""
    dropout: float = 0.3
    lr: float = 2e-4
    beta1: float = 0.5


class DCGAN(nn.Module):
    name: ClassVar[str] = "gan"
    Config: ClassVar[type] = GANConfig
    plan = one_shot("gan")

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        if config.image_size % 4:
            raise ValueError("GAN image_size must be divisible by 4")
        self.config = config
        w, c, s = config.width, config.channels, config.image_size // 4
        self.generator = nn.Sequential(
            nn.Linear(config.latent_dim, 4 * w * s * s, bias=False),
            nn.Unflatten(1, (4 * w, s, s)),
            nn.BatchNorm2d(4 * w), nn.ReLU(True),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w), nn.ReLU(True),
            nn.ConvTranspose2d(2 * w, c, 4, 2, 1),
            nn.Tanh(),
        )
        self.discriminator = nn.Sequential(
            nn.Conv2d(c, w, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout(config.dropout),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout(config.dropout),
            nn.Flatten(), nn.Linear(2 * w * s * s, 1),
        )

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, 0.999)
        return {"generator": torch.optim.Adam(self.generator.parameters(), self.config.lr,
                                              betas=betas),
                "discriminator": torch.optim.Adam(self.discriminator.parameters(),
                                                  self.config.lr, betas=betas)}

    def train_step(self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        real = to_unit(batch)
        z = torch.randn(len(real), self.config.latent_dim, device=real.device)
        fake = self.generator(z)
        ones = torch.ones(len(real), 1, device=real.device)
        zeros = torch.zeros_like(ones)

        d_opt = optimizers["discriminator"]
        d_opt.zero_grad(set_to_none=True)
        d_loss = (F.binary_cross_entropy_with_logits(self.discriminator(real), ones)
                  + F.binary_cross_entropy_with_logits(self.discriminator(fake.detach()), zeros))
        d_loss.backward()
        d_opt.step()

        g_opt = optimizers["generator"]
        g_opt.zero_grad(set_to_none=True)
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        g_loss.backward()
        g_opt.step()
        return {"loss": g_loss.item() + d_loss.item(), "g_loss": g_loss.item(),
                "d_loss": d_loss.item()}

    def generate(self, n: int, generator: torch.Generator, plan: SamplingPlan | None = None
                 ) -> torch.Tensor:
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=generator.device)
        device = next(self.generator.parameters()).device
        return to_uint8(self.generator(z.to(device)))
