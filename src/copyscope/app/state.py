"""What the web app loads once at start-up, so that every view afterwards takes milliseconds.

:func:`load_state` reads each run directory once (its tables, summary and images, through
:func:`copyscope.analysis.open_audit`), fits the exact int8 searcher over *every* training image, a
searcher over each distinct held-out set and one over all the loaded runs' generated samples, and
rebuilds each run's :class:`copyscope.stages.evidence.Reference` (its settings and held-out null
distribution of nearest-training distances). Nothing is searched per request except the images a
user brings (a drawing, an upload, a live sample).

:func:`judge` gives a new image exactly the evidence and verdicts ``copyscope audit`` would give it
as a sample of a loaded run: the audit's own Reference, with that run's settings and control.

Users' queries are searched in batches (:class:`QueryBatcher`): queries that arrive while a search
runs wait for it to finish and are then searched together, in the thread of the first of them:
one exact search of the training set (and of the held-out and samples indexes) for all of them;
an exact search of 60,000 images costs about the same for 50 queries as for one. Each query's
rows are the rows it would get alone: the search is exact and every column of the evidence is
computed per row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from copyscope.analysis import AuditedRun, trends
from copyscope.analysis.audited import open_audits
from copyscope.analysis.texts import is_text_results, open_lookup
from copyscope.data import ImageSet
from copyscope.errors import CopyscopeError
from copyscope.records import AuditRecord, TextSummary
from copyscope.rundir import MANIFEST, RunDir
from copyscope.search import Neighbours, Searcher, make_searcher
from copyscope.stages.audit_config import AuditConfig
from copyscope.stages.evidence import Reference

if TYPE_CHECKING:
    from copyscope.text.highlight import TextLookup

THREADS = 1
QUERY_SAMPLES = 8
"""Generated samples found nearest to each query (over all loaded runs)."""
MAX_BATCH = 256
"""Most queries searched at once (an int8 block of 256 x 60,000 scores is 61 MB)."""


@dataclass
class Found:
    """One query's share of a batched search (:func:`search_queries`)."""

    evidence: pd.Series
    """Its row of the audit's evidence and verdicts, judged as a sample of the first run."""
    index: np.ndarray
    """(k,) its nearest training items, nearest first (k: the run's neighbourhood size)."""
    d2: np.ndarray
    """(k,) their exact squared distances."""
    near_index: np.ndarray
    """(QUERY_SAMPLES,) the nearest generated samples (rows of ``AppState.sample_owner``)."""
    near_d2: np.ndarray


class QueryBatcher:
    """Concurrent queries answered by one batched search.

    :meth:`submit` queues a query. If no search is running, the calling thread runs one at
    once, for its own query; otherwise it waits. When a search ends and queries are waiting, the
    thread of the first of them is woken to search all of them (up to ``max_batch``) together.
    So a lone query is searched at once in its own thread, and nothing waits for company.
    ``batches`` counts the searches made and ``searched`` the queries.
    """

    def __init__(self, search: Callable[[np.ndarray], list[Found]],
                 max_batch: int = MAX_BATCH) -> None:
        self.search = search
        self.max_batch = max_batch
        self.batches = self.searched = 0
        self._pending: list[_Slot] = []
        self._busy = False
        self._lock = threading.Lock()

    def waiting(self) -> int:
        """Queries queued behind the search that is running."""
        with self._lock:
            return len(self._pending)

    def submit(self, query: np.ndarray) -> Found:
        """The result of searching ``query`` (H, W, C), in a batch with any others waiting."""
        slot = _Slot(query)
        with self._lock:
            self._pending.append(slot)
            lead, self._busy = not self._busy, True
        if not lead:
            slot.done.wait()
            if not slot.lead:
                return slot.outcome()
        self._lead()
        return slot.outcome()

    def _lead(self) -> None:
        """Search what is waiting (this thread's own query first), then hand over."""
        with self._lock:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
        try:
            results = self.search(np.stack([s.query for s in batch]))
            for s, result in zip(batch, results, strict=True):
                s.result = result
        except BaseException as e:  # every query of the batch gets the error
            for s in batch:
                s.error = e
        with self._lock:
            self.batches, self.searched = self.batches + 1, self.searched + len(batch)
            if self._pending:
                self._pending[0].lead = True
                self._pending[0].done.set()
            else:
                self._busy = False
        for s in batch:
            s.lead = False
            s.done.set()


