"""A byte-level causal transformer: the text family that trains, generates and gives exact byte
probabilities (a :class:`~copyscope.models.base.DensityModel` over bytes).

GPT (Radford, Wu, Child, Luan, Amodei & Sutskever 2019, *Language Models are Unsupervised
Multitask Learners*) as Karpathy's nanoGPT writes it: token and learned position embeddings,
pre-LayerNorm blocks of causal self-attention and a 4x GELU MLP, a final LayerNorm and a linear
head over the 256 byte values. The tokens are the 256 bytes plus ``BOS`` (256), which begins
every window the model sees, so the first byte of a window has a distribution too and the model
starts its view of a text the same way in training, sampling, coding and prompting.

The model sees ``context`` tokens at most: BOS and ``context - 1`` bytes. A longer sequence is
predicted in blocks (the sliding-window trick, with stride S = context / 2): block 0 holds bytes
[0, context), each later block the next S bytes, predicted from a window that begins S - 1 bytes
before the block, so every byte after the first block has between S - 1 and context - 1 bytes
of context (:func:`blocks`). Training draws windows of ``context`` bytes from inside one
document each (:mod:`copyscope.data.windows`), which is exactly block 0 of that window.

Two ways through the blocks, the same probabilities up to float rounding:

- :meth:`TextLM.conditionals` and :meth:`TextLM.log_prob`: one parallel forward per window
  (teacher forcing), for likelihoods and membership scores;
- :meth:`TextLM.autoregress`: byte by byte with a key/value cache, the path of sampling, greedy
  extraction and the range coder (whose encoder and decoder must see bit-identical floats, so
  both go through here). Each block restarts its cache from the window's first bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from copyscope.errors import CopyscopeError
from copyscope.models.base import TEXT, SamplingPlan, one_shot
from copyscope.progress import progress
from copyscope.tensors import one_thread

LEVELS = 256
BOS = 256
WINDOWS = 64  # windows per forward pass in conditionals / log_prob


@dataclass(frozen=True)
class TextLMConfig:
    context: int = 256
    """Tokens the model sees: BOS and context - 1 bytes (even; training windows are this long)."""
    layers: int = 4
    dim: int = 256
    heads: int = 4
    dropout: float = 0.0
    length: int = 512
    """Bytes of each generated text."""
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    """Steps of linear warm-up to ``lr``."""
    decay_steps: int = 0
    """Cosine decay from ``lr`` to ``min_lr`` over this many steps after the warm-up (0: constant
    ``lr``); the step count lives in the optimizer's state, so a resumed run agrees."""
    weight_decay: float = 0.1

    def __post_init__(self) -> None:
        checks = [
            (self.context >= 4 and self.context % 2 == 0, "context must be even and at least 4"),
            (self.layers >= 1 and self.heads >= 1, "layers and heads must be at least 1"),
            (self.dim % self.heads == 0, "dim must be a multiple of heads"),
            (0 <= self.dropout < 1, "dropout must lie in [0, 1)"),
            (self.length >= 1, "length must be at least 1"),
            (self.lr > 0 and 0 <= self.min_lr <= self.lr, "need lr > 0 and 0 <= min_lr <= lr"),
            (self.warmup >= 0 and self.decay_steps >= 0, "warmup and decay_steps must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise CopyscopeError(f"textlm settings: {message}.")


def blocks(length: int, context: int) -> list[tuple[int, int, int]]:
    """(start, end, view) of every block of a ``length``-byte sequence: bytes [start, end) are
    predicted from the window BOS + bytes [view, end - 1), at most ``context`` tokens."""
    stride = context // 2
    out = [(0, min(length, context), 0)]
    for start in range(context, length, stride):
        out.append((start, min(length, start + stride), start - stride + 1))
    return out if length > 0 else []


class SelfAttention(nn.Module):
    def __init__(self, c: TextLMConfig) -> None:
        super().__init__()
        self.heads, self.dropout = c.heads, c.dropout
        self.qkv = nn.Linear(c.dim, 3 * c.dim)
        self.proj = nn.Linear(c.dim, c.dim)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, cache: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Causal attention over x (B, t, C); with ``cache`` ([] to start, else [k, v] of the
        positions before x), x's keys and values are appended to it."""
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2)  # (B, h, t, hd)
                   for z in self.qkv(x).split(c, dim=2))
        past = cache is not None and len(cache) > 0
        if past:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # (B, h, T, hd)
        if cache is not None:
            cache[:] = [k, v]
        if past and t > 1:
            raise ValueError("a cached attention step takes one new token at a time")
        y = F.scaled_dot_product_attention(q, k, v, is_causal=not past,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, c)  # (B, t, C)
        return self.drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, c: TextLMConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.dim), nn.LayerNorm(c.dim)
        self.attn = SelfAttention(c)
        self.mlp = nn.Sequential(nn.Linear(c.dim, 4 * c.dim), nn.GELU(),
                                 nn.Linear(4 * c.dim, c.dim), nn.Dropout(c.dropout))

    def forward(self, x: torch.Tensor, cache: list[torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class TextLM(nn.Module):
    name: ClassVar[str] = "textlm"
    Config: ClassVar[type] = TextLMConfig
    plan = one_shot("textlm")
    levels: ClassVar[int] = LEVELS
    kind: ClassVar[str] = TEXT

    def __init__(self, config: TextLMConfig) -> None:
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(LEVELS + 1, c.dim)  # bytes and BOS
        self.wpe = nn.Embedding(c.context, c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, LEVELS, bias=False)
        for name, p in self.named_parameters():  # GPT-2's initialisation, as nanoGPT does it
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c.layers) if name.endswith(
                    ("attn.proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    @property
    def window(self) -> int:
        """Bytes per training window."""
        return self.config.context

    def forward(self, tokens: torch.Tensor, position: int = 0,
                cache: list[list[torch.Tensor]] | None = None) -> torch.Tensor:
        """Logits (B, t, 256) of the next byte after each token of ``tokens`` (B, t), the first at
        ``position`` of its window; ``cache`` holds each layer's keys and values."""
        t = tokens.shape[1]
        pos = torch.arange(position, position + t, device=tokens.device)  # (t,)
        x = self.drop(self.wte(tokens) + self.wpe(pos))  # (B, t, C)
        for k, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[k])
        return self.head(self.ln_f(x))  # (B, t, 256)

    def _predict(self, x: torch.Tensor, own: bool) -> torch.Tensor:
        """log p of every byte of x (B, L) uint8 given its block's window, by parallel forward
        passes: (B, L, 256) every level, or (B, L) each byte's own (``own``)."""
        b, length = x.shape
        t = self.config.context
        out = torch.zeros((b, length) if own else (b, length, LEVELS), device=x.device)
        spans = [(i, *blk) for i in range(b) for blk in blocks(length, t)]
        for g in range(0, len(spans), WINDOWS):
            group = spans[g : g + WINDOWS]
            tokens = torch.full((len(group), t), BOS, dtype=torch.long, device=x.device)
            for j, (i, _, end, view) in enumerate(group):  # right padding: causal, unseen
                tokens[j, 1 : end - view] = x[i, view : end - 1]
            logp = self(tokens).log_softmax(-1)  # (G, T, 256)
            for j, (i, start, end, view) in enumerate(group):
                rows = logp[j, start - view : end - view]  # (end - start, 256)
                out[i, start:end] = (rows.gather(1, x[i, start:end, None].long())[:, 0] if own
                                     else rows)
        return out

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """p(x_i = k | the bytes of its window before it) at every byte: x uint8 (B, L) ->
        float (B, L, 256)."""
        return self._predict(x, own=False).exp()

    def byte_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log p (nats) of every byte of x (B, L) uint8: (B, L)."""
        return self._predict(x, own=True)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats of each byte sequence (B, L): (B,)."""
        return self.byte_log_probs(x).sum(1)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """AdamW, weight decay on matrices only (nanoGPT's grouping)."""
        decay = [p for p in self.parameters() if p.dim() >= 2]
        rest = [p for p in self.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.config.weight_decay},
                  {"params": rest, "weight_decay": 0.0}]
        return {"textlm": torch.optim.AdamW(groups, lr=self.config.lr, betas=(0.9, 0.99))}

    def learning_rate(self, step: int) -> float:
        """Linear warm-up, then cosine decay to ``min_lr`` over ``decay_steps`` (if any)."""
        c = self.config
        if step < c.warmup:
            return c.lr * (step + 1) / (c.warmup + 1)
        if c.decay_steps == 0:
            return c.lr
        done = min(1.0, (step - c.warmup) / c.decay_steps)
        return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * done)) * (c.lr - c.min_lr)

    def train_step(self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]
                   ) -> dict[str, float]:
        """One step on windows (B, context) uint8: every byte predicted from BOS and the bytes
        before it in its window; ``loss`` is in bits per byte."""
        opt = optimizers["textlm"]
        state = opt.state.get(next(iter(self.parameters())), {})
        for group in opt.param_groups:
            group["lr"] = self.learning_rate(int(state.get("step", 0)))
        bos = torch.full((len(batch), 1), BOS, dtype=torch.long, device=batch.device)
        tokens = torch.cat([bos, batch[:, :-1].long()], dim=1)  # (B, T)
        logits = self(tokens)  # (B, T, 256)
        loss = F.cross_entropy(logits.reshape(-1, LEVELS), batch.reshape(-1).long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters(), 1.0)
        opt.step()
        return {"loss": loss.item() / math.log(2)}

    def autoregress(self, n: int, choose: Callable[[torch.Tensor], torch.Tensor],
                    length: int | None = None, prefix: torch.Tensor | None = None,
                    show: bool = False) -> torch.Tensor:
        """Build ``n`` byte sequences of ``length`` (default ``config.length``) byte by byte;
        ``choose`` gets each byte's (n, 256) probabilities and returns the (n,) bytes taken.
        ``prefix`` (n, P) uint8 is given, not chosen: the sequences continue it (prompting).
        Returns uint8 (n, length), prefix included."""
        length = self.config.length if length is None else length
        device = next(self.parameters()).device
        x = torch.zeros(n, length, dtype=torch.uint8, device=device)
        given = 0 if prefix is None else prefix.shape[1]
        if given >= length or (prefix is not None and prefix.shape[0] != n):
            raise ValueError("a prefix must be (n, P) with P shorter than the length")
        if prefix is not None:
            x[:, :given] = prefix.to(device)
        todo = [blk for blk in blocks(length, self.config.context) if blk[1] > given]
        with one_thread():
            for start, end, view in progress(todo, desc="blocks", show=show):
                first = max(start, given)
                cache: list[list[torch.Tensor]] = [[] for _ in self.blocks]
                bos = torch.full((n, 1), BOS, dtype=torch.long, device=device)
                tokens = torch.cat([bos, x[:, view:first].long()], dim=1)  # (n, first-view+1)
                logits = self(tokens, 0, cache)[:, -1]  # (n, 256)
                for i in range(first, end):
                    x[:, i] = choose(logits.softmax(-1)).to(device, torch.uint8)
                    if i + 1 < end:
                        logits = self(x[:, i : i + 1].long(), i - view + 1, cache)[:, -1]
        return x.cpu()

    def generate(self, n: int, generator: torch.Generator, plan: SamplingPlan | None = None,
                 show: bool = False) -> torch.Tensor:
        """``n`` texts of ``config.length`` bytes, uint8 (n, L), every draw from ``generator``."""
        def draw(probs: torch.Tensor) -> torch.Tensor:
            return torch.multinomial(probs.to(generator.device), 1, generator=generator)[:, 0]

        return self.autoregress(n, draw, show=show)
