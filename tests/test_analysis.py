"""Dataset-wide analyses on a small audited run whose answers are known by construction.

Exact copies of chosen training items are planted among unseen real digits: the most outlying
item 5 times, the most typical 4 times, the most duplicated 3 times and two ordinary items twice
and once. Every per-item count, per-class count and per-bin count must show exactly those copies.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact

from copyscope.analysis import (
    analyse,
    distance_histogram,
    figures,
    item_view,
    items,
    most_regenerated,
    open_audit,
    pair_view,
    top_copies,
    trends,
)
from copyscope.errors import CopyscopeError
from copyscope.stages.audit import audit

TRAIN, HELDOUT, REAL = "mnist:train[:2000]", "mnist:test[:1000]", "mnist:test[5000:5300]"


@pytest.fixture(scope="module")
def planted(train60k, test10k, tmp_path_factory):
    """(run directory, {training item: planted copies}, number of real samples)."""
    tmp = tmp_path_factory.mktemp("analysis")
    # a first audit of the real digits alone tells which training items are outliers /
    # duplicated, and which real digits the criterion flags by chance (those are left out)
    first = audit(REAL, TRAIN, HELDOUT, out=None, show=False)
    probe = first.items
    real = test10k[5000:5300][~first.samples["is_copy"].to_numpy()]
    outlier = int(probe["knn_mean_l2"].idxmax())
    typical = int(probe["knn_mean_l2"].idxmin())
    duplicated = int(probe.drop(index=[outlier, typical])["nn_other_l2"].idxmin())
    median = probe["knn_mean_l2"].median()
    ordinary = (probe["knn_mean_l2"] - median).abs().drop(
        index=[outlier, typical, duplicated]).nsmallest(2).index
    plant = {outlier: 5, typical: 4, duplicated: 3, int(ordinary[0]): 2, int(ordinary[1]): 1}
    copies = np.concatenate([np.repeat(train60k[[i]], r, axis=0) for i, r in plant.items()])
    path = tmp / "samples.npy"
    np.save(path, np.concatenate([copies, real]))
    out = tmp / "run"
    audit(str(path), TRAIN, HELDOUT, out=out, show=False)
    return out, plant, len(real)


@pytest.fixture(scope="module")
def run(planted):
    return open_audit(planted[0])


def test_planted_copies_are_the_only_copies(run, planted):
    _, plant, n_real = planted
    n_planted = sum(plant.values())
    assert len(run.samples) == n_planted + n_real
    assert not run.samples["is_copy"].iloc[n_planted:].any()  # the real digits are not copies
    assert run.samples["is_copy"].iloc[:n_planted].all()


def test_item_counts_and_distribution_show_the_planted_copies(run, planted):
    _, plant, _ = planted
    name = run.default_criterion
    copied = run.items.loc[run.items[f"n_copies_{name}"] > 0, f"n_copies_{name}"]
    assert copied.to_dict() == plant

    counts = items.count_distribution(run).set_index("count")
    expected = np.bincount(list(plant.values()), minlength=len(counts))
    expected[0] = len(run.items) - len(plant)
    assert np.array_equal(counts[f"items_copies_{name}"], expected)
    assert counts["items_samples_nearest"].sum() == len(run.items)
    assert (counts.index * counts["items_heldout_nearest"]).sum() == len(run.controls)


def test_concentration_of_the_copies(run, planted):
    _, plant, _ = planted
    table = items.concentration(run).set_index("set")
    c = table.loc[f"samples: copies ({run.default_criterion})"]
    total = sum(plant.values())
    assert c["draws"] == total and c["distinct_items"] == len(plant)
    assert c["max_count"] == 5 and c["top_1"] == pytest.approx(5 / total)
    assert c["top_10"] == 1.0
    # Gini as half the relative mean absolute difference over all training items
    x = np.zeros(len(run.items))
    x[: len(plant)] = list(plant.values())
    mad = np.abs(x[:, None] - x[None, :]).mean()
    assert c["gini"] == pytest.approx(mad / (2 * x.mean()))
    # the held-out set is the larger one, so it is also drawn down to the samples' size
    drawn = table.loc[f"held-out: nearest item, {len(run.samples):,} drawn (control)"]
    assert drawn["draws"] == len(run.samples)
    assert items.gini(np.ones(50)) == 0 and np.isnan(items.gini(np.zeros(5)))


def test_per_class_counts(run, planted, train60k):
    _, plant, _ = planted
    table = items.by_class(run).set_index("class")
    labels = run.items["label"].to_numpy()
    expected = pd.Series(plant).groupby(labels[list(plant)]).sum()
    assert table["copies"][table["copies"] > 0].to_dict() == expected.to_dict()
    assert table["samples"].sum() == len(run.samples)
    assert table["heldout"].sum() == len(run.controls)
    assert table["train_items"].sum() == len(run.items)
    assert table["heldout_flagged"].sum() == run.summary.criteria["heldout"].heldout_flagged
    one = table.loc[labels[next(iter(plant))]]
    assert one["copy_ci_low"] <= one["copy_rate"] <= one["copy_ci_high"]


@pytest.mark.parametrize("analysis", [items.outlierness, items.duplication])
def test_bins_count_the_copies_of_the_items_inside_them(run, planted, analysis):
    _, plant, _ = planted
    column = "knn_mean_l2" if analysis is items.outlierness else "nn_other_l2"
    table = analysis(run)
    values = run.items[column].to_numpy()
    assert table["train_items"].sum() == len(run.items)
    assert table["copies"].sum() == sum(plant.values())
    for row in table.itertuples():
        last = row.bin == len(table) - 1
        inside = (values >= row.lo) & ((values <= row.hi) if last else (values < row.hi))
        assert row.train_items == inside.sum()
        assert row.copies == sum(r for i, r in plant.items() if inside[i])
    if analysis is items.outlierness:
        assert table["copies"].iloc[-1] >= 5 and table["copies"].iloc[0] >= 4
    else:
        t = run.heldout_threshold
        assert table.loc[0, "near_duplicate"] and table.loc[0, "hi"] == t
        assert table.loc[0, "train_items"] == (values < t).sum()


def test_associations_use_the_copied_items(run, planted):
    _, plant, _ = planted
    table = items.associations(run)
    row = table[(table["property"] == "knn_mean_l2") & table["set"].str.startswith("samples")]
    values = run.items["knn_mean_l2"]
    assert row["flagged_items"].item() == len(plant)
    assert row["median_flagged"].item() == pytest.approx(values[list(plant)].median())
    assert 0 <= row["auc"].item() <= 1 and 0 < row["p_value"].item() <= 1


def test_heldout_threshold_reproduces_the_criterion(run):
    t = run.heldout_threshold
    for table in (run.samples, run.controls):
        assert ((table["nn_l2"] < t) == table["copy_heldout"]).all()


def test_pair_view_of_a_planted_copy(run, planted, train60k, test10k):
    _, plant, _ = planted
    first = next(iter(plant))
    view = pair_view(run, 0)
    assert view.train_item == first and view.measures["nn_l2"] == 0
    assert np.array_equal(view.panels["query"], train60k[first])
    assert np.array_equal(view.panels["train"], view.panels["query"])
    assert not view.panels["difference"].any()
    assert np.array_equal(view.panels["heldout"], test10k[view.heldout_item])
    assert set(view.flagged_by()) >= {"heldout", "l2", "carlini"}
    assert dict(view.lines())["PSNR (dB)"] == "∞"
    strip = view.strip(gap=2)
    assert strip.shape == (28, 4 * 28 + 3 * 2, 1) and strip.dtype == np.uint8
    control = pair_view(run, 3, table="controls")
    assert np.array_equal(control.panels["query"], test10k[3])
    assert control.heldout_item != 3


def test_galleries_show_the_planted_copies_and_their_samples(run, planted):
    _, plant, _ = planted
    top = top_copies(run, n=100)
    assert len(top) == sum(plant.values()) and (top["nn_l2"].diff().dropna() >= 0).all()
    assert len(top_copies(run, n=3)) == 3
    ranked = most_regenerated(run, n=3)
    assert ranked["item"].tolist() == list(plant)[:3]
    view = item_view(run, next(iter(plant)), per_item=8)
    assert view.samples["is_copy"].head(5).all() and len(view.sample_images) <= 8
    assert view.strip().shape[0] == 28


def test_analyse_writes_the_tables_and_records_the_stage(run):
    result = analyse(run, seed=3)
    for name, table in result.tables.items():
        stored = pd.read_parquet(run.path / "analysis" / f"{name}.parquet")
        pd.testing.assert_frame_equal(stored, table, check_dtype=False)
    stage = json.loads((run.path / "run.json").read_text())["stages"]["analysis"]
    assert stage["seeds"]["concentration_subsample"] == 3 and stage["status"] == "complete"
    assert stage["inputs"]["audit"] == run.record.to_json()["identity"]


def test_core_figure_marks_the_thresholds(run):
    fig = distance_histogram(run)
    left = fig.axes[0]
    lines = {round(line.get_xdata()[0], 6) for line in left.lines}
    assert round(run.heldout_threshold, 6) in lines
    assert round(run.params["l2_threshold"], 6) in lines
    labels = fig.legends[0].get_texts()
    assert any("FPR" in t.get_text() for t in labels)


@pytest.fixture(scope="module")
def runs(planted, tmp_path_factory):
    """Copies of the audited run that place it in a comparison, as `copyscope sample` would."""
    base = planted[0]
    tmp = tmp_path_factory.mktemp("runs")
    facts = {"gan-60000": ("gan", 60000, 20), "gan-300": ("gan", 300, 20),
             "gan-300-e5": ("gan", 300, 5), "diffusion-300": ("diffusion", 300, 5),
             "outside": None}
    paths = []
    for name, fact in facts.items():
        path = tmp / name
        shutil.copytree(base, path)
        manifest = json.loads((path / "run.json").read_text())
        if fact is not None:
            family, size, epoch = fact
            manifest["stages"]["sample"] = {
                "model": {"family": family, "train_size": size, "dropout": 0.0, "run": "x"},
                "checkpoint": f"checkpoints/epoch-{epoch}.safetensors", "epoch": epoch,
                "steps": 50 if family == "diffusion" else None, "seed": 7}
        (path / "run.json").write_text(json.dumps(manifest))
        paths.append(path)
    return [open_audit(p) for p in paths]


def test_compare_orders_runs_and_keeps_each_rate_beside_its_control(runs):
    table = trends.compare(runs)
    default = table[table["is_default"]]
    assert default["run"].tolist() == ["diffusion-300", "gan-300-e5", "gan-300", "gan-60000",
                                       "outside"]
    assert default["train_size"].tolist()[:4] == [300, 300, 300, 60000]
    assert default["family"].isna().tolist() == [False, False, False, False, True]
    assert len(table) == len(runs) * len(runs[0].summary.criteria)
    c = runs[0].summary.criteria["heldout"]
    row = default.iloc[0]
    assert row["copies"] == c.copies and row["heldout_fpr"] == c.heldout_fpr
    assert [row["copy_ci_low"], row["copy_ci_high"]] == c.copy_rate_ci95
    n_s, n_h = row["n_samples"], row["n_heldout"]
    p = fisher_exact([[row["copies"], n_s - row["copies"]],
                      [row["heldout_flagged"], n_h - row["heldout_flagged"]]], "greater").pvalue
    assert row["p_vs_heldout"] == pytest.approx(p) and p < 1e-6
    assert trends.comparison_notes(runs) == []


def test_saved_rates_are_the_rates_of_their_own_audit_only(run, tmp_path):
    copy = open_audit(shutil.copytree(run.path, tmp_path / "copy"))
    analyse(copy)
    pd.testing.assert_frame_equal(trends.saved_rates(copy), trends.rates(copy))
    saved = copy.path / "analysis" / "rates.parquet"
    pd.read_parquet(saved).assign(p_vs_heldout=-1.0).to_parquet(saved)
    assert (trends.saved_rates(copy)["p_vs_heldout"] == -1.0).all()  # read, not recomputed
    manifest = json.loads((copy.path / "run.json").read_text())
    manifest["stages"]["analysis"]["inputs"]["audit"] = {"another": "audit"}
    (copy.path / "run.json").write_text(json.dumps(manifest))
    assert (trends.saved_rates(open_audit(copy.path))["p_vs_heldout"] >= 0).all()


def test_comparison_notes_name_different_controls(runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs[0].path, other)
    manifest = json.loads((other / "run.json").read_text())
    manifest["stages"]["audit"]["inputs"]["heldout"]["sha256"] = "0" * 64
    (other / "run.json").write_text(json.dumps(manifest))
    notes = trends.comparison_notes([runs[0], open_audit(other)])
    assert len(notes) == 1 and "held-out" in notes[0]


def test_trend_lines_hold_one_model_setting_each(runs):
    table = trends.compare(runs)
    by_size = trends.series(table, "train_size", "heldout")
    assert list(by_size) == ["diffusion, dropout 0.0, steps 50", "gan, dropout 0.0"]
    gan = by_size["gan, dropout 0.0"]
    assert gan["train_size"].tolist() == [300, 60000]
    assert gan["run"].tolist() == ["gan-300", "gan-60000"]  # the last checkpoint of each size
    by_epoch = trends.series(table, "epoch", "heldout")
    assert by_epoch["gan, train_size 300, dropout 0.0"]["epoch"].tolist() == [5, 20]
    assert [len(line) for line in by_epoch.values()] == [1, 2, 1]
    fig = figures.trend_figure(by_size, "train_size", "heldout", "training images", log=True)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["diffusion, dropout 0.0, steps 50: copy rate",
                      "gan, dropout 0.0: copy rate", "held-out FPR (dotted, same colour)"]
    assert len(fig.axes[0].lines) >= 4  # a rate line and an FPR line per setting
    forest = figures.runs_figure(table, "heldout")
    ax = forest.axes[0]
    top_down = sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels()),
                          strict=True), reverse=True)
    assert [name for _, name in top_down] == ["diffusion-300", "gan-300-e5", "gan-300",
                                              "gan-60000", "outside"]


def test_open_run_refuses_what_is_not_a_finished_audit(tmp_path, run):
    with pytest.raises(CopyscopeError, match="records no audit"):
        open_audit(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(run.path, broken)
    (broken / "items.parquet").write_text("not parquet")
    with pytest.raises(CopyscopeError, match=r"items\.parquet is not a readable Parquet"):
        open_audit(broken)
    moved = tmp_path / "moved"
    shutil.copytree(run.path, moved)
    manifest = json.loads((moved / "run.json").read_text())
    entry = manifest["stages"]["audit"]["inputs"]["samples"]
    entry["spec"] = entry["resolved"] = str(tmp_path / "gone.npy")
    (moved / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(CopyscopeError, match="cannot reload the audited samples"):
        open_audit(moved).images("samples")
    with pytest.raises(CopyscopeError, match="no criterion"):
        items.by_class(run, "nonsense")


def _rates_table(rates: dict[tuple[str, float | None], dict[int, int]], n: int = 50
                 ) -> pd.DataFrame:
    """A compare()-shaped table: copies out of n per (family, dropout) and training size."""
    from copyscope.detect.calibration import rate

    rows = []
    for (family, dropout), by_size in rates.items():
        for size, copies in by_size.items():
            low, high = rate(np.arange(n) < copies)["ci95"]
            rows.append({"family": family, "train_size": size, "dropout": dropout, "epoch": 9,
                         "steps": None, "run": f"{family}-{dropout}-{size}",
                         "criterion": "heldout", "copies": copies, "n_samples": n,
                         "copy_rate": copies / n, "copy_ci_low": low, "copy_ci_high": high})
    return pd.DataFrame(rows)


def test_emm_brackets_each_setting_and_keeps_missing_bounds_as_none():
    from copyscope.analysis.contrasts import emm, emm_sentence

    table = _rates_table({("diffusion", None): {1: 50, 10: 48, 100: 30, 1000: 0},
                          ("gan", 0.0): {1: 40, 10: 2, 100: 3},
                          ("gan", 0.3): {1: 50, 10: 50}})
    rows = {r["setting"]: r for r in emm(table, "heldout").to_dict("records")}
    assert (rows["diffusion"]["emm_at_least"], rows["diffusion"]["emm_below"]) == (10, 100)
    assert rows["diffusion"]["monotone"]
    assert rows["gan, dropout 0.0"]["emm_at_least"] is None  # 80% at size 1 misses 90%
    assert not rows["gan, dropout 0.0"]["monotone"]  # 2 then 3 copies: it rises
    assert rows["gan, dropout 0.3"]["emm_below"] is None
    words = emm_sentence(rows["gan, dropout 0.0"])
    assert "no training-set size reaches 90%" in words and "80.0% at 1 training image)" in words
    assert "between them" in emm_sentence(rows["diffusion"]) and "nan" not in words


def test_a_rise_in_the_copy_rate_is_tested_against_chance():
    from copyscope.analysis.contrasts import emm, emm_sentence

    table = _rates_table({("diffusion", None): {1: 200, 1000: 0, 3000: 0, 60000: 1},
                          ("gan", 0.0): {1: 200, 10: 0, 100: 60}}, n=200)
    rows = {r["setting"]: r for r in emm(table, "heldout").to_dict("records")}
    one_flag = rows["diffusion"]  # 0/200 then 1/200: higher, but a single flag is chance
    assert not one_flag["monotone"] and not one_flag["rises_significantly"]
    assert one_flag["rise_sizes"] in {(1000, 60000), (3000, 60000)}
    assert one_flag["rise_p"] == pytest.approx(1.0)  # one-sided p 0.5, Holm over two pairs
    assert "within chance" in emm_sentence(one_flag)
    real = rows["gan, dropout 0.0"]  # 0/200 then 60/200
    assert real["rises_significantly"] and real["rise_sizes"] == (10, 100)
    assert real["rise_p"] == pytest.approx(
        fisher_exact([[60, 140], [0, 200]], alternative="greater").pvalue)
    assert "from 0.0% at 10 to 30.0% at 100 images, beyond chance" in emm_sentence(real)


def test_contrasts_are_fisher_tests_at_equal_size_with_holm():
    from copyscope.analysis.contrasts import contrasts, holm

    table = _rates_table({("diffusion", None): {1: 50, 100: 30},
                          ("gan", 0.3): {1: 45, 100: 0, 3000: 0}})
    out = contrasts(table, "heldout").set_index("train_size")
    assert sorted(out.index) == [1, 100]  # 3,000 has no diffusion model to compare against
    at100 = out.loc[100]
    assert at100["p_fisher"] == pytest.approx(fisher_exact([[30, 20], [0, 50]]).pvalue)
    assert at100["difference"] == pytest.approx(0.6)
    assert list(out["p_holm"]) == pytest.approx(list(holm(out["p_fisher"].to_numpy())))
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
