"""Gated PixelCNN: exact likelihoods, pixel by pixel sampling and decoding.

van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu (2016), *Conditional Image
Generation with PixelCNN Decoders*: a vertical stack (rows above) and a horizontal stack (pixels
to the left in the current row) of masked convolutions with gated activations
``tanh(a) * sigmoid(b)``, which removes the blind spot of the original PixelCNN (van den Oord,
Kalchbrenner & Kavukcuoglu 2016). Each pixel's 8-bit value has a categorical distribution over 256
levels given every pixel before it in raster order, so ``log_prob(x)`` is exact and
``conditionals(x)`` gives the distributions an arithmetic coder needs (the model is a
:class:`~copyscope.models.base.DensityModel`). Grayscale only.

Two output heads: ``softmax``, a free 256-way categorical per pixel (the original paper's), and
``logistic``, the discretized mixture of logistics of Salimans, Karpathy, Chen & Kingma (2017),
*PixelCNN++*, Sec. 2.1: a few smooth components whose mass on each 8-bit bin is a difference of
logistic CDFs, the end bins taking the tails. The mixture needs far fewer output weights and
shares statistical strength between neighbouring levels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from copyscope.errors import CopyscopeError
from copyscope.models.base import SamplingPlan, one_shot, to_unit
from copyscope.progress import progress
from copyscope.tensors import one_thread

LEVELS = 256
HEADS = ("softmax", "logistic")
LOG_SCALE_MIN = -7.0  # PixelCNN++'s floor on a component's log scale


@dataclass(frozen=True)
class PixelCNNConfig:
    image_size: int = 28
    channels: int = 1
    hidden: int = 16
    dilations: tuple[int, ...] = (1, 1, 2, 1, 1)
    """One gated layer per entry; dilation widens the receptive field at no extra cost."""
    lr: float = 1e-3
    head: str = "softmax"
    """``softmax`` (256 logits per pixel) or ``logistic`` (discretized logistic mixture)."""
    mixtures: int = 5
    """Components of the logistic mixture (PixelCNN++ used 10 for colour, 5 suits MNIST)."""
    lr_decay: float = 1.0
    """Learning rate after s steps = lr * lr_decay ** s (PixelCNN++: 0.999995)."""

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise CopyscopeError(f"PixelCNN head {self.head!r} is unknown; use one of "
                                 f"{', '.join(HEADS)}.")
        if self.mixtures < 1 or not 0 < self.lr_decay <= 1:
            raise CopyscopeError("PixelCNN settings: mixtures must be at least 1 and lr_decay "
                                 "in (0, 1].")


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
    levels: ClassVar[int] = LEVELS
    parallel_log_prob: ClassVar[bool] = True
    """``log_prob`` is one pass of the network over the whole image (the app codes a user's
    image with it on request)."""

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__()
        if config.channels != 1:
            raise ValueError("the gated PixelCNN here models grayscale images (channels = 1)")
        self.config = config
        c = config.hidden
        self.v_in = vertical(1, c, mask_center=True)
        self.h_in = horizontal(1, c, mask_center=True)
        self.layers = nn.ModuleList(GatedLayer(c, d) for d in config.dilations)
        outputs = LEVELS if config.head == "softmax" else 3 * config.mixtures
        self.out = nn.Conv2d(c, outputs, 1)

    @property
    def reach(self) -> int:
        """How many rows above, and columns to the left of, a pixel its distribution can depend
        on: each masked layer reaches one dilation further."""
        return 1 + sum(self.config.dilations)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output (B, outputs, H, W) at each pixel given the pixels before it, x uint8
        (B, 1, H, W): 256 logits (softmax head) or the mixture's parameters (logistic head)."""
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

    def _log_probs(self, out: torch.Tensor) -> torch.Tensor:
        """Normalised log-probabilities (B, 256, ...) of every level from the head's output."""
        if self.config.head == "softmax":
            return out.log_softmax(dim=1)
        levels = torch.arange(LEVELS, device=out.device).view(1, 1, LEVELS,
                                                             *[1] * (out.dim() - 2))
        # (B, K, 256, ...) intermediates: a few images at a time keeps them near 100 MB
        per_item = self.config.mixtures * LEVELS * out[0, 0].numel()
        step = max(1, (1 << 22) // per_item)
        # renormalised: PixelCNN++'s tail approximation leaves the sum a hair off one
        return torch.cat([logistic_mixture(out[s : s + step], levels).log_softmax(dim=1)
                          for s in range(0, len(out), step)])

    def _probs(self, out: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, 256, ...) of every level from the head's output (B, outputs, ...)."""
        if self.config.head == "softmax":
            return out.softmax(dim=1)
        return self._log_probs(out).exp()

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel conditional distributions (B, H, W, 256): p(x_ij = k | pixels before ij)."""
        return self._probs(self.logits(x)).permute(0, 2, 3, 1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats of each uint8 image (B, 1, H, W)."""
        out = self.logits(x)
        if self.config.head == "softmax":
            nll = F.cross_entropy(out, x[:, 0].long(), reduction="none")
            return -nll.flatten(1).sum(1)
        picked = self._log_probs(out).gather(1, x.long())  # (B, 1, H, W)
        return picked.flatten(1).sum(1)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"pixelcnn": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def train_step(self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        """Minimise the negative log-likelihood; ``loss`` is in bits per pixel.

        The logistic head minimises PixelCNN++'s loss at the observed levels only (the exact
        evaluation in ``log_prob`` renormalises over all 256 levels; they differ by the tail
        approximation, far below a thousandth of a bit).
        """
        if self.config.head == "softmax":
            nll = -self.log_prob(batch).mean() / batch[0].numel()
        else:
            levels = batch.long().unsqueeze(2)  # (B, 1, 1, H, W)
            nll = -logistic_mixture(self.logits(batch), levels).mean()
        opt = optimizers["pixelcnn"]
        if self.config.lr_decay != 1.0:  # the step count lives in Adam's state, so resume agrees
            done = opt.state[next(iter(self.parameters()))].get("step", 0)
            for group in opt.param_groups:
                group["lr"] = self.config.lr * self.config.lr_decay ** float(done)
        opt.zero_grad(set_to_none=True)
        nll.backward()
        opt.step()
        return {"loss": nll.item() / torch.log(torch.tensor(2.0)).item()}

    def autoregress(self, n: int, choose: Callable[[torch.Tensor], torch.Tensor],
                    show: bool = False) -> torch.Tensor:
        """Build ``n`` images pixel by pixel in raster order; ``choose`` gets each pixel's
        (n, 256) conditional probabilities and returns the (n,) levels taken.

        A pixel's distribution depends only on the ``reach`` rows above it and, in its own row,
        the ``reach`` pixels to its left; the network runs on that window, not the whole image
        (the same numbers, see the tests). The vertical stack runs once per row. Sampling and
        the range coder both go through here, so encoder and decoder see identical floats; on
        one thread, so that the per-pixel steps do not wait on a second thread.
        """
        size, r = self.config.image_size, self.reach
        device = next(self.parameters()).device
        x = torch.zeros(n, 1, size, size, dtype=torch.uint8, device=device)
        with one_thread():
            for i in progress(range(size), desc="rows", show=show):
                rows = to_unit(x[:, :, max(0, i - r) : i + 1])
                feats = [f[:, :, -1:] for f in self._vertical(rows)]
                for j in range(size):
                    left = max(0, j - r)
                    window = to_unit(x[:, :, i : i + 1, left : j + 1])
                    out = self._horizontal(window, [f[..., left : j + 1] for f in feats])
                    x[:, 0, i, j] = choose(self._probs(out[:, :, 0, -1])).to(device, torch.uint8)
        return x.permute(0, 2, 3, 1).cpu()

    def generate(self, n: int, generator: torch.Generator, plan: SamplingPlan | None = None,
                 show: bool = False) -> torch.Tensor:
        """Sample pixel by pixel in raster order, every draw from ``generator``."""
        def draw(probs: torch.Tensor) -> torch.Tensor:
            return torch.multinomial(probs.to(generator.device), 1, generator=generator)[:, 0]

        return self.autoregress(n, draw, show)


def logistic_mixture(out: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """log p(level) under a discretized mixture of logistics, Salimans et al. (2017), Eq. 2.

    ``out`` (B, 3K, ...) holds the mixture logits, means and log scales; ``levels`` (integer,
    broadcastable to (B, 1, L, ...)) are the 8-bit levels asked for. Returns (B, L, ...).
    Level k's bin is [k - 0.5, k + 0.5] / 127.5 - 1, level 0 takes the lower tail and 255 the
    upper; where a bin's mass falls below 1e-5 the density at its centre times its width is used
    (the paper's guard against catastrophic cancellation).
    """
    logit_pi, mu, log_s = (t.unsqueeze(2) for t in out.chunk(3, dim=1))  # (B, K, 1, ...)
    log_s = log_s.clamp(min=LOG_SCALE_MIN)
    inv_s = torch.exp(-log_s)
    centre = levels.float() / 127.5 - 1.0 - mu  # (B, K, L, ...)
    plus, minus = (centre + 1 / 255) * inv_s, (centre - 1 / 255) * inv_s
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): level 0
    log_upper = -F.softplus(minus)  # log (1 - sigmoid(minus)): level 255
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = centre * inv_s
    log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid)
    inner = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)),
                        log_pdf_mid - torch.log(torch.tensor(127.5)))
    log_p = torch.where(levels == 0, log_cdf_plus, torch.where(levels == LEVELS - 1, log_upper,
                                                                inner))
    return torch.logsumexp(log_p + logit_pi.log_softmax(dim=1), dim=1)
