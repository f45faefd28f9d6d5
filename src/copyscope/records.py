"""Typed records: what run.json, summary.json and quality.json hold, one dataclass per stage.

Every stage writes exactly one record and every reader reads it back through the same class
(:meth:`copyscope.rundir.RunDir.read`), so a key is named in one place. Field order is the order
of keys in the file. A record's ``identity`` is what makes a run *this* run (input hashes and
parameters); :meth:`copyscope.rundir.RunDir.done` compares it to decide whether a stage is
already complete, the one completion check every stage and the study use.

Each record class also declares what its stage writes beside it (``produces``) and which stages'
output it is made from (``after``). Every subclass registers itself, so when ``--force``
replaces a stage, :meth:`copyscope.rundir.RunDir.claim` removes that stage's files and the files
and records of every stage made from it, transitively: a new stage declares its files and its
inputs here and is cleared with the rest.

    run.json        {"format": 1, "copyscope": version, "stages": {stage: record, ...}}
    summary.json    AuditSummary
    quality.json    QualityRecord
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from copyscope.errors import CopyscopeError
from copyscope.hashing import jsonable

if TYPE_CHECKING:
    import pandas as pd

OPTIONAL = {"optional": True}
"""Field metadata: the key is left out of the file while the value is None."""
FORMAT = 1
"""The run.json layout this copyscope writes and reads (absent in files written before it had a
number, which are format 1)."""


@dataclass
class Record:
    """What every record shares: conversion to and from the JSON a file holds."""

    stage: ClassVar[str]
    file: ClassVar[str | None] = None
    """Where the record lives: None for a section of run.json, else a file of its own."""
    produces: ClassVar[tuple[str, ...]] = ()
    """Files and folders the stage writes into the run directory (besides its record)."""
    after: ClassVar[tuple[str, ...]] = ()
    """The stages (by name) whose output this stage is made from."""
    registry: ClassVar[dict[str, type[Record]]] = {}
    """Every record class by stage name, filled as the classes are defined."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "stage" in cls.__dict__:
            Record.registry[cls.stage] = cls

    @classmethod
    def dependents(cls) -> list[type[Record]]:
        """Every stage made, directly or through others, from this one's output."""
        found: list[type[Record]] = []
        frontier = [cls.stage]
        while frontier:
            stage = frontier.pop()
            for kind in Record.registry.values():
                if stage in kind.after and kind not in found:
                    found.append(kind)
                    frontier.append(kind.stage)
        return found

    def key(self) -> Any:
        """What a completion check compares: the record's identity."""
        return getattr(self, "identity", None)

    def made_from(self, key: Any) -> bool:
        """Is this the record of a run made from ``key`` (compared as JSON holds both)?"""
        return jsonable(_plain(self.key())) == jsonable(_plain(key))

    @property
    def complete(self) -> bool:
        return getattr(self, "status", "complete") == "complete"

    def to_json(self) -> dict[str, Any]:
        return jsonable({f.name: _plain(getattr(self, f.name)) for f in fields(self)
                         if not (f.metadata.get("optional") and getattr(self, f.name) is None)})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The record in ``data``; keys it does not know are ignored, missing ones are None."""
        return _build(cls, data)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)
                if not (f.metadata.get("optional") and getattr(value, f.name) is None)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any]) -> Any:
    hints = _hints(cls)
    known = {f.name for f in fields(cls)}
    return cls(**{k: _convert(hints[k], v) for k, v in data.items() if k in known})


def _convert(hint: Any, value: Any) -> Any:
    """``value`` read from JSON, as the type hint of its field says (nested records)."""
    if value is None:
        return None
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    origin = typing.get_origin(hint)
    if origin is dict:
        inner = typing.get_args(hint)[1]
        if dataclasses.is_dataclass(inner):
            return {k: _build(inner, v) for k, v in value.items()}
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _build(hint, value)
    return value


@dataclass
class StageRecord(Record):
    """What the stages added after the image audit record: identity and status, inputs with
    their hashes, parameters and provenance, in this order (a subclass types its identity)."""

    identity: Any = None
    status: str = "started"
    inputs: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    command: str | None = None
    started: str | None = None
    finished: str | None = None
    timings_s: dict[str, float] | None = None


# --- train ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainIdentity:
    family: str
    model: dict[str, Any]
    """The family's settings (its Config as a dict)."""
    train: str
    """Content hash of the training SPEC the subset is drawn from."""
    indices: str
    """Content hash of the training subset's indices (int64)."""
    batch_size: int
    seed: int


