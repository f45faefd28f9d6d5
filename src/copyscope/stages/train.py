"""The training stage: a seeded training subset in; safetensors checkpoints and run.json out.

One loop serves every :class:`copyscope.models.base.Trainable` family (a family with nothing to
optimise, such as gzip, keeps its training items as its one checkpoint). Image families train on
batches of a seeded image subset; a text family (``FAMILIES[...].data``) trains on a text corpus
SPEC, its subset a seeded set of documents, each epoch a seeded draw of byte windows from inside
single documents (:mod:`copyscope.data.windows`, which defines an epoch; run.json records it).

Training is resumable and exact: every random choice of epoch e (data order, windows, noise,
timesteps, dropout) is drawn from generators seeded with (seed, e), and each checkpoint is stored
with the optimizer state, so a run interrupted at any point - ``kill -9`` included - and started
again ends with the same weights, bit for bit on CPU, as one that was never interrupted.

    runs/<name>/
      run.json                          stage "train" (TrainRecord): family, config, data, seed
      train_indices.npy                 which items of the training SPEC the model saw
      checkpoints/epoch-NNNN.safetensors  model weights; metadata: epoch, step, loss, config
      resume.pt                         optimizer state of the newest checkpoint
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from copyscope.data import ImageSet, load, windows
from copyscope.data.corpus import TextCorpus, require_text
from copyscope.data.textspec import is_text_spec, load_corpus
from copyscope.errors import CopyscopeError
from copyscope.files import atomic_path, save_npy
from copyscope.hashing import jsonable, sha256_bytes
from copyscope.models import FAMILIES, family_class
from copyscope.models.base import IMAGES, TEXT, Trainable, make_config, peak_memory_mb
from copyscope.models.checkpoints import (
    checkpoint_meta,
    checkpoint_name,
    checkpoints,
    find_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from copyscope.progress import bar
from copyscope.records import TrainIdentity, TrainRecord
from copyscope.rundir import RunDir, command_line, now, versions
from copyscope.seeds import derived_seed, epoch_batches
from copyscope.tensors import default_device, to_nchw

CHECKPOINTS = "checkpoints"
INDICES = "train_indices.npy"
RESUME = "resume.pt"
INIT, EPOCH = 0x1417, 0x7024  # keys that separate the seed streams


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


@dataclass(frozen=True)
class TrainingData:
    """The subset a run trains on, and the identity it gives the run."""

    data: ImageSet | TextCorpus
    """The whole training SPEC: images, or a text corpus for a text family."""
    indices: np.ndarray
    subset: ImageSet | TextCorpus
    model_config: Any
    identity: TrainIdentity

    @property
    def kind(self) -> str:
        return TEXT if isinstance(self.data, TextCorpus) else IMAGES


@dataclass(frozen=True)
class Batches:
    """What training iterates over: ``per_epoch`` uint8 batches, epoch e's from ``of(e)``."""

    per_epoch: int
    of: Callable[[int], Iterator[torch.Tensor]]


def training_data(config: TrainConfig) -> TrainingData:
    """Validate ``config``, load its SPEC and draw its subset: everything but the training."""
    config.validate()
    cls = family_class(config.family)
    model_config = make_config(cls.Config, config.model, f"settings of family {config.family}")
    data = load_training_set(config.family, config.train)
    indices = subset_indices(data, config.size, config.seed)
    identity = TrainIdentity(
        family=config.family, model=jsonable(asdict(model_config)), train=data.sha256,
        indices=sha256_bytes(indices.astype(np.int64).data), batch_size=config.batch_size,
        seed=config.seed)
    return TrainingData(data, indices, data.select(indices), model_config, identity)


def training_kind(family: str, spec: str) -> str:
    """What ``family`` trained on ``spec`` models: TEXT or IMAGES (a family that takes either,
    such as gzip, models text when the SPEC names text)."""
    kinds = FAMILIES[family].data
    return TEXT if TEXT in kinds and (kinds == (TEXT,) or is_text_spec(spec)) else IMAGES


