"""The Gradio interface: tabs and events wired to the plain view functions of :mod:`views`.

Safety: the server binds 127.0.0.1 unless told otherwise; analytics are off (the environment
variable is set before Gradio is imported, and on the Blocks); the theme uses system fonts, so the
page loads nothing from outside the server; uploads are capped (``MAX_UPLOAD``) and decoded by
copyscope's own PNG/JPEG reader with a pixel cap; no file on disk is served except the images the
views render (no ``allowed_paths``), and nothing a user sends is unpickled.
"""

from __future__ import annotations

import functools
import html
import os
import re
import socket
import threading

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Gradio also keeps local per-event statistics (for its API page; nothing leaves the machine) and
# recomputes their summary over up to 10,000 past events after every event: ~6 ms of CPU per
# request here, growing with uptime. Recompute it once per 10,000 events instead.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "10000")
# Gradio and diffusers import huggingface_hub: no hub calls, no telemetry
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import gradio as gr
import numpy as np

from copyscope.app import live, views
from copyscope.app.preprocess import read_drawing, read_upload
from copyscope.app.state import AppState, warm_up
from copyscope.detect.criteria import CRITERIA
from copyscope.errors import CopyscopeError
from copyscope.pictures import png_uri
from copyscope.text.highlight import highlight, read_text_file

HOST = "127.0.0.1"
PORT = 7860
MAX_UPLOAD = "5mb"
ANY_CLASS = "any"
CSS = """
.pixelated img, .pixelated canvas, .tile img { image-rendering: pixelated; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; }
.tile { margin: 0; text-align: center; font-size: 12px; }
.copyscope-text, .copyscope-passage { white-space: pre-wrap; font-family: ui-monospace, monospace;
                                      font-size: 13px; }
.copyscope-passage { background: #f6f7f9; padding: 4px 8px; margin: 2px 0 8px; }
.copyscope-text mark, .copyscope-passage mark { background: #f5b7b1; }
"""
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"],
    font_mono=["ui-monospace", "Consolas", "monospace"],
)
P = ParamSpec("P")
R = TypeVar("R")


def shown(fn: Callable[P, R]) -> Callable[P, R]:
    """For queued events: a CopyscopeError becomes Gradio's error message (one sentence, no
    traceback in the page or the server's log)."""

    @functools.wraps(fn)  # Gradio reads the signature: gr.SelectData parameters get the event
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CopyscopeError as e:
            raise gr.Error(str(e), print_exception=False) from e

    return wrapper


