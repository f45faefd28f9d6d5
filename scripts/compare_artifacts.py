"""Run one small pipeline under two source trees and compare every artifact it writes.

    python scripts/compare_artifacts.py --base 670e2eb            # base commit vs this checkout

The pipeline is a study (train -> sample -> audit -> quality, with an epoch sweep) of a diffusion
model, a GAN and a PixelCNN on a slice of MNIST, then a comparison report (which writes each
run's analysis tables). Each tree runs in its own process with its own empty $COPYSCOPE_HOME
(MNIST linked in), so nothing computed by one is reused by the other. Parquet files, summary.json
and quality.json must be byte-identical; run.json is compared as JSON with timings, versions,
dates and paths masked. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STUDY = """
[study]
out = "{out}"
train = "mnist:train[:3000]"
heldout = "mnist:test[:600]"
samples = 60
steps = 5
seed = 3
quality = true
sweep = ["ddpm"]

[[models]]
name = "ddpm"
family = "diffusion"
size = 64
epochs = 4
checkpoint_every = 2

[[models]]
name = "gan"
family = "gan"
size = 128
epochs = 2
settings = {{ dropout = 0.0 }}

[[models]]
name = "pixelcnn"
family = "pixelcnn"
size = 64
epochs = 1
samples = 12
settings = {{ hidden = 8, dilations = [1, 2] }}
"""
# keys whose values legitimately differ between two runs of the same inputs
MASKED = {"versions", "timings_s", "started", "finished", "epoch_seconds", "peak_memory_mb",
          "samples_per_s"}
NEW_KEYS = {"format"}
"""run.json keys a newer tree may add at the top (run.json's format version)."""
# safetensors writes a checkpoint's metadata in hash-map order, so the base tree's checkpoint
# file hashes differ from process to process even when every weight is identical
FILE_HASHES = {("sample", "identity", "model"), ("sample", "checkpoint_sha256")}


def run_pipeline(src: Path, out: Path, home: Path, keep: Path) -> None:
    """The study and the report with the copyscope package found in ``src``, run in ``out`` (the
    same path for both trees, so recorded paths agree) and then moved to ``keep``."""
    home.mkdir(parents=True)
    mnist = Path(os.environ.get("COPYSCOPE_HOME", Path.home() / ".cache/copyscope")) / "mnist"
    (home / "mnist").symlink_to(mnist)
    out.mkdir(parents=True)
    toml = out / "study.toml"
    toml.write_text(STUDY.format(out=out / "runs"))
    env = {**os.environ, "PYTHONPATH": str(src), "COPYSCOPE_HOME": str(home),
           "COPYSCOPE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "copyscope"]
    subprocess.run([*cli, "run", str(toml)], env=env, check=True, cwd=out)
    runs = sorted(str(p.parent) for p in (out / "runs").rglob("summary.json"))
    subprocess.run([*cli, "report", *runs, "--out", str(out / "report.html")], env=env,
                   check=True, cwd=out)
    out.rename(keep)


def masked(obj: Any, path: tuple[str, ...] = ()) -> Any:
    if isinstance(obj, dict):
        return {k: "<masked>" if k in MASKED or (*path[-2:], k) in FILE_HASHES
                or (*path[-1:], k) in FILE_HASHES else masked(v, (*path, k))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [masked(v, path) for v in obj]
    return obj


def compare(a: Path, b: Path) -> list[str]:
    """Differences between the artifacts under ``a`` and ``b`` (empty when identical)."""
    problems = []
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    names |= {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    for name in sorted(names):
        if name.suffix not in {".parquet", ".json"} or name.name == "study.toml":
            continue
        fa, fb = a / name, b / name
        if not (fa.exists() and fb.exists()):
            problems.append(f"{name}: only in {'base' if fa.exists() else 'new'}")
        elif name.name == "run.json":
            ja, jb = ({k: v for k, v in masked(json.loads(f.read_text())).items()
                       if k not in NEW_KEYS} for f in (fa, fb))
            if ja != jb:
                problems.append(f"{name}: differs beyond timings and versions")
        elif not filecmp.cmp(fa, fb, shallow=False):
            problems.append(f"{name}: bytes differ")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--work", type=Path, help="folder to keep the outputs in")
    parser.add_argument("--compare-only", action="store_true",
                        help="compare the outputs already in --work without running anything")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="copyscope-compare-"))
    if not args.compare_only:
        tree = work / "base-tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                        args.base], check=True, capture_output=True)
        try:
            run_pipeline(tree / "src", work / "pipeline", work / "base-home", work / "base")
            run_pipeline(ROOT / "src", work / "pipeline", work / "new-home", work / "new")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)
    problems = compare(work / "base" / "runs", work / "new" / "runs")
    checked = sum(1 for p in (work / "new" / "runs").rglob("*")
                  if p.suffix in {".parquet", ".json"})
    for p in problems:
        print("DIFFERENT", p)
    print(f"{checked} artifacts compared under {work}: "
          + ("all identical" if not problems else f"{len(problems)} differ"))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
