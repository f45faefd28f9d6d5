"""Gated PixelCNN with a 256-way softmax per pixel: exact likelihoods, pixel by pixel sampling.

van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016), *Conditional Image
Generation with PixelCNN Decoders*: a vertical stack (rows above) and a horizontal stack (pixels
to the left in the current row) of masked convolutions with gated activations
``tanh(a) * sigmoid(b)``, which removes the blind spot of the original PixelCNN (van den Oord,
Kalchbrenner & Kavukcuoglu 2016). Each pixel's 8-bit value has a categorical distribution over 256
levels given every pixel before it in raster order, so ``log_prob(x)`` is exact and
``conditionals(x)`` gives the distributions an arithmetic coder needs. Grayscale only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from copyscope.models.base import SamplingPlan, one_shot, to_unit
from copyscope.progress import progress

LEVELS = 256


@dataclass(frozen=True)
class PixelCNNConfig:
    image_size: int = 28
    channels: int = 1
    hidden: int = 16
    dilations: tuple[int, ...] = (1, 1, 2, 1, 1)
    """One gated layer per entry; dilation widens the receptive field at no extra cost."""
    lr: float = 1e-3


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution whose kernel is multiplied by a fixed 0/1 mask (causal in raster order)."""

    def __init__(self, c_in: int, c_out: int, mask: torch.Tensor, dilation: int = 1) -> None:
        kh, kw = mask.shape
        super().__init__(c_in, c_out, (kh, kw), dilation=dilation,
                         padding=(dilation * (kh - 1) // 2, dilation * (kw - 1) // 2))
        self.register_buffer("mask", mask[None, None].clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def vertical(c_in: int, c_out: int, mask_center: bool = False, dilation: int = 1) -> MaskedConv2d:
    """3x3 kernel seeing the row above and (unless ``mask_center``) the current row."""
    mask = torch.ones(3, 3)
    mask[2] = 0
    if mask_center:
        mask[1] = 0
    return MaskedConv2d(c_in, c_out, mask, dilation)


def horizontal(c_in: int, c_out: int, mask_center: bool = False, dilation: int = 1
               ) -> MaskedConv2d:
    """1x3 kernel seeing the pixel to the left and (unless ``mask_center``) the current one."""
    mask = torch.ones(1, 3)
    mask[0, 2] = 0
    if mask_center:
        mask[0, 1] = 0
    return MaskedConv2d(c_in, c_out, mask, dilation)


class GatedLayer(nn.Module):
    def __init__(self, c: int, dilation: int) -> None:
        super().__init__()
        self.v = vertical(c, 2 * c, dilation=dilation)
        self.h = horizontal(c, 2 * c, dilation=dilation)
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)

    def vertical(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The vertical stack: features (rows above) fed to the horizontal stack, and output."""
        feat = self.v(v)
        val, gate = feat.chunk(2, dim=1)
        return feat, torch.tanh(val) * torch.sigmoid(gate)

    def horizontal(self, h: torch.Tensor, v_feat: torch.Tensor) -> torch.Tensor:
        val, gate = (self.h(h) + self.v_to_h(v_feat)).chunk(2, dim=1)
        return h + self.h_out(torch.tanh(val) * torch.sigmoid(gate))


class GatedPixelCNN(nn.Module):
    name: ClassVar[str] = "pixelcnn"
    Config: ClassVar[type] = PixelCNNConfig
    plan = one_shot("pixelcnn")

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__()
        if config.channels != 1:
            raise ValueError("the gated PixelCNN here models grayscale images (channels = 1)")
        self.config = config
        c = config.hidden
        self.v_in = vertical(1, c, mask_center=True)
        self.h_in = horizontal(1, c, mask_center=True)
        self.layers = nn.ModuleList(GatedLayer(c, d) for d in config.dilations)
        self.out = nn.Conv2d(c, LEVELS, 1)

    @property
    def reach(self) -> int:
        """How many rows above, and columns to the left of, a pixel its distribution can depend
        on: each masked layer reaches one dilation further."""
        return 1 + sum(self.config.dilations)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 256, H, W) of each pixel's value given the pixels before it, x uint8
        (B, 1, H, W)."""
        u = to_unit(x)
        return self._horizontal(u, self._vertical(u))

    def _vertical(self, u: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's vertical-stack features; at row i they depend only on rows above i."""
        feats, v = [], self.v_in(u)
        for layer in self.layers:
            feat, v = layer.vertical(v)
            feats.append(feat)
        return feats

    def _horizontal(self, u: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        h = self.h_in(u)
        for layer, feat in zip(self.layers, feats, strict=True):
            h = layer.horizontal(h, feat)
        return self.out(F.elu(h))

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel conditional distributions (B, H, W, 256): p(x_ij = k | pixels before ij)."""
        return self.logits(x).softmax(dim=1).permute(0, 2, 3, 1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats of each uint8 image (B, 1, H, W)."""
        nll = F.cross_entropy(self.logits(x), x[:, 0].long(), reduction="none")
        return -nll.flatten(1).sum(1)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"pixelcnn": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def train_step(self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        """Minimise the negative log-likelihood; ``loss`` is in bits per pixel."""
        nll = -self.log_prob(batch).mean() / batch[0].numel()
        opt = optimizers["pixelcnn"]
        opt.zero_grad(set_to_none=True)
        nll.backward()
        opt.step()
        return {"loss": nll.item() / torch.log(torch.tensor(2.0)).item()}

    def generate(self, n: int, generator: torch.Generator, plan: SamplingPlan | None = None,
                 show: bool = False) -> torch.Tensor:
        """Sample pixel by pixel in raster order.

        A pixel's distribution depends only on the ``reach`` rows above it and, in its own row,
        the ``reach`` pixels to its left; the network runs on that window, not the whole image
        (the same numbers, see the tests). The vertical stack runs once per row.
        """
        size, r = self.config.image_size, self.reach
        device = next(self.parameters()).device
        x = torch.zeros(n, 1, size, size, dtype=torch.uint8, device=device)
        for i in progress(range(size), desc="rows", show=show):
            feats = [f[:, :, -1:] for f in self._vertical(to_unit(x[:, :, max(0, i - r) : i + 1]))]
            for j in range(size):
                left = max(0, j - r)
                window = to_unit(x[:, :, i : i + 1, left : j + 1])
                logits = self._horizontal(window, [f[..., left : j + 1] for f in feats])
                draw = torch.multinomial(logits[:, :, 0, -1].softmax(dim=1).to(generator.device),
                                         1, generator=generator)
                x[:, 0, i, j] = draw[:, 0].to(device, torch.uint8)
        return x.permute(0, 2, 3, 1).cpu()