def said(blank: tuple[Any, ...], at: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """For events outside the queue, whose errors Gradio does not display: a CopyscopeError
    becomes its sentence in the event's Markdown output (``blank[at]``), the others cleared."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except CopyscopeError as e:
                out = list(blank)
                out[at] = f"**Cannot show this:** {literal(str(e))}"
                return tuple(out)  # type: ignore[return-value]

        return wrapper

    return decorate


def literal(text: str) -> str:
    """``text`` shown as it is in Markdown (a file name such as ``[x](y).png`` is no link)."""
    return re.sub(r"([\\`*_{}\[\]()<>#+!|~-])", r"\\\1", text)


def build(state: AppState) -> gr.Blocks:
    """The whole app for a loaded state (see :func:`copyscope.app.state.load_state`).

    The overview's figures arrive when the page loads (rendered by then in the background, see
    :func:`warm_in_background`), so the server starts without waiting for matplotlib. Every
    event but live generation skips Gradio's queue (``queue=False``: a direct POST instead of a
    queued job streamed back): they answer in milliseconds, and the queue cost about 10 ms of
    server CPU per request on our 2-core machine."""
    runs = list(state.runs)
    criteria = [views.ALL, *CRITERIA]
    labels = [ANY_CLASS] + ([str(c) for c in np.unique(state.train.labels)]
                            if state.train.labels is not None else [])
    sortable = [(label, col) for col, label in views.SORTABLE.items()
                if col in state.runs[state.first].samples.columns]
    with gr.Blocks(title="copyscope", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown(f"# copyscope\nDoes this generative model store copies of its training "
                    f"data? {len(runs)} run(s), every sample searched exactly against all "
                    f"{len(state.train):,} training images.")
        with gr.Tab("Overview"):
            figures = _overview_tab(state)
        with gr.Tab("Copies"):
            _copies_tab(state, runs, criteria, labels, sortable)
        with gr.Tab("Training items"):
            _items_tab(state, runs)
        with gr.Tab("Query"):
            _query_tab(state)
        with gr.Tab("Live"):
            _live_tab(state)
        with gr.Tab("Text"):
            _text_tab(state)
        app.load(lambda: (views.answer_figure(state), views.epoch_figure(state),
                          views.rates_figure(state), views.core_figure(state, state.first)),
                 None, figures, api_name=False)
    return app


def launch(state: AppState, host: str = HOST, port: int = PORT, block: bool = True
           ) -> gr.Blocks:
    """Serve the app on ``host:port``; with ``block=False`` return once it is listening."""
    check_port(host, port)
    app = build(state)
    app.launch(server_name=host, server_port=port, theme=THEME, css=CSS,
               max_file_size=MAX_UPLOAD, share=False, ssr_mode=False, mcp_server=False,
               pwa=False, show_error=False, footer_links=[], quiet=True,
               prevent_thread_lock=True)
    warm_in_background(state)
    if block:
        app.block_thread()
    return app


def warm_in_background(state: AppState) -> threading.Thread:
    """Once the server listens, in the background: the first query's set-up
    (:func:`copyscope.app.state.warm_up`), every run's core figure and every live model, so that
    each answers at once when asked for."""

    def work() -> None:
        warm_up(state)
        views.answer_figure(state)
        views.epoch_figure(state)
        views.rates_figure(state)
        for run in state.runs:
            views.core_figure(state, run)
        live.load_models(live.sources(state))

    thread = threading.Thread(target=work, name="copyscope-warm-up", daemon=True)
    thread.start()
    return thread


def check_port(host: str, port: int) -> None:
    """Refuse, in one sentence, an address this process cannot listen on."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise CopyscopeError(f"cannot listen on {host}:{port} ({e.strerror}); choose another "
                                 "--port or --host.") from e


def _overview_tab(state: AppState) -> list[gr.Image]:
    ov = views.overview(state)
    gr.Markdown("### The answer across runs\n" + ov.headline if ov.headline else
                "### The answer")
    answer = gr.Image(format="png", interactive=False, elem_id="answer-figure",
                      label="copy rate against training-set size, over the held-out band",
                      visible=views.answer_figure(state, render=False))
    epochs = gr.Image(format="png", interactive=False, elem_id="epoch-figure",
                      label="copy rate and sample quality over training",
                      visible=views.epoch_figure(state, render=False))
    gr.Markdown("Copy rate of the generated samples beside the false-positive rate of the same "
                "criterion on held-out real images (95% Wilson intervals).")
    gr.Dataframe(ov.table, interactive=False, max_height=400, elem_id="headline")
    gr.Markdown("**The strongest copies across runs**: sample | its training image")
    gr.HTML(_tiles(ov.strongest) if ov.strongest else "No run has a flagged sample.",
            elem_id="strongest")
    gr.Markdown("Every criterion's copy rate")
    gr.Dataframe(ov.criteria, interactive=False, max_height=300, elem_id="every-criterion")
    gr.Markdown(ov.notes)
    rates = gr.Image(format="png", interactive=False, elem_id="rates-figure",
                     label="copy rate and held-out false-positive rate per run (default criterion)")
    run = gr.Dropdown(list(state.runs), value=state.first, label="core figure of run")
    figure = gr.Image(format="png", interactive=False, elem_id="core-figure",
                      label="distance to the nearest training image: generated samples against "
                      "held-out real images")
    run.change(shown(lambda name: views.core_figure(state, name)), run, figure,
               api_name="figure", queue=False)
    return [answer, epochs, rates, figure]


