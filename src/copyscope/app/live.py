"""Live generation: a loaded run's model makes new images, judged at once as the audit would.

The reference study's demo, made fast: pick an audited run whose samples came from a model
(``copyscope sample``), a checkpoint of that model, DDIM steps (diffusion) and a seed; the model
generates, every new image is searched exactly against all training images, and the run's own
criteria and held-out control give the verdict (:func:`copyscope.app.state.judge`).

Sampling goes through the sampling stage's own model source (:mod:`copyscope.models.sample`),
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
from copyscope.models.base import default_device
from copyscope.models.pipeline import is_pipeline
from copyscope.models.sample import SAMPLE, Sampler, open_sampler
from copyscope.models.train import checkpoints, derived_seed

MAX_IMAGES = 16
DIFFUSION = ("diffusion", "pipeline")


@dataclass(frozen=True)
class Source:
    """A loaded run's model: where it is, its checkpoints, and how its audited samples were made."""

    run: str
    model: Path
    family: str
    checkpoints: tuple[str, ...]
    checkpoint: str | None
    steps: int | None
    seed: int


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
        stage = run.manifest.get("stages", {}).get("sample")
        if not stage or "model" not in stage:
            continue
        model = Path(stage["model"]["run"])
        family = stage["model"]["family"]
        if not (is_pipeline(model) or checkpoints(model)):
            continue
        names = tuple(p.stem for p in checkpoints(model))
        steps = stage.get("steps") if stage.get("sampler") == "ddim" else None
        if steps is None and family in DIFFUSION:  # sampled ancestrally: offer DDIM's default
            from copyscope.models.diffusion import DEFAULT_STEPS  # imports diffusers

            steps = DEFAULT_STEPS
        found[name] = Source(
            run=name, model=model, family=family, checkpoints=names,
            checkpoint=Path(stage["checkpoint"]).stem if names else None,
            steps=steps, seed=int(stage.get("seed", 0)))
    return found


def load_models(found: dict[str, Source]) -> None:
    """Load each source's model at its default checkpoint and steps (kept for :func:`generate`);
    a model that fails to load reports its error when it is used instead."""
    for s in found.values():
        with contextlib.suppress(CopyscopeError):
            _sampler(s.model, s.checkpoint, s.steps)


def generate(state: AppState, source: Source, checkpoint: str | None = None,
             steps: int | None = None, seed: int = 0, n: int = 4) -> Generated:
    """``n`` new images from ``source``'s model, each with its nearest training image and verdict.

    ``checkpoint`` defaults to the one the run's samples came from; ``steps`` (DDIM, diffusion
    only) to the run's. Timings: generation per image, and search plus verdict for all of them.
    """
    if not 1 <= n <= MAX_IMAGES:
        raise CopyscopeError(f"generate between 1 and {MAX_IMAGES} images at a time, not {n}.")
    diffusion = source.family in DIFFUSION
    if diffusion and steps is not None and steps < 1:
        raise CopyscopeError("DDIM needs at least 1 step.")
    chosen = checkpoint or source.checkpoint
    sampler = _sampler(source.model, chosen, (steps or source.steps) if diffusion else None)
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
    how = (f"DDIM {sampler.steps} steps" if sampler.sampler == "ddim" else sampler.sampler)
    text = (f"{n} image(s) from {source.family} {Path(sampler.checkpoint).stem} ({how}, seed "
            f"{seed}) in {made:.2f} s, **{1000 * made / n:.0f} ms per image**; searched against "
            f"all {len(train):,} training images and judged in {1000 * judged:.0f} ms. "
            f"{int(table['is_copy'].sum())} flagged by {source.run}'s default criterion.")
    columns = ["sample", "nn_train", "nn_label", "nn_l2", "gu_ratio", "carlini", "heldout_p",
               *[c for c in table.columns if c.startswith("copy_")], "is_copy"]
    return Generated(gallery, table[columns].round(5), text, made / n)


@lru_cache(maxsize=4)
def _sampler(model: Path, checkpoint: str | None, steps: int | None) -> Sampler:
    """The sampling stage's model source, loaded once per (model, checkpoint, steps)."""
    return open_sampler(model, checkpoint, steps, False, default_device())
