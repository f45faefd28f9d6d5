"""Diffusers pipeline directories that users bring: ``save_pretrained`` output of a pipeline with a
``UNet2DModel`` (``unet/``) and a scheduler config (``scheduler/``), read from local files only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from copyscope.errors import CopyscopeError
from copyscope.run import sha256_bytes

UNET, SCHEDULER = "unet", "scheduler"


def is_pipeline(path: Path) -> bool:
    path = Path(path)
    return (path / UNET / "config.json").is_file() and (
        path / SCHEDULER / "scheduler_config.json").is_file()


def load_pipeline(path: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The UNet (eval mode) and scheduler config of a pipeline directory; never reaches a hub."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = Path(path)
    try:
        unet = UNet2DModel.from_pretrained(path, subfolder=UNET, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise CopyscopeError(f"{path / UNET} does not hold a loadable UNet2DModel ({_first(e)})."
                             ) from e
    try:
        scheduler_config = DDPMScheduler.load_config(path, subfolder=SCHEDULER,
                                                     local_files_only=True)
    except (OSError, ValueError) as e:
        raise CopyscopeError(f"{path / SCHEDULER} does not hold a readable scheduler config "
                             f"({_first(e)}).") from e
    return unet.to(device).eval(), dict(scheduler_config)


def pipeline_hash(path: Path) -> str:
    """Content hash of the UNet's files and the scheduler config: what makes the model."""
    files = sorted(p for sub in (UNET, SCHEDULER) for p in (Path(path) / sub).rglob("*")
                   if p.is_file())
    return sha256_bytes(*(f.relative_to(path).as_posix().encode() + f.read_bytes()
                          for f in files))


def _first(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
