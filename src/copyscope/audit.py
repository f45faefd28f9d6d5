"""The audit stage: generated samples in; per-sample evidence, verdicts and trends out.

Every sample is searched exactly against every training image. The held-out real images go
through exactly the same measures and criteria, so each verdict comes with the rate at which it
fires on real data the model never saw. See DESIGN.md and README.md for every measure.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from copyscope.audit_config import AuditConfig
from copyscope.cache import cached_arrays
from copyscope.data import ImageSet, load
from copyscope.detect import calibration, criteria, datacopying
from copyscope.errors import CopyscopeError
from copyscope.evidence import evidence_table, verdicts
from copyscope.run import (
    RunDir,
    chunked,
    command_line,
    fingerprint,
    now,
    versions,
    write_json,
    write_parquet,
)
from copyscope.search import Neighbours, make_searcher, normalised_l2

MIN_SIDE = 11  # SSIM's 11x11 Gaussian window


@dataclass
class Audit:
    """What an audit produces; the same tables are written to the run directory."""

    samples: pd.DataFrame
    controls: pd.DataFrame
    items: pd.DataFrame
    summary: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None


def audit(
    samples: str | Path | ImageSet,
    train: str | Path | ImageSet = "mnist:train",
    heldout: str | Path | ImageSet = "mnist:test",
    out: str | Path | None = None,
    config: AuditConfig | None = None,
    force: bool = False,
    show: bool = True,
) -> Audit:
    """Search every sample against every training image and judge it against the held-out null.

    With ``out`` the tables, summary.json and run.json are written there atomically; an
    interrupted audit resumes from its finished chunks. A folder already holding a different
    audit is refused unless ``force``.
    """
    cfg = config or AuditConfig()
    cfg.validate()
    timings: dict[str, float] = {}
    with _timed(timings, "load"):
        s_set, t_set, h_set = load(samples), load(train), load(heldout)
    _check_inputs(s_set, t_set, h_set)
    identity = {"samples": s_set.sha256, "train": t_set.sha256, "heldout": h_set.sha256,
                "config": asdict(cfg)}
    run = RunDir(Path(out)) if out is not None else None
    if run is not None:
        run.claim("audit", identity, force)
    started = now()

    k = min(cfg.neighbours, len(t_set) - 1)
    searcher = make_searcher(cfg.backend)
    with _timed(timings, "index"):
        searcher.fit(t_set.flat)
    with _timed(timings, "train_neighbours"):
        train_nb = _cached_search(searcher, t_set, t_set, k, True, show, "training set vs itself")
    with _timed(timings, "controls_search"):
        ctrl_nb = _cached_search(searcher, t_set, h_set, k, False, show, "held-out vs training")
        held_searcher = make_searcher(cfg.backend).fit(h_set.flat)
        ctrl_held = _cached_search(held_searcher, h_set, h_set, 1, True, False, "held-out")
    with _timed(timings, "samples_search"):
        key = fingerprint({"identity": identity, "k": k})
        sample_nb, sample_held = _search_samples(
            searcher, held_searcher, s_set, k, cfg.chunk,
            run.partial(f"search-{key}") if run else None, show)

    with _timed(timings, "measures"):
        train_knn_mean = train_nb.l2.mean(axis=1)
        null_d2 = ctrl_nb.d2[:, 0]
        s_table = evidence_table(s_set, sample_nb, sample_held, t_set, train_knn_mean,
                            calibration.heldout_p(sample_nb.d2[:, 0], null_d2), cfg, "sample")
        c_table = _cached_table(
            "controls", {"train": t_set.sha256, "heldout": h_set.sha256, "k": k,
                         "alpha": cfg.alpha},
            lambda: evidence_table(h_set, ctrl_nb, ctrl_held, t_set, train_knn_mean,
                              calibration.heldout_p_loo(null_d2), cfg, "heldout"))
        s_table = verdicts(s_table, cfg)
        c_table = verdicts(c_table, cfg)

    with _timed(timings, "data_copying"):
        radius_d2 = float(np.quantile(null_d2, cfg.near_q))
        per_item = datacopying.item_copying(
            len(t_set), sample_nb.index[:, 0], sample_nb.d2[:, 0],
            ctrl_nb.index[:, 0], null_d2, radius_d2, cfg.item_alpha)
        items = _items(t_set, s_table, c_table, train_nb, per_item)
        ct = _meehan(t_set, h_set, s_set, cfg, show)

    summary = _summary(s_table, c_table, items, train_nb, ctrl_nb, ct, cfg,
                       float(normalised_l2(np.asarray(radius_d2), t_set.dim)))
    manifest = {
        "identity": identity,
        "status": "complete",
        "inputs": {"samples": s_set.describe(), "train": t_set.describe(),
                   "heldout": h_set.describe()},
        "params": asdict(cfg),
        "seeds": {"kmeans_cells": cfg.seed},
        "versions": versions(),
        "device": str(getattr(searcher, "device", "cpu")),
        "command": command_line(),
        "started": started,
        "finished": now(),
        "timings_s": {k_: round(v, 3) for k_, v in timings.items()},
    }
    result = Audit(s_table, c_table, items, summary, manifest, run.path if run else None)
    if run is not None:
        write_parquet(run.file("samples.parquet"), s_table)
        write_parquet(run.file("controls.parquet"), c_table)
        write_parquet(run.file("items.parquet"), items)
        write_json(run.file("summary.json"), summary)
        run.record("audit", manifest)
        run.clear_partial(f"search-{key}")
    return result


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
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _cached_search(searcher: Any, ref: ImageSet, queries: ImageSet, k: int, exclude_self: bool,
                   show: bool, what: str) -> Neighbours:
    """Neighbours that depend only on datasets, cached under $COPYSCOPE_HOME."""
    key = {"ref": ref.sha256, "queries": queries.sha256, "k": k, "exclude_self": exclude_self}

    def compute() -> dict[str, np.ndarray]:
        nb = searcher.search(queries.flat, k, exclude_self=exclude_self, show=show)
        return {"d2": nb.d2, "index": nb.index}

    arrays = cached_arrays("neighbours", key, compute)
    return Neighbours(arrays["d2"], arrays["index"], ref.dim)


def _cached_table(kind: str, key: dict[str, Any], compute: Any) -> pd.DataFrame:
    """A table that depends only on datasets, cached under $COPYSCOPE_HOME like neighbours."""

    def arrays() -> dict[str, np.ndarray]:
        table = compute()
        return {c: np.asarray(table[c], dtype=str if c == "name" else None) for c in table}

    return pd.DataFrame(cached_arrays(kind, key, arrays))


def _search_samples(searcher: Any, held_searcher: Any, s_set: ImageSet, k: int, chunk: int,
                    store: Path | None, show: bool) -> tuple[Neighbours, Neighbours]:
    flat = s_set.flat

    def compute(piece: slice) -> dict[str, np.ndarray]:
        nb = searcher.search(flat[piece], k, show=False)
        hb = held_searcher.search(flat[piece], 1, show=False)
        return {"d2": nb.d2, "index": nb.index, "hd2": hb.d2, "hindex": hb.index}

    r = chunked(len(s_set), chunk, compute, store, desc="search samples", show=show)
    return (Neighbours(r["d2"], r["index"], s_set.dim),
            Neighbours(r["hd2"], r["hindex"], s_set.dim))


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


def _meehan(t_set: ImageSet, h_set: ImageSet, s_set: ImageSet, cfg: AuditConfig,
            show: bool) -> dict[str, Any]:
    n_cells = min(cfg.cells, len(t_set))

    def fit_cells() -> dict[str, np.ndarray]:
        km = KMeans(n_cells, n_init=1, random_state=cfg.seed).fit(t_set.flat.astype(np.float32))
        return {"labels": km.labels_.astype(np.int64),
                "centroids": km.cluster_centers_.astype(np.float32)}

    cells = cached_arrays("cells", {"train": t_set.sha256, "cells": n_cells, "seed": cfg.seed},
                          fit_cells)
    centroids = cells["centroids"]

    def assign(x: np.ndarray) -> np.ndarray:
        xf = x.astype(np.float32)
        d = (centroids**2).sum(1)[None] - 2 * xf @ centroids.T
        return d.argmin(1)

    return datacopying.meehan_ct(
        t_set.flat, cells["labels"], h_set.flat, assign(h_set.flat), s_set.flat,
        assign(s_set.flat), n_cells, cfg.min_cell_samples, lambda: make_searcher(cfg.backend))


def _summary(s_table: pd.DataFrame, c_table: pd.DataFrame, items: pd.DataFrame,
             train_nb: Neighbours, ctrl_nb: Neighbours, ct: dict[str, Any], cfg: AuditConfig,
             radius_l2: float) -> dict[str, Any]:
    per_criterion = {}
    for name, c in criteria.CRITERIA.items():
        copies = calibration.rate(s_table[f"copy_{name}"].to_numpy())
        fpr = calibration.rate(c_table[f"copy_{name}"].to_numpy())
        per_criterion[name] = {
            "rule": c.rule, "citation": c.citation,
            "copies": copies["count"], "copy_rate": copies["rate"],
            "copy_rate_ci95": copies["ci95"],
            "heldout_flagged": fpr["count"], "heldout_fpr": fpr["rate"],
            "heldout_fpr_ci95": fpr["ci95"],
        }
    default = per_criterion[cfg.default]
    flagged = items[items["copying_flag"]].sort_values("copying_score", ascending=False)
    self_zero = train_nb.d2 == 0
    rows = np.arange(len(train_nb))[:, None]
    return {
        "n_samples": len(s_table),
        "n_train": len(items),
        "n_heldout": len(c_table),
        "default_criterion": cfg.default,
        "copies": default["copies"],
        "copy_rate": default["copy_rate"],
        "copy_rate_ci95": default["copy_rate_ci95"],
        "heldout_fpr": default["heldout_fpr"],
        "heldout_fpr_ci95": default["heldout_fpr_ci95"],
        "criteria": per_criterion,
        "distinct_items_copied": int(s_table.loc[s_table["is_copy"], "nn_train"].nunique()),
        "nn_l2_median": {"samples": float(s_table["nn_l2"].median()),
                         "heldout": float(c_table["nn_l2"].median())},
        "data_copying_ct": {k: v for k, v in ct.items() if k != "per_cell"},
        "ct_cells": ct["per_cell"],
        "memorised_items": {
            "method": "Bhattacharjee et al. (2023)-style per-item test; see items.parquet",
            "radius_l2": radius_l2,
            "near_q": cfg.near_q,
            "alpha": cfg.item_alpha,
            "n_flagged": len(flagged),
            "top": flagged.head(20)[["item", "near_samples", "near_heldout", "copying_score",
                                     "copying_p"]].to_dict("records"),
        },
        "duplicates": {
            "train_items_with_exact_duplicate": int(self_zero.any(axis=1).sum()),
            "train_exact_pairs": int((self_zero & (train_nb.index > rows)).sum()),
            "heldout_exact_in_train": int((ctrl_nb.d2[:, 0] == 0).sum()),
        },
    }
