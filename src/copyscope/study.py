"""A study: train -> sample -> audit (-> sample quality) for every model of a TOML file.

Every stage is skipped when its artifact is already complete for the same inputs, so running a
study again resumes it (each stage also resumes its own interrupted work). Every audit searches
the samples against the whole training set with the held-out control, never only the model's own
subset; each training run records its subset (``train_indices.npy``) for analyses that need it.

    [study]
    out = "runs/study"          # one run directory per model: <out>/<name>
    train = "mnist:train"       # models train on subsets of it; audits search all of it
    heldout = "mnist:test"      # the control, never trained on
    samples = 1000              # per model (a model may override)
    steps = 50                  # DDIM steps of diffusion models
    seed = 0
    quality = true              # classifier histogram, confidence, Fréchet distance
    sweep = ["ddpm-300"]        # audit every saved checkpoint of these models
    note = "..."                # printed under the table

    [[models]]
    name = "ddpm-300"
    family = "diffusion"
    size = 300
    epochs = 300
    batch_size = 64
    checkpoint_every = 30
    from = "models/ddpm-300"    # optional: a finished training run to start from
    settings = { block_out_channels = [16, 32, 32] }
"""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from copyscope.audit import audit
from copyscope.audit_config import AuditConfig
from copyscope.data import load
from copyscope.errors import CopyscopeError
from copyscope.models import family_class
from copyscope.models.base import make_config
from copyscope.models.sample import EPOCHS, sample
from copyscope.models.train import CHECKPOINTS, INDICES, TrainConfig, checkpoints, train
from copyscope.run import RunDir, run_info, write_json, write_parquet

QUALITY = "quality.json"
TABLE = "study.parquet"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    train: TrainConfig
    samples: int
    source: Path | None = None


@dataclass(frozen=True)
class Study:
    out: Path
    train: str = "mnist:train"
    heldout: str = "mnist:test"
    samples: int = 1000
    steps: int = 50
    seed: int = 0
    quality: bool = True
    sweep: tuple[str, ...] = ()
    note: str = ""
    models: tuple[ModelSpec, ...] = field(default_factory=tuple)