class _Slot:
    """One query's place in a :class:`QueryBatcher`: woken with its result, its error, or the
    turn to search (``lead``)."""

    def __init__(self, query: np.ndarray) -> None:
        self.query = query
        self.done = threading.Event()
        self.lead = False
        self.result: Found | None = None
        self.error: BaseException | None = None

    def outcome(self) -> Found:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass
class AppState:
    """Every loaded run, the training set with its exact searcher, and the samples index."""

    runs: dict[str, AuditedRun]
    train: ImageSet
    searcher: Searcher
    references: dict[str, Reference]
    samples_searcher: Searcher
    sample_owner: pd.DataFrame
    """Row i of the samples index: the run and sample it came from, its nearest training item
    and its verdict (``is_copy``)."""
    landing: np.ndarray
    """int64 (N, 2): per training item, over all runs, samples nearest to it (``n_nearest``) and
    copies of it by each run's default criterion (``n_copies``)."""
    rates: pd.DataFrame
    """The per-criterion copy rates and held-out false-positive rates of every run."""
    timings_s: dict[str, float] = field(default_factory=dict)
    figures: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    """Rendered figures (see :func:`copyscope.app.views.core_figure`)."""
    text: TextLookup | None = None
    """The text index behind the Text tab (see :func:`copyscope.text.highlight.open_lookup`),
    or None when no text run or index was given."""
    queries: QueryBatcher = field(init=False)
    """Users' queries, searched in batches (:func:`search_queries`)."""

    def __post_init__(self) -> None:
        self.queries = QueryBatcher(lambda batch: search_queries(self, batch))

    @property
    def first(self) -> str:
        """The run whose settings and control judge a user's query (the first one given)."""
        return next(iter(self.runs))

    def run(self, name: str) -> AuditedRun:
        if name not in self.runs:
            raise CopyscopeError(f"no loaded run is called {name!r} "
                                 f"(loaded: {', '.join(self.runs)}).")
        return self.runs[name]


def load_state(paths: Sequence[str | Path], warm: bool = True,
               threads: int | None = THREADS, text_index: str | Path | None = None
               ) -> AppState:
    """Read the runs and build the indexes. All runs must be audited against one training set.

    Text runs among ``paths`` (folders ``copyscope text spans`` wrote) or ``text_index`` (such a
    run, or an index folder) give the Text tab its index, opened once (:func:`text_lookup`).

    ``threads`` sets torch's (process-wide) intra-op threads; None leaves them alone. The app
    answers small requests (a query is one pass of a single row over the training set; live
    generation runs a small network on a few images), and when the cores are shared OpenMP
    threads spin-wait for each other, so one thread per request is the default (benchmarks/app.py
    measures both). Concurrent requests still use every core, one each.
    ``warm`` runs :func:`warm_up` before returning; the app runs it in the background once its
    server listens instead.
    """
    texts = [p for p in paths if is_text_results(p)]
    paths = [p for p in paths if p not in texts]
    if not paths:
        raise CopyscopeError("the app needs at least one run directory written by "
                             "`copyscope audit --out` (text runs come beside image runs).")
    if threads is not None:
        torch.set_num_threads(threads)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    runs = _open_runs(paths)
    images = {name: {role: run.images(role) for role in ("samples", "train", "heldout")}
              for name, run in runs.items()}
    train = images[next(iter(runs))]["train"]
    timings["read_runs"] = time.perf_counter() - start

    start = time.perf_counter()
    searcher = make_searcher("int8").fit(train.flat)
    references = _references(runs, images, train, searcher)
    owner = pd.concat([r.samples[["sample", "nn_train", "is_copy"]].assign(run=n)
                       for n, r in runs.items()], ignore_index=True)
    owner = owner[["run", "sample", "nn_train", "is_copy"]]
    landing = sum(r.items[["n_nearest", "n_copies"]].to_numpy(np.int64) for r in runs.values())
    samples_searcher = make_searcher("int8").fit(
        np.concatenate([images[n]["samples"].flat for n in runs]))
    timings["index"] = time.perf_counter() - start

    start = time.perf_counter()
    rates = trends.compare(list(runs.values()))
    rates["run"] = rates["path"].map({str(r.path): name for name, r in runs.items()})
    timings["rates"] = time.perf_counter() - start
    start = time.perf_counter()
    text = text_lookup(texts, text_index)
    timings["text_index"] = time.perf_counter() - start
    state = AppState(runs, train, searcher, references, samples_searcher, owner, landing, rates,
                     timings, text=text)
    if warm:
        warm_up(state)
    return state


