"""Web-app benchmark: start-up, and the time of every view with the training index loaded.

    .venv/bin/python benchmarks/app.py                  # every finished audit under runs/
    .venv/bin/python benchmarks/app.py RUN [RUN ...]    # these runs
    .venv/bin/python benchmarks/app.py --quick          # fewer requests; RESULTS.md left alone
    .venv/bin/python benchmarks/app.py --startup-only   # start-up alone, printed

Measured on the given runs (`make demo`'s, by default), with the app's own settings (one torch
thread, see copyscope.app.state.load_state):

  start-up   `copyscope app RUN ...` in a fresh process, from its launch to the first HTTP 200 of
             the page (imports, reading the runs, indexing all training images, building the UI),
             and to the answer of a query uploaded at that moment (which also waits for the
             warm-up the app runs in the background once it listens).
  view       the view function alone, called in-process after load_state: what the app computes
             per request (search, measures, verdicts, tables, images as arrays).
  server     Gradio's processing of the event (Blocks.process_api, timed by wrapping it in the
             server): the user's input decoded, the view, every output encoded. The app runs in
             its own process (`--serve`); the requests come over HTTP from this one as the
             browser sends them (these events skip Gradio's queue: POST /gradio_api/run/<name>,
             with the session hash of one open page).
  server CPU the CPU time the server process's threads used during the request (Linux /proc).
  round trip from the POST of the request to the last byte of its result on localhost.

Requests vary: queries are MNIST test digits (the last --queries of them) sent as 280x280 RGBA
drawings (black ink on a transparent canvas, as the sketchpad sends them), and over HTTP as
uploaded 28x28 PNGs; the copies view cycles through every run x criterion x class x sort
order; training items and pair views are drawn at random (seed 0). The pair view and a click on
a most-regenerated item are gallery clicks, which Gradio's REST API cannot send, so only their
view is timed. Live generation (runs whose samples came from a model on disk) reports its time
per image, for diffusion at the run's DDIM steps and at 20 and 50.

Times are of the steady state: the app's background warm-up (every run's core figure, every live
model) has finished, and each event is called once untimed first. Only the app section of
benchmarks/RESULTS.md (between its markers) is rewritten.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import itertools
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from results import cpu_name, replace_section

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "RESULTS.md"
BUDGET_MS = {"query": 50.0, "other": 200.0}
SEED = 0
SESSION = "copyscope-benchmark"
LIVE_STEPS = (20, 50)  # DDIM steps timed for diffusion runs, besides the run's own


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(seconds)
    return {"n": len(ms), "median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)),
            "max": float(ms.max())}


def timed(fn: Callable[[], object], n: int, clock: Callable[[], float] = time.perf_counter
          ) -> list[float]:
    out = []
    for _ in range(n):
        start = clock()
        fn()
        out.append(clock() - start)
    return out


def wall_and_cpu(fn: Callable[[], object], n: int,
                 cpu_clock: Callable[[], float] = time.thread_time) -> dict[str, list[float]]:
    """Wall time of each call, and the CPU time it used (``cpu_clock``) in a second pass."""
    return {"wall": timed(fn, n), "cpu": timed(fn, n, cpu_clock)}


def drawings(digits: np.ndarray, size: int = 280) -> list[np.ndarray]:
    """MNIST digits as the sketchpad sends a drawing: RGBA, dark ink, transparent paper."""
    out = []
    for d in digits:
        ink = np.asarray(Image.fromarray(d).resize((size, size), Image.Resampling.BILINEAR))
        rgba = np.zeros((size, size, 4), np.uint8)
        rgba[..., 3] = ink
        out.append(rgba)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used, finished threads included (Linux
    /proc/PID/stat, in clock ticks of 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of a process's live threads, to the nanosecond (Linux /proc/PID/task/*/schedstat);
    for short intervals, where clock ticks are too coarse."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def startup(runs: list[str], repeat: int, digit: np.ndarray) -> dict[str, list[float]]:
    """Seconds from launching `copyscope app` to the page answering and to the first query
    answered (``digit`` uploaded as soon as the page answers, as a quick user would), in fresh
    processes, and the CPU time the process had used by the page's answer."""
    import httpx

    exe = Path(sys.executable).with_name("copyscope")
    png = io.BytesIO()
    Image.fromarray(255 - digit).save(png, format="PNG")
    out: dict[str, list[float]] = {"page": [], "query": [], "cpu": []}
    for _ in range(repeat):
        port = free_port()
        env = {**os.environ, "COPYSCOPE_PROGRESS": "0"}
        start = time.perf_counter()
        proc = subprocess.Popen([str(exe), "app", *runs, "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                if proc.poll() is not None:
                    sys.exit(f"copyscope app exited with code {proc.returncode}; run it by hand "
                             "to see why.")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.05)
            out["page"].append(time.perf_counter() - start)
            out["cpu"].append(cpu_seconds(proc.pid))
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/gradio_api", timeout=60) as c:
                path = c.post("/upload", files=[("files", ("q.png", png.getvalue(),
                                                          "image/png"))]).json()[0]
                reply = c.post("/run/query_upload", json={"data": [
                    {"path": path, "orig_name": "q.png", "meta": {"_type": "gradio.FileData"}}],
                    "session_hash": SESSION})
            if reply.status_code != 200:
                sys.exit(f"the first query failed: {reply.text[:300]}")
            out["query"].append(time.perf_counter() - start)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return out


def view_timings(state, queries: list[np.ndarray], n: int) -> dict[str, dict[str, list[float]]]:
    from copyscope.app import live, views
    from copyscope.detect.criteria import CRITERIA

    rng = np.random.default_rng(SEED)
    runs = list(state.runs)
    combos = itertools.cycle(itertools.product(
        runs, [views.ALL, *CRITERIA], [None, *range(10)], ["nn_l2", "ssim", "heldout_p"],
        [False, True]))
    drawn = itertools.cycle(queries)
    out = {
        "query (drawing, 280x280 RGBA)": wall_and_cpu(lambda: views.query(state, next(drawn)), n),
        "copies (filter + sort + gallery)": wall_and_cpu(
            lambda: views.copies(state, *next(combos)), n),
        "pair view (click on a sample)": wall_and_cpu(lambda: views.pair(
            state, (r := runs[rng.integers(len(runs))]),
            int(rng.integers(len(state.runs[r].samples)))), n),
        "training item (every sample near it)": wall_and_cpu(lambda: views.training_item(
            state, int(rng.integers(len(state.train)))), n),
        "most regenerated items": wall_and_cpu(lambda: views.regenerated(
            state, runs[rng.integers(len(runs))]), n),
        "overview (built once at start-up)": wall_and_cpu(lambda: views.overview(state), 1),
    }
    for name, source in live.sources(state).items():
        steps = sorted({source.steps, *LIVE_STEPS}) if source.steps else [None]
        for k, images in itertools.product(steps, (1, 4)):
            live.generate(state, source, steps=k, n=1)  # the model loads once, untimed
            key = f"live: {name}, {images} image(s), {k or '-'} steps, per image"
            times = wall_and_cpu(lambda s=source, k=k, m=images: live.generate(
                state, s, steps=k, n=m), 3)
            out[key] = {kind: [t / images for t in ts] for kind, ts in times.items()}
    return out


def serve(runs: list[str], port: int, log: Path) -> None:
    """The app in this process (``--serve``), each event's Gradio processing time appended to
    ``log`` as "api_name seconds" lines; prints "ready" once the warm-up has finished."""
    import gradio.blocks

    from copyscope.app import ui
    from copyscope.app.state import load_state

    process_api = gradio.blocks.Blocks.process_api
    out = log.open("a", buffering=1)

    async def timed_process_api(self, block_fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return await process_api(self, block_fn, *args, **kwargs)
        finally:
            out.write(f"{getattr(block_fn, 'api_name', block_fn)} "
                      f"{time.perf_counter() - start}\n")

    gradio.blocks.Blocks.process_api = timed_process_api
    app = ui.launch(load_state(runs), "127.0.0.1", port, block=False)
    for thread in threading.enumerate():  # steady state: figures rendered, models loaded
        if thread.name == "copyscope-warm-up":
            thread.join()
    print("ready", flush=True)
    app.block_thread()


def http_timings(runs: list[str], state, digits: np.ndarray, n: int
                 ) -> dict[str, dict[str, list[float]]]:
    """Server processing, server CPU and round trip of each REST-callable event, with the app
    in its own process (as `copyscope app` runs it) and this one as the client."""
    import httpx

    from copyscope.detect.criteria import CRITERIA

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "process_api.txt"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--log", str(log), *runs],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "COPYSCOPE_PROGRESS": "0"})
        try:
            if server.stdout is None or server.stdout.readline().strip() != "ready":
                sys.exit("the app server did not start; run `copyscope app` by hand to see why.")
            return _requests(f"http://127.0.0.1:{port}/gradio_api", server.pid, log, runs,
                             state, digits, n, CRITERIA, httpx.Client(timeout=120))
        finally:
            server.terminate()
            server.wait(timeout=30)


def _requests(base: str, pid: int, log: Path, runs: list[str], state: Any, digits: np.ndarray,
              n: int, criteria: Any, client: Any) -> dict[str, dict[str, list[float]]]:
    def call(api: str, data: list[object]) -> None:
        # one page's session, as a browser tab sends it: without a session hash Gradio rebuilds
        # the state of every component of the app for each request (~3 ms here)
        reply = client.post(f"{base}/run/{api}", json={"data": data, "session_hash": SESSION})
        if reply.status_code != 200:
            sys.exit(f"/{api} failed: {reply.text[:300]}")

    uploads = []
    for i, d in enumerate(digits):
        buf = io.BytesIO()
        Image.fromarray(255 - d).save(buf, format="PNG")
        path = client.post(f"{base}/upload", files=[("files", (f"q{i}.png", buf.getvalue(),
                                                                "image/png"))]).json()[0]
        uploads.append({"path": path, "orig_name": f"q{i}.png",
                        "meta": {"_type": "gradio.FileData"}})
    names = list(state.runs)
    rng = np.random.default_rng(SEED)
    combos = itertools.cycle(itertools.product(
        names, ["all", *criteria], ["any", *map(str, range(10))], ["nn_l2", "ssim"],
        [False, True]))
    files = itertools.cycle(uploads)
    requests = {
        "query (upload, 28x28 PNG)": ("query_upload", lambda: [next(files)]),
        "copies (filter + sort + gallery)": ("copies", lambda: list(next(combos))),
        "training item (every sample near it)": (
            "item", lambda: [int(rng.integers(len(state.train)))]),
        "most regenerated items": (
            "regenerated", lambda: [names[rng.integers(len(names))], "heldout"]),
    }
    out = {}
    for name, (api, data) in requests.items():
        call(api, data())  # first call of each event pays Gradio's one-time set-up
        start_line = len(log.read_text().splitlines())
        trips, cpu = [], []
        for _ in range(n):
            args = data()
            c0, t0 = thread_cpu_seconds(pid), time.perf_counter()
            call(api, args)
            trips.append(time.perf_counter() - t0)
            cpu.append(thread_cpu_seconds(pid) - c0)
        lines = log.read_text().splitlines()[start_line:]
        out[name] = {"server": [float(x.split()[1]) for x in lines if x.split()[0] == api],
                     "round trip": trips, "server CPU": cpu}
    return out


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> str:
    import torch

    cpu = cpu_name()
    from importlib import metadata
    libs = ", ".join(f"{p} {metadata.version(p)}" for p in ("gradio", "torch", "numpy"))
    return (f"- CPU: {cpu}, {os.cpu_count()} logical cores (the app uses "
            f"{torch.get_num_threads()} torch thread per request); {platform.platform()}\n"
            f"- Libraries: Python {platform.python_version()}, {libs}")


def row(name: str, kind: str, t: dict[str, float], budget: float | None) -> str:
    verdict = "" if budget is None else ("yes" if t["p95"] < budget else "**no**")
    limit = "" if budget is None else f"< {budget:.0f}"
    return (f"| {name} | {kind} | {t['n']} | {t['median']:.1f} | {t['p95']:.1f} | {t['max']:.1f} "
            f"| {limit} | {verdict} |")


def startup_text(boot: dict[str, list[float]]) -> str:
    b, q, cpu = (percentiles(boot[k]) for k in ("page", "query", "cpu"))
    return (
        f"Start-up, {b['n']} fresh processes of `copyscope app` (runs read, every training "
        "image indexed, UI built): the page answers after a median "
        f"{b['median'] / 1000:.1f} s (max {b['max'] / 1000:.1f} s), and a query uploaded at that "
        f"moment is answered after a median {q['median'] / 1000:.1f} s (max "
        f"{q['max'] / 1000:.1f} s; it waits for the background warm-up to load the measures' "
        "libraries). Each launch, page / first query: "
        + ", ".join(f"{p:.1f} / {f:.1f} s" for p, f in zip(boot["page"], boot["query"],
                                                          strict=True))
        + f". Budget < 10 s: {'yes' if b['max'] < 10_000 else '**no**'} for the page (every "
        f"launch), {'yes' if q['max'] < 10_000 else '**no**'} for the first query (every "
        f"launch). CPU time used by the page's answer: median {cpu['median'] / 1000:.1f} s.")


def report(args: argparse.Namespace, runs: list[str], state, boot: dict[str, list[float]],
           views_: dict[str, dict[str, list[float]]], http: dict[str, dict[str, list[float]]],
           loads: tuple[str, str]) -> str:
    exe = Path(sys.executable)
    exe_text = os.path.relpath(exe) if exe.is_relative_to(Path.cwd()) else exe.name
    command = shlex.join([exe_text, os.path.relpath(__file__), *sys.argv[1:]])
    n_samples = sum(len(r.samples) for r in state.runs.values())
    lines = [
        "## Web app: start-up and views on CPU", "",
        "The app answers a drawn or uploaded query in the times below with the index of all "
        "training images in memory; the reference study's app hunted through the training set "
        "per request (see the search section for that hunt's pace).", "",
        f"Written by `benchmarks/app.py` on {dt.date.today().isoformat()}.", "",
        f"    {command}", "",
        *([args.note, ""] if args.note else []),
        machine(),
        f"- Load average (1, 5, 15 min) at the start {loads[0]}, at the end {loads[1]}",
        f"- Runs: {', '.join(state.runs)} ({n_samples:,} samples); training index: all "
        f"{len(state.train):,} training images, exact int8 search", "",
        startup_text(boot) + " In-process `load_state` split: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in state.timings_s.items()) + ".", "",
        "Milliseconds per request. *view*: the view function alone (wall clock); *view CPU*: "
        "the CPU time it used, i.e. its cost on a core it does not share; *server*: Gradio's "
        "whole processing of the event (input decoding, the view, output images encoded), wall "
        "clock; *server CPU*: the CPU time the server process used meanwhile; *round trip*: "
        "request to last byte over HTTP on localhost, the app in its own process. Budget on "
        "the p95 of view and server: query < 50 ms, other views < 200 ms.", "",
        "| request | measured | n | median | p95 | max | budget | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, kinds in views_.items():
        budget = None if name.startswith(("live", "overview")) else (
            BUDGET_MS["query"] if name.startswith("query") else BUDGET_MS["other"])
        lines.append(row(name, "view", percentiles(kinds["wall"]), budget))
        lines.append(row(name, "view CPU", percentiles(kinds["cpu"]), None))
    for name, kinds in http.items():
        for kind, times in kinds.items():
            budget = BUDGET_MS["query"] if name.startswith("query") else BUDGET_MS["other"]
            lines.append(row(name, kind, percentiles(times), budget if kind == "server"
                             else None))
    lines += ["", "Live rows are seconds of generation divided by the images made (the search "
              "and verdict of all of them are in the text the app shows beside them)."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", help="run directories (default: every audit under runs/)")
    p.add_argument("--requests", type=int, default=200, help="requests per view")
    p.add_argument("--queries", type=int, default=200, help="distinct query digits")
    p.add_argument("--startups", type=int, default=5, help="fresh `copyscope app` processes")
    p.add_argument("--quick", action="store_true", help="30 requests, 1 start-up; RESULTS.md "
                   "is left alone unless --results is given")
    p.add_argument("--startup-only", action="store_true", help="time --startups launches "
                   "only and print them; RESULTS.md is left alone")
    p.add_argument("--results", type=Path, help=f"markdown file to update (default {RESULTS})")
    p.add_argument("--note", default="", help="a sentence about the runs or the machine, "
                   "printed under the command")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.runs, args.serve, args.log)
        return
    if args.quick:
        args.requests, args.queries, args.startups = 30, 30, 1
    os.environ["COPYSCOPE_PROGRESS"] = "0"
    from copyscope.app.state import find_runs, load_state
    from copyscope.data import load
    from copyscope.errors import CopyscopeError

    loads = [load_average()]
    try:
        runs = [str(r) for r in (args.runs or find_runs())]
        digits = load("mnist:test").images[-args.queries:, ..., 0]
        boot = startup(runs, args.startups, digits[0])
        if args.startup_only:
            print(f"{startup_text(boot)} Load average at the end: {load_average()}.")
            return
        state = load_state(runs)
    except CopyscopeError as e:
        sys.exit(str(e))
    views_ = view_timings(state, drawings(digits), args.requests)
    http = http_timings(runs, state, digits, args.requests)
    loads.append(load_average())
    section = report(args, runs, state, boot, views_, http, (loads[0], loads[1]))
    print("\n" + section)
    target = args.results or (None if args.quick else RESULTS)
    if target is not None:
        replace_section(target, "app", section)
        print(f"\nupdated the app section of {target}")


if __name__ == "__main__":
    main()
