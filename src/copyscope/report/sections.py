"""What the report shows, gathered from the analyses as plain data for the template.

:func:`run_section` collects one run's answer, figures, tables, galleries and manifest;
:func:`comparison_section` the trends across several runs. Figures and pictures arrive here as
data URIs (see :mod:`copyscope.report.embed`); the template only lays them out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from copyscope.analysis import contrasts, figures, trends
from copyscope.analysis.audited import AuditedRun
from copyscope.analysis.bits import Storage
from copyscope.analysis.pairs import (
    PANELS,
    PairView,
    closest,
    hstack,
    item_view,
    most_regenerated,
    pair_view,
    strongest_copies,
    top_copies,
)
from copyscope.analysis.stage import Analysis
from copyscope.errors import CopyscopeError
from copyscope.models import fact_names
from copyscope.pictures import png_uri
from copyscope.records import AuditSummary
from copyscope.report.embed import svg_uri
from copyscope.rundir import MANIFEST, RunDir

FACT_LABELS = {"family": "model family", "train_size": "training images",
               **{f: f.replace("_", " ") for f in fact_names()},
               "checkpoint": "checkpoint", "epoch": "epoch", "steps": "sampling steps",
               "seed": "sampling seed"}


def run_section(analysis: Analysis, top: int = 12, per_item: int = 8,
                regenerated: int = 6, controls: int = 4, detail: bool = True) -> dict[str, Any]:
    """Everything the report says about one run; ``detail`` adds the per-item trend figures
    (counts, classes, outlierness, duplication) beside their tables."""
    run, tables = analysis.run, analysis.tables
    name = run.default_criterion
    s = run.summary
    correlation = float(spearmanr(run.items["knn_mean_l2"], run.items["nn_other_l2"]).statistic)
    criteria = [{"name": k, **asdict(v), "default": k == name} for k, v in s.criteria.items()]
    section: dict[str, Any] = {
        "id": f"run-{run.name}",
        "name": run.name,
        "path": str(run.path),
        "facts": [(FACT_LABELS[k], run.facts[k]) for k in FACT_LABELS
                  if run.facts[k] is not None],
        "inputs": run.inputs,
        "params": run.params,
        "summary": s,
        "default": name,
        "default_rule": s.criteria[name].rule,
        "criteria": criteria,
        "threshold": run.heldout_threshold,
        "exact_copies": int((run.samples["nn_l2"] == 0).sum()),
        "rates": tables["rates"].to_dict("records"),
        "figures": {"distance": svg_uri(figures.distance_histogram(run))},
        "concentration": tables["concentration"].to_dict("records"),
        "classes": tables["classes"].to_dict("records"),
        "outlierness": _bin_labels(tables["outlierness"]).to_dict("records"),
        "duplication": _bin_labels(tables["duplication"]).to_dict("records"),
        "associations": tables["associations"].to_dict("records"),
        "manifest": manifest_section(run, complete=detail),
        "limitations": limitations(run, correlation),
        "recall": recall_note(s),
    }
    if detail:
        section["figures"] |= detail_figures(tables)
    if run.storage is not None:
        section["storage"] = storage_section(run, run.storage)
    try:
        section["galleries"] = galleries(run, top, per_item, regenerated, controls)
    except CopyscopeError as e:
        section["images_error"] = str(e)
    return section


def storage_section(run: AuditedRun, storage: Storage, n: int = 8) -> dict[str, Any]:
    """Storage in bits: the bits table against the classical compressors, membership, stored
    bits per item and in total beside the model's size, and the items the model stores most."""
    s = storage.summary
    top = []
    try:
        train = run.images("train").images
        for r in storage.most_stored(n).to_dict("records"):
            if 0 <= int(r["item"]) < len(train):
                top.append({"item": int(r["item"]), "label": int(r["label"]),
                            "bits": float(r["bits_ideal"]), "stored": float(r["stored_bits"]),
                            "p": float(r["stored_p"]), "image": png_uri(train[int(r["item"])])})
    except CopyscopeError:
        pass  # the images moved: the run's own section says so
    return {"methods": storage.methods().to_dict("records"), "rates": s.rates,
            "membership": s.membership, "stored": s.stored_bits, "model": s.model,
            "dims": s.dims, "overhead": s.coder_overhead, "top": top,
            "figure": svg_uri(figures.storage_figure(storage))}


