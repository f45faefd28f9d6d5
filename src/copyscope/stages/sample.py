"""The sampling stage: a trained model (or a user's diffusers pipeline) in; uint8 shards out.

    <out>/samples/shard-00000.npy ...   uint8 (N, H, W), or (N, H, W, C) for colour; a text
                                        model's texts as bytes (N, L), each shard with its
                                        .jsonl view beside it (data.shards.text_view)
    <out>/run.json                      stage "sample" (SampleRecord): model, checkpoint, sampler

Shard k is drawn from a generator seeded with (seed, k), so an interrupted run resumes shard by
shard and the same seed gives the same images. By default the samples of a training run's newest
checkpoint go into the run directory itself (which is then a samples SPEC for ``audit``), and those
of an earlier checkpoint into ``<run>/epochs/<checkpoint>/``, a run directory of its own whose
sample stage names the training run (what an epoch sweep audits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from copyscope import cluster
from copyscope.data.shards import SAMPLES_DIR, text_view
from copyscope.errors import CopyscopeError
from copyscope.files import save_npy
from copyscope.models import model_facts
from copyscope.models.base import TEXT, Generator, SamplingPlan, data_kind, peak_memory_mb
from copyscope.models.checkpoints import checkpoint_meta, model_hash
from copyscope.models.pipeline import is_pipeline, load_pipeline, pipeline_hash
from copyscope.progress import bar
from copyscope.records import SampleIdentity, SampleRecord, TrainRecord
from copyscope.rundir import RunDir, command_line, now, versions
from copyscope.seeds import derived_seed
from copyscope.stages.train import load_model
from copyscope.tensors import default_device

EPOCHS = "epochs"
SHARD = 1000
SAMPLE = 0x5A3


@dataclass
class Sampler:
    """A ready model source: the generator, how it samples, and what the sample stage records."""

    generator: Generator
    plan: SamplingPlan
    model: dict[str, Any]
    """family, train_size, the family facts and run (its absolute path, so the run is found from
    any directory), as the sample record stores them."""
    checkpoint: str
    checkpoint_sha256: str
    epoch: int | None
    step: int | None

    def generate(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """``n`` images as uint8 (n, H, W, C), all randomness from ``rng``."""
        return self.generator.generate(n, rng, self.plan)


def sample(source: str | Path, n: int, out: str | Path | None = None,
           checkpoint: str | None = None, steps: int | None = None, ancestral: bool = False,
           seed: int = 0, batch_size: int = 250, device: str | None = None,
           force: bool = False, show: bool = True, backend: str = "local", workers: int = 2,
           address: str = "") -> Path:
    """Generate ``n`` images from a training run or a diffusers pipeline directory.

    ``steps`` sets the DDIM steps of diffusion models (default 50); ``ancestral`` samples with
    full ancestral DDPM over every training timestep instead. ``backend="ray"`` draws the
    shards on ``workers`` Ray workers (CPU; at ``address``, else a local cluster), the same
    images as a local run. Returns the run directory written.
    """
    source = Path(source)
    _check(n, batch_size, steps, backend, workers, address)
    device = "cpu" if backend == "ray" else device or default_device()  # ray: the driver's copy
    sampler = open_sampler(source, checkpoint, steps, ancestral, device)
    if out is None:
        if sampler.model["family"] == "pipeline":
            raise CopyscopeError(f"{source} is a diffusers pipeline; give --out for its samples.")
        out = source if checkpoint is None else source / EPOCHS / Path(sampler.checkpoint).stem
    run = RunDir(Path(out))
    identity = SampleIdentity(model=sampler.checkpoint_sha256, n=n, steps=sampler.plan.steps,
                              sampler=sampler.plan.sampler, seed=seed, batch_size=batch_size,
                              shard=SHARD)
    if run.done(SampleRecord, identity) is not None:
        return run.path  # already done: keep its record (and its timings)
    run.claim(SampleRecord, identity, force)  # --force: another run's shards are removed
    started, began = now(), time.perf_counter()
    if backend == "ray":
        from copyscope.stages.sample_ray import draw_shards_on_ray

        drawn = draw_shards_on_ray(run, source, checkpoint, steps, ancestral, n, seed,
                                   batch_size, workers, address, show)
    else:
        drawn = _draw_shards(run, sampler, n, seed, batch_size, show)
    if data_kind(sampler.generator) == TEXT:
        _text_views(run, n)
    seconds = time.perf_counter() - began
    run.write(SampleRecord(
        identity=identity, status="complete", model=sampler.model,
        checkpoint=sampler.checkpoint, checkpoint_sha256=sampler.checkpoint_sha256,
        epoch=sampler.epoch, step=sampler.step, steps=sampler.plan.steps,
        sampler=sampler.plan.sampler, seed=seed, n=n, batch_size=batch_size,
        seeds={"shard k": f"(seed, k) -> seed {seed}"},
        device=f"ray ({workers} workers, cpu)" if backend == "ray" else device,
        versions=versions(), command=command_line(), started=started,
        finished=now(), timings_s={"sample": round(seconds, 3)},
        samples_per_s=round(drawn / seconds, 2) if drawn and seconds > 0 else None,
        generated=drawn,
        peak_memory_mb=peak_memory_mb(device)))
    return run.path


def _check(n: int, batch_size: int, steps: int | None, backend: str, workers: int,
           address: str) -> None:
    if n < 1 or batch_size < 1:
        raise CopyscopeError("Invalid sampling setting: n and batch_size must be at least 1.")
    if steps is not None and steps < 1:
        raise CopyscopeError("Invalid sampling setting: steps must be at least 1.")
    if backend not in ("local", "ray"):
        raise CopyscopeError(f"Invalid sampling setting: backend must be local or ray, not "
                             f"{backend!r}.")
    if backend == "ray":
        cluster.check(address, workers)


def _draw_shards(run: RunDir, sampler: Sampler, n: int, seed: int, batch_size: int,
                 show: bool) -> int:
    """Every shard not yet on disk, each from its own seeded generator; returns how many images
    this call generated (a resumed run keeps the shards an earlier one finished)."""
    drawn = 0
    progress = bar(n, desc=f"sample {sampler.model['family']}", show=show, unit="img")
    for k, size in enumerate(shard_sizes(n)):
        path = shard_path(run, k)
        if not path.exists():
            save_npy(path, draw_shard(sampler, k, size, seed, batch_size, progress.update))
            drawn += size
        else:
            progress.update(size)
    progress.close()
    return drawn


def shard_sizes(n: int) -> list[int]:
    """How many images each shard holds (SHARD each, the last one the rest)."""
    return [min(SHARD, n - first) for first in range(0, n, SHARD)]


def shard_path(run: RunDir, k: int) -> Path:
    return run.file(SAMPLES_DIR) / f"shard-{k:05d}.npy"


def draw_shard(sampler: Sampler, k: int, size: int, seed: int, batch_size: int,
               done: Callable[[int], object] = lambda m: None) -> np.ndarray:
    """Shard k: ``size`` images from a generator seeded with (seed, k), as stored (uint8
    (N, H, W), or (N, H, W, C) for colour); the same images wherever it is drawn."""
    rng = torch.Generator().manual_seed(derived_seed(seed, k, SAMPLE))
    parts = []
    with torch.inference_mode():
        for b in range(0, size, batch_size):
            parts.append(sampler.generate(min(batch_size, size - b), rng).numpy())
            done(len(parts[-1]))
    images = np.concatenate(parts)
    return images[..., 0] if images.ndim == 4 and images.shape[-1] == 1 else images


def _text_views(run: RunDir, n: int) -> None:
    """A text model's shards (uint8 (N, L) bytes) get their ``.jsonl`` view where it is missing."""
    for k in range(len(shard_sizes(n))):
        if not shard_path(run, k).with_suffix(".jsonl").exists():
            text_view(shard_path(run, k))


