"""The web app: views give the audit's own evidence, queries search all 60,000 training images, and
a real browser can load the app, draw, upload and get answers without leaving 127.0.0.1."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from copyscope.analysis import analyse
from copyscope.app import live, ui, views
from copyscope.app.preprocess import read_upload, to_training_format
from copyscope.app.state import _open_runs, find_runs, judge, load_state
from copyscope.data.textspec import load_corpus
from copyscope.detect.criteria import CRITERIA
from copyscope.errors import CopyscopeError
from copyscope.stages.audit import audit
from copyscope.stages.sample import sample
from copyscope.stages.text import index_corpus
from copyscope.stages.train import TrainConfig, train

SOURCES = np.array([11, 2024, 31337, 45000, 59999])  # training items planted as exact copies
CHROMIUM = "/usr/bin/chromium"
POEM = "shakespeare:train[30:31]"  # A Lover's Complaint, 14,388 bytes
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def runs(train60k, test10k, tmp_path_factory):
    """Two audits against all 60,000 training images (held-out mnist:test[:5000], as in
    test_audit, so the session shares the dataset caches): one with planted exact copies."""
    root = tmp_path_factory.mktemp("app-runs")
    planted = root / "planted.npy"
    np.save(planted, np.concatenate([train60k[SOURCES], train60k[SOURCES[:1]],
                                     test10k[5000:5120]]))
    audit(planted, "mnist:train", "mnist:test[:5000]", out=root / "planted", show=False)
    audit("mnist:test[6000:6080]", "mnist:train", "mnist:test[:5000]", out=root / "real",
          show=False)
    model = train(TrainConfig("diffusion", "mnist:train", size=32, epochs=2, batch_size=16),
                  root / "diffusion", show=False)
    sample(model, 12, steps=3, seed=5, show=False)
    audit(model, "mnist:train", "mnist:test[:5000]", out=model, show=False)
    index_corpus(POEM, root / "text-index", show=False)  # the Text tab's corpus
    return root


@pytest.fixture(scope="module")
def state(runs):
    """The app's state, with the app's one torch thread; the suite's own count comes back after."""
    threads = torch.get_num_threads()
    yield load_state([runs / "planted", runs / "real", runs / "diffusion"],
                     text_index=runs / "text-index")
    torch.set_num_threads(threads)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_judge_gives_new_images_the_rows_the_audit_wrote(state):
    run = state.runs["planted"]
    table, nb = judge(state, run.images("samples").images, "planted")
    pd.testing.assert_frame_equal(table, run.samples, check_exact=True)
    assert (nb.index[: len(SOURCES), 0] == SOURCES).all()


def test_a_training_image_uploaded_as_png_finds_itself_among_all_60000(state, train60k,
                                                                        tmp_path):
    item = 31337
    path = tmp_path / "mine.png"
    path.write_bytes(png_bytes(255 - train60k[item, ..., 0]))  # dark ink on white paper
    q = views.query(state, read_upload(path))
    assert (q.image == train60k[item, ..., 0]).all()
    assert q.table["item"].iloc[0] == item and q.table["rmse"].iloc[0] == 0
    assert q.table["ssim"].iloc[0] == pytest.approx(1) and q.table["uiq"].iloc[0] == 1
    assert len(q.neighbours) == views.QUERY_K and (np.diff(q.table["rmse"]) >= 0).all()
    assert "This exact image is in the training set" in q.text
    assert "closer than **100.0%**" in q.text
    assert "Verdict: **copy** by the default criterion" in q.text
    # it was planted in the "planted" run: that sample is the nearest generated one
    first = q.samples_table.iloc[0]
    assert (first["run"], first["sample"], first["L2 to query"]) == ("planted", 2, 0.0)
    assert q.table["samples nearest (all runs)"].iloc[0] == 1


def test_concurrent_queries_are_searched_together_and_answered_as_alone(state, train60k,
                                                                       test10k):
    from concurrent.futures import ThreadPoolExecutor

    images = [255 - test10k[i, ..., 0] for i in range(9000, 9011)] + [train60k[SOURCES[1]]]
    alone = [views.query(state, image) for image in images]
    batcher = state.queries
    search, queued = batcher.search, threading.Event()

    def held(batch: np.ndarray) -> list:  # the first search waits until every query is queued
        queued.wait(timeout=60)
        return search(batch)

    before = (batcher.batches, batcher.searched)
    batcher.search = held
    try:
        with ThreadPoolExecutor(len(images)) as pool:
            answers = [pool.submit(views.query, state, image) for image in images]
            while batcher.waiting() < len(images) - 1:
                time.sleep(0.01)
            queued.set()
            together = [a.result() for a in answers]
    finally:
        batcher.search = search
    assert (batcher.batches - before[0], batcher.searched - before[1]) == (2, len(images))
    for a, b in zip(alone, together, strict=True):
        assert a.text == b.text and np.array_equal(a.image, b.image)
        pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
        pd.testing.assert_frame_equal(a.samples_table, b.samples_table, check_exact=True)
        assert [c for _, c in a.neighbours] == [c for _, c in b.neighbours]
    assert together[-1].table["item"].iloc[0] == SOURCES[1]


