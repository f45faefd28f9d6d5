"""Figures of the analyses, as matplotlib ``Figure`` objects (no pyplot, no global state).

The report embeds them as SVG; the web app shows them directly. Generated samples are drawn in
red, the held-out control (real images the model never saw) in blue, throughout.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from copyscope.analysis import trends
from copyscope.analysis.audited import AuditedRun
from copyscope.analysis.bits import SCORES, Storage
from copyscope.detect.criteria import CRITERIA

SAMPLES, HELDOUT, THRESHOLD = "#c0392b", "#2471a3", "#333333"
STYLES = ("-", ":", "--", "-.")


def _figure(width: float = 9.0, height: float = 3.4, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(alpha=0.25, linewidth=0.5)
    return fig, list(axes)


def _pct(rate: float, ci: list[float] | tuple[float, float]) -> str:
    return f"{100 * rate:.2f}% [{100 * ci[0]:.2f}–{100 * ci[1]:.2f}]"


def distance_histogram(run: AuditedRun, bins: int = 60) -> Figure:
    """The core figure: nearest-training distance of generated samples against held-out images.

    Left, the two distributions (density) with the threshold of every criterion that is a
    threshold on distance (held-out, absolute L2) marked, each with the false-positive rate it has
    on the held-out images. Right,
    the lower tail as cumulative shares on a log scale, where copies live.
    """
    s = run.samples["nn_l2"].to_numpy()
    h = run.controls["nn_l2"].to_numpy()
    fig, (ax, tail) = _figure(ncols=2)
    edges = np.linspace(0, max(s.max(), h.max()) * 1.02, bins + 1)
    ax.hist(h, edges, density=True, histtype="stepfilled", color=HELDOUT, alpha=0.45,
            label=f"held-out real images (n={len(h):,})")
    ax.hist(s, edges, density=True, histtype="step", color=SAMPLES, linewidth=1.6,
            label=f"generated samples (n={len(s):,})")
    marks = _threshold_marks(run)
    for a in (ax, tail):
        for x, style, label in marks:
            a.axvline(x, color=THRESHOLD, linestyle=style, linewidth=1,
                      label=label if a is ax else None)
    ax.set_xlabel("normalised L2 to the nearest training image")
    ax.set_ylabel("density")
    ax.set_title("Distance to the nearest training image", fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=7,
               frameon=False)

    limit = max([*(x for x, _, _ in marks if np.isfinite(x)), float(np.quantile(h, 0.05))]) * 1.5
    for values, color, name in ((h, HELDOUT, "held-out"), (s, SAMPLES, "samples")):
        x, share = _lower_tail(values, limit)
        tail.step(x, share, where="post", color=color, label=name)
    tail.set_xlim(0, limit)
    tail.set_yscale("log")
    tail.set_ylim(0.5 / max(len(s), len(h)), 0.2)
    tail.set_xlabel("normalised L2 to the nearest training image")
    tail.set_ylabel("share at or below (log)")
    exact = int((s == 0).sum())
    tail.set_title(f"Lower tail; {exact:,} samples are exact copies (L2 = 0)", fontsize=10)
    tail.legend(fontsize=7, loc="lower right", frameon=False)
    return fig


def _lower_tail(values: np.ndarray, limit: float, points: int = 150
                ) -> tuple[np.ndarray, np.ndarray]:
    """The cumulative share at or below each sorted value, up to just past ``limit``, thinned to
    about ``points`` steps evenly spaced on the log scale the tail is drawn on (every step of
    the first ones, where single images count)."""
    x = np.sort(values)
    share = np.arange(1, len(x) + 1) / len(x)
    visible = min(len(x), int(np.searchsorted(x, limit, side="right")) + 1)
    keep = np.unique(np.rint(np.logspace(0, np.log10(max(visible, 1)), points)).astype(int)) - 1
    return x[keep], share[keep]


def _threshold_marks(run: AuditedRun) -> list[tuple[float, str, str]]:
    """(distance, line style, label) of every criterion that is a threshold on nn_l2 alone,
    each labelled with its false-positive rate on the held-out images."""
    marks = []
    for i, name in enumerate(CRITERIA):
        found = run.threshold(name)
        if found is None:
            continue
        x, op = found
        c = run.summary.criteria[name]
        marks.append((x, STYLES[i % len(STYLES)],
                      f"{name}: flags {op} {x:.4f}; FPR {_pct(c.heldout_fpr, c.heldout_fpr_ci95)}"))
    return marks


def count_figure(counts: pd.DataFrame) -> Figure:
    """The heavy tail: training items with exactly c samples (or held-out images) nearest.

    ``counts`` is :func:`copyscope.analysis.items.count_distribution`'s table.
    """
    fig, (ax,) = _figure(width=6.5, height=3.2)
    c = counts["count"].to_numpy()
    columns = [col for col in counts.columns if col.startswith("items_")]
    styles = {"items_samples_nearest": (SAMPLES, "o", "samples nearest"),
              "items_heldout_nearest": (HELDOUT, "s", "held-out nearest (control)")}
    for col in columns:
        criterion = col.removeprefix("items_copies_")
        color, marker, label = styles.get(col, ("#7d3c98", "^", f"copies ({criterion})"))
        y = counts[col].to_numpy()
        keep = (c > 0) & (y > 0)
        ax.plot(c[keep], y[keep], marker=marker, linestyle="-", color=color, label=label,
                markersize=4, linewidth=1)
    if c.max() > 20:
        ax.set_xscale("log")
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_yscale("log")
    ax.set_xlabel("samples (or held-out images) whose nearest training image is the item")
    ax.set_ylabel("training items")
    ax.legend(fontsize=7, frameon=False)
    return fig


def rates_figure(table: pd.DataFrame, x: str, xlabel: str, log: bool = False) -> Figure:
    """Left: where samples and held-out images land; right: copy rate against the control's FPR.

    ``table`` has one row per group of training items (class, outlierness or duplication bin),
    with the columns of :func:`copyscope.analysis.items.by_class`; ``x`` names the group column.
    """
    fig, (share, rate) = _figure(ncols=2)
    pos = np.arange(len(table))
    labels = [_tick(v) for v in table[x]]
    w = 0.4
    share.bar(pos - w / 2, table["share_samples"], w, color=SAMPLES, label="samples")
    share.bar(pos + w / 2, table["share_heldout"], w, color=HELDOUT, label="held-out (control)")
    share.plot(pos, table["share_train"], "k_", markersize=14, label="training items")
    share.set_ylabel("share landing on these items")
    rotation = 40 if max(len(label) for label in labels) > 3 else 0
    for ax in (share, rate):
        ax.set_xticks(pos, labels, fontsize=7, rotation=rotation,
                      ha="right" if rotation else "center")
    fig.supxlabel(xlabel, fontsize=10)
    share.legend(fontsize=7, frameon=False)
    for offset, (col, lo, hi, color, label) in zip(
        (-0.12, 0.12),
        (("copy_rate", "copy_ci_low", "copy_ci_high", SAMPLES, "copy rate of samples"),
         ("heldout_fpr", "fpr_ci_low", "fpr_ci_high", HELDOUT, "false-positive rate (held-out)")),
        strict=True,
    ):
        y = table[col].to_numpy(dtype=float)
        err = np.vstack([y - table[lo], table[hi] - y])
        rate.errorbar(pos + offset, y, yerr=err, fmt="o", color=color, markersize=4,
                      capsize=2, label=label)
    if log:
        rate.set_yscale("symlog", linthresh=1e-3)
    rate.set_ylabel("flagged share (95% Wilson CI)")
    rate.legend(fontsize=7, frameon=False)
    return fig


def _tick(value: object) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def trend_figure(lines: dict[str, pd.DataFrame], x: str, criterion: str, xlabel: str,
                 log: bool = False) -> Figure:
    """Copy rate (with 95% CI) against ``x``, one line per model setting, held-out FPR beside it.

    ``lines`` is :func:`copyscope.analysis.trends.series`'s result.
    """
    fig, (ax,) = _figure(width=9.0, height=3.4)
    for i, (label, group) in enumerate(lines.items()):
        xs = group[x].to_numpy(dtype=float)
        y = group["copy_rate"].to_numpy()
        err = np.vstack([y - group["copy_ci_low"], group["copy_ci_high"] - y])
        ax.errorbar(xs, y, yerr=err, marker="o", capsize=3, label=f"{label}: copy rate",
                    color=f"C{i}")
        ax.plot(xs, group["heldout_fpr"], linestyle=":", marker="x", color=f"C{i}", alpha=0.7)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"share flagged ({criterion})")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="grey", linestyle=":", marker="x"))
    labels.append("held-out FPR (dotted, same colour)")
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False)
    return fig


def runs_figure(table: pd.DataFrame, criterion: str) -> Figure:
    """Every run's copy rate and held-out FPR with 95% CIs, one row per run (a forest plot)."""
    rows = table[table["criterion"] == criterion].reset_index(drop=True)
    fig, (ax,) = _figure(width=7.0, height=1.0 + 0.35 * len(rows))
    pos = np.arange(len(rows))[::-1]
    for offset, (col, lo, hi, color, label) in zip(
        (0.12, -0.12),
        (("copy_rate", "copy_ci_low", "copy_ci_high", SAMPLES, "copy rate"),
         ("heldout_fpr", "fpr_ci_low", "fpr_ci_high", HELDOUT, "held-out FPR")),
        strict=True,
    ):
        y = rows[col].to_numpy(dtype=float)
        err = np.vstack([y - rows[lo], rows[hi] - y])
        ax.errorbar(y, pos + offset, xerr=err, fmt="o", color=color, capsize=2, markersize=4,
                    label=label)
    ax.set_yticks(pos, rows["run"], fontsize=7)
    ax.set_xlabel(f"share flagged ({criterion}), 95% Wilson CI")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return fig