def read_study(path: str | Path) -> Study:
    """Parse and check a study TOML file; every problem is one sentence naming the file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise CopyscopeError(f"{path} does not exist.") from e
    except tomllib.TOMLDecodeError as e:
        raise CopyscopeError(f"{path} is not valid TOML ({e}).") from e
    head = dict(doc.get("study", {}))
    known = {"out", "train", "heldout", "samples", "steps", "seed", "quality", "sweep", "note"}
    _no_unknown(head, known, f"{path} [study]")
    if "out" not in head:
        raise CopyscopeError(f"{path}: [study] needs out = \"runs/NAME\".")
    base = Study(out=Path(head.pop("out")), sweep=tuple(head.pop("sweep", ())), **head)
    models = []
    for i, entry in enumerate(doc.get("models", [])):
        where = f"{path} [[models]] #{i + 1}"
        entry = dict(entry)
        _no_unknown(entry, {"name", "family", "size", "epochs", "batch_size", "seed",
                            "checkpoint_every", "settings", "from", "samples"}, where)
        for key in ("name", "family"):
            if key not in entry:
                raise CopyscopeError(f"{where} has no {key}.")
        config = TrainConfig(family=entry["family"], train=base.train, size=entry.get("size"),
                             epochs=entry.get("epochs", 1), batch_size=entry.get("batch_size", 64),
                             seed=entry.get("seed", base.seed),
                             checkpoint_every=entry.get("checkpoint_every", 1),
                             model=entry.get("settings"))
        config.validate()
        make_config(family_class(config.family).Config, config.model, f"{where} settings")
        source = Path(entry["from"]) if "from" in entry else None
        models.append(ModelSpec(entry["name"], config, entry.get("samples", base.samples),
                                source))
    names = [m.name for m in models]
    if not models:
        raise CopyscopeError(f"{path} lists no [[models]].")
    if len(set(names)) != len(names):
        raise CopyscopeError(f"{path} names a model twice; names must be unique.")
    for name in base.sweep:
        if name not in names:
            raise CopyscopeError(f"{path}: sweep names {name!r}, which is not a model.")
    return Study(**{**asdict(base), "out": base.out, "models": tuple(models)})


def run_study(study: Study, only: list[str] | None = None, force: bool = False,
              show: bool = True) -> pd.DataFrame:
    """Run every stage that is not yet complete; return one row per model (and sweep point)."""
    unknown = sorted(set(only or ()) - {m.name for m in study.models})
    if unknown:
        raise CopyscopeError(f"the study has no model {unknown[0]!r} "
                             f"(it has {', '.join(m.name for m in study.models)}).")
    audit_config = AuditConfig()
    rows = []
    for spec in study.models:
        if only and spec.name not in only:
            continue
        run = study.out / spec.name
        _train(spec, run, force, show)
        sample(run, spec.samples, steps=study.steps if spec.train.family == "diffusion" else None,
               seed=study.seed, force=force, show=show)
        _audit(run, study, audit_config, force, show)
        if study.quality:
            _quality(run, study)
        rows.append(_row(spec.name, run))
        if spec.name in study.sweep:
            for ckpt in checkpoints(run)[:-1]:
                point = run / EPOCHS / ckpt.stem
                sample(run, spec.samples, out=point, checkpoint=ckpt.stem,
                       steps=study.steps if spec.train.family == "diffusion" else None,
                       seed=study.seed, force=force, show=show)
                _audit(point, study, audit_config, force, show)
                if study.quality:
                    _quality(point, study)
                rows.append(_row(f"{spec.name}@{ckpt.stem}", point))
    table = pd.DataFrame(rows)
    write_parquet(study.out / TABLE, table)
    return table


def _train(spec: ModelSpec, run: Path, force: bool, show: bool) -> None:
    if spec.source is not None and RunDir(run).stage("train") is None:
        _copy_training_run(spec.source, run)
    stage = RunDir(run).stage("train")
    if (stage is not None and stage.get("status") == "complete" and _same_training(stage, spec)
            and stage["epochs_done"] >= spec.train.epochs):
        return
    train(spec.train, run, force=force, show=show)


def _same_training(stage: dict[str, Any], spec: ModelSpec) -> bool:
    """Does a finished training run match the spec (all but how many epochs it ran)?"""
    done = stage["config"]
    wanted = asdict(spec.train)
    settings = wanted.pop("model") or {}
    same = all(done.get(k) == v for k, v in wanted.items()
               if k not in ("epochs", "checkpoint_every"))
    return same and all(done["model"].get(k) == (list(v) if isinstance(v, tuple) else v)
                        for k, v in settings.items())


def _copy_training_run(source: Path, run: Path) -> None:
    """Start from a finished training run (e.g. one committed under models/)."""
    stage = RunDir(source).stage("train")
    if stage is None or stage.get("status") != "complete" or not checkpoints(source):
        raise CopyscopeError(f"{source} is not a finished training run with checkpoints.")
    (run / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    for ckpt in checkpoints(source):
        shutil.copy2(ckpt, run / CHECKPOINTS / ckpt.name)
    shutil.copy2(source / INDICES, run / INDICES)
    RunDir(run).record("train", {**stage, "copied_from": str(source)})


def _audit(run: Path, study: Study, config: AuditConfig, force: bool, show: bool) -> None:
    done = RunDir(run).stage("audit")
    if done is not None and done.get("status") == "complete":
        wanted = {"samples": load(run).sha256, "train": load(study.train).sha256,
                  "heldout": load(study.heldout).sha256, "config": asdict(config)}
        if done.get("identity") == wanted:
            return
    audit(str(run), train=study.train, heldout=study.heldout, out=run, config=config,
          force=force, show=show)


def _quality(run: Path, study: Study) -> None:
    from copyscope.quality import sample_quality

    path = run / QUALITY
    samples = load(run)
    if path.exists() and _read_json(path).get("samples_sha256") == samples.sha256:
        return
    result = sample_quality(samples, study.heldout)
    write_json(path, {**result, "samples_sha256": samples.sha256, "heldout": study.heldout})


def _row(name: str, run: Path) -> dict[str, Any]:
    info = run_info(run)
    summary = _read_json(run / "summary.json")
    row = {"model": name, "family": info["family"], "train_size": info["train_size"],
           "dropout": info["dropout"], "epoch": info["epoch"], "steps": info["steps"],
           "samples": summary["n_samples"], "path": str(run)}
    for crit, c in summary["criteria"].items():
        row[f"copy_rate_{crit}"] = c["copy_rate"]
        row[f"heldout_fpr_{crit}"] = c["heldout_fpr"]
    row["default_criterion"] = summary["default_criterion"]
    row["ct"] = summary["data_copying_ct"]["C_T"]
    row["nn_l2_median"] = summary["nn_l2_median"]["samples"]
    row["heldout_nn_l2_median"] = summary["nn_l2_median"]["heldout"]
    if (run / QUALITY).exists():
        q = _read_json(run / QUALITY)
        row |= {"mean_confidence": q["mean_confidence"], "frechet_distance": q["frechet_distance"]}
    return row


def _no_unknown(values: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise CopyscopeError(f"{where}: unknown key {unknown[0]!r} "
                             f"(known: {', '.join(sorted(known))}).")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CopyscopeError(f"{path} is not valid JSON ({e}).") from e
