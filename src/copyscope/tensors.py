"""Where tensors live and how images become them: the one device choice, NCHW conversion, and
the thread count of loops of tiny operations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def default_device() -> str:
    """CUDA where present, else the CPU; nothing assumes a GPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def to_nchw(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 images (N, H, W, C) as a contiguous uint8 tensor (N, C, H, W) of their own (a copy,
    so read-only inputs such as the cached MNIST arrays stay untouched)."""
    return torch.from_numpy(np.moveaxis(images, -1, 1).copy()).to(device)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block (the count restored after): for loops of
    tiny operations, such as decoding byte by byte, where a second thread only waits at every
    operation, and beside a busy core slows each one down (benchmarks/threads.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