@dataclass
class TrainRecord(Record):
    """``copyscope train``: the family, the subset, and how far training got."""

    stage: ClassVar[str] = "train"
    produces: ClassVar[tuple[str, ...]] = ("checkpoints", "resume.pt", "train_indices.npy",
                                           "epochs")
    """epochs/<checkpoint>/ holds the sample runs of earlier checkpoints (an epoch sweep)."""
    identity: TrainIdentity | None = None
    status: str = "started"
    family: str | None = None
    config: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    seeds: dict[str, Any] | None = None
    device: str | None = None
    versions: dict[str, str] | None = None
    command: str | None = None
    started: str | None = None
    parameters: int | None = None
    epochs_done: int | None = None
    steps_done: int | None = None
    final_loss: float | None = None
    checkpoints: list[str] | None = None
    finished: str | None = None
    epoch_seconds: list[float] | None = None
    timings_s: dict[str, float | None] | None = None
    peak_memory_mb: float | None = None
    copied_from: str | None = field(default=None, metadata=OPTIONAL)
    """Written only when a study started from a finished training run elsewhere (e.g. models/)."""

    @property
    def train_size(self) -> int | None:
        return (self.inputs or {}).get("train_size")


# --- sample --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleIdentity:
    model: str
    """Content hash of the model (checkpoint or diffusers pipeline)."""
    n: int
    steps: int | None
    sampler: str
    seed: int
    batch_size: int
    shard: int


@dataclass
class SampleRecord(Record):
    """``copyscope sample``: which model made the samples, how, and with which seed."""

    stage: ClassVar[str] = "sample"
    produces: ClassVar[tuple[str, ...]] = ("samples",)
    after: ClassVar[tuple[str, ...]] = ("train",)
    identity: SampleIdentity | None = None
    status: str = "started"
    model: dict[str, Any] | None = None
    """family, train_size, every family fact (None where the family has none) and run: the
    training run (or pipeline directory) the samples came from."""
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    epoch: int | None = None
    step: int | None = None
    steps: int | None = None
    sampler: str | None = None
    seed: int | None = None
    n: int | None = None
    batch_size: int | None = None
    seeds: dict[str, Any] | None = None
    device: str | None = None
    versions: dict[str, str] | None = None
    command: str | None = None
    started: str | None = None
    finished: str | None = None
    timings_s: dict[str, float] | None = None
    samples_per_s: float | None = None
    """Images generated by the run that finished the stage, per second of it (a resumed run
    counts only the shards it drew itself)."""
    generated: int | None = None
    """How many images that run generated (n, less the shards a resumed run found finished)."""
    peak_memory_mb: float | None = None


# --- audit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditIdentity:
    samples: str
    train: str
    heldout: str
    config: dict[str, Any]
    """The AuditConfig as a dict."""
    seen: str | None = None
    """Content hash of the seen items' indices, when the audit knows them."""


@dataclass
class AuditRecord(Record):
    """``copyscope audit``: the three image sets with their hashes and the parameters."""

    stage: ClassVar[str] = "audit"
    produces: ClassVar[tuple[str, ...]] = ("samples.parquet", "controls.parquet", "items.parquet")
    after: ClassVar[tuple[str, ...]] = ("sample",)
    identity: AuditIdentity | None = None
    status: str = "started"
    inputs: dict[str, dict[str, Any]] | None = None
    """samples, train and heldout: each an ImageSet.describe() (spec, n, shape, sha256)."""
    params: dict[str, Any] | None = None
    seeds: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    device: str | None = None
    command: str | None = None
    started: str | None = None
    finished: str | None = None
    timings_s: dict[str, float] | None = None


