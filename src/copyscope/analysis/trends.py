"""Across runs: copy rate per criterion against model family, training-set size, epoch, sampler.

:func:`rates` gives one row per criterion of one run: the run's place in a comparison (its
:data:`copyscope.analysis.audited.FACTS`: family, training size, each family fact such as a
GAN's dropout, checkpoint, epoch, sampling steps and seed), the
copy rate with its Wilson 95% interval (Wilson 1927, as computed by the audit) and, beside it, the
held-out false-positive rate with its interval, plus a one-sided Fisher exact test of "samples
are flagged more often than unseen real images". Each run writes its rows to
``analysis/rates.parquet``, so the trend table over many runs is a concatenation
(:func:`compare`), or in DuckDB ``select * from 'runs/*/analysis/rates.parquet'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from copyscope.analysis.audited import FACTS, AuditedRun
from copyscope.detect.criteria import criterion_params
from copyscope.errors import CopyscopeError
from copyscope.files import read_parquet
from copyscope.models import fact_names

ORDER = ["family", "train_size", *fact_names(), "epoch", "steps", "run"]
# What stays fixed along one line of a trend: the runs of one model setting, varying only x.
# ``steps`` is the sampler's step count (DDIM steps of a diffusion model), as the sample stage
# records it; ``epoch`` is the training epoch of the checkpoint.
SETTING = ("family", "train_size", *fact_names(), "epoch", "steps")
SERIES = {x: tuple(f for f in SETTING if f != x and not (x == "train_size" and f == "epoch"))
          for x in ("train_size", "epoch", "steps")}


def rates(run: AuditedRun) -> pd.DataFrame:
    """One row per criterion: copy rate and held-out false-positive rate with 95% intervals."""
    from scipy.stats import fisher_exact  # ~1 s to import; the web app reads saved rates

    s = run.summary
    rows = []
    for name, c in s.criteria.items():
        n_s, n_h = s.n_samples, s.n_heldout
        flags = run.samples[f"copy_{name}"].to_numpy()
        p = fisher_exact([[c.copies, n_s - c.copies], [c.heldout_flagged, n_h - c.heldout_flagged]],
                         alternative="greater").pvalue
        rows.append({
            "run": run.name, "path": str(run.path),
            **{k: run.facts[k] for k in FACTS},
            "criterion": name, "is_default": name == run.default_criterion,
            "n_samples": n_s, "copies": c.copies, "copy_rate": c.copy_rate,
            "copy_ci_low": c.copy_rate_ci95[0], "copy_ci_high": c.copy_rate_ci95[1],
            "distinct_items": int(run.samples.loc[flags, "nn_train"].nunique()),
            "n_heldout": n_h, "heldout_flagged": c.heldout_flagged,
            "heldout_fpr": c.heldout_fpr,
            "fpr_ci_low": c.heldout_fpr_ci95[0], "fpr_ci_high": c.heldout_fpr_ci95[1],
            "p_vs_heldout": float(p),
            "C_T": s.data_copying_ct["C_T"],
            "C_T_cells": s.data_copying_ct["cells_used"],
            "n_seen": s.seen.n_seen if s.seen else None,
            "flagged_unseen": s.seen.flagged[name]["unseen"] if s.seen else None,
            "C_T_seen": s.seen.data_copying_ct["C_T"] if s.seen else None,
            "C_T_seen_cells": s.seen.data_copying_ct["cells_used"] if s.seen else None,
            "mean_confidence": run.quality.mean_confidence if run.quality else None,
            "frechet_distance": run.quality.frechet_distance if run.quality else None,
            "n_train": s.n_train,
            "train_sha256": run.inputs["train"]["sha256"],
            "heldout_sha256": run.inputs["heldout"]["sha256"],
        })
    return pd.DataFrame(rows)


def saved_rates(run: AuditedRun) -> pd.DataFrame:
    """:func:`rates`, read from the run's ``analysis/rates.parquet`` when the analysis stage wrote
    it for this very audit (run.json's ``analysis.inputs.audit``), else computed."""
    analysed = run.analysis
    path = run.path / "analysis" / "rates.parquet"
    if (analysed is None or not analysed.complete or not path.exists()
            or (analysed.inputs or {}).get("audit") != run.record.to_json()["identity"]):
        return rates(run)
    try:
        table = read_parquet(path)
    except CopyscopeError as e:
        raise CopyscopeError(f"{e} Delete it or run `copyscope report` on the run again.") from e
    # the audit's numbers are fixed by its identity; the run's name, place and facts (run.json's
    # other stages) are read afresh, as rates() would, for a run that was moved or copied
    return table.assign(run=run.name, path=str(run.path), **{k: run.facts[k] for k in FACTS})


def compare(runs: Sequence[AuditedRun]) -> pd.DataFrame:
    """The rates of several runs in one table, ordered by family, size, dropout and training time.

    Each run's rates are read from its analysis tables where they are current
    (:func:`saved_rates`). Facts a run does not record (runs audited from outside samples) are
    missing values and sort last.
    """
    table = pd.concat([saved_rates(r) for r in runs], ignore_index=True)
    return table.sort_values([*ORDER, "criterion"], na_position="last", kind="stable",
                             ignore_index=True)


def series(table: pd.DataFrame, x: str, criterion: str) -> dict[str, pd.DataFrame]:
    """The lines of a trend against ``x`` (``train_size``, ``epoch`` or ``steps``).

    Each line holds the runs of :func:`compare`'s ``table`` that agree on every other fact in
    :data:`SERIES` (e.g. one family and dropout across training-set sizes), sorted by ``x``,
    labelled by those facts (facts a run does not record are left out of the label). Against
    ``train_size`` each size contributes its last checkpoint (largest epoch), so the line
    compares final models. Runs that do not record ``x`` are left out.
    """
    by = list(SERIES[x])
    rows = table[(table["criterion"] == criterion) & table[x].notna()]
    keys = rows[by].astype(object).where(rows[by].notna(), None)
    lines = {}
    for values, group in rows.groupby([keys[c] for c in by], sort=True, dropna=False):
        label = ", ".join(str(v) if c == "family" else f"{c} {_number(c, v)}"
                          for c, v in zip(by, values, strict=True) if not pd.isna(v))
        group = group.sort_values([x, "epoch"], kind="stable", na_position="first")
        lines[label] = group.groupby(x).tail(1) if x == "train_size" else group
    return lines


def _number(fact: str, value: object) -> object:
    """Counts read back as floats (beside missing values) are shown as the integers they are."""
    return int(value) if fact in ("train_size", "epoch", "steps") else value


def comparison_notes(runs: Sequence[AuditedRun]) -> list[str]:
    """What a reader must know before comparing these runs' rates side by side."""
    notes = []
    for what, role in (("training sets", "train"), ("held-out control sets", "heldout")):
        hashes = {r.inputs[role]["sha256"] for r in runs}
        if len(hashes) > 1:
            notes.append(f"The runs were audited against {len(hashes)} different {what}; "
                         + ("copy rates count copies of different data."
                            if role == "train" else
                            "their false-positive rates come from different controls."))
    defaults = {r.default_criterion for r in runs}
    if len(defaults) > 1:
        notes.append(f"The runs use different default criteria ({', '.join(sorted(defaults))}); "
                     "compare them criterion by criterion.")
    names = criterion_params()
    params = {tuple(r.params.get(p) for p in names) for r in runs}
    if len(params) > 1:
        notes.append("The runs were audited with different criterion settings "
                     f"({', '.join(names[:-1])} or {names[-1]}).")
    return notes
