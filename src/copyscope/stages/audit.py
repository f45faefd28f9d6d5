"""The audit stage: generated samples in; per-sample evidence, verdicts and trends out.

Every sample is searched exactly against every training image. The held-out real images go
through exactly the same measures and criteria, so each verdict comes with the rate at which it
fires on real data the model never saw. README.md defines every measure.

    <out>/samples.parquet    one row per sample (stages.evidence)
    <out>/controls.parquet   the same for every held-out image: the null distribution
    <out>/items.parquet      one row per training image
    <out>/summary.json       AuditSummary
    <out>/run.json           stage "audit" (AuditRecord)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from copyscope.cache import cached_arrays
from copyscope.data import ImageSet, load
from copyscope.detect import calibration, criteria, datacopying
from copyscope.errors import CopyscopeError
from copyscope.files import write_parquet
from copyscope.hashing import fingerprint, jsonable
from copyscope.records import (
    AuditIdentity,
    AuditRecord,
    AuditSummary,
    CriterionRate,
    SearchRecall,
    SeenSummary,
)
from copyscope.rundir import RunDir, chunked, command_line, now, versions
from copyscope.search import (
    Neighbours,
    Searcher,
    aux_backend,
    check_backend,
    make_searcher,
    normalised_l2,
)
from copyscope.search.recall import measured
from copyscope.stages.audit_config import AuditConfig
from copyscope.stages.evidence import Reference, evidence_table
from copyscope.stages.seen import Seen, find_seen

MIN_SIDE = 11  # SSIM's 11x11 Gaussian window
KMEANS_FIT_MAX = 200_000
"""C_T's k-means cells are fitted on at most this many training images (a seeded subsample)."""
Timings = dict[str, float]


@dataclass
class Audit:
    """What an audit produces; the same tables are written to the run directory."""

    samples: pd.DataFrame
    controls: pd.DataFrame
    items: pd.DataFrame
    summary: AuditSummary
    record: AuditRecord
    out: Path | None = None


@dataclass
class Searched:
    """Every neighbour list an audit needs, found once."""

    reference: Reference
    train_nb: Neighbours
    """Each training image's nearest other training images."""
    ctrl_nb: Neighbours
    """Each held-out image's nearest training images."""
    ctrl_held: Neighbours
    """Each held-out image's nearest other held-out image."""
    sample_nb: Neighbours
    sample_held: Neighbours


def audit_identity(samples: ImageSet, train: ImageSet, heldout: ImageSet,
                   config: AuditConfig, seen: Seen | None = None) -> AuditIdentity:
    """What makes an audit *this* audit: the image sets' hashes, the settings and, when known,
    which training items the model saw."""
    return AuditIdentity(samples.sha256, train.sha256, heldout.sha256, jsonable(config.identity()),
                         seen.sha256 if seen is not None else None)