@dataclass
class CriterionRate:
    """One criterion's verdicts: copies among samples, false positives among held-out images,
    each with its Wilson 95% interval."""

    rule: str
    citation: str
    copies: int
    copy_rate: float
    copy_rate_ci95: list[float]
    heldout_flagged: int
    heldout_fpr: float
    heldout_fpr_ci95: list[float]


@dataclass
class SeenSummary:
    """What the audit says when it knows the model's training subset (the seen items)."""

    source: str
    """Where the list of seen items came from (a train_indices.npy, or --seen)."""
    n_seen: int
    n_unseen: int
    nearest_is_seen: dict[str, Any]
    """Share of samples, and of held-out images, whose nearest training image is a seen one,
    with Wilson intervals, beside the share of the training set that is seen (``chance``)."""
    flagged: dict[str, dict[str, int]]
    """Per criterion: flagged samples whose nearest training image is seen, and unseen (a model
    cannot copy what it never saw: the unseen ones are false positives)."""
    items_flagged: dict[str, int]
    """Training items flagged by the per-item test, seen and unseen."""
    data_copying_ct: dict[str, Any]
    """Meehan et al.'s C_T with T = the seen items (their definition), the held-out images and
    the unseen training images as the held-out sample."""


@dataclass
class SearchRecall:
    """How much of the exact answer an approximate search found (copyscope.search.recall): every
    rate of an audit rests on the neighbours, so it is read beside this."""

    backend: str
    settings: dict[str, Any]
    """What decides the neighbours the backend finds (IVF: nlist, nprobe, ...)."""
    seed: int
    """Seed of the queries drawn for the measurement."""
    recall: dict[str, dict[str, Any]]
    """Per query kind (samples, heldout, train): at_1, at_k, k and the number of queries."""


@dataclass
class AuditSummary(Record):
    """summary.json: the headline numbers of an audit."""

    stage: ClassVar[str] = "summary"
    file: ClassVar[str | None] = "summary.json"
    after: ClassVar[tuple[str, ...]] = ("audit",)
    n_samples: int = 0
    n_train: int = 0
    n_heldout: int = 0
    default_criterion: str = ""
    copies: int = 0
    copy_rate: float = 0.0
    copy_rate_ci95: list[float] = field(default_factory=list)
    heldout_fpr: float = 0.0
    heldout_fpr_ci95: list[float] = field(default_factory=list)
    criteria: dict[str, CriterionRate] = field(default_factory=dict)
    distinct_items_copied: int = 0
    nn_l2_median: dict[str, float] = field(default_factory=dict)
    data_copying_ct: dict[str, Any] = field(default_factory=dict)
    """Meehan et al.'s C_T with the number of cells it used."""
    ct_cells: list[dict[str, Any]] = field(default_factory=list)
    memorised_items: dict[str, Any] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    seen: SeenSummary | None = field(default=None, metadata=OPTIONAL)
    """Present when the audit knows which training items the model saw."""
    search: SearchRecall | None = field(default=None, metadata=OPTIONAL)
    """Present when the search was approximate (--backend ivf): its measured recall."""


# --- quality, analysis ---------------------------------------------------------------------


@dataclass
class QualityRecord(Record):
    """quality.json: is the model producing digits at all (classifier histogram, confidence,
    Fréchet distance to held-out images)?"""

    stage: ClassVar[str] = "quality"
    file: ClassVar[str | None] = "quality.json"
    after: ClassVar[tuple[str, ...]] = ("sample",)
    n: int = 0
    class_histogram: list[int] = field(default_factory=list)
    class_fractions: list[float] = field(default_factory=list)
    mean_confidence: float = 0.0
    frechet_distance: float = 0.0
    classifier: dict[str, Any] = field(default_factory=dict)
    samples_sha256: str | None = None
    heldout: str | None = None

    def key(self) -> Any:
        return {"samples": self.samples_sha256, "heldout": self.heldout}


