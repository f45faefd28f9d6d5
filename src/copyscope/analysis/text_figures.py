"""Figures of the text side, as matplotlib ``Figure`` objects (drawn as :mod:`figures` draws):
generated text in red, the held-out control (human text the model never saw) in blue."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from copyscope.analysis.figures import HELDOUT, SAMPLES, THRESHOLD, _figure
from copyscope.records import ExtractionSummary


def spans_figure(texts: pd.DataFrame, controls: pd.DataFrame, min_length: int) -> Figure:
    """The held-out comparison: each generated text's longest verbatim span and copied share
    against held-out human chunks of the same lengths, as shares at or above each value (the
    upper tail, where copies sit), on log scales."""
    fig, axes = _figure(ncols=2)
    for ax, column, xlabel, log in (
            (axes[0], "longest_span", "longest span found verbatim in the corpus (characters)",
             True),
            (axes[1], "copied_share", f"share of characters inside spans of ≥ {min_length}",
             False)):
        for table, color, name in ((controls, HELDOUT, "held-out human text"),
                                   (texts, SAMPLES, "generated texts")):
            values = np.sort(table[column].to_numpy(float))
            values = values[np.isfinite(values)]
            if not len(values):
                continue
            at_least = 1.0 - np.arange(len(values)) / len(values)  # share at or above each value
            ax.step(np.maximum(values, 1) if log else values, at_least, where="post",
                    color=color, label=f"{name} (n={len(values):,})")
        if log:
            ax.set_xscale("log")
            ax.axvline(min_length, color=THRESHOLD, linestyle=":", linewidth=1,
                       label=f"{min_length} characters")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share at or above (log)")
    axes[0].set_title("Longest verbatim span", fontsize=10)
    axes[1].set_title("Copied share", fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3,
               fontsize=7, frameon=False)
    return fig


def extraction_figure(summary: ExtractionSummary) -> Figure:
    """k-extractability by prefix length, training prompts against held-out ones, with 95%
    Wilson intervals."""
    fig, (ax,) = _figure(width=5.5, height=3.0)
    for k, (name, color) in enumerate((("train", SAMPLES), ("heldout", HELDOUT))):
        rows = summary.by_prefix.get(name, {})
        if not rows:
            continue
        x = np.arange(len(summary.prefixes)) + (k - 0.5) * 0.12
        rate = np.array([rows[str(p)]["rate"] for p in summary.prefixes])
        ci = np.array([rows[str(p)]["ci95"] for p in summary.prefixes])  # (P, 2)
        ax.errorbar(x, rate, yerr=[rate - ci[:, 0], ci[:, 1] - rate], color=color, marker="o",
                    capsize=3, label=f"{name} prompts (n={summary.prompts.get(name, 0):,})")
    ax.set_xticks(np.arange(len(summary.prefixes)), [str(p) for p in summary.prefixes])
    ax.set_xlabel("prefix length (bytes)")
    ax.set_ylabel(f"share whose next {summary.suffix} bytes are reproduced")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, frameon=False)
    return fig
