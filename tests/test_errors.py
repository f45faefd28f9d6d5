"""Bad input gets one clear sentence, a non-zero exit, no traceback and no partial output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _good(tmp: Path) -> Path:
    path = tmp / "good.npy"
    np.save(path, np.zeros((4, 28, 28), np.uint8))
    return path


def _npz_truncated(tmp: Path) -> Path:
    np.savez(tmp / "full.npz", x=np.zeros((40, 28, 28), np.uint8))
    data = (tmp / "full.npz").read_bytes()
    (tmp / "bad.npz").write_bytes(data[: len(data) // 2])
    return tmp / "bad.npz"


def _npy_truncated(tmp: Path) -> Path:
    np.save(tmp / "full.npy", np.zeros((40, 28, 28), np.uint8))
    (tmp / "bad.npy").write_bytes((tmp / "full.npy").read_bytes()[:3000])
    return tmp / "bad.npy"


def _idx_truncated(tmp: Path) -> Path:
    import struct
    raw = struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + bytes(28 * 28 * 5)
    (tmp / "bad-idx3-ubyte").write_bytes(raw)
    return tmp / "bad-idx3-ubyte"


def _gzip_corrupt(tmp: Path) -> Path:
    (tmp / "bad-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(200)))
    return tmp / "bad-idx3-ubyte.gz"


def _empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.txt").write_text("no images here")
    return tmp / "empty"


def _mixed_folder(tmp: Path) -> Path:
    (tmp / "mixed").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp / "mixed" / "a.png")
    Image.fromarray(np.zeros((30, 28), np.uint8)).save(tmp / "mixed" / "b.png")
    return tmp / "mixed"


def _array(values: np.ndarray):
    def make(tmp: Path) -> Path:
        np.save(tmp / "bad.npy", values)
        return tmp / "bad.npy"
    return make


nan = np.zeros((4, 28, 28), np.float32)
nan[0, 0, 0] = np.nan
inf = np.zeros((4, 28, 28), np.float32)
inf[1, 2, 3] = np.inf

BAD_SAMPLES = {
    "missing path": (lambda tmp: tmp / "nope.npy", "does not exist"),
    "truncated npz": (_npz_truncated, "truncated or corrupt"),
    "truncated npy": (_npy_truncated, "truncated or corrupt"),
    "truncated idx": (_idx_truncated, "truncated or corrupt"),
    "corrupt gzip": (_gzip_corrupt, "corrupt gzip"),
    "folder without images": (_empty_folder, "no PNG or JPEG"),
    "folder of mixed sizes": (_mixed_folder, "mixed sizes"),
    "shape mismatch": (_array(np.zeros((4, 32, 32), np.uint8)), "must match"),
    "NaN": (_array(nan), "NaN"),
    "inf": (_array(inf), "infinite"),
    "float out of range": (_array(np.full((4, 28, 28), 1.5, np.float32)), "[0, 1]"),
    "int out of range": (_array(np.full((4, 28, 28), 300, np.int32)), "0-255"),
    "empty array": (_array(np.zeros((0, 28, 28), np.uint8)), "empty"),
    "unknown dataset": (lambda tmp: "cifar:train", "not a known dataset"),
}


@pytest.mark.parametrize("case", list(BAD_SAMPLES))
def test_bad_samples_get_one_sentence_and_no_output(case, tmp_path, run_cli):
    make, phrase = BAD_SAMPLES[case]
    spec = make(tmp_path)
    out = tmp_path / "run"
    code, printed = run_cli("audit", "--samples", spec, "--train", "mnist:train[:300]",
                            "--heldout", "mnist:test[:200]", "--out", out)
    assert code != 0
    assert "Traceback" not in printed
    lines = [line for line in printed.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), printed
    assert phrase in printed
    if not isinstance(spec, str):
        assert spec.name in printed
    assert not out.exists() or not any(out.iterdir())


def test_unknown_split_and_bad_setting(tmp_path, run_cli):
    code, printed = run_cli("audit", "--samples", "mnist:valid", "--out", tmp_path / "r")
    assert code != 0 and "no split" in printed
    code, printed = run_cli("audit", "--samples", _good(tmp_path), "--out", tmp_path / "r",
                            "--heldout-q", "2")
    assert code != 0 and "heldout_q" in printed and "Traceback" not in printed


def test_an_output_folder_holding_a_different_run_is_refused_unless_forced(tmp_path, run_cli):
    out = tmp_path / "run"
    common = ["--train", "mnist:train[:300]", "--heldout", "mnist:test[:200]", "--out", out]
    assert run_cli("audit", "--samples", "mnist:test[200:260]", *common)[0] == 0
    before = (out / "samples.parquet").read_bytes()
    code, printed = run_cli("audit", "--samples", "mnist:test[300:350]", *common)
    assert code != 0 and "already holds a different audit run" in printed
    assert (out / "samples.parquet").read_bytes() == before
    assert run_cli("audit", "--samples", "mnist:test[300:350]", *common, "--force")[0] == 0
    assert (out / "samples.parquet").read_bytes() != before


def test_a_real_process_prints_no_traceback_unless_debug(tmp_path):
    cmd = [sys.executable, "-m", "copyscope", "audit", "--samples", str(tmp_path / "x.npy"),
           "--out", str(tmp_path / "r")]
    plain = subprocess.run(cmd, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stdout + plain.stderr
    assert "x.npy does not exist" in plain.stdout
    debug = subprocess.run([*cmd, "--debug"], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