def test_a_query_batcher_hands_each_query_its_own_result_and_errors_to_all():
    from concurrent.futures import ThreadPoolExecutor

    from copyscope.app.state import QueryBatcher

    sizes = []

    def double(batch: np.ndarray) -> list:
        sizes.append(len(batch))
        time.sleep(0.05)
        if (batch < 0).any():
            raise CopyscopeError("negative query.")
        return list(batch * 2)

    batcher = QueryBatcher(double, max_batch=4)
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda x: batcher.submit(np.array([x])), range(10)))
    assert [int(r[0]) for r in results] == [2 * x for x in range(10)]
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) < 10
    with pytest.raises(CopyscopeError, match="negative query"):
        batcher.submit(np.array([-1]))


def test_a_drawing_is_put_in_mnist_format(test10k):
    digit = test10k[3, ..., 0]
    paper = Image.fromarray(255 - digit).resize((300, 240), Image.Resampling.BICUBIC)
    drawing = np.dstack([np.asarray(paper.convert("RGB")), np.full((240, 300), 255, np.uint8)])
    out = to_training_format(drawing, (28, 28, 1))[..., 0]
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out.max() == 255 and out[0].max() == 0 and out[:, 0].max() == 0  # white on black
    rows, cols = np.nonzero(out > 25)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 in (20, 21)
    centre = (np.arange(28) @ out.sum(1) / out.sum(), np.arange(28) @ out.sum(0) / out.sum())
    assert np.abs(np.array(centre) - 13.5).max() <= 1.0
    transparent = np.zeros((50, 50, 4), np.uint8)  # an untouched sketchpad
    with pytest.raises(CopyscopeError, match="blank"):
        to_training_format(transparent, (28, 28, 1))


