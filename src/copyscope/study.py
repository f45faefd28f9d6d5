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
    bits = 500                  # storage in bits of density models (items per set; 0: off)
    sweep = ["ddpm-300"]        # audit every saved checkpoint of these models
    prompts = 100               # k-extractability prompts per set (text models)
    note = "..."                # printed under the table

    [[models]]
    name = "ddpm-300"
    family = "diffusion"
    size = 300
    epochs = 300
    batch_size = 64
    checkpoint_every = 30
    from = "models/ddpm-300"    # optional: a training run to start from (finished, or to go
                                # on training; where the folder does not exist, trained here)
    settings = { block_out_channels = [16, 32, 32] }

    [[models]]
    name = "textlm-shakespeare"
    family = "textlm"
    train = "shakespeare:train" # a text corpus: the model's texts are judged by text spans
                                # against an index of it (in <out>/<name>/index), held-out
                                # split as the control; k-extractability and bits per byte too
    heldout = "auto"            # text models: the control ("auto": the corpus's held-out split)

Text models are evaluated on their own texts and corpus, not the image audit: sample, `text
spans` against the training corpus with its held-out split as the control, `text extract` and,
with ``bits``, `compress measure` (bits per byte), all written into the model's run directory.
They have no row in the study table, which compares image audits; their rows are in
``<out>/text_study.parquet`` (:func:`text_row`).
"""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from copyscope.data import load
from copyscope.errors import CopyscopeError
from copyscope.files import write_parquet
from copyscope.models import FAMILIES, fact_names, family_class
from copyscope.models.base import TEXT, make_config
from copyscope.models.checkpoints import checkpoints
from copyscope.records import (
    AuditRecord,
    AuditSummary,
    CompressionSummary,
    ExtractionSummary,
    QualityRecord,
    SampleRecord,
    TextSummary,
    TrainRecord,
)
from copyscope.rundir import RunDir
from copyscope.stages.audit import audit, audit_identity
from copyscope.stages.audit_config import AuditConfig
from copyscope.stages.sample import EPOCHS, sample
from copyscope.stages.seen import find_seen
from copyscope.stages.text import AUTO
from copyscope.stages.train import (
    CHECKPOINTS,
    INDICES,
    RESUME,
    TrainConfig,
    train,
    training_data,
    training_kind,
)

TABLE = "study.parquet"
TEXT_TABLE = "text_study.parquet"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    train: TrainConfig
    samples: int
    source: Path | None = None
    heldout: str = AUTO
    """A text model's control: text it never saw ("auto": the held-out split of a built-in
    corpus, e.g. shakespeare:heldout)."""


@dataclass(frozen=True)
class Study:
    out: Path
    train: str = "mnist:train"
    heldout: str = "mnist:test"
    samples: int = 1000
    steps: int = 50
    seed: int = 0
    quality: bool = True
    bits: int = 0
    """Items of each set (training, held-out) that ``compress measure`` codes for every model
    with exact likelihoods (PixelCNN, gzip); 0 leaves storage in bits out."""
    prompts: int = 100
    """k-extractability prompts per set (training, held-out) of every text model."""
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
    known = {"out", "train", "heldout", "samples", "steps", "seed", "quality", "bits", "prompts",
             "sweep", "note"}
    _no_unknown(head, known, f"{path} [study]")
    if "out" not in head:
        raise CopyscopeError(f"{path}: [study] needs out = \"runs/NAME\".")
    base = Study(out=Path(head.pop("out")), sweep=tuple(head.pop("sweep", ())), **head)
    models = []
    for i, entry in enumerate(doc.get("models", [])):
        where = f"{path} [[models]] #{i + 1}"
        entry = dict(entry)
        _no_unknown(entry, {"name", "family", "size", "epochs", "batch_size", "seed",
                            "checkpoint_every", "settings", "from", "samples", "train",
                            "heldout"}, where)
        for key in ("name", "family"):
            if key not in entry:
                raise CopyscopeError(f"{where} has no {key}.")
        config = TrainConfig(family=entry["family"], train=entry.get("train", base.train),
                             size=entry.get("size"),
                             epochs=entry.get("epochs", 1), batch_size=entry.get("batch_size", 64),
                             seed=entry.get("seed", base.seed),
                             checkpoint_every=entry.get("checkpoint_every", 1),
                             model=entry.get("settings"))
        config.validate()
        make_config(family_class(config.family).Config, config.model, f"{where} settings")
        source = Path(entry["from"]) if "from" in entry else None
        models.append(ModelSpec(entry["name"], config, entry.get("samples", base.samples),
                                source, entry.get("heldout", AUTO)))
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
    rows, text_rows = [], []
    for spec in study.models:
        if only and spec.name not in only:
            continue
        run = study.out / spec.name
        _train(spec, run, force, show)
        if training_kind(spec.train.family, spec.train.train) == TEXT:
            _evaluate_text(run, study, spec, force, show)
            text_rows.append(text_row(spec.name, run))
            continue
        rows.append(_evaluate(spec.name, run, study, spec, None, force, show))
        if spec.name in study.sweep:
            for ckpt in checkpoints(run / CHECKPOINTS)[:-1]:
                rows.append(_evaluate(f"{spec.name}@{ckpt.stem}", run / EPOCHS / ckpt.stem,
                                      study, spec, ckpt.stem, force, show))
    table = pd.DataFrame(rows)
    write_parquet(study.out / TABLE, table)
    if text_rows:
        write_parquet(study.out / TEXT_TABLE, pd.DataFrame(text_rows))
    return table


def _evaluate(name: str, point: Path, study: Study, spec: ModelSpec, checkpoint: str | None,
              force: bool, show: bool) -> dict[str, Any]:
    """Sample one checkpoint of a trained model, audit the samples, judge their quality."""
    run = study.out / spec.name
    steps = study.steps if FAMILIES[spec.train.family].default_steps is not None else None
    sample(run, spec.samples, out=point if checkpoint else None, checkpoint=checkpoint,
           steps=steps, seed=study.seed, force=force, show=show)
    _audit(point, study, force, show)
    if study.quality:
        from copyscope.stages.quality import quality

        quality(point, study.heldout)
    if study.bits and checkpoint is None and hasattr(family_class(spec.train.family), "log_prob"):
        _bits(run, study, spec, force, show)
    return _row(name, point)


def _evaluate_text(run: Path, study: Study, spec: ModelSpec, force: bool, show: bool) -> None:
    """A text model's texts against its training corpus: spans with the held-out split as the
    control, k-extractability, and (with ``bits``) bits per byte; all in its run directory."""
    from copyscope.stages.extract import extract
    from copyscope.stages.measure import measure
    from copyscope.stages.text import find_spans, index_corpus

    sample(run, spec.samples, seed=study.seed, force=force, show=show)
    index = index_corpus(spec.train.train, run / "index", force=force, show=show)
    find_spans(index, run, out=run, heldout=spec.heldout, force=force, show=show)
    extract(run, run, heldout=spec.heldout, prompts=study.prompts, seed=study.seed, force=force,
            show=show)
    if study.bits:
        measure(run, run, heldout=None if spec.heldout == AUTO else spec.heldout,
                limit=study.bits, files=2, seed=study.seed, force=force, show=show)


def _bits(run: Path, study: Study, spec: ModelSpec, force: bool, show: bool) -> None:
    """Storage in bits of a density model, written beside its audit. The control is the unseen
    rest of the study's training set (the same writers as the training items) where the model
    saw a subset, else the held-out set."""
    from copyscope.stages.measure import measure

    subset = spec.train.size is not None and spec.train.size < len(load(study.train))
    measure(run, run, heldout=study.train if subset else study.heldout, limit=study.bits,
            seed=study.seed, force=force, show=show)


def _train(spec: ModelSpec, run: Path, force: bool, show: bool) -> None:
    rundir = RunDir(run)
    if spec.source is not None and spec.source.exists() and rundir.read(TrainRecord) is None:
        _copy_training_run(spec.source, run)  # (a source not there yet: trained here instead)
    done = rundir.done(TrainRecord, training_data(spec.train).identity)
    if done is None or (done.epochs_done or 0) < spec.train.epochs:
        train(spec.train, run, force=force, show=show)


def _copy_training_run(source: Path, run: Path) -> None:
    """Start from a training run elsewhere (e.g. one committed under models/): its checkpoints,
    subset and record, and its resume state, so an unfinished run goes on training here."""
    record = RunDir(source).read(TrainRecord)
    found = checkpoints(source / CHECKPOINTS)
    if record is None or not found:
        raise CopyscopeError(f"{source} is not a training run with checkpoints (from = ...).")
    (run / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    for ckpt in found:
        shutil.copy2(ckpt, run / CHECKPOINTS / ckpt.name)
    shutil.copy2(source / INDICES, run / INDICES)
    if (source / RESUME).is_file():
        shutil.copy2(source / RESUME, run / RESUME)
    record.copied_from = str(source)
    RunDir(run).write(record)


def _audit(run: Path, study: Study, force: bool, show: bool) -> None:
    config = AuditConfig()
    train = load(study.train)
    identity = audit_identity(load(run), train, load(study.heldout), config,
                              find_seen(run, train, None))
    if RunDir(run).done(AuditRecord, identity) is None:
        audit(str(run), train=study.train, heldout=study.heldout, out=run, config=config,
              force=force, show=show)


def _row(name: str, run: Path) -> dict[str, Any]:
    rundir = RunDir(run)
    facts = rundir.read(SampleRecord)
    summary = rundir.read(AuditSummary)
    if facts is None or summary is None:
        raise CopyscopeError(f"{run} lacks its sample record or summary.json; run it again.")
    model = facts.model or {}
    row = {"model": name, "family": model.get("family"), "train_size": model.get("train_size"),
           **{f: model.get(f) for f in fact_names()}, "epoch": facts.epoch,
           "steps": facts.steps, "samples": summary.n_samples, "path": str(run)}
    for crit, c in summary.criteria.items():
        row[f"copy_rate_{crit}"] = c.copy_rate
        row[f"heldout_fpr_{crit}"] = c.heldout_fpr
    row["default_criterion"] = summary.default_criterion
    row["ct"] = summary.data_copying_ct["C_T"]
    row["nn_l2_median"] = summary.nn_l2_median["samples"]
    row["heldout_nn_l2_median"] = summary.nn_l2_median["heldout"]
    quality = rundir.read(QualityRecord)
    if quality is not None:
        row |= {"mean_confidence": quality.mean_confidence,
                "frechet_distance": quality.frechet_distance}
    return row


def text_row(name: str, run: Path) -> dict[str, Any]:
    """A text model's answer in one row: verbatim spans of its texts (flagged share and the
    held-out false-positive rate), k-extractability of training and held-out prompts by prefix
    length, bits per byte of held-out chunks (model and gzip) and membership AUC by loss."""
    rundir = RunDir(run)
    spans, found = rundir.read(TextSummary), rundir.read(ExtractionSummary)
    if spans is None or found is None:
        raise CopyscopeError(f"{run} lacks its text_summary.json or extraction.json; run it "
                             "again.")
    crit = spans.criteria.get(spans.default_criterion, {})
    row = {"model": name, "family": (rundir.read(SampleRecord).model or {}).get("family"),
           "texts": spans.n_texts, "copied_share": spans.copied_share,
           "longest_span": spans.longest_span.get("max"), "flagged": crit.get("copy_rate"),
           "heldout_fpr": crit.get("heldout_fpr"), "path": str(run)}
    for k in found.prefixes:
        for part in ("train", "heldout"):
            row[f"{part}_extracted_{k}"] = found.by_prefix.get(part, {}).get(str(k), {}).get(
                "rate")
    bits = rundir.read(CompressionSummary)
    if bits is not None:
        held = bits.rates["heldout"]
        row |= {"heldout_bpb": held["model"]["chunk_bpb"], "gzip_bpb": held["gzip"]["chunk_bpb"],
                "train_bpb": bits.rates["train"]["model"]["chunk_bpb"],
                "membership_auc": (bits.membership or {}).get("loss", {}).get("auc")}
    return row


def _no_unknown(values: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise CopyscopeError(f"{where}: unknown key {unknown[0]!r} "
                             f"(known: {', '.join(sorted(known))}).")
