"""The app's views as plain functions: the loaded state and the user's choices in, what to show out.

No Gradio here, so each view can be called from a notebook, unit-tested and timed
(benchmarks/app.py). Images come back as uint8 arrays (H x W grayscale or H x W x 3) with a caption;
tables as DataFrames; explanations as Markdown. The pictures and measures of a pair, the galleries'
choices and the core figures come from :mod:`copyscope.analysis`, the same functions the report
uses, so the app and the report cannot disagree.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from copyscope import analysis
from copyscope.analysis import item_view, most_regenerated, pair_view, trends
from copyscope.analysis.audited import AuditedRun
from copyscope.analysis.contrasts import emm, emm_sentence
from copyscope.analysis.pairs import MEASURES, PANELS, hstack, strongest_copies
from copyscope.analysis.trends import comparison_notes
from copyscope.app import bits
from copyscope.app.preprocess import to_training_format
from copyscope.app.state import AppState
from copyscope.detect.criteria import CRITERIA
from copyscope.errors import CopyscopeError
from copyscope.models import fact_names
from copyscope.search import normalised_l2
from copyscope.similarity import pair_measures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Captioned = tuple[np.ndarray, str]
_RENDER = threading.Lock()
ALL = "all"
SORTABLE = {col: label for col, label, _ in MEASURES}
GALLERY_LIMIT = 40
QUERY_K = 8
ITEM_COLUMNS = ("n_nearest", "n_copies", "n_heldout_nearest", "near_samples", "near_heldout",
                "copying_score", "copying_p", "copying_flag")
@dataclass
class Overview:
    """The study's answer: a line per model setting (EMM and trend), the table of every run under
    its default criterion (rates as percentages with their 95% intervals), every criterion's
    rates, the notes on comparing the runs, and the strongest copies across runs."""

    headline: str
    table: pd.DataFrame
    criteria: pd.DataFrame
    notes: str
    strongest: list[Captioned]


@dataclass
class Listing:
    """A gallery and the table of the rows behind it (``keys`` identify each tile)."""

    gallery: list[Captioned]
    table: pd.DataFrame
    keys: list[int]
    text: str


@dataclass
class Pair:
    panels: list[Captioned]
    measures: pd.DataFrame
    text: str


@dataclass
class Item:
    image: np.ndarray
    table: pd.DataFrame
    gallery: list[Captioned]
    text: str


@dataclass
class Query:
    image: np.ndarray
    """The query as searched: the user's image in the training images' format."""
    neighbours: list[Captioned]
    table: pd.DataFrame
    text: str
    samples: list[Captioned]
    samples_table: pd.DataFrame


def overview(state: AppState, strongest: int = 12) -> Overview:
    """The study's answer first, as the comparison report gives it (percentages, not floats)."""
    rates = state.rates
    default = state.runs[state.first].default_criterion
    rows = rates[rates["criterion"] == default]
    facts = [f for f in ("family", "train_size", *fact_names(), "epoch", "steps")
             if rows[f].notna().any()]
    table = rows[["run", *facts]].rename(columns=lambda c: c.replace("_", " "))
    table["samples"] = rows["n_samples"].to_numpy()
    table["copy rate [95% CI]"] = _rates(rows, "copy_rate", "copy_ci_low", "copy_ci_high")
    table["held-out FPR [95% CI]"] = _rates(rows, "heldout_fpr", "fpr_ci_low", "fpr_ci_high")
    table["p (samples > held-out)"] = [f"{p:.2g}" for p in rows["p_vs_heldout"]]
    table["C_T (cells)"] = [f"{c:+.2f} ({n})" if c == c and c is not None else "–"
                            for c, n in zip(rows["C_T"], rows["C_T_cells"], strict=True)]
    wide = rates.pivot_table(index="run", columns="criterion", values="copy_rate", sort=False)
    wide = wide.map(lambda r: f"{100 * r:.1f}%").reset_index()
    lines = [emm_sentence(r) for r in emm(rates, default).to_dict("records")]
    notes = comparison_notes(list(state.runs.values()))
    tiles = [(plain(hstack([r.images("samples").images[i], r.images("train").images[t]])),
              f"{r.name} #{i} | training #{t} · L2 {d:.3f}")
             for r, i, t, d in _strongest(state, strongest)]
    return Overview("\n".join(f"- {line}" for line in lines), table.reset_index(drop=True),
                    wide, "\n".join(f"- {n}" for n in notes)
                    or "All runs share their training and held-out sets.", tiles)


