"""Web-app load benchmark: many users querying at once, batched search against one-at-a-time.

    .venv/bin/python benchmarks/load.py RUN [RUN ...]        # these runs (default: runs/**)
    .venv/bin/python benchmarks/load.py --quick              # shorter; RESULTS.md left alone

The app runs in its own process on 127.0.0.1 (`--serve`, as `copyscope app` serves it), twice:
with its query batching (concurrent queries searched together, copyscope.app.state.QueryBatcher)
and without it (each request searching the training set on its own, as before batching: what
the app did). For each, with distinct MNIST test digits uploaded once beforehand as 28x28 PNGs:

  sequential  each query alone, one after another: the reference answers.
  burst       --users queries sent at the same moment, --bursts times: latency of each.
  sustained   --users clients, each sending its next query as soon as the last is answered,
              for --seconds or --requests in all, whichever comes first: queries per second.

Every answer under load is compared with the same query's sequential answer (every output:
verdict text, tables and the inline images); the section reports how many differ. The client
runs in this process (asyncio, one thread) and shares the machine with the server. Only the
load section of benchmarks/RESULTS.md (between its markers) is rewritten.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from app import cpu_seconds, free_port, load_average, machine, percentiles
from PIL import Image
from results import replace_section

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "RESULTS.md"
HOST = "127.0.0.1"
SESSION = "copyscope-load"
TARGET = {"p95_ms": 1000.0, "per_s": 50.0}


def serve(runs: list[str], port: int, batched: bool) -> None:
    """The app in this process (``--serve``); prints "ready" once its warm-up has finished."""
    from copyscope.app import ui
    from copyscope.app.state import load_state, search_queries

    state = load_state(runs)
    if not batched:  # each request searches on its own thread, as before batching
        state.queries.submit = lambda q: search_queries(state, q[None])[0]  # type: ignore
    app = ui.launch(state, HOST, port, block=False)
    for thread in threading.enumerate():
        if thread.name == "copyscope-warm-up":
            thread.join()
    print("ready", flush=True)
    app.block_thread()


RETRIED = [0]
"""Requests sent again because the server had just closed their idle keep-alive connection."""


async def ask(client: Any, payload: dict[str, Any]) -> tuple[float, Any]:
    """One query over REST as the browser sends it: seconds to the answer (from the first
    attempt), and the answer."""
    import httpx

    start = time.perf_counter()
    body = {"data": [payload], "session_hash": SESSION}
    try:
        reply = await client.post("/run/query_upload", json=body)
    except (httpx.ReadError, httpx.RemoteProtocolError):  # a keep-alive connection closed
        RETRIED[0] += 1
        reply = await client.post("/run/query_upload", json=body)
    seconds = time.perf_counter() - start
    if reply.status_code != 200:
        sys.exit(f"a query failed ({reply.status_code}): {reply.text[:300]}")
    return seconds, reply.json()["data"]


async def upload(client: Any, digits: np.ndarray) -> list[dict[str, Any]]:
    payloads = []
    for i, d in enumerate(digits):
        buf = io.BytesIO()
        Image.fromarray(255 - d).save(buf, format="PNG")
        reply = await client.post("/upload", files=[("files", (f"q{i}.png", buf.getvalue(),
                                                               "image/png"))])
        payloads.append({"path": reply.json()[0], "orig_name": f"q{i}.png",
                         "meta": {"_type": "gradio.FileData"}})
    return payloads


async def measure(base: str, pid: int, digits: np.ndarray, args: argparse.Namespace
                  ) -> dict[str, Any]:
    """The three phases against one running server (process ``pid``)."""
    import httpx

    limits = httpx.Limits(max_connections=args.users + 4, max_keepalive_connections=args.users)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        payloads = await upload(client, digits)
        await ask(client, payloads[0])  # the event's one-time set-up
        sequential, reference = [], []
        for p in payloads:
            seconds, answer = await ask(client, p)
            sequential.append(seconds)
            reference.append(answer)
        out: dict[str, Any] = {"sequential": sequential, "burst": [], "differ": 0, "answers": 0}
        for b in range(args.bursts):
            picks = [(b * args.users + u) % len(payloads) for u in range(args.users)]
            done = await asyncio.gather(*(ask(client, payloads[i]) for i in picks))
            out["burst"] += [s for s, _ in done]
            out["differ"] += sum(a != reference[i] for i, (_, a) in zip(picks, done, strict=True))
            out["answers"] += len(done)
        cpu = cpu_seconds(pid)
        out |= await sustained(client, payloads, reference, args)
        out["cpu_ms"] = 1000 * (cpu_seconds(pid) - cpu) / max(1, len(out["sustained"]))
    return out


async def sustained(client: Any, payloads: list[dict[str, Any]], reference: list[Any],
                    args: argparse.Namespace) -> dict[str, Any]:
    """--users closed-loop clients for --seconds or --requests, whichever comes first."""
    latencies: list[float] = []
    differ = 0
    stop = time.perf_counter() + args.seconds
    counter = iter(range(args.requests))

    async def user() -> None:
        nonlocal differ
        for n in counter:
            if time.perf_counter() >= stop:
                return
            seconds, answer = await ask(client, payloads[n % len(payloads)])
            latencies.append(seconds)
            differ += answer != reference[n % len(payloads)]

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(args.users)))
    elapsed = time.perf_counter() - start
    return {"sustained": latencies, "sustained_s": elapsed,
            "per_s": len(latencies) / elapsed, "sustained_differ": differ}


def run_mode(runs: list[str], digits: np.ndarray, args: argparse.Namespace, batched: bool
             ) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", str(port), *(["--unbatched"] * (not batched)),
           *runs]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "COPYSCOPE_PROGRESS": "0"})
    try:
        if server.stdout is None or server.stdout.readline().strip() != "ready":
            sys.exit("the app server did not start; run `copyscope app` by hand to see why.")
        return asyncio.run(measure(f"http://{HOST}:{port}/gradio_api", server.pid, digits,
                                   args))
    finally:
        server.terminate()
        server.wait(timeout=30)


def rows(name: str, r: dict[str, Any]) -> list[str]:
    out = []
    for phase, label in (("sequential", "one at a time"), ("burst", "burst"),
                         ("sustained", "sustained")):
        t = percentiles(r[phase])
        rate, cpu = (f"{r['per_s']:.1f}", f"{r['cpu_ms']:.1f}") if phase == "sustained" \
            else ("", "")
        out.append(f"| {name} | {label} | {t['n']} | {t['median']:.0f} | {t['p95']:.0f} | "
                   f"{t['max']:.0f} | {rate} | {cpu} |")
    return out


def report(args: argparse.Namespace, runs: list[str], results: dict[str, dict[str, Any]],
           loads: tuple[str, str]) -> str:
    exe = Path(sys.executable)
    exe_text = os.path.relpath(exe) if exe.is_relative_to(Path.cwd()) else exe.name
    command = shlex.join([exe_text, os.path.relpath(__file__), *sys.argv[1:]])
    b = results["batched"]
    p95 = percentiles(b["burst"])["p95"]
    met = p95 < TARGET["p95_ms"] and b["per_s"] >= TARGET["per_s"]
    differ = sum(r["differ"] + r["sustained_differ"] for r in results.values())
    answers = sum(r["answers"] + len(r["sustained"]) for r in results.values())
    lines = [
        "## Web app under load: concurrent queries, batched search vs one search per query", "",
        f"Written by `benchmarks/load.py` on {dt.date.today().isoformat()}.", "",
        f"    {command}", "",
        *([args.note, ""] if args.note else []),
        machine(),
        f"- Load average (1, 5, 15 min) at the start {loads[0]}, at the end {loads[1]}",
        f"- Runs: {', '.join(Path(r).name for r in runs)}; queries: {len(args.digits)} distinct "
        f"MNIST test digits uploaded as 28x28 PNGs, each searched exactly against all 60,000 "
        "training images", "",
        f"{args.users} users. *burst*: {args.users} queries sent at once, {args.bursts} times; "
        f"*sustained*: {args.users} clients each sending its next query when answered, for "
        f"{args.seconds:g} s or {args.requests} queries. Milliseconds from request to answer; "
        f"queries per second over the sustained phase, and the server process's CPU time per "
        f"answered query meanwhile (all its threads; Linux /proc). Target (quiet 2-core "
        f"machine): burst p95 < {TARGET['p95_ms']:.0f} ms and >= {TARGET['per_s']:.0f} queries/s: "
        f"{'met' if met else '**not met**'} here. Answers under load that differ from the same "
        f"query asked alone: {differ} of {answers}. Requests sent again because the server had "
        f"just closed their idle keep-alive connection: {RETRIED[0]}.", "",
        "| search | phase | n | median | p95 | max | queries/s | server CPU ms/query |",
        "|---|---|---|---|---|---|---|---|",
        *rows("batched (QueryBatcher)", b),
        *rows("one search per query", results["unbatched"]),
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", help="run directories (default: every audit under runs/)")
    p.add_argument("--users", type=int, default=50, help="concurrent users")
    p.add_argument("--bursts", type=int, default=10, help="bursts of --users queries")
    p.add_argument("--seconds", type=float, default=20.0, help="sustained phase, at most")
    p.add_argument("--requests", type=int, default=3000, help="sustained phase, at most")
    p.add_argument("--queries", type=int, default=100, help="distinct query digits")
    p.add_argument("--quick", action="store_true", help="3 bursts, 5 s; RESULTS.md left alone "
                   "unless --results is given")
    p.add_argument("--results", type=Path, help=f"markdown file to update (default {RESULTS})")
    p.add_argument("--note", default="", help="a sentence about the machine, printed under the "
                   "command")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--unbatched", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.runs, args.serve, not args.unbatched)
        return
    if args.quick:
        args.bursts, args.seconds = 3, 5.0
    os.environ["COPYSCOPE_PROGRESS"] = "0"
    from copyscope.app.state import find_runs
    from copyscope.data import load
    from copyscope.errors import CopyscopeError

    loads = [load_average()]
    try:
        runs = [str(r) for r in (args.runs or find_runs())]
        args.digits = load("mnist:test").images[-args.queries:, ..., 0]
    except CopyscopeError as e:
        sys.exit(str(e))
    results = {mode: run_mode(runs, args.digits, args, mode == "batched")
               for mode in ("batched", "unbatched")}
    loads.append(load_average())
    section = report(args, runs, results, (loads[0], loads[1]))
    print("\n" + section)
    target = args.results or (None if args.quick else RESULTS)
    if target is not None:
        replace_section(target, "load", section)
        print(f"\nupdated the load section of {target}")


if __name__ == "__main__":
    main()
