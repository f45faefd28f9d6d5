"""Checkpoints: a model's weights as safetensors, with the facts needed to rebuild it.

    <folder>/epoch-NNNN.safetensors   weights; metadata: epoch, step, loss, family, config

A checkpoint rebuilds its model on its own (family and config are in its metadata).
:func:`model_hash` is the model's content hash: the weights and metadata, not the file's bytes,
which safetensors writes with the metadata in hash-map order (so the same model saved twice gives
two different files).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from copyscope.errors import CopyscopeError
from copyscope.files import atomic_path
from copyscope.models import family_class
from copyscope.models.base import make_config

_NAME = re.compile(r"^(?:epoch-)?(\d+)(?:\.safetensors)?$")


@dataclass(frozen=True)
class CheckpointMeta:
    epoch: int
    step: int
    loss: float
    family: str | None
    config: dict[str, Any]


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.safetensors"


def checkpoints(folder: Path) -> list[Path]:
    """The checkpoints in ``folder``, oldest first (by epoch number: epoch-12000 comes after
    epoch-9500, which its name sorts before)."""
    found = [p for p in Path(folder).glob("epoch-*.safetensors") if p.stem[6:].isdigit()]
    return sorted(found, key=lambda p: int(p.stem[6:]))


def find_checkpoint(folder: Path, name: str | None = None, owner: Path | None = None) -> Path:
    """The named checkpoint (``epoch-12``, ``epoch-0012``, ``12`` or a path), else the newest.

    ``owner`` names the run in error messages (default: the folder).
    """
    found = checkpoints(folder)
    if not found:
        raise CopyscopeError(f"{folder} holds no checkpoints yet; train first.")
    if name is None:
        return found[-1]
    if Path(name).is_file():
        return Path(name)
    m = _NAME.match(name)
    path = Path(folder) / checkpoint_name(int(m[1])) if m else None
    if path is None or not path.exists():
        names = ", ".join(p.stem for p in found)
        raise CopyscopeError(f"{owner or folder} has no checkpoint {name!r} (it has {names}).")
    return path


def save_checkpoint(path: Path, model: torch.nn.Module, epoch: int, step: int,
                    loss: float) -> None:
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"epoch": str(epoch), "step": str(step), "loss": repr(loss), "family": model.name,
            "config": json.dumps(asdict(model.config))}
    with atomic_path(path) as tmp:
        save_file(weights, str(tmp), metadata=meta)


def checkpoint_meta(path: Path) -> CheckpointMeta:
    """Epoch, step, loss, family and config stored in a checkpoint's metadata."""
    meta = _metadata(path)
    return CheckpointMeta(int(meta.get("epoch", -1)), int(meta.get("step", -1)),
                          float(meta.get("loss", "nan")), meta.get("family"),
                          json.loads(meta.get("config", "{}")))


def load_checkpoint(path: Path, device: str = "cpu") -> torch.nn.Module:
    """The model a checkpoint holds, rebuilt from its metadata, in eval mode."""
    meta = checkpoint_meta(path)
    if meta.family is None:
        raise CopyscopeError(f"{path} does not record its model family in its metadata.")
    cls = family_class(meta.family)
    model = cls(make_config(cls.Config, meta.config, str(path)))
    load_weights(model, path)
    return model.to(device).eval()


def load_weights(model: torch.nn.Module, path: Path) -> None:
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CopyscopeError(f"{path} is not a readable safetensors checkpoint ({e}).") from e
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CopyscopeError(f"{path} does not fit the model its metadata describes "
                             f"({str(e).splitlines()[0]}).") from e


def model_hash(path: Path) -> str:
    """Content hash of a checkpoint: metadata and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps(_metadata(path), sort_keys=True).encode())
    with safe_open(str(path), framework="pt") as f:
        for name in sorted(f.keys()):
            t = f.get_tensor(name).contiguous()
            h.update(f"{name}:{t.dtype}:{list(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise CopyscopeError(f"{path} is not a readable safetensors checkpoint ({e}).") from e