def test_only_png_and_jpeg_uploads_are_read(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(CopyscopeError, match=r"notes\.png is not a readable PNG/JPEG image"):
        read_upload(text)
    gif = tmp_path / "anim.png"
    Image.new("L", (8, 8)).save(gif, format="GIF")
    with pytest.raises(CopyscopeError, match="GIF image; only PNG and JPEG"):
        read_upload(gif)


def test_copies_filter_by_run_criterion_and_class_and_sort_by_any_measure(state):
    planted = state.runs["planted"].samples
    v = views.copies(state, "planted", "l2")
    assert sorted(v.keys) == sorted(planted.index[planted["copy_l2"]].tolist())
    assert set(v.keys) >= set(range(len(SOURCES) + 1))
    v = views.copies(state, "real", views.ALL, label=7, sort_by="ssim", descending=True)
    rows = state.runs["real"].samples.set_index("sample").loc[v.keys]
    assert (rows["nn_label"] == 7).all() and len(rows) == (state.runs["real"].samples[
        "nn_label"] == 7).sum()
    assert (np.diff(rows["ssim"].to_numpy()) <= 0).all() and len(v.gallery) == len(rows)
    with pytest.raises(CopyscopeError, match="cannot sort by"):
        views.copies(state, "real", sort_by="label")
    with pytest.raises(CopyscopeError, match="no loaded run"):
        views.copies(state, "elsewhere")


def test_pair_and_item_views_show_a_copy_beside_its_source(state, train60k):
    p = views.pair(state, "planted", 1)
    images = [im for im, _ in p.panels]
    assert (images[0] == images[1]).all() and (images[1] == train60k[SOURCES[1], ..., 0]).all()
    assert images[2].max() == 0  # the difference map of an exact copy
    assert f"**#{SOURCES[1]}**" in p.text and "Verdict: **copy**" in p.text
    assert {"SSIM", "MS-SSIM", "PSNR (dB)", "UIQ"} <= set(p.measures["measure"])
    top = views.regenerated(state, "planted")
    assert top.keys[0] == SOURCES[0]  # planted twice
    item = views.training_item(state, int(SOURCES[0]))
    assert len(item.gallery) == 2 and all("planted" in c for _, c in item.gallery)
    assert item.table.set_index("run").loc["planted", "n_nearest"] == 2
    with pytest.raises(CopyscopeError, match="0 to 59,999"):
        views.training_item(state, 60000)


def test_overview_has_every_run_and_criterion_with_its_false_positive_rate(state):
    ov = views.overview(state)
    assert len(ov.table) == len(state.runs) and set(ov.table["run"]) == set(state.runs)
    assert len(ov.criteria) == len(state.runs) and set(CRITERIA) <= set(ov.criteria.columns)
    rates = state.rates.set_index(["run", "criterion"])
    for row in ov.table.to_dict("records"):  # rates as percentages, with their intervals
        r = rates.loc[(row["run"], "heldout")]
        assert row["copy rate [95% CI]"] == (f"{100 * r.copy_rate:.1f}% [{100 * r.copy_ci_low:.1f}"
                                             f"–{100 * r.copy_ci_high:.1f}]")
        assert row["held-out FPR [95% CI]"].endswith("]") and "%" in row["held-out FPR [95% CI]"]
    planted = state.runs["planted"].samples
    assert len(ov.strongest) == min(3, int(planted["is_copy"].sum()))  # at most 3 per run
    assert all(c.startswith("planted #") for _, c in ov.strongest)
    figures = [views.rates_figure(state), views.core_figure(state, "planted"),
               views.core_figure(state, "real")]
    assert all(im.ndim == 3 and im.std() > 10 for im in figures)
    assert views.core_figure(state, "real") is figures[2]  # rendered once
    assert not np.array_equal(figures[1], figures[2])


def test_runs_load_without_the_libraries_the_app_loads_once_it_listens(runs, tmp_path):
    """Start-up speed, without timing anything (benchmarks/app.py does): matplotlib, SciPy's
    statistics, torchmetrics, sewar and diffusers load only in the background warm-up."""
    run = shutil.copytree(runs / "real", tmp_path / "real")
    analyse(run)  # its saved rates stand in for SciPy's Fisher test
    code = ("import sys, copyscope.cli, copyscope.app.ui\n"
            "from copyscope.app.state import load_state\n"
            f"load_state([{str(run)!r}], warm=False)\n"
            "print([m for m in ('matplotlib', 'scipy.stats', 'torchmetrics', 'sewar', "
            "'diffusers') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_runs_of_another_training_set_or_missing_are_refused(runs, tmp_path, run_cli,
                                                             monkeypatch):
    other = tmp_path / "other"
    audit("mnist:test[6000:6030]", "mnist:train[:500]", "mnist:test[:100]", out=other,
          show=False)
    with pytest.raises(CopyscopeError, match="different training set"):
        load_state([runs / "real", other])
    assert find_runs(runs) == [runs / "diffusion", runs / "planted", runs / "real"]
    twins = [runs / "real", tmp_path / "copy" / "real"]  # two runs called "real"
    shutil.copytree(*twins)
    names = list(_open_runs(twins))
    assert len(set(names)) == 2 and names[1].endswith("copy/real")
    assert all(str(p).endswith(n) and n != "real" for p, n in zip(twins, names, strict=True))
    code, out = run_cli("app", str(tmp_path / "missing"))
    assert code == 2 and "missing is not a folder" in out and "Traceback" not in out
    monkeypatch.chdir(tmp_path)  # no runs/ here: `copyscope app` without runs has none to open
    code, out = run_cli("app")
    assert code == 2 and "runs holds no finished audit" in out
    with pytest.raises(CopyscopeError, match=r"cannot listen on 192\.0\.2\.1:1 "):
        ui.check_port("192.0.2.1", 1)


def test_live_images_with_the_runs_seed_are_its_audited_samples_and_get_its_verdicts(state):
    source = live.sources(state)["diffusion"]
    assert (source.checkpoints, source.checkpoint, source.steps, source.seed) == (
        ("epoch-0001", "epoch-0002"), "epoch-0002", 3, 5)
    assert set(live.sources(state)) == {"diffusion"}  # the others hold no model's samples
    made = live.generate(state, source, seed=source.seed, n=4)
    audited = state.runs["diffusion"].samples.head(4)
    pd.testing.assert_frame_equal(made.table, audited[made.table.columns].round(5))
    assert len(made.gallery) == 4 and made.gallery[0][0].shape == (28, 58)
    assert "ms per image" in made.text and made.seconds_per_image > 0
    earlier = live.generate(state, source, "epoch-0001", seed=source.seed, n=4)
    assert not earlier.table["nn_l2"].equals(made.table["nn_l2"])
    with pytest.raises(CopyscopeError, match="between 1 and 16"):
        live.generate(state, source, n=17)
    with pytest.raises(CopyscopeError, match="no checkpoint 'epoch-9'"):
        live.generate(state, source, "epoch-9")


# ----------------------------------------------------------------------- the real browser


@pytest.fixture(scope="module")
def served(state):
    """The app on a free 127.0.0.1 port, in this process, with every outgoing connection the
    server makes recorded (Python's socket.connect audit event)."""
    connects: list[object] = []
    sys.addaudithook(lambda event, args: connects.append(args[1])
                     if event == "socket.connect" else None)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = ui.launch(state, "127.0.0.1", port, block=False)
    yield f"http://127.0.0.1:{port}", connects
    app.close()


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")  # Gradio's queue statistics
def test_in_a_real_browser_draw_upload_and_explore(served, state, train60k, tmp_path):
    from playwright.sync_api import sync_playwright

    url, connects = served
    assert Path(CHROMIUM).exists(), "apt-get install chromium (make test does this)"
    item = 2024
    upload = tmp_path / "digit.png"
    upload.write_bytes(png_bytes(255 - train60k[item, ..., 0]))
    fake = tmp_path / "fake.png"
    fake.write_text("this is text")
    requests, problems = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(url)
        page.locator("#headline").get_by_text("held-out FPR").wait_for()
        page.locator("#core-figure img").wait_for()  # the figures arrive after the page
        page.locator("#rates-figure img").wait_for()

        page.get_by_role("tab", name="Copies").click()
        page.locator("#copies button.thumbnail-item").first.click()
        page.locator("#pair-text").get_by_text("nearest training item").wait_for()
        assert page.locator("#pair img").count() == 4  # sample | train | difference | held-out

        page.get_by_role("tab", name="Query").click()
        page.locator("#upload input[type=file]").set_input_files(str(upload))
        verdict = page.locator("#verdict")
        verdict.get_by_text(f"#{item}").wait_for(timeout=30_000)
        assert "closer than 100.0%" in verdict.inner_text()

        page.locator("#sketch button[aria-label=Brush]").click()
        box = page.locator("#sketch canvas").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y - 70)
        page.mouse.down()
        for i in range(15):
            page.mouse.move(x + i, y - 70 + 10 * i, steps=2)
        page.mouse.up()
        page.locator("#search").click()
        verdict.get_by_text(f"#{item}").wait_for(state="detached", timeout=30_000)
        assert "Nearest training image" in verdict.inner_text()
        shot = page.screenshot(path=tmp_path / "query.png", full_page=True)

        page.locator("#upload button[aria-label=Clear]").click()
        page.locator("#upload input[type=file]").set_input_files(str(fake))
        page.get_by_text("fake.png is not a readable PNG/JPEG image").first.wait_for()

        page.get_by_role("tab", name="Text").click()
        copied = load_corpus(POEM).text(0)[2000:2200]
        page.locator("#text-query textarea").fill(f"<script>alert(1)</script> {copied} mine")
        page.locator("#text-search").click()
        page.locator("#text-spans mark").first.wait_for(timeout=30_000)
        shown = page.locator("#text-spans").inner_text()
        assert " ".join(copied[20:80].split()) in " ".join(shown.split())
        assert "<script>alert(1)</script>" in shown  # shown as text, never run
        browser.close()

    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"))
    assert pixels.std() > 20 and len(np.unique(pixels)) > 50
    assert not problems, problems
    hosts = {urlparse(u).hostname for u in requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts
    remote = [a for a in connects if isinstance(a, tuple)
              and a[0] not in ("127.0.0.1", "::1", "localhost")]
    assert not remote, remote


def test_no_file_outside_the_rendered_images_is_served_and_uploads_are_capped(served, runs):
    url, _ = served
    for path in ("/etc/passwd", str(runs / "planted" / "run.json"), str(Path.home())):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{url}/gradio_api/file={path}", timeout=10)
        assert e.value.code in (403, 404)
    for size, status in ((6 * 2**20, 413), (1000, 200)):
        r = httpx.post(f"{url}/gradio_api/upload", timeout=60,
                       files=[("files", ("x.png", b"\x89PNG" + bytes(size), "image/png"))])
        assert r.status_code == status


def test_an_upload_too_large_in_pixels_is_refused_from_its_header(served, monkeypatch):
    from PIL import ImageFile

    url, _ = served
    buf = io.BytesIO()
    Image.new("L", (6001, 5000)).save(buf, format="PNG")  # 30 M pixels in ~30 KB

    def refuse(self):
        raise AssertionError("an upload over the pixel cap was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    path = httpx.post(f"{url}/gradio_api/upload", timeout=60, files=[
        ("files", ("[wide](x).png", buf.getvalue(), "image/png"))]).json()[0]
    reply = httpx.post(f"{url}/gradio_api/run/query_upload", timeout=60, json={"data": [
        {"path": path, "orig_name": "[wide](x).png", "meta": {"_type": "gradio.FileData"}}]})
    assert reply.status_code == 200
    verdict = reply.json()["data"][1]
    assert "\\[wide\\]\\(x\\).png is 6,001 x 5,000 = 30,005,000 pixels" in verdict, verdict
