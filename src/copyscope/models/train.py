"""The training stage: a seeded training subset in; safetensors checkpoints and run.json out.

One loop serves every family (see :class:`copyscope.models.base.Family`). Training is resumable
and exact: every random choice of epoch e (data order, noise, timesteps, dropout) is drawn from
generators seeded with (seed, e), and each checkpoint is stored with the optimizer state, so a run
interrupted at any point - ``kill -9`` included - and started again ends with the same weights,
bit for bit on CPU, as one that was never interrupted.

    runs/<name>/
      run.json                          stage "train": family, config, data, seed, timings
      train_indices.npy                 which items of the training SPEC the model saw
      checkpoints/epoch-NNNN.safetensors  model weights; metadata: epoch, step, loss, config
      resume.pt                         optimizer state of the newest checkpoint
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from copyscope.data import ImageSet, load
from copyscope.errors import CopyscopeError
from copyscope.models import family_class
from copyscope.models.base import default_device, is_trainable, make_config, peak_memory_mb
from copyscope.progress import bar
from copyscope.run import (
    RunDir,
    atomic_path,
    command_line,
    now,
    sha256_bytes,
    versions,
)

CHECKPOINTS = "checkpoints"
INDICES = "train_indices.npy"
RESUME = "resume.pt"
INIT, EPOCH = 0x1417, 0x7024  # keys that separate the seed streams
_CHECKPOINT = re.compile(r"^(?:epoch-)?(\d+)(?:\.safetensors)?$")


@dataclass(frozen=True)
class TrainConfig:
    """What defines a training run (all recorded in run.json)."""

    family: str
    train: str = "mnist:train"
    """SPEC of the training set the subset is drawn from."""
    size: int | None = None
    """Training-set size: a seeded, class-balanced subset; None trains on the whole SPEC."""
    epochs: int = 1
    batch_size: int = 64
    seed: int = 0
    checkpoint_every: int = 1
    """Save a checkpoint every this many epochs (and always after the last one)."""
    model: dict[str, Any] | None = None
    """Family settings (see the family's Config), e.g. {"dropout": 0.0} for the GAN."""

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.checkpoint_every >= 1, "checkpoint_every must be at least 1"),
            (self.size is None or self.size >= 1, "size must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise CopyscopeError(f"Invalid training setting: {message}.")


def subset_indices(images: ImageSet, size: int | None, seed: int) -> np.ndarray:
    """A seeded subset of ``size`` items, class-balanced where the labels and size allow.

    Each class gets ``size // classes`` items and a random ``size % classes`` classes one more;
    a class with too few items gives what it has and the rest is drawn from the other classes.
    Without labels the subset is uniform. Returned sorted.
    """
    n = len(images)
    if size is None or size == n:
        return np.arange(n)
    if size > n:
        raise CopyscopeError(f"{images.source} holds {n:,} images; cannot draw {size:,}.")
    rng = np.random.default_rng([seed, 0x5B5E7])
    if images.labels is None:
        return np.sort(rng.choice(n, size, replace=False))
    classes = np.unique(images.labels)
    quota = np.full(len(classes), size // len(classes))
    quota[rng.choice(len(classes), size % len(classes), replace=False)] += 1
    chosen = []
    for c, q in zip(classes, quota, strict=True):
        members = np.flatnonzero(images.labels == c)
        chosen.append(rng.choice(members, min(q, len(members)), replace=False))
    picked = np.concatenate(chosen)
    if len(picked) < size:
        rest = np.setdiff1d(np.arange(n), picked)
        picked = np.concatenate([picked, rng.choice(rest, size - len(picked), replace=False)])
    return np.sort(picked)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch: a seeded permutation of the n items, repeated (each repetition
    shuffled anew) until it fills at least one batch, so a 1-image set still trains in batches."""
    rng = np.random.default_rng([seed, epoch])
    reps = max(1, math.ceil(batch_size / n))
    order = np.concatenate([rng.permutation(n) for _ in range(reps)])
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def derived_seed(*keys: int) -> int:
    """A 32-bit seed for torch derived from non-negative integer keys (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}.safetensors"


def checkpoints(run: Path) -> list[Path]:
    """A run's checkpoints, oldest first."""
    return sorted((Path(run) / CHECKPOINTS).glob("epoch-*.safetensors"))


def find_checkpoint(run: Path, name: str | None = None) -> Path:
    """The named checkpoint of a run (``epoch-12``, ``epoch-0012``, ``12`` or a path), else the
    newest."""
    found = checkpoints(run)
    if not found:
        raise CopyscopeError(f"{Path(run) / CHECKPOINTS} holds no checkpoints yet; train first.")
    if name is None:
        return found[-1]
    if Path(name).is_file():
        return Path(name)
    m = _CHECKPOINT.match(name)
    path = Path(run) / CHECKPOINTS / checkpoint_name(int(m[1])) if m else None
    if path is None or not path.exists():
        names = ", ".join(p.stem for p in found)
        raise CopyscopeError(f"{run} has no checkpoint {name!r} (it has {names}).")
    return path


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """Epoch, step, loss, family and config stored in a checkpoint's metadata."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CopyscopeError(f"{path} is not a readable safetensors checkpoint ({e}).") from e
    return {"epoch": int(meta.get("epoch", -1)), "step": int(meta.get("step", -1)),
            "loss": float(meta.get("loss", "nan")), "family": meta.get("family"),
            "config": json.loads(meta.get("config", "{}"))}


def load_model(run: Path, checkpoint: str | None = None, device: str = "cpu"
               ) -> tuple[torch.nn.Module, Path, dict[str, Any]]:
    """The model of a training run at a checkpoint (default: the newest), in eval mode."""
    stage = RunDir(Path(run)).stage("train")
    if stage is None:
        raise CopyscopeError(f"{run} holds no training run (no train stage in run.json).")
    path = find_checkpoint(run, checkpoint)
    meta = checkpoint_meta(path)
    cls = family_class(stage["family"])
    model = cls(make_config(cls.Config, stage["config"]["model"], str(path)))
    _load_weights(model, path)
    return model.to(device).eval(), path, meta


def train(config: TrainConfig, out: str | Path, device: str | None = None, force: bool = False,
          show: bool = True) -> Path:
    """Train ``config.family`` on a seeded subset of ``config.train``; checkpoints go to ``out``.

    Started again with the same config, a run resumes from its newest checkpoint; with more
    epochs it goes on training. A folder holding a different run is refused unless ``force``.
    """
    config.validate()
    cls = family_class(config.family)
    model_config = make_config(cls.Config, config.model, f"settings of family {config.family}")
    data = load(config.train)
    indices = subset_indices(data, config.size, config.seed)
    subset = data.select(indices)
    identity = json.loads(json.dumps({  # as run.json will hold it (tuples become lists)
        "family": config.family, "model": asdict(model_config), "train": data.sha256,
        "indices": sha256_bytes(indices.astype(np.int64).data),
        "batch_size": config.batch_size, "seed": config.seed}))
    run = RunDir(Path(out))
    previous = run.stage("train")
    run.claim("train", identity, force)
    if previous is not None and previous.get("identity") != identity:
        _remove_stale(run.path)  # --force over a different run: its checkpoints are not ours
    _save_npy(run.file(INDICES), indices)
    device = device or default_device()
    torch.manual_seed(derived_seed(config.seed, INIT))  # the initial weights
    model = cls(model_config).to(device)
    trainable = is_trainable(model)
    optimizers = model.configure_optimizers() if trainable else {}
    start, step = _resume(run.path, model, optimizers, device)

    x = torch.from_numpy(np.moveaxis(subset.images, -1, 1).copy()).to(device)
    per_epoch = len(epoch_batches(len(subset), config.batch_size, config.seed, 0))
    entry = {
        "identity": identity, "status": "started", "family": config.family,
        "config": {**asdict(config), "model": asdict(model_config)},
        "inputs": {"train": data.describe(), "indices": INDICES, "train_size": len(subset),
                   "indices_sha256": identity["indices"]},
        "seeds": {"subset": config.seed, "epochs": f"(seed, epoch) -> seed {config.seed}"},
        "device": device, "versions": versions(), "command": command_line(),
        "started": run.stage("train").get("started", now()),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    times: list[float] = list(run.stage("train").get("epoch_seconds", []))[:start]
    epochs = config.epochs if trainable else 0
    progress = bar(max(0, epochs - start) * per_epoch, desc=f"train {config.family}",
                   show=show, unit="step")
    model.train()
    if not trainable:  # a non-parametric model (gzip): its state is the training items themselves
        _save_checkpoint(run.path, model, optimizers, 0, 0, model.fit(x))
    for epoch in range(start, epochs):
        began = time.perf_counter()
        torch.manual_seed(derived_seed(config.seed, epoch, EPOCH))
        losses = []
        for idx in epoch_batches(len(subset), config.batch_size, config.seed, epoch):
            losses.append(model.train_step(x[torch.from_numpy(idx).to(device)], optimizers)["loss"])
            step += 1
            progress.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}", refresh=False)
            progress.update()
        times.append(time.perf_counter() - began)
        done = epoch + 1
        if done % config.checkpoint_every == 0 or done == config.epochs:
            _save_checkpoint(run.path, model, optimizers, done, step, float(np.mean(losses)))
            run.record("train", {**entry, "epochs_done": done, "steps_done": step,
                                 "epoch_seconds": [round(t, 3) for t in times]})
    progress.close()
    last = checkpoint_meta(find_checkpoint(run.path))
    run.record("train", {
        **entry, "status": "complete", "epochs_done": last["epoch"], "steps_done": last["step"],
        "final_loss": last["loss"], "checkpoints": [p.name for p in checkpoints(run.path)],
        "finished": now(), "epoch_seconds": [round(t, 3) for t in times],
        "timings_s": {"train": round(sum(times), 3),
                      "per_epoch": round(float(np.mean(times)), 3) if times else None},
        "peak_memory_mb": peak_memory_mb(device),
    })
    return run.path


def _resume(run: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
            device: str) -> tuple[int, int]:
    """Load the newest checkpoint and its optimizer state; return (epochs done, steps done)."""
    state_path = run / RESUME
    if not state_path.exists():
        return 0, 0
    state = torch.load(state_path, map_location=device, weights_only=True)
    path = run / CHECKPOINTS / checkpoint_name(state["epoch"])
    _load_weights(model, path)
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    return int(state["epoch"]), int(state["step"])


def _save_checkpoint(run: Path, model: torch.nn.Module,
                     optimizers: dict[str, torch.optim.Optimizer], epoch: int, step: int,
                     loss: float) -> None:
    """Weights first, then the resume state that points at them, each written atomically."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"epoch": str(epoch), "step": str(step), "loss": repr(loss), "family": model.name,
            "config": json.dumps(asdict(model.config))}
    with atomic_path(run / CHECKPOINTS / checkpoint_name(epoch)) as tmp:
        save_file(weights, str(tmp), metadata=meta)
    with atomic_path(run / RESUME) as tmp:
        torch.save({"epoch": epoch, "step": step,
                    "optimizers": {k: o.state_dict() for k, o in optimizers.items()}}, tmp)


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CopyscopeError(f"{path} is not a readable safetensors checkpoint ({e}).") from e
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CopyscopeError(f"{path} does not fit the model in run.json "
                             f"({str(e).splitlines()[0]}).") from e


def _remove_stale(run: Path) -> None:
    (run / RESUME).unlink(missing_ok=True)
    for p in checkpoints(run):
        p.unlink()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
