"""``copyscope app``: explore audited runs and query the training set in a browser (Gradio).

The module is not called ``app`` because ``copyscope.cli.app`` is the Typer application.
"""

from __future__ import annotations

import importlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer

from copyscope.cli.common import console, say


def app_command(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="Run directories written by `copyscope audit --out`, and text runs for the Text "
             "tab (default: every finished audit under ./runs).", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps the app on "
                                           "this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    index: Annotated[Path | None, typer.Option(
        help="The Text tab's index: a `copyscope text spans` run or a `copyscope text index` "
             "folder (default: the first text spans run among RUNS).")] = None,
) -> None:
    """Serve the web app: overview, copies, training items, query by drawing or upload, live,
    and copied spans of a pasted text."""
    from copyscope.app.state import find_runs, load_state

    paths = runs or find_runs()
    start = time.perf_counter()
    with console.status("loading the runs and indexing every training image..."), \
            ThreadPoolExecutor(1) as pool:
        # Gradio is imported in the background while the runs load
        importing = pool.submit(importlib.import_module, "copyscope.app.ui")
        state = load_state(paths, warm=False, text_index=index)  # warmed up once the server listens
        ui = importing.result()
    ui.check_port(host, port)
    say("Loaded {n} run(s) ({runs}) and indexed {images:,} training images in {s:.1f} s.",
        n=len(state.runs), runs=", ".join(state.runs), images=len(state.train),
        s=time.perf_counter() - start)
    if host not in ("127.0.0.1", "localhost", "::1"):
        say("[bold yellow]warning:[/] listening on {host} makes the app reachable from other "
            "machines.", host=host)
    say("Open [bold]http://{host}:{port}[/] in a browser (Ctrl+C stops the app).", host=host,
        port=port)
    ui.launch(state, host, port)