def _copies_tab(state: AppState, runs: list[str], criteria: list[str], labels: list[str],
                sortable: list[tuple[str, str]]) -> None:
    with gr.Row():
        run = gr.Dropdown(runs, value=runs[0], label="run")
        criterion = gr.Dropdown(criteria, value=views.ALL, label="flagged by")
        label = gr.Dropdown(labels, value=ANY_CLASS, label="class of nearest training image")
        sort_by = gr.Dropdown(sortable, value="nn_l2", label="sort by")
        descending = gr.Checkbox(False, label="largest first")
    first = views.copies(state, runs[0])
    summary = gr.Markdown(first.text)
    gallery = gr.Gallery(first.gallery, columns=10, height=330, allow_preview=False,
                         format="png", object_fit="contain", label="samples (click one)",
                         elem_classes="pixelated", elem_id="copies", fit_columns=False)
    keys = gr.State(first.keys)
    pair_text = gr.Markdown(elem_id="pair-text")
    with gr.Row():
        panels = gr.HTML(scale=2, elem_id="pair")
        measures = gr.Dataframe(interactive=False, label="measures", scale=1, wrap=True,
                                column_widths=["70%", "30%"])
    listing = gr.Dataframe(first.table, interactive=False, label="listed samples",
                           max_height=300)

    @said(([], "", None, []), at=1)
    def list_samples(run: str, criterion: str, label: str, sort_by: str, descending: bool
                     ) -> tuple[Any, ...]:
        v = views.copies(state, run, criterion, None if label == ANY_CLASS else int(label),
                         sort_by, descending)
        return v.gallery, v.text, v.table, v.keys

    @said(("", None, ""), at=2)
    def show_pair(run: str, keys: list[int], evt: gr.SelectData) -> tuple[Any, ...]:
        v = views.pair(state, run, int(keys[evt.index]))
        return _tiles(v.panels, 140), v.measures, v.text

    filters = [run, criterion, label, sort_by, descending]
    gr.on([f.change for f in filters], list_samples, filters, [gallery, summary, listing, keys],
          api_name="copies", queue=False)
    gallery.select(show_pair, [run, keys], [panels, measures, pair_text], api_name="pair",
                   queue=False)


def _items_tab(state: AppState, runs: list[str]) -> None:
    with gr.Row():
        item = gr.Number(label="training item index", precision=0, minimum=0,
                         maximum=len(state.train) - 1)
        go = gr.Button("Show item")
        run = gr.Dropdown(runs, value=runs[0], label="most regenerated in run")
        criterion = gr.Dropdown(list(CRITERIA), value=state.runs[runs[0]].default_criterion,
                                label="copies by")
    first = views.regenerated(state, runs[0])
    regenerated = gr.Gallery(first.gallery, columns=12, height=200, allow_preview=False,
                             format="png", object_fit="contain", fit_columns=False,
                             label="most regenerated (click one)", elem_classes="pixelated",
                             elem_id="regenerated")
    keys = gr.State(first.keys)
    text = gr.Markdown()
    with gr.Row():
        image = gr.Image(format="png", label="training item", interactive=False, height=200,
                         elem_classes="pixelated", scale=1)
        table = gr.Dataframe(interactive=False, label="per run", scale=3)
    gr.Markdown("**Every sample whose nearest training image it is**, copies first")
    landed = gr.HTML(elem_id="landed")

    @shown
    def list_items(run: str, criterion: str) -> tuple[Any, ...]:
        v = views.regenerated(state, run, criterion)
        return v.gallery, v.keys

    @said((None, None, "", ""), at=3)
    def show(index: float | None) -> tuple[Any, ...]:
        if index is None:
            raise CopyscopeError("type a training item index first.")
        v = views.training_item(state, int(index))
        return _enlarge(v.image), v.table, _tiles(v.gallery, 84), v.text

    def pick(keys: list[int], evt: gr.SelectData) -> int:
        return int(keys[evt.index])

    gr.on([run.change, criterion.change], list_items, [run, criterion], [regenerated, keys],
          api_name="regenerated", queue=False)
    outputs = [image, table, landed, text]
    go.click(show, item, outputs, api_name="item", queue=False)
    item.submit(show, item, outputs, api_name=False, queue=False)
    regenerated.select(pick, keys, item, api_name=False, queue=False).then(
        show, item, outputs, api_name=False, queue=False)


