"""``copyscope app``: explore audited runs and query the training set in a browser (Gradio).

The module is not called ``app`` because ``copyscope.cli.app`` is the Typer application.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from copyscope.cli.common import console


def app_command(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="Run directories written by `copyscope audit --out` (default: every finished "
             "audit under ./runs).", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps the app on "
                                           "this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
) -> None:
    """Serve the web app: overview, copies, training items, query by drawing or upload, live."""
    from copyscope.app.state import find_runs, load_state
    from copyscope.app.ui import launch

    with console.status("loading the runs and indexing every training image..."):
        state = load_state(runs or find_runs())
    seconds = sum(state.timings_s.values())
    console.print(f"Loaded {len(state.runs)} run(s) ({', '.join(state.runs)}) and indexed "
                  f"{len(state.train):,} training images in {seconds:.1f} s.", highlight=False)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[bold yellow]warning:[/] listening on {host} makes the app reachable "
                      "from other machines.")
    console.print(f"Open [bold]http://{host}:{port}[/] in a browser (Ctrl+C stops the app).",
                  highlight=False)
    launch(state, host, port)