def detail_figures(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """The per-item trend figures of one run (their numbers are in the tables beside them)."""
    out = {
        "counts": svg_uri(figures.count_figure(tables["counts"])),
        "outlierness": svg_uri(figures.rates_figure(
            _bin_labels(tables["outlierness"]), "range",
            "outlierness of the nearest training item (mean L2 to its k nearest others)")),
        "duplication": svg_uri(figures.rates_figure(
            _bin_labels(tables["duplication"]), "range",
            "distance from the nearest training item to its nearest other training item")),
    }
    if not tables["classes"].empty:
        out["classes"] = svg_uri(figures.rates_figure(
            tables["classes"], "class", "class of the nearest training image"))
    return out


def galleries(run: AuditedRun, top: int, per_item: int, regenerated: int,
              controls: int) -> dict[str, Any]:
    """The top flagged copies, the most-regenerated items and the closest held-out images."""
    flagged = top_copies(run, top)
    shown = flagged if len(flagged) else closest(run, min(top, 6))
    return {
        "copies_flagged": len(flagged) > 0,
        "copies": [_pair(pair_view(run, i)) for i in shown["sample"]],
        "regenerated": [_item(run, int(i), per_item)
                        for i in most_regenerated(run, regenerated)["item"]],
        "controls": [_pair(pair_view(run, i, "controls"))
                     for i in closest(run, controls, "controls")["heldout"]],
    }


def _pair(view: PairView) -> dict[str, Any]:
    return {"panels": [(png_uri(view.panels[p]), view.captions[p]) for p in PANELS],
            "lines": view.lines(), "flagged_by": view.flagged_by(),
            "width": view.panels["query"].shape[1]}


def _item(run: AuditedRun, item: int, per_item: int) -> dict[str, Any]:
    view = item_view(run, item, per_item)
    row = view.row
    return {"item": item, "label": row.get("label"), "n_nearest": row["n_nearest"],
            "n_copies": row["n_copies"], "copying_flag": bool(row["copying_flag"]),
            "copying_score": row["copying_score"], "image": png_uri(view.image),
            "width": view.image.shape[1],
            "samples": [(png_uri(im), int(r.sample), float(r.nn_l2), bool(r.is_copy))
                        for im, r in zip(view.sample_images, view.samples.itertuples(),
                                         strict=True)]}


def _bin_labels(table: pd.DataFrame) -> pd.DataFrame:
    """Add a readable ``range`` column ("0.0412–0.0873") to a binned table."""
    return table.assign(range=[f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(table["lo"], table["hi"],
                                                                       strict=True)])


def manifest_section(run: AuditedRun, complete: bool = True) -> dict[str, Any]:
    """Versions, seeds, data hashes and the exact commands of every stage in run.json.

    The stages of the training run that the samples came from (the sample stage's
    ``model.run``) come first, when that run directory is still there.
    """
    manifest = run.manifest()
    stages = _model_stages(run) | manifest.get("stages", {})
    return {
        "commands": [(k, v["command"]) for k, v in stages.items() if v.get("command")],
        "seeds": [(k, seed, value) for k, v in stages.items()
                  for seed, value in _seeds(v).items()],
        "versions": run.record.versions or {},
        "hashes": [(role, e["spec"], e["n"], e["sha256"]) for role, e in run.inputs.items()],
        "stages": [(k, v.get("status"), v.get("finished"), v.get("timings_s"))
                   for k, v in stages.items()],
        "run_json": json.dumps(manifest, indent=2) if complete else None,
    }


def _model_stages(run: AuditedRun) -> dict[str, Any]:
    source = ((run.sample.model or {}) if run.sample else {}).get("run")
    if not source or not (Path(source) / MANIFEST).is_file():
        return {}
    if Path(source).resolve() == run.path.resolve():
        return {}
    try:
        stages = RunDir(Path(source)).manifest().get("stages", {})
    except CopyscopeError:
        return {}  # an unreadable training manifest is the training run's problem, not the report's
    return {f"{name} ({Path(source).name})": stage for name, stage in stages.items()}


def _seeds(stage: dict[str, Any]) -> dict[str, Any]:
    seeds = dict(stage.get("seeds", {}))
    if "seed" in stage:
        seeds["seed"] = stage["seed"]
    return seeds


def recall_note(summary: AuditSummary) -> dict[str, str] | None:
    """What the report sets beside every rate of an audit whose search was approximate (its
    recall against the exact search, summary.json's ``search``); None for an exact audit."""
    s = summary.search
    if s is None:
        return None
    r = s.recall

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    k = r["samples"]["k"]
    settings = ", ".join(f"{key} {s.settings[key]}" for key in ("nlist", "nprobe")
                         if key in s.settings)
    parts = [f"{kind} {pct(r[kind]['at_1'])} / {pct(r[kind]['at_k'])} on {r[kind]['queries']:,} "
             "queries" for kind in ("samples", "heldout", "train") if kind in r]
    return {"short": f"approximate search: recall@1 {pct(r['samples']['at_1'])} (samples), "
                     f"{pct(r['heldout']['at_1'])} (held-out)",
            "long": f"Approximate search ({s.backend}: {settings}). Its recall@1 / recall@{k} "
                    "against the exact search, measured in this run on seeded queries: "
                    + "; ".join(parts) + ". Every rate of this run rests on these neighbours: "
                    "an image whose nearest training image was missed looks farther from the "
                    "training set than it is, for samples and held-out images alike."}


def limitations(run: AuditedRun, correlation: float) -> list[str]:
    """What this run's evidence cannot show, with its own numbers where they matter.

    ``correlation`` is the Spearman correlation of outlierness and near-duplication.
    """
    s = run.summary
    n_s, n_h = s.n_samples, s.n_heldout
    default = s.criteria[run.default_criterion]
    return [
        f"Resolution: with {n_h:,} held-out images the smallest false-positive rate that can be "
        f"measured is 1/{n_h:,} = {100 / n_h:.3f}%; with {n_s:,} samples the 95% interval of the "
        f"copy rate reaches up to {100 * default.copy_rate_ci95[1]:.2f}%. A rate of zero is a "
        "statement about these samples, not about everything the model can generate.",
        "Copies are searched in pixel space under L2: a copy that is shifted, rotated, cropped, "
        "recoloured or only partly copied can sit far from its source and go unflagged. The "
        "image-similarity measures are computed against the L2-nearest training image only.",
        "The control is valid only if the held-out images come from the same distribution as "
        "the training images and are not themselves training images (exact overlaps are "
        "counted in the control section). Held-out data that is easier or harder than the "
        "training data shifts every false-positive rate.",
        "Generated samples carry no label: the per-class analysis places each sample in the class "
        "of its nearest training image.",
        f"Outlierness and near-duplication are two views of the same neighbourhood (Spearman "
        f"correlation {correlation:.2f} over the training items), so their trends are not "
        "independent. The carlini criterion divides by outlierness, so it flags samples near "
        "outliers more easily by construction.",
        "Gini coefficients and top-k shares depend on the number of samples; compare samples "
        "with held-out images at equal sizes (the 'drawn' rows).",
        "FSIM, SRE and ISSM from the reference study are not computed (no maintained library "
        "provides them for this software stack).",
        "A flag says a sample is closer to one training image than unseen real images come; "
        "whether that closeness is a copy in law is for the reader to argue, with the pictures.",
        *([recall["long"]] if (recall := recall_note(s)) else []),
    ]


def comparison_section(runs: Sequence[AuditedRun], strongest: int = 24) -> dict[str, Any]:
    """The study's answer across runs, first: copy rate against training-set size per model
    setting over the held-out band, the epoch curve with sample quality, the strongest copies of
    all runs beside their training originals, EMM per setting and the contrasts between
    settings; then the trend tables and figures."""
    table = trends.compare(runs)
    defaults = {r.default_criterion for r in runs}
    criterion = defaults.pop() if len(defaults) == 1 else "heldout"
    figs = {"runs": svg_uri(figures.runs_figure(table, criterion))}
    if any(line["train_size"].nunique() > 1
           for line in trends.series(table, "train_size", criterion).values()):
        figs["answer"] = svg_uri(figures.answer_figure(table, criterion))
    if any(line["epoch"].nunique() > 1
           for line in trends.series(table, "epoch", criterion).values()):
        figs["epoch"] = svg_uri(figures.epoch_figure(table, criterion))
    steps = trends.series(table, "steps", criterion)
    if any(line["steps"].nunique() > 1 for line in steps.values()):
        figs["steps"] = svg_uri(figures.trend_figure(steps, "steps", criterion,
                                                     "sampling steps"))
    recall = {run.name: note["short"] for run in runs if (note := recall_note(run.summary))}
    by_run = [{"run": run, "cells": {r["criterion"]: r for r in group.to_dict("records")},
               "recall": recall.get(run)} for run, group in table.groupby("run", sort=False)]
    rows = [{**r, "recall": recall.get(r["run"])}
            for r in table[table["criterion"] == criterion].to_dict("records")]
    return {"criterion": criterion, "rows": rows, "approximate": recall,
            "facts": [(f, FACT_LABELS[f]) for f in fact_names()], "figures": figs,
            "criteria": list(dict.fromkeys(table["criterion"])), "by_run": by_run,
            "notes": trends.comparison_notes(runs),
            "emm": contrasts.emm(table, criterion).to_dict("records"),
            "headline": [contrasts.emm_sentence(r) for r in
                         contrasts.emm(table, criterion).to_dict("records")],
            "emm_gu": contrasts.emm(table, "gu").to_dict("records") if criterion != "gu" else [],
            "contrasts": contrasts.contrasts(table, criterion).to_dict("records"),
            "strongest": strongest_cards(runs, strongest),
            "storage": [storage_row(r) for r in runs if r.storage is not None]}


def storage_row(run: AuditedRun) -> dict[str, Any]:
    """One run's storage in bits for the comparison: model against the best classical coder on
    held-out items, stored bits in total beside the model's size, membership AUC."""
    assert run.storage is not None
    s = run.storage.summary
    held = s.rates.get("heldout", {})
    return {"run": run.name, "train_size": run.facts.get("train_size"),
            "model_bpd": held.get("model", {}).get("whole_bpd"),
            "best": held.get("best_classical"),
            "best_bpd": held.get(held.get("best_classical", ""), {}).get("whole_bpd"),
            "advantage": held.get("model_advantage"), "stored": s.stored_bits,
            "auc": (s.membership or {}).get("bits", {}).get("auc")}


def strongest_cards(runs: Sequence[AuditedRun], n: int) -> list[dict[str, Any]]:
    """The strongest copies across runs, each as (sample, training original) thumbnails."""
    cards = []
    for r in strongest_copies(runs, n).to_dict("records"):
        run = runs[r["run"]]
        try:
            sample = run.images("samples").images[int(r["sample"])]
            original = run.images("train").images[int(r["nn_train"])]
        except CopyscopeError:
            continue  # images moved since the audit: the run's own section says so
        cards.append({"run": r["name"], "sample": int(r["sample"]), "item": int(r["nn_train"]),
                      "l2": float(r["nn_l2"]), "image": png_uri(hstack([sample, original])),
                      "width": sample.shape[1] * 2 + 2, "height": sample.shape[0]})
    return cards


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