def _rates(rows: pd.DataFrame, rate: str, low: str, high: str) -> list[str]:
    return [f"{100 * r:.1f}% [{100 * lo:.1f}–{100 * hi:.1f}]"
            for r, lo, hi in zip(rows[rate], rows[low], rows[high], strict=True)]


def _strongest(state: AppState, n: int) -> list[tuple[AuditedRun, int, int, float]]:
    runs = list(state.runs.values())
    table = strongest_copies(runs, n)
    return [(runs[int(r["run"])], int(r["sample"]), int(r["nn_train"]), float(r["nn_l2"]))
            for r in table.to_dict("records")]


def answer_figure(state: AppState, render: bool = True) -> Any:
    """Copy rate against training-set size (the study's answer figure), or None when no model
    setting was trained on several sizes; ``render=False`` only says whether there is one."""
    return _trend_figure(state, "train_size",
                         lambda t, c: analysis.figures.answer_figure(t, c), render)


def epoch_figure(state: AppState, render: bool = True) -> Any:
    """Copy rate and sample quality over training, or None when no model was audited at
    several epochs; ``render=False`` only says whether there is one."""
    return _trend_figure(state, "epoch", lambda t, c: analysis.figures.epoch_figure(t, c),
                         render)


def _trend_figure(state: AppState, x: str, make: Callable[[pd.DataFrame, str], Figure],
                  render: bool) -> Any:
    default = state.runs[state.first].default_criterion
    lines = trends.series(state.rates, x, default)
    exists = any(line[x].nunique() > 1 for line in lines.values())
    if not render or not exists:
        return exists if not render else None
    return _figure(state, (x, default), lambda: make(state.rates, default))


def rates_figure(state: AppState) -> np.ndarray:
    """Every run's copy rate beside its held-out false-positive rate, default criterion
    (:func:`copyscope.analysis.figures.runs_figure`)."""
    default = state.runs[state.first].default_criterion
    return _figure(state, ("runs", default),
                   lambda: analysis.figures.runs_figure(state.rates, default))


def core_figure(state: AppState, run: str) -> np.ndarray:
    """The core figure of ``run`` (:func:`copyscope.analysis.distance_histogram`)."""
    return _figure(state, ("core", run),
                   lambda: analysis.distance_histogram(state.run(run)))


def _figure(state: AppState, key: tuple[str, str], make: Callable[[], Figure]) -> np.ndarray:
    """A figure rendered on first use and kept; matplotlib is not thread-safe, so renders take
    turns. (matplotlib itself loads with the first figure, after the server listens.)"""
    if key not in state.figures:
        with _RENDER:
            if key not in state.figures:
                state.figures[key] = render(make())
    return state.figures[key]


def copies(state: AppState, run: str, criterion: str = ALL, label: int | None = None,
           sort_by: str = "nn_l2", descending: bool = False,
           limit: int = GALLERY_LIMIT) -> Listing:
    """Samples of ``run``, flagged by ``criterion`` (or all), landing in class ``label`` (or any),
    sorted by a measure; the first ``limit`` as a gallery. Generated samples have no label, so the
    class is that of the nearest training image, as in :func:`copyscope.analysis.items.by_class`.
    """
    data = state.run(run)
    rows = data.samples
    if criterion != ALL:
        rows = rows[rows[f"copy_{data.criterion(criterion)}"]]
    if label is not None:
        rows = rows[rows["nn_label"] == label]
    if sort_by not in rows.columns or sort_by not in SORTABLE:
        raise CopyscopeError(f"cannot sort by {sort_by!r}; choose one of "
                             f"{', '.join(c for c in SORTABLE if c in rows.columns)}.")
    rows = rows.sort_values([sort_by, "sample"], ascending=[not descending, True], kind="stable")
    shown = rows.head(limit)
    images = data.images("samples").images
    gallery = [(plain(images[i]), f"#{i} · {v:.4g}")
               for i, v in zip(shown["sample"], shown[sort_by], strict=True)]
    text = (f"{len(rows):,} of {len(data.samples):,} samples"
            + ("" if criterion == ALL else f" flagged by {criterion}")
            + ("" if label is None else f" whose nearest training image is a {label}")
            + f"; showing {len(shown)} by {SORTABLE[sort_by]}"
            + (" (largest first)." if descending else " (smallest first).")
            + " Click one for the pair view.")
    return Listing(gallery, _columns(shown, ["sample", "nn_train", "nn_label", sort_by, "nn_l2",
                                             "heldout_p", "is_copy"]),
                   shown["sample"].tolist(), text)