def open_sampler(source: Path, checkpoint: str | None, steps: int | None, ancestral: bool,
                 device: str) -> Sampler:
    """A ready generator for a training run's checkpoint or a diffusers pipeline directory.

    Used by :func:`sample` and by the web app's live view, so both draw the same images for the
    same checkpoint, steps and seed.
    """
    if not source.is_dir():
        raise CopyscopeError(f"{source} does not exist or is not a folder.")
    if is_pipeline(source):
        pipeline = load_pipeline(source, device)
        return Sampler(pipeline, pipeline.plan(steps, ancestral),
                       {"family": "pipeline", "train_size": None,
                        **model_facts("pipeline", None), "run": str(source.resolve())},
                       str(source.resolve()), pipeline_hash(source), None, None)
    if not (source / "run.json").is_file():
        raise CopyscopeError(f"{source} is neither a training run (run.json with a train stage) "
                             "nor a diffusers pipeline directory (unet/ and scheduler/).")
    model, path = load_model(source, checkpoint, device)
    if not isinstance(model, Generator):
        raise CopyscopeError(f"{source}: a {model.name} model does not generate images.")
    meta = checkpoint_meta(path)
    trained = RunDir(source).read(TrainRecord)
    facts = {"family": model.name, "train_size": trained.train_size if trained else None,
             **model_facts(model.name, model.config), "run": str(source.resolve())}
    try:
        plan = model.plan(steps, ancestral)
    except CopyscopeError as e:
        raise CopyscopeError(f"{source}: {e}") from e
    return Sampler(model, plan, facts, str(path.resolve()), model_hash(path), meta.epoch,
                   meta.step)
