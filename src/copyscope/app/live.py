"""Live generation: a loaded run's model makes new images, judged at once as the audit would.

The reference study's demo, made fast: pick an audited run whose samples came from a model
(``copyscope sample``), a checkpoint of that model, DDIM steps (diffusion) and a seed; the model
generates, every new image is searched exactly against all training images, and the run's own
criteria and held-out control give the verdict (:func:`copyscope.app.state.judge`).

Sampling goes through the sampling stage's own model source (:mod:`copyscope.stages.sample`),
with the generator ``copyscope sample --seed S`` gives its first shard, so for diffusion (DDIM)
the i-th live image with the run's checkpoint, steps and seed is the run's audited sample i and
gets the same verdict (tested). The GAN draws its latents the same way; the PixelCNN's
pixel-by-pixel draws depend on how many images are drawn together, so it does not repeat them.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import torch

from copyscope.analysis.pairs import hstack
from copyscope.app.state import AppState, judge
from copyscope.app.views import Captioned, plain
from copyscope.errors import CopyscopeError
from copyscope.models.checkpoints import checkpoints
from copyscope.models.pipeline import is_pipeline
from copyscope.seeds import derived_seed
from copyscope.stages.sample import SAMPLE, Sampler, open_sampler
from copyscope.stages.train import CHECKPOINTS
from copyscope.tensors import default_device

MAX_IMAGES = 16


@dataclass(frozen=True)
class Source:
    """A loaded run's model: where it is, its checkpoints, and how its audited samples were made."""

    run: str
    model: Path
    family: str
    checkpoints: tuple[str, ...]
    checkpoint: str | None
    sampler: str
    steps: int | None
    """The sampler's steps, which the user may change where the sampler is DDIM."""
    seed: int

    @property
    def adjustable(self) -> bool:
        """Can the user choose the number of steps (DDIM)?"""
        return self.sampler == "ddim"


@dataclass
class Generated:
    gallery: list[Captioned]
    """One tile per image: the new image beside its nearest training image."""
    table: pd.DataFrame
    text: str
    seconds_per_image: float


def sources(state: AppState) -> dict[str, Source]:
    """The loaded runs whose samples came from a model that is still on disk."""
    found = {}
    for name, run in state.runs.items():
        record = run.sample
        if record is None or not record.model or not record.sampler:
            continue
        model = Path(record.model["run"])
        names = tuple(p.stem for p in checkpoints(model / CHECKPOINTS))
        if not (is_pipeline(model) or names):
            continue
        found[name] = Source(
            run=name, model=model, family=record.model["family"], checkpoints=names,
            checkpoint=Path(record.checkpoint or "").stem if names else None,
            sampler=record.sampler, steps=record.steps, seed=int(record.seed or 0))
    return found


def load_models(found: dict[str, Source]) -> None:
    """Load each source's model at its default checkpoint and steps (kept for :func:`generate`);
    a model that fails to load reports its error when it is used instead."""
    for s in found.values():
        with contextlib.suppress(CopyscopeError):
            _sampler(s, s.checkpoint, s.steps)


def generate(state: AppState, source: Source, checkpoint: str | None = None,
             steps: int | None = None, seed: int = 0, n: int = 4) -> Generated:
    """``n`` new images from ``source``'s model, each with its nearest training image and verdict.

    ``checkpoint`` defaults to the one the run's samples came from; ``steps`` (DDIM only) to the
    run's. Timings: generation per image, and search plus verdict for all of them.
    """
    if not 1 <= n <= MAX_IMAGES:
        raise CopyscopeError(f"generate between 1 and {MAX_IMAGES} images at a time, not {n}.")
    if source.adjustable and steps is not None and steps < 1:
        raise CopyscopeError("DDIM needs at least 1 step.")
    chosen = checkpoint or source.checkpoint
    sampler = _sampler(source, chosen, (steps or source.steps) if source.adjustable else None)
    generator = torch.Generator().manual_seed(derived_seed(seed, 0, SAMPLE))
    start = time.perf_counter()
    with torch.inference_mode():
        images = sampler.generate(n, generator).cpu().numpy()
    made = time.perf_counter() - start
    start = time.perf_counter()
    table, nb = judge(state, images, source.run)
    judged = time.perf_counter() - start
    train = state.train.images
    gallery = [(plain(hstack([im, train[i]])), f"#{k} · nearest #{i} · L2 {d:.3f} · "
                + ("COPY" if c else "not a copy"))
               for k, (im, i, d, c) in enumerate(zip(images, nb.index[:, 0], table["nn_l2"],
                                                     table["is_copy"], strict=True))]
    how = f"{sampler.plan.sampler}" + (f", {sampler.plan.steps} steps" if sampler.plan.steps
                                        else "")
    text = (f"{n} image(s) from {source.family} {Path(sampler.checkpoint).stem} ({how}, seed "
            f"{seed}) in {made:.2f} s, **{1000 * made / n:.0f} ms per image**; searched against "
            f"all {len(train):,} training images and judged in {1000 * judged:.0f} ms. "
            f"{int(table['is_copy'].sum())} flagged by {source.run}'s default criterion.")
    columns = ["sample", "nn_train", "nn_label", "nn_l2", "gu_ratio", "carlini", "heldout_p",
               *[c for c in table.columns if c.startswith("copy_")], "is_copy"]
    return Generated(gallery, table[columns].round(5), text, made / n)


@lru_cache(maxsize=4)
def _sampler(source: Source, checkpoint: str | None, steps: int | None) -> Sampler:
    """The sampling stage's model source, loaded once per (model, checkpoint, steps), sampled as
    the run was (ancestral DDPM stays ancestral)."""
    return open_sampler(source.model, checkpoint, steps, source.sampler == "ddpm",
                        default_device())
