"""Hostile input (issue 15): each case a variant of what broke, answered by one sentence.

Markup in names, headers that lie about their size, decompression bombs, bad slices, images
that Pillow decodes unfaithfully, --force over a reported run, writes that fail part-way,
thread counts, resumed sampling rates, and random mutations of every loader's bytes.
"""

from __future__ import annotations

import numpy as np
import pytest

SMALL = ["--train", "mnist:train[:300]", "--heldout", "mnist:test[:200]"]


def one_error(printed: str) -> str:
    """The single line the CLI printed for an error (asserting there is exactly one)."""
    assert "Traceback" not in printed and "internal error" not in printed, printed
    lines = [line for line in printed.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), printed
    return lines[0]


# ------------------------------------------------------------------ names that look like markup


def test_paths_that_look_like_markup_work_end_to_end(tmp_path, run_cli, test10k):
    samples = tmp_path / "[red]a[/red]b" / "[link=x]s[/link].npy"  # "/" makes folders too
    samples.parent.mkdir(parents=True)
    np.save(samples, test10k[300:330])
    out = tmp_path / "run[/][i]"
    code, printed = run_cli("audit", "--samples", samples, *SMALL, "--out", out)
    assert code == 0, printed
    assert f"Written to {out}:" in printed
    assert {"samples.parquet", "summary.json", "run.json"} <= {p.name for p in out.iterdir()}


def test_an_error_names_a_file_whose_name_looks_like_markup(tmp_path, run_cli):
    missing = tmp_path / "[bold]gone[/bold]\\.npy"
    code, printed = run_cli("audit", "--samples", missing, *SMALL, "--out", tmp_path / "[/]o")
    assert code == 2
    assert one_error(printed) == f"error: {missing} does not exist."
    assert not (tmp_path / "[").exists()


# ------------------------------------------------------------------------------ SPEC slices

BAD_SLICES = {
    "mnist:test[5:1:0]": "step cannot be zero",
    "mnist:test[::+0]": "step cannot be zero",
    "mnist:test[1.5:30]": "'1.5' is not one",
    "mnist:test[:1e3]": "'1e3' is not one",
    "mnist:test[a:b]": "'a' is not one",
    "mnist:test[1:2:3:4]": "at most three parts",
    "mnist:test[7]": "not a single index",
    "mnist:test[9000:100]": "the slice is empty in a set of 10,000 images",
    "mnist:test[-1:-5]": "the slice is empty",
}


@pytest.mark.parametrize("spec", list(BAD_SLICES))
def test_bad_slices_get_a_sentence(spec, tmp_path, run_cli):
    code, printed = run_cli("audit", "--samples", spec, *SMALL, "--out", tmp_path / "r")
    assert code == 2
    line = one_error(printed)
    assert line.startswith(f"error: {spec}") and BAD_SLICES[spec] in line, line
    assert not (tmp_path / "r").exists()


def test_good_slices_and_bracketed_names_still_load(tmp_path, test10k):
    from copyscope.data import load

    assert len(load("mnist:test[10:20:3]")) == 4
    assert len(load("mnist:test[ 5 : -9990 ]")) == 5
    run = tmp_path / "run[0:2]"  # an existing name is a name, not a slice
    (run / "samples").mkdir(parents=True)
    np.save(run / "samples" / "shard-00000.npy", test10k[:6])
    assert len(load(str(run))) == 6
    assert len(load(f"{run}[1:4]")) == 3