def audit(
    samples: str | Path | ImageSet,
    train: str | Path | ImageSet = "mnist:train",
    heldout: str | Path | ImageSet = "mnist:test",
    out: str | Path | None = None,
    config: AuditConfig | None = None,
    force: bool = False,
    show: bool = True,
    seen: str | Path | np.ndarray | None = None,
) -> Audit:
    """Search every sample against every training image and judge it against the held-out null.

    ``seen`` names the training items the model saw (indices, a .npy of indices, or images;
    default: those of the samples' training run, when there is one: :mod:`.seen`). With ``out``
    the tables, summary.json and run.json are written there atomically; an interrupted audit
    resumes from its finished chunks. A folder holding another audit is refused unless ``force``.
    """
    cfg = _checked(config or AuditConfig())
    timings: Timings = {}
    with _timed(timings, "load"):
        s_set, t_set, h_set = load(samples), load(train), load(heldout)
    _check_inputs(s_set, t_set, h_set)
    known = find_seen(samples, t_set, seen)
    identity = audit_identity(s_set, t_set, h_set, cfg, known)
    run = RunDir(Path(out)) if out is not None else None
    if run is not None:
        run.claim(AuditRecord, identity, force)
    started = now()
    partial = fingerprint({"identity": asdict(identity), "k": min(cfg.neighbours, len(t_set) - 1)})
    found = _search(s_set, t_set, h_set, cfg, run.partial(f"search-{partial}") if run else None,
                    timings, show)
    with _timed(timings, "measures"):
        s_table, c_table = _tables(found, s_set, h_set)
    with _timed(timings, "data_copying"):
        per_item, radius_d2 = _item_copying(found, len(t_set), cfg)
        items = _items(t_set, s_table, c_table, found.train_nb, per_item)
        ct = _meehan(t_set.flat, t_set.sha256, h_set.flat, s_set.flat, cfg)
    summary = _summary(s_table, c_table, items, found, ct, cfg,
                       float(normalised_l2(np.asarray(radius_d2), t_set.dim)))
    if not found.reference.searcher.exact:
        with _timed(timings, "recall"):
            summary.search = _recall(found, (s_set, t_set, h_set), cfg)
    if known is not None:
        with _timed(timings, "seen"):
            s_table, c_table, items, summary.seen = _seen(known, s_table, c_table, items,
                                                          (s_set, t_set, h_set), ct, cfg)
    record = AuditRecord(
        identity=identity, status="complete", inputs=_inputs(s_set, t_set, h_set, known),
        params=cfg.params(), seeds={"kmeans_cells": cfg.seed}, versions=versions(),
        device=str(getattr(found.reference.searcher, "device", "cpu")), command=command_line(),
        started=started, finished=now(), timings_s={k: round(v, 3) for k, v in timings.items()})
    if run is not None:
        _write(run, f"search-{partial}", {"samples": s_table, "controls": c_table,
                                          "items": items}, summary, record)
    return Audit(s_table, c_table, items, summary, record, run.path if run else None)


def _inputs(s: ImageSet, t: ImageSet, h: ImageSet, seen: Seen | None) -> dict[str, Any]:
    """The audit's inputs as run.json records them (spec, n, shape, sha256 of each)."""
    out = {"samples": s.describe(), "train": t.describe(), "heldout": h.describe()}
    if seen is not None:
        out["seen"] = {"spec": seen.source, "n": len(seen.indices), "sha256": seen.sha256}
    return out


def _checked(cfg: AuditConfig) -> AuditConfig:
    """The settings, checked, and the backend able to run (before anything is written)."""
    cfg.validate()
    check_backend(cfg.backend, **cfg.searcher_options())
    return cfg


def _write(run: RunDir, partial: str, tables: dict[str, pd.DataFrame], summary: AuditSummary,
           record: AuditRecord) -> None:
    """The tables, summary.json and the finished record; then the partial work goes."""
    for name, table in tables.items():
        write_parquet(run.file(f"{name}.parquet"), table)
    run.write(summary)
    run.write(record)
    run.clear_partial(partial)


def _check_inputs(s: ImageSet, t: ImageSet, h: ImageSet) -> None:
    for name, other in (("samples", s), ("held-out set", h)):
        if other.image_shape != t.image_shape:
            raise CopyscopeError(
                f"{other.source}: the {name} have shape {other.image_shape} per image but the "
                f"training set {t.source} has {t.image_shape}; they must match."
            )
    if len(t) < 2:
        raise CopyscopeError(f"{t.source} holds {len(t)} image; the audit needs at least 2.")
    if len(h) < 2:
        raise CopyscopeError(f"{h.source} holds {len(h)} image; the control needs at least 2.")
    if min(t.image_shape[:2]) < MIN_SIDE:
        raise CopyscopeError(
            f"{t.source}: images are {t.image_shape[0]}x{t.image_shape[1]}; the measures need "
            f"at least {MIN_SIDE}x{MIN_SIDE} pixels."
        )


