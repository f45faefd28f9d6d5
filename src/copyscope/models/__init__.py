"""Generative model families that train on an image set (or a text corpus) and generate new
images (or texts).

Each family registers here with the facts that place one of its models in a comparison (a GAN's
dropout, say): the sample stage records them, and the trend tables, the report and the study
table show them, without naming any family. The family classes (see :mod:`.base` for their
protocols) are imported on first use, so that importing copyscope and starting the CLI does not
pay for torch or diffusers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from copyscope.errors import CopyscopeError


@dataclass(frozen=True)
class Family:
    """A registered family: where its class is, its facts, and how it samples."""

    target: str
    """``module:Class``."""
    sampler: str
    """The sampler's name as run.json records it."""
    default_steps: int | None = None
    """The sampler's default step count; None where sampling has no steps to choose."""
    facts: tuple[str, ...] = ()
    """Config settings that place a model in a comparison (columns of the trend tables)."""
    data: tuple[str, ...] = ("images",)
    """What it trains on: "images" (an image SPEC), "text" (a text corpus SPEC), or either."""


FAMILIES = {
    "diffusion": Family("copyscope.models.diffusion:Diffusion", "ddim", default_steps=50),
    "gan": Family("copyscope.models.gan:DCGAN", "latent", facts=("dropout",)),
    "pixelcnn": Family("copyscope.models.pixelcnn:GatedPixelCNN", "autoregressive"),
    "gzip": Family("copyscope.models.gzipmodel:GzipModel", "autoregressive",
                   data=("images", "text")),
    "textlm": Family("copyscope.models.textlm:TextLM", "autoregressive", data=("text",)),
}


def family_class(name: str) -> Any:
    """The model class of a family name (see FAMILIES)."""
    if name not in FAMILIES:
        raise CopyscopeError(f"unknown model family {name!r}; use one of {', '.join(FAMILIES)}.")
    module, cls = FAMILIES[name].target.split(":")
    return getattr(importlib.import_module(module), cls)


def fact_names() -> tuple[str, ...]:
    """Every registered family's facts, in registry order: the fact columns of a comparison."""
    return tuple(dict.fromkeys(f for family in FAMILIES.values() for f in family.facts))


def model_facts(family: str, config: Any) -> dict[str, Any]:
    """Every fact of :func:`fact_names` for a model: its own from its config, None for the rest."""
    own = FAMILIES[family].facts if family in FAMILIES else ()
    return {f: getattr(config, f) if f in own else None for f in fact_names()}


__all__ = ["FAMILIES", "Family", "fact_names", "family_class", "model_facts"]