def pair(state: AppState, run: str, sample: int) -> Pair:
    """Sample | nearest training item | |difference| | nearest held-out item, with every measure."""
    data = state.run(run)
    if not 0 <= sample < len(data.samples):
        raise CopyscopeError(f"{run} has samples 0 to {len(data.samples) - 1}, not {sample}.")
    view = pair_view(data, sample)
    panels = [(plain(view.panels[p]), view.captions[p]) for p in PANELS]
    measures = pd.DataFrame(view.lines(), columns=["measure", "value"])
    flagged = view.flagged_by()
    label = data.items["label"].iloc[view.train_item] if "label" in data.items else None
    text = (f"**Sample #{sample}** of {run}: nearest training item **#{view.train_item}**"
            + ("" if label is None else f" (label **{label}**)")
            + f", nearest held-out item #{view.heldout_item}. "
            + _verdict(flagged, data.default_criterion))
    return Pair(panels, measures, text)


def regenerated(state: AppState, run: str, criterion: str | None = None,
                limit: int = 24) -> Listing:
    """The training items of ``run`` most often regenerated: most copies, then most samples."""
    data = state.run(run)
    name = data.criterion(criterion)
    rows = most_regenerated(data, limit, name)
    gallery = [(plain(state.train.images[i]), f"#{i} · {c} copies, {n} nearest")
               for i, c, n in zip(rows["item"], rows[f"n_copies_{name}"], rows["n_nearest"],
                                  strict=True)]
    text = (f"Training items of {run} by copies ({name}), then by samples nearest; "
            f"{int((data.items['n_nearest'] > 0).sum()):,} items have at least one sample nearest.")
    return Listing(gallery, _columns(rows, ["item", "label", f"n_copies_{name}", "n_nearest",
                                            "n_heldout_nearest", "copying_score", "copying_p",
                                            "copying_flag"]),
                   rows["item"].tolist(), text)


def training_item(state: AppState, item: int) -> Item:
    """Training item ``item``: its statistics in each run and every sample landing on it."""
    n = len(state.train)
    if not 0 <= item < n:
        raise CopyscopeError(f"training items are numbered 0 to {n - 1:,}; {item} is not one.")
    rows, gallery = [], []
    for name, data in state.runs.items():
        row = data.items.iloc[item]
        rows.append({"run": name, **{k: row[k] for k in ITEM_COLUMNS}})
        if row["n_nearest"] == 0:
            continue  # no sample of this run landed here: nothing to look up
        view = item_view(data, item, per_item=int(row["n_nearest"]))
        gallery += [(plain(im), f"{name} #{s} · L2 {d:.3f}{' · COPY' if f else ''}")
                    for im, s, d, f in zip(view.sample_images, view.samples["sample"],
                                           view.samples["nn_l2"], view.samples["is_copy"],
                                           strict=True)]
    first = state.runs[state.first].items.iloc[item]
    label = f" (label **{int(first['label'])}**)" if "label" in first.index else ""
    text = (f"**Training item #{item}**{label}: {len(gallery):,} samples across the loaded runs "
            f"have it as their nearest training image. Its nearest other training image is "
            f"#{int(first['nn_other'])} at L2 {first['nn_other_l2']:.4f}. `copying_score` is "
            "generated mass near the item over a conservative bound on held-out mass there; "
            "`copying_flag` marks a significant excess (binomial test, Bonferroni over all items)."
            + "".join(f"\n\n{line}" for line in bits.lines(state.runs,
                                                               state.train.images[item], item)))
    return Item(plain(state.train.images[item]), pd.DataFrame(rows).round(5), gallery, text)


