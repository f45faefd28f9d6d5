"""Generative model families that train on an image set and generate new images.

Each family (see :class:`copyscope.models.base.Family`) is imported on first use, so that
importing copyscope and starting the CLI does not pay for torch or diffusers. ``pixelcnn`` and
``gzip`` are also exact density models (:class:`copyscope.models.base.DensityModel`).
"""

from __future__ import annotations

import importlib
from typing import Any

from copyscope.errors import CopyscopeError

FAMILIES = {
    "diffusion": "copyscope.models.diffusion:Diffusion",
    "gan": "copyscope.models.gan:DCGAN",
    "gzip": "copyscope.models.gzipmodel:GzipModel",
    "pixelcnn": "copyscope.models.pixelcnn:GatedPixelCNN",
}


def family_class(name: str) -> Any:
    """The model class of a family name (see FAMILIES)."""
    if name not in FAMILIES:
        raise CopyscopeError(f"unknown model family {name!r}; use one of {', '.join(FAMILIES)}.")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["FAMILIES", "family_class"]