@dataclass
class AnalysisRecord(Record):
    """``copyscope report`` (or :func:`copyscope.analysis.analyse`): the trend tables of one
    audit, written to ``analysis/``."""

    stage: ClassVar[str] = "analysis"
    produces: ClassVar[tuple[str, ...]] = ("analysis", "report.html")
    """analysis/ holds the trend tables; report.html (the report's default place) is drawn
    from them and from the compression measure beside the audit."""
    after: ClassVar[tuple[str, ...]] = ("audit", "compress")
    status: str = "complete"
    inputs: dict[str, Any] | None = None
    """``audit``: the identity of the audit analysed."""
    params: dict[str, Any] | None = None
    seeds: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    command: str | None = None
    finished: str | None = None
    timings_s: dict[str, float] | None = None
    tables: list[str] | None = None

    def key(self) -> Any:
        return {"audit": (self.inputs or {}).get("audit"), **(self.params or {}),
                **(self.seeds or {})}


# --- compression ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompressIdentity:
    model: str
    """The checkpoint's content hash."""
    train: str
    heldout: str
    limit: int | None
    seed: int
    batch: int
    chunk: int
    """Items per resumable part (images); for text, the bytes of a chunk."""
    files: int | None = field(default=None, metadata=OPTIONAL)
    """Text only: whole documents per set coded by the model (absent: all, or images)."""


@dataclass
class CompressRecord(StageRecord):
    """``copyscope compress measure``: the model, the training and held-out items it coded."""

    stage: ClassVar[str] = "compress"
    produces: ClassVar[tuple[str, ...]] = ("compression.parquet", "compression_files.parquet")
    after: ClassVar[tuple[str, ...]] = ("train",)
    identity: CompressIdentity | None = None
    model: dict[str, Any] | None = None
    outputs: list[str] | None = None


@dataclass
class CompressionSummary(Record):
    """compression.json: bits per dimension of every method, membership and stored bits."""

    stage: ClassVar[str] = "compression"
    file: ClassVar[str | None] = "compression.json"
    after: ClassVar[tuple[str, ...]] = ("compress",)
    model: dict[str, Any] = field(default_factory=dict)
    dims: int = 0
    rates: dict[str, Any] = field(default_factory=dict)
    """Per set (train, heldout): each method's bits/dim, item by item and for the whole set,
    raw and model-size-adjusted rates (as Delétang et al.'s table), the best classical method."""
    coder_overhead: dict[str, float] = field(default_factory=dict)
    membership: dict[str, Any] | None = None
    """Per score: ROC AUC and TPR at 1% FPR of training against held-out items."""
    stored_bits: dict[str, Any] = field(default_factory=dict)
    """Per training item and in total, with its interval, beside the model's size in bits."""
    kind: str | None = field(default=None, metadata=OPTIONAL)
    """"text" for a text model (rates in bits per byte, on chunks and whole files); absent for
    images."""


# --- text ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextIndexIdentity:
    corpus: str
    """Content hash of the indexed corpus."""
    format: int
    """The index's on-disk format."""


@dataclass
class TextIndexRecord(StageRecord):
    """``copyscope text index``: the suffix-array index of a corpus."""

    stage: ClassVar[str] = "text_index"
    produces: ClassVar[tuple[str, ...]] = ("corpus.bin", "sa.npy", "isa.npy", "lcp.npy",
                                           "starts.npy", "ids.json", "index.json")
    identity: TextIndexIdentity | None = None


@dataclass(frozen=True)
class TextSpansIdentity:
    index: str
    texts: str
    heldout: str | None
    min_length: int
    heldout_q: float


@dataclass
class TextSpansRecord(StageRecord):
    """``copyscope text spans``: the texts, the index and the held-out control they met."""

    stage: ClassVar[str] = "text_spans"
    produces: ClassVar[tuple[str, ...]] = ("texts.parquet", "spans.parquet", "controls.parquet")
    after: ClassVar[tuple[str, ...]] = ("text_index",)
    identity: TextSpansIdentity | None = None