def _query_tab(state: AppState) -> None:
    gr.Markdown("Draw a digit or upload a PNG/JPEG. It is put in the training images' format "
                "(grayscale, white on black, 20-pixel box centred by mass in 28x28, as MNIST was "
                "made), searched exactly against every training image, and compared with how "
                "close unseen real digits come.")
    with gr.Row():
        sketch = gr.Sketchpad(type="numpy", image_mode="RGBA", canvas_size=(280, 280),
                              brush=gr.Brush(default_size=20, colors=["#000000"],
                                             color_mode="fixed"),
                              layers=False, label="draw a digit", elem_id="sketch")
        with gr.Column():
            upload = gr.File(file_types=[".png", ".jpg", ".jpeg"], type="filepath",
                             label=f"...or upload a PNG or JPEG (up to {MAX_UPLOAD})",
                             elem_id="upload")
            search = gr.Button("Search drawing", variant="primary", elem_id="search")
            gr.Markdown("**As searched**")
            searched = gr.HTML(elem_id="searched")
    text = gr.Markdown(elem_id="verdict")
    gr.Markdown("**Nearest training images**, nearest first")
    neighbours = gr.HTML(elem_id="neighbours")
    table = gr.Dataframe(interactive=False, label="measures against each")
    gr.Markdown("**Nearest generated samples** in the loaded runs: is it being regenerated?")
    samples = gr.HTML(elem_id="near-samples")
    samples_table = gr.Dataframe(interactive=False, label="those samples")
    outputs = [searched, text, neighbours, table, samples, samples_table]

    def answer(image: np.ndarray) -> tuple[Any, ...]:
        v = views.query(state, image)
        return (_tiles([(v.image, "28x28, white on black")], 168), v.text,
                _tiles(v.neighbours), v.table, _tiles(v.samples), v.samples_table)

    @said(("", "", "", None, "", None), at=1)
    def from_sketch(value: dict[str, Any] | None) -> tuple[Any, ...]:
        # the canvas's PNG as uploaded (preprocess=False): decoded by copyscope's reader, its
        # size checked from the header first, instead of by Gradio's
        composite = (value or {}).get("composite") or {}
        if not composite.get("path"):
            raise CopyscopeError("draw a digit on the canvas first.")
        return answer(read_drawing(composite["path"]))

    @said(("", "", "", None, "", None), at=1)
    def from_upload(path: str | None) -> tuple[Any, ...]:
        if path is None:
            raise CopyscopeError("upload a PNG or JPEG image.")
        return answer(read_upload(path))

    search.click(from_sketch, sketch, outputs, api_name="query_drawing", queue=False,
                 preprocess=False)
    upload.upload(from_upload, upload, outputs, api_name="query_upload", queue=False)


def _tiles(items: list[views.Captioned], height: int = 112) -> str:
    """Small images as one HTML block of inline PNGs with captions.

    A query returns 16 thumbnails; as gallery items Gradio would write, hash and serve a file
    for each, which cost more than the search itself. Inline they travel in the response.
    """
    figures = []
    for image, caption in items:
        width = round(height * image.shape[1] / image.shape[0])
        text = html.escape(caption)
        figures.append(f'<figure class="tile" style="width:{width}px">'
                       f'<img src="{png_uri(image, optimize=False)}" '
                       f'width="{width}" height="{height}" alt="{text}">'
                       f"<figcaption>{text}</figcaption></figure>")
    return f'<div class="tiles">{"".join(figures)}</div>'