@contextmanager
def _timed(timings: Timings, name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _search(s_set: ImageSet, t_set: ImageSet, h_set: ImageSet, cfg: AuditConfig,
            store: Path | None, timings: Timings, show: bool) -> Searched:
    """The training set's and the held-out set's own neighbours (cached: they depend only on the
    data), then every sample's, in resumable chunks."""
    with _timed(timings, "index"):
        searcher = make_searcher(cfg.backend, **cfg.searcher_options()).fit(t_set.flat)
    try:
        return _search_with(searcher, s_set, t_set, h_set, cfg, store, timings, show)
    finally:
        close = getattr(searcher, "close", None)  # a cluster's workers (search.ray_sharded)
        if close is not None:
            close()


def _search_with(searcher: Searcher, s_set: ImageSet, t_set: ImageSet, h_set: ImageSet,
                 cfg: AuditConfig, store: Path | None, timings: Timings, show: bool) -> Searched:
    k = min(cfg.neighbours, len(t_set) - 1)
    with _timed(timings, "train_neighbours"):
        train_nb = _cached_search(searcher, t_set, t_set, k, True, show, "training set vs itself")
    with _timed(timings, "controls_search"):
        ctrl_nb = _cached_search(searcher, t_set, h_set, k, False, show, "held-out vs training")
        held_searcher = make_searcher(aux_backend(cfg.backend)).fit(h_set.flat)
        ctrl_held = _cached_search(held_searcher, h_set, h_set, 1, True, False, "held-out")
    reference = Reference(cfg, t_set, searcher, held_searcher, ctrl_nb.d2[:, 0],
                          train_nb.l2.mean(axis=1))
    with _timed(timings, "samples_search"):
        flat = s_set.flat

        def compute(piece: slice) -> dict[str, np.ndarray]:
            nb, hb = reference.search(flat[piece])
            return {"d2": nb.d2, "index": nb.index, "hd2": hb.d2, "hindex": hb.index}

        r = chunked(len(s_set), cfg.chunk, compute, store, desc="search samples", show=show)
    return Searched(reference, train_nb, ctrl_nb, ctrl_held,
                    Neighbours(r["d2"], r["index"], s_set.dim),
                    Neighbours(r["hd2"], r["hindex"], s_set.dim))


def _search_key(searcher: Any) -> dict[str, Any]:
    """What besides the data decides a searcher's neighbours: nothing for an exact backend, its
    settings for an approximate one (part of every cache key built on its neighbours)."""
    return {} if searcher.exact else {"search": {"backend": searcher.name,
                                                 **searcher.settings()}}


def _recall(found: Searched, sets: tuple[ImageSet, ImageSet, ImageSet], cfg: AuditConfig
            ) -> SearchRecall:
    """Recall of the approximate neighbours against the exact int8 search, on up to
    ``cfg.recall_queries`` seeded queries of each kind."""
    s_set, t_set, h_set = sets
    searcher = found.reference.searcher
    exact = make_searcher("int8").fit(t_set.flat)
    rng = np.random.default_rng(cfg.seed)

    def picks(n: int) -> np.ndarray:
        return np.sort(rng.choice(n, min(n, cfg.recall_queries), replace=False))

    k = found.sample_nb.d2.shape[1]
    measures = {
        "samples": measured(found.sample_nb, exact, s_set.flat, picks(len(s_set)), k),
        "heldout": measured(found.ctrl_nb, exact, h_set.flat, picks(len(h_set)), k),
        "train": measured(found.train_nb, exact, t_set.flat, picks(len(t_set)), k,
                          exclude_self=True)}
    return SearchRecall(backend=searcher.name, settings=searcher.settings(), seed=cfg.seed,
                        recall=measures)


def _cached_search(searcher: Any, ref: ImageSet, queries: ImageSet, k: int, exclude_self: bool,
                   show: bool, what: str) -> Neighbours:
    """Neighbours that depend only on datasets (and an approximate backend's settings), cached
    under $COPYSCOPE_HOME."""
    key = {"ref": ref.sha256, "queries": queries.sha256, "k": k, "exclude_self": exclude_self,
           **_search_key(searcher)}

    def compute() -> dict[str, np.ndarray]:
        nb = searcher.search(queries.flat, k, exclude_self=exclude_self, show=show)
        return {"d2": nb.d2, "index": nb.index}

    arrays = cached_arrays("neighbours", key, compute)
    return Neighbours(arrays["d2"], arrays["index"], ref.dim)


def _tables(found: Searched, s_set: ImageSet, h_set: ImageSet
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """samples.parquet and controls.parquet: every sample judged against the held-out null, and
    every held-out image judged the same way against the other held-out images."""
    ref = found.reference
    s_table = ref.evidence(s_set, found.sample_nb, found.sample_held)
    key = {"train": ref.train.sha256, "heldout": h_set.sha256, "k": ref.k,
           "alpha": ref.config.alpha, **_search_key(ref.searcher)}
    c_table = _cached_table("controls", key, lambda: evidence_table(
        h_set, found.ctrl_nb, found.ctrl_held, ref.train, ref.train_knn_mean,
        calibration.heldout_p_loo(ref.null_d2), ref.config, "heldout"))
    return s_table, criteria.apply(c_table, ref.config)


def _cached_table(kind: str, key: dict[str, Any], compute: Callable[[], pd.DataFrame]
                  ) -> pd.DataFrame:
    """A table that depends only on datasets, cached under $COPYSCOPE_HOME like neighbours."""

    def arrays() -> dict[str, np.ndarray]:
        table = compute()
        return {c: np.asarray(table[c], dtype=str if c == "name" else None) for c in table}

    return pd.DataFrame(cached_arrays(kind, key, arrays))


def _item_copying(found: Searched, n_items: int, cfg: AuditConfig
                  ) -> tuple[dict[str, np.ndarray], float]:
    """The per-item data-copying test and the region radius (squared pixel distance) it used."""
    null_d2 = found.reference.null_d2
    radius_d2 = float(np.quantile(null_d2, cfg.near_q))
    per_item = datacopying.item_copying(
        n_items, found.sample_nb.index[:, 0], found.sample_nb.d2[:, 0],
        found.ctrl_nb.index[:, 0], null_d2, radius_d2, cfg.item_alpha)
    return per_item, radius_d2


def _items(train: ImageSet, s_table: pd.DataFrame, c_table: pd.DataFrame, train_nb: Neighbours,
           per_item: dict[str, np.ndarray]) -> pd.DataFrame:
    n = len(train)
    nn = s_table["nn_train"].to_numpy()
    table: dict[str, Any] = {"item": np.arange(n)}
    if train.labels is not None:
        table["label"] = train.labels
    table["n_nearest"] = np.bincount(nn, minlength=n)
    table["n_copies"] = np.bincount(nn[s_table["is_copy"].to_numpy()], minlength=n)
    for name in criteria.CRITERIA:
        flags = s_table[f"copy_{name}"].to_numpy()
        table[f"n_copies_{name}"] = np.bincount(nn[flags], minlength=n)
    table["n_heldout_nearest"] = np.bincount(c_table["nn_train"].to_numpy(), minlength=n)
    table["nn_other"] = train_nb.index[:, 0]
    table["nn_other_l2"] = train_nb.l2[:, 0]
    table["knn_mean_l2"] = train_nb.l2.mean(axis=1)
    table |= per_item
    return pd.DataFrame(table)


def fit_cells(flat: Any, n_cells: int, seed: int) -> dict[str, np.ndarray]:
    """Meehan et al.'s cells: k-means (scikit-learn, one initialisation) of flat uint8 rows (in
    memory or a store), their labels and centroids. Above KMEANS_FIT_MAX rows the centroids are
    fitted on a seeded subsample and every row is then assigned to its nearest centroid. Fitted
    on one thread: the M-step sums each thread's chunk of points and then adds the threads'
    sums, so with more threads the centroids (and on MNIST 111 of 60,000 labels) change; on one
    thread every machine gets the same cells."""
    whole = len(flat) <= KMEANS_FIT_MAX
    fit_on = flat if whole else flat[np.sort(np.random.default_rng(seed).choice(
        len(flat), KMEANS_FIT_MAX, replace=False))]
    with threadpool_limits(limits=1):
        km = KMeans(n_cells, n_init=1, random_state=seed).fit(np.asarray(fit_on, np.float32))
    centroids = km.cluster_centers_.astype(np.float32)
    return {"labels": km.labels_.astype(np.int64) if whole else _assign(flat, centroids),
            "centroids": centroids}


def _meehan(train: np.ndarray, train_sha: str, heldout: np.ndarray, samples: np.ndarray,
            cfg: AuditConfig) -> dict[str, Any]:
    """C_T of Meehan et al. with T = ``train`` (flat uint8 rows, in memory or a store): k-means
    cells on T (on a seeded subsample of KMEANS_FIT_MAX images when T is larger, every image
    then assigned to its nearest centroid), held-out and samples assigned the same way."""
    n_cells = min(cfg.cells, len(train))
    cells = cached_arrays("cells", {"train": train_sha, "cells": n_cells, "seed": cfg.seed},
                          lambda: fit_cells(train, n_cells, cfg.seed))
    centroids = cells["centroids"]
    return datacopying.meehan_ct(
        train, cells["labels"], heldout, _assign(heldout, centroids), samples,
        _assign(samples, centroids), n_cells, cfg.min_cell_samples,
        lambda: make_searcher(aux_backend(cfg.backend)))


def _assign(x: Any, centroids: np.ndarray, rows: int = 65536) -> np.ndarray:
    """Each row's nearest k-means centroid, a block of rows at a time."""
    c2 = (centroids**2).sum(1)[None]
    parts = [(c2 - 2 * np.asarray(x[a : a + rows], np.float32) @ centroids.T).argmin(1)
             for a in range(0, len(x), rows)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _seen(seen: Seen, s_table: pd.DataFrame, c_table: pd.DataFrame, items: pd.DataFrame,
          sets: tuple[ImageSet, ImageSet, ImageSet], whole_ct: dict[str, Any],
          cfg: AuditConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, SeenSummary]:
    """The tables with each image's nearest seen and unseen training image, and what the audit
    says about the seen items (see :mod:`copyscope.stages.seen`)."""
    s_set, t_set, h_set = sets
    is_seen = seen.mask(len(t_set))
    unseen = np.flatnonzero(~is_seen)
    parts = [(seen.indices, "seen"), (unseen, "unseen")]
    searchers = {name: make_searcher(aux_backend(cfg.backend)).fit(t_set.flat[idx])
                 if len(idx) else None
                 for idx, name in parts}
    s_table = s_table.assign(**_nearest_in(s_set.flat, parts, searchers, t_set.dim))
    c_table = c_table.assign(**_nearest_in(h_set.flat, parts, searchers, t_set.dim))
    items = items.assign(seen=is_seen)
    ct = whole_ct if not len(unseen) else _meehan(
        t_set.flat[seen.indices], fingerprint({"train": t_set.sha256, "seen": seen.sha256}),
        np.concatenate([h_set.flat, t_set.flat[unseen]]), s_set.flat, cfg)
    near_s = is_seen[s_table["nn_train"].to_numpy()]
    near_h = is_seen[c_table["nn_train"].to_numpy()]
    flagged = {}
    for name in criteria.CRITERIA:
        flags = s_table[f"copy_{name}"].to_numpy()
        flagged[name] = {"seen": int((flags & near_s).sum()),
                         "unseen": int((flags & ~near_s).sum())}
    item_flags = items["copying_flag"].to_numpy()
    summary = SeenSummary(
        source=seen.source, n_seen=len(seen.indices), n_unseen=len(unseen),
        nearest_is_seen={"samples": calibration.rate(near_s), "heldout": calibration.rate(near_h),
                         "chance": len(seen.indices) / len(t_set)},
        flagged=flagged,
        items_flagged={"seen": int((item_flags & is_seen).sum()),
                       "unseen": int((item_flags & ~is_seen).sum())},
        data_copying_ct={k: v for k, v in ct.items() if k != "per_cell"})
    return s_table, c_table, items, summary


def _nearest_in(flat: np.ndarray, parts: list[tuple[np.ndarray, str]], searchers: dict[str, Any],
                dim: int) -> dict[str, np.ndarray]:
    """Each query's nearest training item among the seen and among the unseen ones (-1 and NaN
    where a part is empty)."""
    out: dict[str, np.ndarray] = {}
    for idx, name in parts:
        if searchers[name] is None:
            out[f"nn_{name}"] = np.full(len(flat), -1, dtype=np.int64)
            out[f"nn_{name}_l2"] = np.full(len(flat), np.nan)
            continue
        nb = searchers[name].search(flat, 1, show=False)
        out[f"nn_{name}"] = idx[nb.index[:, 0]]
        out[f"nn_{name}_l2"] = nb.l2[:, 0]
    return out


def _rates(s_table: pd.DataFrame, c_table: pd.DataFrame) -> dict[str, CriterionRate]:
    """Every criterion's copy rate among samples and false-positive rate among held-out images."""
    out = {}
    for name, c in criteria.CRITERIA.items():
        copies = calibration.rate(s_table[f"copy_{name}"].to_numpy())
        fpr = calibration.rate(c_table[f"copy_{name}"].to_numpy())
        out[name] = CriterionRate(
            rule=c.rule, citation=c.citation, copies=copies["count"], copy_rate=copies["rate"],
            copy_rate_ci95=copies["ci95"], heldout_flagged=fpr["count"],
            heldout_fpr=fpr["rate"], heldout_fpr_ci95=fpr["ci95"])
    return out


def _summary(s_table: pd.DataFrame, c_table: pd.DataFrame, items: pd.DataFrame,
             found: Searched, ct: dict[str, Any], cfg: AuditConfig,
             radius_l2: float) -> AuditSummary:
    rates = _rates(s_table, c_table)
    default = rates[cfg.default]
    flagged = items[items["copying_flag"]].sort_values("copying_score", ascending=False)
    self_zero = found.train_nb.d2 == 0
    rows = np.arange(len(found.train_nb))[:, None]
    return AuditSummary(
        n_samples=len(s_table), n_train=len(items), n_heldout=len(c_table),
        default_criterion=cfg.default, copies=default.copies, copy_rate=default.copy_rate,
        copy_rate_ci95=default.copy_rate_ci95, heldout_fpr=default.heldout_fpr,
        heldout_fpr_ci95=default.heldout_fpr_ci95, criteria=rates,
        distinct_items_copied=int(s_table.loc[s_table["is_copy"], "nn_train"].nunique()),
        nn_l2_median={"samples": float(s_table["nn_l2"].median()),
                      "heldout": float(c_table["nn_l2"].median())},
        data_copying_ct={k: v for k, v in ct.items() if k != "per_cell"},
        ct_cells=ct["per_cell"],
        memorised_items={
            "method": "Bhattacharjee et al. (2023)-style per-item test; see items.parquet",
            "radius_l2": radius_l2, "near_q": cfg.near_q, "alpha": cfg.item_alpha,
            "n_flagged": len(flagged),
            "top": flagged.head(20)[["item", "near_samples", "near_heldout", "copying_score",
                                     "copying_p"]].to_dict("records"),
        },
        duplicates={
            "train_items_with_exact_duplicate": int(self_zero.any(axis=1).sum()),
            "train_exact_pairs": int((self_zero & (found.train_nb.index > rows)).sum()),
            "heldout_exact_in_train": int((found.ctrl_nb.d2[:, 0] == 0).sum()),
        })