@dataclass
class TextSummary(Record):
    """text_summary.json: how much of the texts lies verbatim in the corpus, against held-out."""

    stage: ClassVar[str] = "text_summary"
    file: ClassVar[str | None] = "text_summary.json"
    after: ClassVar[tuple[str, ...]] = ("text_spans",)
    n_texts: int = 0
    chars: int = 0
    min_length: int = 0
    heldout_q: float = 0.0
    index: dict[str, Any] = field(default_factory=dict)
    texts: str = ""
    heldout: str | None = None
    heldout_chunks: int = 0
    copied_chars: int = 0
    copied_share: float | None = None
    longest_span: dict[str, float] = field(default_factory=dict)
    texts_with_spans: int = 0
    default_criterion: str = ""
    criteria: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per criterion: copies and copy rate with its Wilson interval, and where there is a
    held-out control, the false-positive rate with its interval."""
    novelty: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class TextExtractIdentity:
    model: str
    """The checkpoint's content hash."""
    train: str
    """Content hash of the model's training documents (the prompts' source and the counts')."""
    heldout: str | None
    prompts: int
    prefixes: list[int]
    suffix: int
    seed: int
    batch: int


@dataclass
class TextExtractRecord(StageRecord):
    """``copyscope text extract``: the model, its training text and the held-out control."""

    stage: ClassVar[str] = "text_extract"
    produces: ClassVar[tuple[str, ...]] = ("extraction.parquet",)
    after: ClassVar[tuple[str, ...]] = ("train",)
    identity: TextExtractIdentity | None = None
    model: dict[str, Any] | None = None


@dataclass
class ExtractionSummary(Record):
    """extraction.json: k-extractability by prefix length and by how often the continuation
    occurs in the training text, training prompts against held-out ones."""

    stage: ClassVar[str] = "extraction"
    file: ClassVar[str | None] = "extraction.json"
    after: ClassVar[tuple[str, ...]] = ("text_extract",)
    definition: str = ""
    prompts: dict[str, int] = field(default_factory=dict)
    """Prompts per set (train, heldout)."""
    prefixes: list[int] = field(default_factory=list)
    suffix: int = 0
    model_context: int | None = None
    """Bytes the model sees at most (a longer prompt is seen through its sliding window); None
    for gzip, whose window is DEFLATE's 32 KiB."""
    by_prefix: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """set -> prefix length -> extracted count, rate, Wilson 95% interval, mean bytes matched."""
    by_count: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    """set -> prefix length -> occurrence bin of the continuation -> the same."""
    count_bins: list[str] = field(default_factory=list)


# --- Parquet tables ------------------------------------------------------------------------

EVIDENCE = ("nn_train", "nn_label", "nn_l2", "nn2_train", "nn2_l2", "gu_ratio", "carlini",
            "carlini_sample", "heldout_p", "nn_heldout", "nn_heldout_l2", "is_copy")
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "samples": ("sample", *EVIDENCE),
    "controls": ("heldout", *EVIDENCE),
    "items": ("item", "n_nearest", "n_copies", "n_heldout_nearest", "nn_other", "nn_other_l2",
              "knn_mean_l2", "near_samples", "near_heldout", "copying_score", "copying_p",
              "copying_flag"),
}
"""The columns every reader may rely on in an audit's tables (README lists them all, with the
optional ones: name, label, the pair measures, one copy_<criterion> per criterion)."""


def check_table(name: str, table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``table`` if it has every column of :data:`TABLE_COLUMNS` [name], else one sentence."""
    missing = [c for c in TABLE_COLUMNS[name] if c not in table.columns]
    if missing:
        raise CopyscopeError(f"{path} lacks the column(s) {', '.join(missing)}; it was not "
                             "written by this copyscope's audit (run the audit again).")
    return table
