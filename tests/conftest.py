"""Shared fixtures: a fresh cache per test session (sharing only verified MNIST and Shakespeare)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from copyscope.cache import home
from copyscope.data import mnist, shakespeare


@pytest.fixture(scope="session", autouse=True)
def copyscope_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mnist.prepare()  # fetched once into the user's cache (make test does this first)
    shakespeare.prepare()
    real = home()
    fresh = tmp_path_factory.mktemp("copyscope-home")
    (fresh / "mnist").symlink_to(real / "mnist", target_is_directory=True)
    (fresh / "shakespeare").symlink_to(real / "shakespeare", target_is_directory=True)
    os.environ["COPYSCOPE_HOME"] = str(fresh)
    os.environ["COPYSCOPE_PROGRESS"] = "0"
    return fresh


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and far faster when other work shares the CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def train60k() -> np.ndarray:
    return mnist.load("train").images


@pytest.fixture(scope="session")
def test10k() -> np.ndarray:
    return mnist.load("test").images


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
            ) -> Callable[..., tuple[int, str]]:
    """Run the real CLI entry point in-process; return (exit code, everything it printed)."""
    from copyscope.cli import main

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr("sys.argv", ["copyscope", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = int(e.code or 0)
        out = capsys.readouterr()
        return code, out.out + out.err

    return run
