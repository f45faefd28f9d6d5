"""``copyscope sample --backend ray``: the shards drawn on Ray workers, stored by the driver.

Shard k comes from the generator seeded with (seed, k) wherever it is drawn
(:func:`copyscope.stages.sample.draw_shard`), so the images are a local run's, bit for bit on
CPU. Each worker loads the model once (kept per worker process) from the run directory, which
the workers of a multi-machine cluster must see at the same path, and draws on one CPU thread.
Every shard is one Ray task, rerun on another worker if its worker dies; the driver stores each
shard atomically as soon as it arrives, so an interrupted run resumes from its finished shards
exactly like a local one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from copyscope import cluster
from copyscope.files import save_npy
from copyscope.progress import bar
from copyscope.rundir import RunDir
from copyscope.stages.sample import Sampler, draw_shard, open_sampler, shard_path, shard_sizes

RETRIES = 3
_SAMPLERS: dict[tuple[Any, ...], Sampler] = {}
"""The models a worker process has loaded."""


def _draw(source: str, checkpoint: str | None, steps: int | None, ancestral: bool, k: int,
          size: int, seed: int, batch_size: int) -> np.ndarray:
    """A Ray task: shard k of the model at ``source``."""
    import torch

    torch.set_num_threads(1)  # one CPU per task
    key = (source, checkpoint, steps, ancestral)
    if key not in _SAMPLERS:
        _SAMPLERS[key] = open_sampler(Path(source), checkpoint, steps, ancestral, "cpu")
    return draw_shard(_SAMPLERS[key], k, size, seed, batch_size)


def draw_shards_on_ray(run: RunDir, source: Path, checkpoint: str | None, steps: int | None,
                       ancestral: bool, n: int, seed: int, batch_size: int, workers: int,
                       address: str, show: bool) -> int:
    """Every shard not yet in ``run``, drawn on the cluster (local: ``workers`` CPUs); returns
    how many images this call generated."""
    ray, started = cluster.connect(address, workers)
    try:
        remote = ray.remote(num_cpus=1, max_retries=RETRIES)(_draw)
        todo, progress = {}, bar(n, desc="sample (ray)", show=show, unit="img")
        for k, size in enumerate(shard_sizes(n)):
            if shard_path(run, k).exists():
                progress.update(size)
                continue
            ref = remote.remote(str(source.resolve()), checkpoint, steps, ancestral, k, size,
                                seed, batch_size)
            todo[ref] = (k, size)
        drawn = sum(size for _, size in todo.values())
        while todo:
            ready, _ = ray.wait(list(todo), num_returns=1)
            k, size = todo.pop(ready[0])
            save_npy(shard_path(run, k), ray.get(ready[0]))
            progress.update(size)
        progress.close()
        return drawn
    finally:
        cluster.disconnect(ray, started)
