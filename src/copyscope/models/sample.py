"""The sampling stage: a trained model (or a user's diffusers pipeline) in; uint8 shards out.

    <out>/samples/shard-00000.npy ...   uint8 (N, H, W), or (N, H, W, C) for colour
    <out>/run.json                      stage "sample": model, checkpoint, epoch, sampler, seed

Shard k is drawn from a generator seeded with (seed, k), so an interrupted run resumes shard by
shard and the same seed gives the same images. By default the samples of a training run's newest
checkpoint go into the run directory itself (which is then a samples SPEC for ``audit``), and those
of an earlier checkpoint into ``<run>/epochs/<checkpoint>/``, a run directory of its own whose
sample stage names the training run (what an epoch sweep audits).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from copyscope.data.spec import SAMPLES_DIR
from copyscope.errors import CopyscopeError
from copyscope.models.base import default_device, peak_memory_mb
from copyscope.models.pipeline import is_pipeline, load_pipeline, pipeline_hash
from copyscope.models.train import derived_seed, load_model
from copyscope.progress import bar
from copyscope.run import RunDir, atomic_path, command_line, now, sha256_bytes, versions

EPOCHS = "epochs"
SHARD = 1000
SAMPLE = 0x5A3
OTHER = {"gan": "latent", "pixelcnn": "autoregressive", "gzip": "autoregressive"}  # the rest


@dataclass
class Sampler:
    """What the stage needs from a model source: its description and a batch generator."""

    model: dict[str, Any]
    checkpoint: str
    checkpoint_sha256: str
    epoch: int | None
    step: int | None
    steps: int | None
    sampler: str
    generate: Any  # (n, torch.Generator) -> uint8 tensor (n, H, W, C)


def sample(source: str | Path, n: int, out: str | Path | None = None,
           checkpoint: str | None = None, steps: int | None = None, ancestral: bool = False,
           seed: int = 0, batch_size: int = 250, device: str | None = None,
           force: bool = False, show: bool = True) -> Path:
    """Generate ``n`` images from a training run or a diffusers pipeline directory.

    ``steps`` sets the DDIM steps of diffusion models (default 50); ``ancestral`` samples with
    full ancestral DDPM over every training timestep instead. Returns the run directory written.
    """
    source = Path(source)
    if n < 1 or batch_size < 1:
        raise CopyscopeError("Invalid sampling setting: n and batch_size must be at least 1.")
    if steps is not None and steps < 1:
        raise CopyscopeError("Invalid sampling setting: steps must be at least 1.")
    device = device or default_device()
    sampler = open_sampler(source, checkpoint, steps, ancestral, device)
    if out is None:
        if sampler.model["family"] == "pipeline":
            raise CopyscopeError(f"{source} is a diffusers pipeline; give --out for its samples.")
        out = source if checkpoint is None else source / EPOCHS / Path(sampler.checkpoint).stem
    run = RunDir(Path(out))
    identity = {"model": sampler.checkpoint_sha256, "n": n, "steps": sampler.steps,
                "sampler": sampler.sampler, "seed": seed, "batch_size": batch_size,
                "shard": SHARD}
    previous = run.stage("sample")
    if previous is not None and previous.get("identity") == identity and \
            previous.get("status") == "complete":
        return run.path  # already done: keep its record (and its timings)
    run.claim("sample", identity, force)
    if previous is not None and previous.get("identity") != identity:
        shutil.rmtree(run.file(SAMPLES_DIR), ignore_errors=True)  # another sample run's shards

    started, began = now(), time.perf_counter()
    progress = bar(n, desc=f"sample {sampler.model['family']}", show=show, unit="img")
    with torch.inference_mode():
        for k, first in enumerate(range(0, n, SHARD)):
            size = min(SHARD, n - first)
            path = run.file(SAMPLES_DIR) / f"shard-{k:05d}.npy"
            if not path.exists():
                generator = torch.Generator().manual_seed(derived_seed(seed, k, SAMPLE))
                parts = []
                for b in range(0, size, batch_size):
                    parts.append(sampler.generate(min(batch_size, size - b), generator).numpy())
                    progress.update(len(parts[-1]))
                images = np.concatenate(parts)
                _save_shard(path, images[..., 0] if images.shape[-1] == 1 else images)
            else:
                progress.update(size)
    progress.close()
    seconds = time.perf_counter() - began
    run.record("sample", {
        "identity": identity, "status": "complete", "model": sampler.model,
        "checkpoint": sampler.checkpoint, "checkpoint_sha256": sampler.checkpoint_sha256,
        "epoch": sampler.epoch, "step": sampler.step, "steps": sampler.steps,
        "sampler": sampler.sampler, "seed": seed, "n": n, "batch_size": batch_size,
        "seeds": {"shard k": f"(seed, k) -> seed {seed}"}, "device": device,
        "versions": versions(), "command": command_line(), "started": started,
        "finished": now(), "timings_s": {"sample": round(seconds, 3)},
        "samples_per_s": round(n / seconds, 2) if seconds > 0 else None,
        "peak_memory_mb": peak_memory_mb(device),
    })
    return run.path


def open_sampler(source: Path, checkpoint: str | None, steps: int | None, ancestral: bool,
                 device: str) -> Sampler:
    """A ready generator for a training run's checkpoint or a diffusers pipeline directory.

    Used by :func:`sample` and by the web app's live view, so both draw the same images for the
    same checkpoint, steps and seed.
    """
    if not source.is_dir():
        raise CopyscopeError(f"{source} does not exist or is not a folder.")
    if is_pipeline(source):
        from copyscope.models.diffusion import DEFAULT_STEPS, denoise

        unet, scheduler_config = load_pipeline(source, device)
        chosen = None if ancestral else (steps or DEFAULT_STEPS)
        return Sampler(
            model={"family": "pipeline", "train_size": None, "dropout": None,
                   "run": str(source)},
            checkpoint=str(source), checkpoint_sha256=pipeline_hash(source), epoch=None,
            step=None, steps=scheduler_config["num_train_timesteps"] if chosen is None else chosen,
            sampler="ddpm" if chosen is None else "ddim",
            generate=lambda k, g: denoise(unet, scheduler_config, k, g, chosen))
    if not (source / "run.json").is_file():
        raise CopyscopeError(f"{source} is neither a training run (run.json with a train stage) "
                             "nor a diffusers pipeline directory (unet/ and scheduler/).")
    model, path, meta = load_model(source, checkpoint, device)
    train_stage = RunDir(source).stage("train") or {}
    diffusion = model.name == "diffusion"
    if not diffusion and (steps is not None or ancestral):
        raise CopyscopeError(f"{source}: --steps and --ancestral apply to diffusion models only; "
                             f"this is a {model.name}.")
    chosen = None if ancestral else (steps or model.default_steps)
    return Sampler(
        model={"family": model.name,
               "train_size": train_stage.get("inputs", {}).get("train_size"),
               "dropout": getattr(model.config, "dropout", None), "run": str(source)},
        checkpoint=str(path), checkpoint_sha256=sha256_bytes(path.read_bytes()),
        epoch=meta["epoch"], step=meta["step"],
        steps=(model.config.num_train_timesteps if chosen is None else chosen)
        if diffusion else None,
        sampler=("ddpm" if chosen is None else "ddim") if diffusion else OTHER[model.name],
        generate=lambda k, g: model.generate(k, g, chosen))


def _save_shard(path: Path, images: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, images)
