"""Sampling speed against torch's thread settings, on a quiet machine and beside one busy core.

    .venv/bin/python benchmarks/threads.py            # writes the threads section of RESULTS.md

Loops of small operations (DDIM steps of the small UNet, PixelCNN pixel by pixel, the byte LM
byte by byte) run torch's OpenMP threads once per operation. With libgomp's default wait policy
an idle thread spins; when another process holds a core, the spinning threads and the one doing
the work share it, and each operation waits for a time slice. copyscope therefore sets
``OMP_WAIT_POLICY=PASSIVE`` (threads sleep; ``copyscope/__init__.py``, where the user has not
chosen) and runs the autoregressive loops on one thread (``copyscope.tensors.one_thread``).

Each cell is one fresh process sampling with the committed models (seconds, wall clock):
ddpm-1 draws 100 images with 20 DDIM steps. "Busy" runs a pure-Python busy loop in another
process, in a session of its own (as another user's job would be: Linux schedules sessions as
groups), for the measurement's duration: one of the two cores taken by other work.
Settings: ``OMP_WAIT_POLICY=ACTIVE`` (threads spin; torch without a policy behaved the same here),
``OMP_WAIT_POLICY=PASSIVE`` (copyscope's default), and
``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from results import cpu_name, replace_section

ROOT = Path(__file__).resolve().parent
CHILD = """
import time, torch
from pathlib import Path
from copyscope.stages.sample import open_sampler
s = open_sampler(Path("models/ddpm-1"), None, 20, False, "cpu")
rng = torch.Generator().manual_seed(0)
s.generate(4, rng)
t = time.perf_counter()
with torch.inference_mode():
    s.generate(100, rng)
print(time.perf_counter() - t)
"""
SETTINGS = {"OMP_WAIT_POLICY=ACTIVE (threads spin)": {"OMP_WAIT_POLICY": "ACTIVE"},
            "OMP_WAIT_POLICY=PASSIVE (copyscope)": {"OMP_WAIT_POLICY": "PASSIVE"},
            "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"}}


def run(extra: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", CHILD], env={**env, **extra}, check=True,
                         capture_output=True, text=True, cwd=ROOT.parent)
    return float(out.stdout.strip().splitlines()[-1])


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)


def main() -> None:
    rows = []
    for name, extra in SETTINGS.items():
        quiet = run(extra)
        spinner = busy()
        try:
            loaded = run(extra)
        finally:
            spinner.kill()
        rows.append(f"| {name} | {quiet:.2f} | {loaded:.2f} |")
        print(rows[-1], flush=True)
    section = "\n".join([
        "## Threads: sampling beside a busy core", "",
        f"`.venv/bin/python benchmarks/threads.py` ({dt.date.today().isoformat()}; {cpu_name()}, "
        f"{os.cpu_count()} cores; nothing else ran except the busy loop of the last column). "
        "ddpm-1, 100 images, 20 DDIM steps, seconds:", "",
        "| torch threads | quiet | one core busy |", "|---|---:|---:|", *rows, "",
        "The byte LM and PixelCNN loops run on one thread whatever the setting "
        "(`copyscope.tensors.one_thread`).", ""])
    replace_section(ROOT / "RESULTS.md", "threads", section)
    print(section)


if __name__ == "__main__":
    main()
