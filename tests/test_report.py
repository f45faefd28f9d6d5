"""The report, rendered in real headless Chromium: every image loads, nothing errs, nothing is
fetched from outside, and a run with zero copies says so plainly while still showing the control.
"""

from __future__ import annotations

import io
import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from copyscope.stages.audit import audit

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
TRAIN, HELDOUT = "mnist:train[:2000]", "mnist:test[:1000]"
PLANTED = {7: 3, 1200: 2, 1999: 1}  # training item -> exact copies planted


@pytest.fixture(scope="module")
def runs(train60k, test10k, tmp_path_factory) -> dict[str, Path]:
    """A run with zero copies (unseen real digits) and one with planted copies among them."""
    tmp = tmp_path_factory.mktemp("report")
    probe = audit("mnist:test[5000:5200]", TRAIN, HELDOUT, out=None, show=False)
    real = test10k[5000:5200][~probe.samples["is_copy"].to_numpy()]
    copies = np.concatenate([np.repeat(train60k[[i]], r, axis=0) for i, r in PLANTED.items()])
    out = {}
    for name, images in (("clean", real), ("copies", np.concatenate([copies, real]))):
        np.save(tmp / f"{name}.npy", images)
        out[name] = tmp / name
        audit(str(tmp / f"{name}.npy"), TRAIN, HELDOUT, out=out[name], show=False)
    assert json.loads((out["clean"] / "summary.json").read_text())["copies"] == 0
    # the copies came from a (pretend) trained model: its training run and the sample stage
    model_run = tmp / "gan-300"
    model_run.mkdir()
    (model_run / "run.json").write_text(json.dumps({"stages": {"train": {
        "command": "copyscope train --family gan --train 'mnist:train[:300]'",
        "seeds": {"init": 3}}}}))
    manifest = json.loads((out["copies"] / "run.json").read_text())
    manifest["stages"]["sample"] = {
        "model": {"family": "gan", "train_size": 300, "dropout": 0.1, "run": str(model_run)},
        "checkpoint": "checkpoints/epoch-0020.safetensors", "epoch": 20, "steps": None,
        "seed": 11, "command": "copyscope sample runs/gan-300 --n 206 --seed 11"}
    (out["copies"] / "run.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "apt-get install chromium (make test does this)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def open_report(browser, path: Path) -> tuple[object, list[str], list[str]]:
    """Load the report from disk; return the page, console errors and non-local requests."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith(("file://", "data:")) else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors, outside


def not_blank(png: bytes) -> bool:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return pixels.std() > 10 and len(np.unique(pixels)) > 16


def test_comparison_report_renders_every_image_offline(runs, browser, run_cli, tmp_path):
    out = tmp_path / "comparison.html"
    code, printed = run_cli("report", runs["copies"], runs["clean"], "--out", out)
    assert code == 0, printed
    assert str(out) in printed.replace("\n", "")
    page, errors, outside = open_report(browser, out)
    n_images = page.evaluate("document.images.length")
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
    assert n_images > 40 and broken == 0
    assert errors == [] and outside == []
    sources = page.evaluate("Array.from(document.images).map(i => i.getAttribute('src'))")
    assert all(s.startswith("data:image/") for s in sources)
    links = page.evaluate("Array.from(document.links).map(a => a.getAttribute('href'))")
    assert all(href.startswith("#") for href in links)
    assert not_blank(page.screenshot(full_page=False))
    text = page.inner_text("body")
    sections = ["The answer across runs", "The strongest copies, across all runs",
                "Effective model memorization", "Every run", "Each run's answer", "Method",
                "Data and models", "Results", "The control and the false-positive rates",
                "Limitations", "Reproducibility manifest"]
    headings = page.locator("h2, h3").all_inner_texts()
    at = [headings.index(section) for section in sections]
    assert at == sorted(at), headings
    assert "Trends across runs" in text
    every_criterion = page.locator("#study table").last.inner_text()
    assert all(c in every_criterion for c in ("gu", "carlini_sample", "heldout", "l2"))
    strongest = page.locator("#study .gallery .card.flagged")
    assert strongest.count() == min(3, sum(PLANTED.values()))  # at most 3 from the one run
    n_copies = sum(PLANTED.values())
    assert f"{n_copies} of " in text and "No generated sample is flagged as a copy" in text
    flagged_cards = page.locator("#run-copies .card.flagged").count()
    assert flagged_cards == n_copies
    for fact in ("model family", "gan", "checkpoints/epoch-0020.safetensors",
                 "copyscope train --family gan --train 'mnist:train[:300]'",
                 "copyscope sample runs/gan-300 --n 206 --seed 11"):
        assert fact in text
    for run in runs.values():  # the manifest carries each input's content hash and command
        audit_stage = json.loads((run / "run.json").read_text())["stages"]["audit"]
        for entry in audit_stage["inputs"].values():
            assert entry["sha256"] in text
        assert (run / "analysis" / "rates.parquet").exists()
    page.close()


def test_zero_copy_report_says_so_and_still_shows_the_control(runs, browser, run_cli):
    code, _ = run_cli("report", runs["clean"])
    assert code == 0
    page, errors, _ = open_report(browser, runs["clean"] / "report.html")
    answer = page.inner_text("#answer")
    assert "No generated sample is flagged as a copy." in answer
    assert "0 of " in answer and "false-positive rate" in answer
    assert "so there are no copies to show" in page.inner_text("#results")
    control = page.locator("#control")
    assert "false-positive rate" in control.inner_text()
    control_images = control.locator("img")
    assert control_images.count() == 4 * 4  # four closest held-out images, four panels each
    assert page.evaluate("Array.from(document.querySelectorAll('#control img'))"
                         ".every(i => i.naturalWidth > 0)")
    assert page.locator("#run-clean .card.flagged").count() == 0
    assert errors == []
    assert not_blank(page.locator("#control").screenshot())
    page.close()


def test_report_errors_are_one_sentence(runs, run_cli, tmp_path):
    code, printed = run_cli("report", runs["clean"], runs["copies"])
    assert code == 2 and "--out" in printed and "Traceback" not in printed
    code, printed = run_cli("report", tmp_path / "nowhere", "--out", tmp_path / "r.html")
    assert code == 2 and "is not a folder" in printed
    code, printed = run_cli("report", runs["clean"], "--out", tmp_path / "r.txt")
    assert code == 2 and ".html" in printed
    assert not (tmp_path / "r.txt").exists()


def test_template_is_package_data():
    template = resources.files("copyscope.report") / "templates" / "report.html.j2"
    assert template.is_file() and "{% for run in runs %}" in template.read_text()


def test_a_large_comparison_keeps_its_tables_and_leaves_out_what_repeats(runs, tmp_path):
    """Beyond DETAIL_RUNS runs, each run keeps its tables, core figure and strongest copies;
    its per-item figures and complete run.json are left out (runs of the same folder name in
    different places are named by their paths)."""
    from copyscope.report import write_report
    from copyscope.report.render import COMPACT, DETAIL_RUNS

    many = []
    for i in range(DETAIL_RUNS + 1):
        many.append(shutil.copytree(runs["copies"], tmp_path / f"set{i}" / "copies"))
    single = (runs["copies"] / "report.html")
    write_report([runs["copies"]], single, show=False)
    write_report(many, tmp_path / "many.html", show=False)
    one, big = single.read_text(), (tmp_path / "many.html").read_text()
    assert one.count("<summary>The complete run.json") == 1
    assert "<summary>The complete run.json" not in big
    assert one.count('alt="copy rate by outlierness decile"') == 1
    assert 'alt="copy rate by outlierness decile"' not in big
    assert big.count('alt="histogram of nearest-training distances"') == len(many)
    assert big.count("<h3>Run set0/copies</h3>") == 1
    cards = big.count('<div class="card flagged">')
    assert cards == len(many) * min(COMPACT["top"], sum(PLANTED.values()))
    assert len(big) < len(many) * len(one)