def _enlarge(image: np.ndarray, factor: int = 6) -> np.ndarray:
    """Integer upscaling (each pixel a factor x factor block), so a 28x28 query is visible."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _live_tab(state: AppState) -> None:
    found = live.sources(state)
    if not found:
        gr.Markdown("None of the loaded runs holds samples of a model that is still on disk "
                    "(runs made by `copyscope train` and `copyscope sample`, then audited).")
        return
    first = next(iter(found.values()))
    gr.Markdown("Generate new images with a loaded run's model; each is searched against every "
                "training image and judged by that run's criteria and held-out control. With the "
                "run's own checkpoint, steps and seed, image i is the run's audited sample i.")
    with gr.Row():
        run = gr.Dropdown(list(found), value=first.run, label="run")
        checkpoint = gr.Dropdown(list(first.checkpoints), value=first.checkpoint,
                                 label="checkpoint", visible=bool(first.checkpoints))
        steps = gr.Slider(1, 250, value=first.steps or 1, step=1, label="DDIM steps",
                          visible=first.adjustable)
        seed = gr.Number(first.seed, precision=0, label="seed")
        n = gr.Slider(1, live.MAX_IMAGES, value=4, step=1, label="images")
        go = gr.Button("Generate", variant="primary", elem_id="generate")
    text = gr.Markdown(elem_id="live-text")
    gr.Markdown("**New image | its nearest training image**")
    gallery = gr.HTML(elem_id="live")
    table = gr.Dataframe(interactive=False, label="evidence and verdicts, as the audit gives them")

    def choose(name: str) -> tuple[Any, ...]:
        s = found[name]
        return (gr.update(choices=list(s.checkpoints), value=s.checkpoint,
                          visible=bool(s.checkpoints)),
                gr.update(value=s.steps or 1, visible=s.adjustable), s.seed)

    @shown
    def make(name: str, chosen: str | None, steps: float, seed: float | None, n: float
             ) -> tuple[Any, ...]:
        s = found[name]
        v = live.generate(state, s, chosen, int(steps) if s.adjustable else None,
                          int(seed or 0), int(n))
        return _tiles(v.gallery), v.text, v.table

    run.change(choose, run, [checkpoint, steps, seed], api_name=False)
    go.click(make, [run, checkpoint, steps, seed, n], [gallery, text, table], api_name="live")


def _text_tab(state: AppState) -> None:
    lookup = state.text
    if lookup is None:
        gr.Markdown("No text index is loaded: start the app with a `copyscope text spans` run "
                    "among its runs, or with `--index` naming one (or an index folder).")
        return
    control = (f" and judged against held-out human text ({literal(lookup.heldout_source)})"
               if lookup.heldout_source else "")
    gr.Markdown(f"Paste or upload text: every span of at least {lookup.min_length} characters "
                f"found verbatim in the training corpus ({len(lookup.index):,} documents) is "
                f"marked, numbered and shown in its source passage{control}.")
    with gr.Row():
        box = gr.Textbox(lines=8, max_lines=20, label="text", elem_id="text-query", scale=3)
        with gr.Column(scale=1):
            upload = gr.File(file_types=[".txt"], type="filepath", label="...or upload a .txt "
                             "file (UTF-8)", elem_id="text-upload")
            go = gr.Button("Find copied spans", variant="primary", elem_id="text-search")
    text = gr.Markdown(elem_id="text-verdict")
    marked = gr.HTML(elem_id="text-spans")

    @said(("", ""), at=0)
    def answer(value: str | None) -> tuple[str, str]:
        found = highlight(lookup, value or "")
        return literal(found.sentence()), found.html

    @said(("", ""), at=0)
    def from_file(path: str | None) -> tuple[str, str]:
        if path is None:
            raise CopyscopeError("upload a .txt file.")
        return answer(read_text_file(path))

    go.click(answer, box, [text, marked], api_name="text", queue=False)
    upload.upload(from_file, upload, [text, marked], api_name="text_upload", queue=False)