def query(state: AppState, image: np.ndarray, k: int = QUERY_K) -> Query:
    """The k nearest of all training items to a user's image, and how unusual that closeness is.

    The image is put in the training images' format (:mod:`copyscope.app.preprocess`), searched
    exactly against every training image and judged as a sample of the first loaded run
    (:func:`copyscope.app.state.judge`): its ``heldout_p`` says what share of that run's unseen
    real images come at least as close to the training set. The generated samples of all loaded
    runs nearest to the query are listed too. The search is batched with other users' queries
    (``state.queries``); the pair measures are this query's own.
    """
    q = to_training_format(image, state.train.image_shape)
    run = state.first
    found = state.queries.submit(q)
    row = found.evidence
    k = min(k, len(found.index))
    idx, d2 = found.index[:k], found.d2[:k]
    measures = pair_measures(np.repeat(q[None], k, 0), state.train.images[idx], d2)
    landed = state.landing[idx]
    labels = state.train.labels[idx] if state.train.labels is not None else np.full(k, -1)
    table = pd.DataFrame({"rank": np.arange(1, k + 1), "item": idx, "label": labels,
                          **{m: measures[m] for m in ("rmse", "psnr", "ssim", "ms_ssim", "uiq")},
                          "samples nearest (all runs)": landed[:, 0],
                          "copies (all runs)": landed[:, 1]})
    neighbours = [(plain(state.train.images[i]), f"#{i} · L2 {v:.4f}")
                  for i, v in zip(idx, measures["rmse"], strict=True)]

    owners = state.sample_owner.iloc[found.near_index].reset_index(drop=True)
    owners.insert(2, "L2 to query", normalised_l2(found.near_d2, state.train.dim))
    samples = [(plain(state.runs[r].images("samples").images[s]), f"{r} #{s} · L2 {v:.3f}")
               for r, s, v in zip(owners["run"], owners["sample"], owners["L2 to query"],
                                  strict=True)]
    ref = state.references[run]
    closer = 1.0 - float(row["heldout_p"])
    flagged = [c for c in CRITERIA if row[f"copy_{c}"]]
    exact = "**This exact image is in the training set.** " if d2[0] == 0 else ""
    text = (f"{exact}Nearest training image: **#{idx[0]}**"
            + (f" (label {labels[0]})" if labels[0] >= 0 else "")
            + f" at normalised L2 **{row['nn_l2']:.4f}**. That is closer than "
            f"**{100 * closer:.1f}%** of the {len(ref.null_d2):,} unseen real images of "
            f"{run}'s held-out control ({state.runs[run].inputs['heldout']['spec']}); heldout_p = "
            f"{row['heldout_p']:.4f}. Judged as a generated sample of {run}. "
            + _verdict(flagged, ref.config.default)
            + "".join(f"\n\n{line}" for line in bits.lines(state.runs, q)))
    return Query(plain(q), neighbours, table.round(5), text, samples, owners.round(5))


def render(fig: Figure, dpi: int = 90) -> np.ndarray:
    """A matplotlib figure as an RGB uint8 array (rendered once, shown many times)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return np.asarray(Image.open(buf).convert("RGB"))


def _verdict(flagged: list[str], default: str) -> str:
    if not flagged:
        return "Verdict: no criterion flags it as a copy."
    head = (f"**copy** by the default criterion ({default})" if default in flagged
            else f"not a copy by the default criterion ({default})")
    return f"Verdict: {head}; flagged by {', '.join(flagged)}."


def plain(image: np.ndarray) -> np.ndarray:
    """H x W x 1 as H x W (how image widgets expect grayscale); colour unchanged."""
    return image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image


def _columns(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    keep = [c for c in dict.fromkeys(columns) if c in table.columns]
    return table[keep].round(5).reset_index(drop=True)