def answer_figure(table: pd.DataFrame, criterion: str) -> Figure:
    """The study's answer in one picture: copy rate (95% CI) against training-set size, one line
    per model setting (each size's last checkpoint), over the band the held-out control's
    false-positive rate spans (its 95% CI), which is what unseen real images score by chance."""
    lines = trends.series(table, "train_size", criterion)
    fig, (ax,) = _figure(width=9.0, height=3.8)
    rows = table[table["criterion"] == criterion]
    lo, hi = float(rows["fpr_ci_low"].min()), float(rows["fpr_ci_high"].max())
    ax.axhspan(lo, max(hi, lo), color=HELDOUT, alpha=0.18, linewidth=0,
               label=f"held-out false-positive rate, 95% CI ({100 * lo:.2f}–{100 * hi:.2f}%)")
    for i, (label, group) in enumerate(lines.items()):
        xs = group["train_size"].to_numpy(dtype=float)
        y = group["copy_rate"].to_numpy()
        err = np.vstack([y - group["copy_ci_low"], group["copy_ci_high"] - y])
        ax.errorbar(xs, y, yerr=err, marker="o", capsize=3, label=label, color=f"C{i}")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(_percent)
    ax.set_xlabel("training images the model saw (log scale)")
    ax.set_ylabel(f"samples flagged ({criterion})")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7,
               frameon=False)
    return fig