def text_lookup(texts: Sequence[str | Path], index: str | Path | None) -> TextLookup | None:
    """The Text tab's index: ``index`` if given, else that of the first text run that found
    spans (its min_length and held-out control with it); None when there is neither."""
    if index is not None:
        return open_lookup(index)
    spans = [p for p in texts if (Path(p) / (TextSummary.file or "")).is_file()]
    return open_lookup(spans[0]) if spans else None


def _references(runs: dict[str, AuditedRun], images: dict[str, dict[str, ImageSet]],
                train: ImageSet, searcher: Searcher) -> dict[str, Reference]:
    """Each run's audit Reference, rebuilt from its tables (one held-out searcher per distinct
    held-out set); every run must have been audited against the same training set."""
    heldout_searchers: dict[str, Searcher] = {}
    references = {}
    for name, run in runs.items():
        if run.inputs["train"]["sha256"] != train.sha256:
            raise CopyscopeError(
                f"{run.path} was audited against a different training set than "
                f"{next(iter(runs.values())).path}; open runs of one training set together.")
        heldout = images[name]["heldout"]
        if heldout.sha256 not in heldout_searchers:
            heldout_searchers[heldout.sha256] = make_searcher("int8").fit(heldout.flat)
        references[name] = Reference(
            config=AuditConfig(**run.params), train=train, searcher=searcher,
            heldout_searcher=heldout_searchers[heldout.sha256],
            null_d2=_squared(run.controls["nn_l2"].to_numpy(), train.dim),
            train_knn_mean=run.items["knn_mean_l2"].to_numpy())
    return references


def warm_up(state: AppState) -> None:
    """Judge one image and search the samples index once, so that the first user request pays
    neither torch's first-call set-up nor the import of the measures' libraries (~2 s)."""
    start = time.perf_counter()
    judge(state, state.train.images[:1], state.first)
    state.samples_searcher.search(state.train.flat[:1], 1, show=False)
    state.timings_s["warm_up"] = time.perf_counter() - start


def find_runs(folder: str | Path = "runs") -> list[Path]:
    """The finished audits anywhere under ``folder`` (what ``copyscope app`` opens by default):
    ``make demo``'s runs/demo/<model>/, epoch sweeps' <model>/epochs/<checkpoint>/ included."""
    folder = Path(folder)
    found = sorted(p.parent for p in folder.rglob(MANIFEST)) if folder.is_dir() else []
    done = [p for p in found if (RunDir(p).read(AuditRecord) or AuditRecord()).complete]
    if not done:
        raise CopyscopeError(f"{folder} holds no finished audit; name run directories written "
                             "by `copyscope audit --out` (make demo writes some under runs/).")
    return done


def judge(state: AppState, images: np.ndarray, run: str, measures: bool = True
          ) -> tuple[pd.DataFrame, Neighbours]:
    """The audit's evidence and verdicts for new uint8 images (N, H, W, C) as samples of ``run``.

    Returns the table ``copyscope audit`` would write to samples.parquet for them (one row each,
    ``sample`` numbering them 0..N-1; without the pair measures if ``measures`` is False) and
    their exact training neighbours, nearest first.
    """
    query = ImageSet(np.ascontiguousarray(images), source="query")
    return state.references[run].judge(query, measures)


def search_queries(state: AppState, queries: np.ndarray) -> list[Found]:
    """Search and judge query images (B, H, W, C) together: one exact search of the training
    set, the held-out set and the samples index for the batch, then each query's rows."""
    evidence, nb = judge(state, queries, state.first, measures=False)
    evidence["sample"] = 0  # each row is its query's only one
    m = min(QUERY_SAMPLES, len(state.sample_owner))
    near = state.samples_searcher.search(queries.reshape(len(queries), -1), m, show=False)
    return [Found(row, nb.index[i], nb.d2[i], near.index[i], near.d2[i])
            for i, (_, row) in enumerate(evidence.iterrows())]


def _open_runs(paths: Sequence[str | Path]) -> dict[str, AuditedRun]:
    return {run.name: run for run in open_audits(paths)}


def _squared(l2: np.ndarray, dim: int) -> np.ndarray:
    """Exact integer squared pixel distances back from normalised L2 (``sqrt(d2 / dim) / 255``).

    d2 is at most 255^2 * dim, so float64 carries it with room to spare and rounding recovers it.
    """
    return np.rint((l2 * 255.0) ** 2 * dim).astype(np.int64)