def load_training_set(family: str, spec: str) -> ImageSet | TextCorpus:
    """The training SPEC as the family takes it: images, or a text corpus."""
    if training_kind(family, spec) == TEXT:
        return require_text(load_corpus(spec))
    return load(spec)


def subset_indices(images: ImageSet | TextCorpus, size: int | None, seed: int) -> np.ndarray:
    """A seeded subset of ``size`` items (images, or a corpus's documents), class-balanced where
    the labels and size allow.

    Each class gets ``size // classes`` items and a random ``size % classes`` classes one more;
    a class with too few items gives what it has and the rest is drawn from the other classes.
    Without labels the subset is uniform. Returned sorted.
    """
    n = len(images)
    if size is None or size == n:
        return np.arange(n)
    what = "documents" if isinstance(images, TextCorpus) else "images"
    if size > n:
        raise CopyscopeError(f"{images.source} holds {n:,} {what}; cannot draw {size:,}.")
    rng = np.random.default_rng([seed, 0x5B5E7])
    labels = getattr(images, "labels", None)
    if labels is None:
        return np.sort(rng.choice(n, size, replace=False))
    classes = np.unique(labels)
    quota = np.full(len(classes), size // len(classes))
    quota[rng.choice(len(classes), size % len(classes), replace=False)] += 1
    chosen = []
    for c, q in zip(classes, quota, strict=True):
        members = np.flatnonzero(labels == c)
        chosen.append(rng.choice(members, min(q, len(members)), replace=False))
    picked = np.concatenate(chosen)
    if len(picked) < size:
        rest = np.setdiff1d(np.arange(n), picked)
        picked = np.concatenate([picked, rng.choice(rest, size - len(picked), replace=False)])
    return np.sort(picked)


@dataclass(frozen=True)
class TrainedOn:
    """What a training run trained on: its training SPEC, read back and checked."""

    spec: str
    data: ImageSet | TextCorpus
    """The whole training SPEC (images, or a text corpus)."""
    indices: np.ndarray
    """The items of ``data`` the model saw (its train_indices.npy)."""

    @property
    def items(self) -> ImageSet | TextCorpus:
        """The items the model saw."""
        return self.data.select(self.indices, source=f"{self.spec} at {INDICES}")


def trained_on(run: Path) -> TrainedOn:
    """The training SPEC and items of a training run (run.json's train stage and its
    train_indices.npy), refused in one sentence when missing or when the SPEC's content no
    longer matches the hash run.json recorded."""
    record = RunDir(run).read(TrainRecord)
    spec = (record.inputs or {}).get("train", {}) if record else {}
    if (record is None or record.family is None or not (run / INDICES).is_file()
            or not spec.get("spec")):
        raise CopyscopeError(f"{run} does not record what it trained on ({INDICES} and the "
                             "train stage in run.json).")
    data = load_training_set(record.family, spec.get("resolved", spec["spec"]))
    if spec.get("sha256") and data.sha256 != spec["sha256"]:
        raise CopyscopeError(f"{spec['spec']} no longer holds the data {run} was trained on "
                             "(its content hash differs from run.json's).")
    return TrainedOn(str(spec["spec"]), data, np.load(run / INDICES, allow_pickle=False))


def load_model(run: Path, checkpoint: str | None = None, device: str = "cpu"
               ) -> tuple[torch.nn.Module, Path]:
    """The model of a training run at a checkpoint (default: the newest), in eval mode."""
    if RunDir(Path(run)).read(TrainRecord) is None:
        raise CopyscopeError(f"{run} holds no training run (no train stage in run.json).")
    path = find_checkpoint(Path(run) / CHECKPOINTS, checkpoint, owner=Path(run))
    return load_checkpoint(path, device), path


def train(config: TrainConfig, out: str | Path, device: str | None = None, force: bool = False,
          show: bool = True) -> Path:
    """Train ``config.family`` on a seeded subset of ``config.train``; checkpoints go to ``out``.

    Started again with the same config, a run resumes from its newest checkpoint; with more
    epochs it goes on training. A folder holding a different run is refused unless ``force``.
    """
    td = training_data(config)
    run = RunDir(Path(out))
    previous = run.claim(TrainRecord, td.identity, force)  # --force: another run's go
    save_npy(run.file(INDICES), td.indices)
    device = device or default_device()
    torch.manual_seed(derived_seed(config.seed, INIT))  # the initial weights
    model = family_class(config.family)(td.model_config).to(device)
    record = _started(run, config, td, device, model)
    if isinstance(model, Trainable):
        optimizers = model.configure_optimizers()
        finished = previous is not None and previous.complete
        start, step = _resume(run.path, model, optimizers, device, config.epochs, finished)
        times = list(record.epoch_seconds or [])[:start]
        batches = _batches(td, config, device, getattr(model, "window", 0))
        _epochs(run, record, model, optimizers, batches, config, start, step, times, show)
    else:  # nothing to optimise (gzip): the model keeps its training items, checkpoint 0
        began = time.perf_counter()
        items = (torch.from_numpy(td.subset.data.copy()) if isinstance(td.subset, TextCorpus)
                 else to_nchw(td.subset.images, device))
        save_checkpoint(run.path / CHECKPOINTS / checkpoint_name(0), model, 0, 0,
                        model.fit(items))
        times = [time.perf_counter() - began]
    last = checkpoint_meta(find_checkpoint(run.path / CHECKPOINTS))
    record.status, record.epochs_done, record.steps_done = "complete", last.epoch, last.step
    record.final_loss = last.loss
    record.checkpoints = [p.name for p in checkpoints(run.path / CHECKPOINTS)]
    record.finished, record.epoch_seconds = now(), [round(t, 3) for t in times]
    record.timings_s = {"train": round(sum(times), 3),
                        "per_epoch": round(float(np.mean(times)), 3) if times else None}
    record.peak_memory_mb = peak_memory_mb(device)
    run.write(record)
    return run.path


def _batches(td: TrainingData, config: TrainConfig, device: str, window: int) -> Batches:
    """Epoch e's batches: of the image subset (a seeded permutation), or of byte windows drawn
    from the subset's documents (:mod:`copyscope.data.windows`)."""
    if isinstance(td.subset, TextCorpus):
        corpus = td.subset
        count = windows.windows_per_epoch(corpus, window, config.batch_size)
        return Batches(
            -(-count // config.batch_size),
            lambda e: (torch.from_numpy(windows.gather(corpus, first, window)).to(device)
                       for first in windows.epoch_windows(corpus, window, config.batch_size,
                                                          config.seed, e)))
    x = to_nchw(td.subset.images, device)
    return Batches(len(epoch_batches(len(x), config.batch_size, config.seed, 0)),
                   lambda e: (x[torch.from_numpy(idx).to(x.device)]
                              for idx in epoch_batches(len(x), config.batch_size, config.seed, e)))


def _text_inputs(td: TrainingData, config: TrainConfig, model: torch.nn.Module
                 ) -> dict[str, Any]:
    """What a text run's record adds to its inputs: the data kind and what an epoch is."""
    if not isinstance(td.subset, TextCorpus):
        return {}
    out: dict[str, Any] = {"kind": TEXT, "train_bytes": td.subset.nbytes}
    window = getattr(model, "window", None)
    if window is not None:
        out["epoch"] = {
            "window_bytes": window,
            "windows": windows.windows_per_epoch(td.subset, window, config.batch_size),
            "definition": "ceil(B / window) windows (at least one batch), B the bytes of the "
                          "documents at least one window long; each window's start uniform over "
                          "every start inside one such document, seeded with (seed, epoch)"}
    return out


def _started(run: RunDir, config: TrainConfig, td: TrainingData, device: str,
             model: torch.nn.Module) -> TrainRecord:
    """The run's record as training starts (or resumes), keeping what earlier epochs measured."""
    before = run.read(TrainRecord)
    parameters = sum(p.numel() for p in model.parameters())
    return TrainRecord(
        identity=td.identity, status="started", family=config.family,
        config=jsonable({**asdict(config), "model": asdict(td.model_config)}),
        inputs={"train": td.data.describe(), "indices": INDICES, "train_size": len(td.subset),
                "indices_sha256": td.identity.indices, **_text_inputs(td, config, model)},
        seeds={"subset": config.seed, "epochs": f"(seed, epoch) -> seed {config.seed}"},
        device=device, versions=versions(), command=command_line(),
        started=(before.started if before and before.started else now()),
        parameters=parameters, epoch_seconds=before.epoch_seconds if before else None)


def _epochs(run: RunDir, record: TrainRecord, model: Any,
            optimizers: dict[str, torch.optim.Optimizer], batches: Batches, config: TrainConfig,
            start: int, step: int, times: list[float], show: bool) -> None:
    """Train epochs ``start`` .. ``config.epochs``, saving checkpoints and progress as it goes."""
    progress = bar(max(0, config.epochs - start) * batches.per_epoch,
                   desc=f"train {config.family}", show=show, unit="step")
    model.train()
    for epoch in range(start, config.epochs):
        began = time.perf_counter()
        torch.manual_seed(derived_seed(config.seed, epoch, EPOCH))
        losses = []
        for batch in batches.of(epoch):
            losses.append(model.train_step(batch, optimizers)["loss"])
            step += 1
            progress.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}", refresh=False)
            progress.update()
        times.append(time.perf_counter() - began)
        done = epoch + 1
        if done % config.checkpoint_every == 0 or done == config.epochs:
            save_checkpoint(run.path / CHECKPOINTS / checkpoint_name(done), model, done, step,
                            float(np.mean(losses)))
            _save_resume(run.path, optimizers, done, step)
            record.epochs_done, record.steps_done = done, step
            record.epoch_seconds = [round(t, 3) for t in times]
            run.write(record)
    progress.close()


def _resume(run: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
            device: str, epochs: int, finished: bool) -> tuple[int, int]:
    """Load the newest checkpoint and its optimizer state; return (epochs done, steps done).

    Without resume.pt a run starts from epoch 0 (killed before its first optimizer state was
    written, it trains again exactly as it did), except a ``finished`` run committed without it
    (as models/ keeps finished GANs): that counts as done, and asked for more epochs than it
    holds it is refused rather than trained again from scratch over its checkpoints."""
    state_path = run / RESUME
    if not state_path.exists():
        found = checkpoints(run / CHECKPOINTS)
        if not finished or not found:
            return 0, 0
        newest = checkpoint_meta(found[-1])
        if newest.epoch < epochs:  # going on needs the optimizer state of the newest checkpoint
            raise CopyscopeError(
                f"{run} holds checkpoints up to epoch {newest.epoch} but not the optimizer state "
                f"({RESUME}) to train on from them; train into another --out.")
        return newest.epoch, newest.step  # finished: nothing left to train
    state = torch.load(state_path, map_location=device, weights_only=True)
    load_weights(model, run / CHECKPOINTS / checkpoint_name(state["epoch"]))
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    return int(state["epoch"]), int(state["step"])


def _save_resume(run: Path, optimizers: dict[str, torch.optim.Optimizer], epoch: int,
                 step: int) -> None:
    """The optimizer state that goes with the checkpoint just written (written after it)."""
    with atomic_path(run / RESUME) as tmp:
        torch.save({"epoch": epoch, "step": step,
                    "optimizers": {k: o.state_dict() for k, o in optimizers.items()}}, tmp)