def epoch_figure(table: pd.DataFrame, criterion: str) -> Figure:
    """Copy rate over training (left) and what happens to sample quality meanwhile (right:
    Fréchet distance to held-out digits, and the classifier's confidence), one line per model."""
    lines = trends.series(table, "epoch", criterion)
    fig, (ax, quality) = _figure(width=9.5, height=3.4, ncols=2)
    confidence = quality.twinx()
    for i, (label, group) in enumerate(lines.items()):
        xs = group["epoch"].to_numpy(dtype=float)
        y = group["copy_rate"].to_numpy()
        err = np.vstack([y - group["copy_ci_low"], group["copy_ci_high"] - y])
        ax.errorbar(xs, y, yerr=err, marker="o", capsize=3, label=label, color=f"C{i}")
        ax.plot(xs, group["heldout_fpr"], linestyle=":", color=f"C{i}", alpha=0.7)
        if group["frechet_distance"].notna().any():
            quality.plot(xs, group["frechet_distance"], marker="s", color=f"C{i}")
            confidence.plot(xs, group["mean_confidence"], marker="^", linestyle="--",
                            color=f"C{i}", alpha=0.6)
    ax.yaxis.set_major_formatter(_percent)
    ax.set_xlabel("training epoch")
    ax.set_ylabel(f"samples flagged ({criterion})")
    ax.set_title("Copying over training (dotted: held-out FPR)", fontsize=10)
    quality.set_xlabel("training epoch")
    quality.set_ylabel("Fréchet distance (squares)")
    confidence.set_ylabel("classifier confidence (triangles)")
    quality.set_title("Sample quality over training", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return fig


def _percent(value: float, _: object = None) -> str:
    return f"{100 * value:g}%"


def storage_figure(storage: Storage) -> Figure:
    """Storage in bits. Left: telling training items from held-out items by the model's bits and
    by stored bits (ROC; the diagonal is chance). Right: stored bits of training items against
    held-out items (which the model never saw, so theirs scatter around 0 by construction)."""
    fig, (roc, hist) = _figure(width=9.0, height=3.4, ncols=2)
    for i, (score, label) in enumerate(SCORES.items()):
        fpr, tpr = storage.roc(score)
        auc = storage.summary.membership[score]["auc"] if storage.summary.membership else None
        roc.plot(fpr, tpr, color=f"C{i}", label=f"{label}" + (f", AUC {auc:.3f}" if auc else ""))
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    roc.set_xlabel("false-positive rate (held-out items called members)")
    roc.set_ylabel("true-positive rate (training items)")
    roc.set_title("Membership from code lengths", fontsize=10)
    roc.legend(fontsize=7, frameon=False, loc="lower right")
    items = storage.items
    values = items["stored_bits"].to_numpy()
    edges = np.linspace(np.nanmin(values), np.nanmax(values), 41)
    for name, color, label in (("heldout", HELDOUT, "held-out items"),
                               ("train", SAMPLES, "training items")):
        part = values[(items["set"] == name).to_numpy()]
        hist.hist(part, edges, density=True, histtype="stepfilled" if name == "heldout" else
                  "step", color=color, alpha=0.45 if name == "heldout" else 1.0,
                  linewidth=1.6, label=f"{label} (n={len(part):,})")
    hist.axvline(0, color=THRESHOLD, linewidth=1)
    hist.set_xlabel("stored bits (bits saved against unseen items of the same kind)")
    hist.set_ylabel("density")
    hist.set_title("Stored bits per item", fontsize=10)
    hist.legend(fontsize=7, frameon=False)
    return fig
