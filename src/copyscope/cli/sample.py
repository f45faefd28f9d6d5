"""``copyscope sample``: generate images (or texts) from a training run or a diffusers pipeline
directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from copyscope.cli.common import say

Opt = typer.Option


def sample_command(
    source: Annotated[Path, typer.Argument(help="A training run directory (copyscope train) or "
                                           "a diffusers pipeline directory (save_pretrained "
                                           "output with unet/ and scheduler/).")],
    n: Annotated[int, Opt("-n", "--n", help="How many images.")] = 1000,
    out: Annotated[Path | None, Opt("--out", "-o", help="Run directory for the samples (default: "
                                    "the training run itself, or <run>/epochs/<checkpoint> with "
                                    "--checkpoint; required for a pipeline).")] = None,
    checkpoint: Annotated[str | None, Opt(help="Checkpoint to sample, e.g. epoch-12 "
                                          "(default: the newest).")] = None,
    steps: Annotated[int | None, Opt(help="DDIM steps for diffusion models (default 50).")]
    = None,
    ancestral: Annotated[bool, Opt("--ancestral", help="Diffusion: full ancestral DDPM "
                                   "sampling over every training timestep instead of DDIM.")]
    = False,
    seed: Annotated[int, Opt(help="Seed; shard k uses a generator seeded with (seed, k).")] = 0,
    batch_size: Annotated[int, Opt(help="Images generated at once.")] = 250,
    device: Annotated[str | None, Opt(help="cuda or cpu (default: cuda where present).")] = None,
    force: Annotated[bool, Opt("--force", help="Replace different samples in the output.")]
    = False,
    backend: Annotated[str, Opt(help="local, or ray: the shards drawn on Ray workers (CPU), "
                                "the same images.")] = "local",
    workers: Annotated[int, Opt(help="Ray workers (--backend ray), one CPU each.")] = 2,
    address: Annotated[str, Opt(help="Ray head node host:port (--backend ray; default: a "
                                "local cluster, shut down afterwards).")] = "",
) -> None:
    """Generate samples; an interrupted run resumes from its finished shards."""
    from copyscope.stages.sample import sample

    path = sample(source, n, out=out, checkpoint=checkpoint, steps=steps, ancestral=ancestral,
                  seed=seed, batch_size=batch_size, device=device, force=force,
                  backend=backend, workers=workers, address=address)
    if any((path / "samples").glob("*.jsonl")):
        say("{n:,} texts in [bold]{path}[/] (check them with copyscope text spans INDEX "
            "--texts {path} --out {path}/spans)", n=n, path=path)
        return
    say("{n:,} samples in [bold]{path}[/] (audit them with copyscope audit --samples {path} "
        "--out {path})", n=n, path=path)
