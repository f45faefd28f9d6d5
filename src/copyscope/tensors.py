"""Where tensors live and how images become them: the one device choice and NCHW conversion."""

from __future__ import annotations

import numpy as np
import torch


def default_device() -> str:
    """CUDA where present, else the CPU; nothing assumes a GPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def to_nchw(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 images (N, H, W, C) as a contiguous uint8 tensor (N, C, H, W) of their own (a copy,
    so read-only inputs such as the cached MNIST arrays stay untouched)."""
    return torch.from_numpy(np.moveaxis(images, -1, 1).copy()).to(device)
