"""Search benchmark: copyscope's exact int8 k-NN against what users would pick instead.

    .venv/bin/python benchmarks/search.py                     # the published run (`make bench`)
    .venv/bin/python benchmarks/search.py --quick             # smoke run on small sizes
    python benchmarks/search.py --device cuda --data mnist.npz --results out.md

One run, all methods side by side on the same data: every sample is searched against the 60,000
MNIST training images (784-d) for its k = 50 nearest neighbours.

Workloads: the 10,000 MNIST test digits, and 100,000 samples made of those 10,000 followed by
seeded variants of them (each shifted by up to 2 pixels in x and y and given Gaussian pixel noise
of standard deviation 8 grey levels, rounded and clipped to 0-255): near-digits that are not
training images, as a generator's samples are.

Methods (float baselines get float32 copies of the uint8 pixels, as a user would pass them):
  copyscope    copyscope.search.make_searcher("int8"): exact int8 GEMM + blocked top-k
  faiss        faiss.IndexFlatL2 + search(k)
  sklearn      sklearn.neighbors.NearestNeighbors(algorithm="brute").kneighbors
  numpy        blocked float32 matmul ||x||^2 - 2 q.x, argpartition, sort of the k
  torch-fp32   torch matmul on pixels / 255 in fp32 + topk (the GPU user's pick)
  torch-fp16   the same in fp16 (faster on tensor cores; checked for exactness like the rest)
  hunt         the reference study's app: SSIM (skimage.metrics.structural_similarity) of one
               sample against the training images in order until a per-sample time budget runs
               out; timed on a few samples and extrapolated to all 60,000 items for all samples

Measured per method, each in a fresh Python process on the same arrays (read from .npy files):
  seconds      wall time from the uint8 arrays in memory to the (M, k) neighbour indices on the
               host, index building and type conversions included; process start, library
               imports and CUDA context creation excluded. With --repeat, the fastest run.
  GFLOP/s      2 M N D / seconds (D = 784), against the machine's fp32 GEMM peak measured in the
               same run (torch.mm on large square matrices), and against the peak of the method's
               own arithmetic (torch._int_mm for int8, fp16 matmul for fp16).
  memory       peak resident set size during the call (VmHWM, its mark reset through
               /proc/self/clear_refs after the data are loaded and the library imported)
               minus the resident size before it: the method's own working memory. On CUDA also
               torch.cuda.max_memory_allocated.
  exactness    copyscope's k neighbours are checked against a float64 brute force on --verify
               queries (top-1 index and all k squared distances); every method's answers are then
               compared with copyscope's on all queries: top-1 index, top-1 exact distance (a
               different index at the same distance is a tie, not an error) and the k exact
               distances of its neighbours.

Only the search section of benchmarks/RESULTS.md, between its markers for this device, is
rewritten. MNIST comes from the copyscope cache, or from --data: an .npz with the cache's keys
(train_images, train_labels, test_images, test_labels; e.g. the cache file
$COPYSCOPE_HOME/mnist/mnist-uint8.npz re-saved with np.savez_compressed), checked by hash.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

import numpy as np
from results import cpu_name, replace_section

from copyscope.errors import CopyscopeError
from copyscope.progress import bar
from copyscope.rundir import versions
from copyscope.search.base import exact_d2

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "RESULTS.md"
SEED = 0
SHIFT, NOISE = 2, 8.0  # the 100k workload's variants: max shift in pixels, noise sd in grey levels


# --------------------------------------------------------------------------- methods
# Each method takes the device and returns a function (x, q, k) -> (M, k) int64 neighbour
# indices on the host; importing its library happens outside the timed call.

Run = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def copyscope_int8(device: str) -> Run:
    from copyscope.search import make_searcher

    searcher = make_searcher("int8", device=device)

    def run(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
        return searcher.fit(x).search(q, k, show=False).index

    return run


def faiss_flat(device: str) -> Run:
    import faiss

    def run(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x.astype(np.float32))
        return index.search(q.astype(np.float32), k)[1]

    return run


def sklearn_brute(device: str) -> Run:
    from sklearn.neighbors import NearestNeighbors

    def run(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
        nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x.astype(np.float32))
        return nn.kneighbors(q.astype(np.float32))[1]

    return run


def numpy_brute(device: str, block: int = 1024) -> Run:
    def run(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
        xf = x.astype(np.float32)
        xn = np.einsum("ij,ij->i", xf, xf)
        out = np.empty((len(q), k), dtype=np.int64)
        for s in range(0, len(q), block):
            d = xn - 2 * (q[s : s + block].astype(np.float32) @ xf.T)
            part = np.argpartition(d, k - 1, axis=1)[:, :k]
            order = np.argsort(np.take_along_axis(d, part, 1), axis=1)
            out[s : s + block] = np.take_along_axis(part, order, 1)
        return out

    return run


def torch_matmul(dtype_name: str) -> Callable[[str], Run]:
    def setup(device: str, block: int = 4096) -> Run:
        import torch

        dtype = getattr(torch, dtype_name)
        dev = torch.device(device)

        def run(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
            xt = (torch.from_numpy(x).to(dev).to(dtype) / 255).contiguous()
            xn = (xt.float() ** 2).sum(1)
            out = []
            with torch.inference_mode():
                for s in range(0, len(q), block):
                    qb = torch.from_numpy(q[s : s + block]).to(dev).to(dtype) / 255
                    d = xn - 2 * (qb @ xt.T).float()
                    out.append(d.topk(k, dim=1, largest=False).indices.cpu())
            return torch.cat(out).numpy().astype(np.int64)

        return run

    return setup


@dataclass(frozen=True)
class Method:
    label: str
    setup: Callable[[str], Run] | None  # None: the hunt, which has its own protocol
    arithmetic: str | None  # the GEMM it runs on, for the "% of own peak" column
    module: str  # the library it needs, checked before it is started


METHODS = {
    "copyscope": Method("copyscope int8 (exact)", copyscope_int8, "int8", "torch"),
    "faiss": Method("FAISS IndexFlatL2", faiss_flat, "fp32", "faiss"),
    "sklearn": Method('scikit-learn NearestNeighbors(algorithm="brute")', sklearn_brute, "fp32",
                      "sklearn"),
    "numpy": Method("NumPy blocked matmul + argpartition", numpy_brute, "fp32", "numpy"),
    "torch-fp32": Method("torch fp32 matmul + topk", torch_matmul("float32"), "fp32", "torch"),
    "torch-fp16": Method("torch fp16 matmul + topk", torch_matmul("float16"), "fp16", "torch"),
    "hunt": Method("SSIM hunt (reference study's app)", None, None, "skimage"),
}
DEFAULT_METHODS = {"cpu": ["copyscope", "faiss", "sklearn", "numpy", "hunt"],
                   "cuda": ["copyscope", "torch-fp32", "torch-fp16"]}
REFERENCE = {"cpu": "faiss", "cuda": "torch-fp32"}  # the speed-up column is against this


def hunt(x: np.ndarray, q: np.ndarray, picks: np.ndarray, budget: float) -> dict[str, np.ndarray]:
    """SSIM of each picked sample against training images in order until ``budget`` s run out.

    SSIM: Wang, Bovik, Sheikh & Simoncelli (2004), "Image quality assessment: from error
    visibility to structural similarity", via skimage's default 7x7 uniform window.
    """
    from skimage.metrics import structural_similarity

    side = round(np.sqrt(x.shape[1]))
    train = x.reshape(-1, side, side)
    covered, best, spent = [], [], []
    for j in picks:
        a = q[j].reshape(side, side)
        n, top, top_i = 0, -np.inf, -1
        t0 = time.perf_counter()
        while n < len(train) and time.perf_counter() - t0 < budget:
            s = structural_similarity(a, train[n], data_range=255)
            if s > top:
                top, top_i = s, n
            n += 1
        spent.append(time.perf_counter() - t0)
        covered.append(n)
        best.append(top_i)
    return {"picks": picks, "covered": np.array(covered), "best": np.array(best),
            "spent": np.array(spent)}


# --------------------------------------------------------------------------- child processes


def peak_rss_mb() -> float:
    """This process's peak resident set size (MiB): VmHWM on Linux, which clear_refs resets.

    getrusage's ru_maxrss is no use here: a child started by fork + exec inherits the parent's
    peak, so a method that stays below the parent's (e.g. the 100,000-sample workload's) read 0.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak_rss() -> float:
    """Reset the peak-RSS mark to the current RSS and return it (MiB).

    Linux resets it through /proc/self/clear_refs; elsewhere the peak so far is the baseline,
    which undercounts a method that stays below an earlier transient peak (e.g. of an import).
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return peak_rss_mb()


def child(name: str, work: Path, args: argparse.Namespace) -> None:
    """Run one method in this (fresh) process and leave its answer and costs in ``work``."""
    x, q = np.load(work / "train.npy"), np.load(work / "queries.npy")
    method = METHODS[name]
    run = method.setup(args.device) if method.setup is not None else None
    cuda = args.device == "cuda"
    if cuda:
        import torch

        torch.zeros(1, device="cuda")  # CUDA context outside the timing
        torch.cuda.reset_peak_memory_stats()
    base = reset_peak_rss()
    t0 = time.perf_counter()
    if run is not None:
        arrays = {"index": np.asarray(run(x, q, args.k), dtype=np.int64)}
    else:
        picks = np.unique(np.linspace(0, len(q) - 1, args.hunt_samples).round().astype(np.int64))
        arrays = hunt(x, q, picks, args.hunt_budget)
    seconds = time.perf_counter() - t0
    costs = {"seconds": seconds, "memory_mb": peak_rss_mb() - base}
    if cuda:
        costs["gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    np.savez(work / f"{name}.npz", **arrays)
    (work / f"{name}.json").write_text(json.dumps(costs))


def gemm_peaks(device: str) -> dict[str, object]:
    """The machine's measured GEMM throughput (G op/s): fp32, int8 (+ fp16 on CUDA)."""
    import torch

    dev = torch.device(device)
    n, reps = (3072, 3) if dev.type == "cpu" else (8192, 10)
    gen = torch.Generator(device=dev).manual_seed(SEED)
    kinds = {"fp32": torch.float32, "int8": torch.int8}
    if dev.type == "cuda":
        kinds["fp16"] = torch.float16
    peaks: dict[str, object] = {}
    for kind, dtype in kinds.items():
        if dtype == torch.int8:
            a = torch.randint(-128, 128, (n, n), device=dev, dtype=dtype, generator=gen)
            b, out = a.t().contiguous(), torch.empty(n, n, device=dev, dtype=torch.int32)
            mm = torch._int_mm
        else:
            a = torch.randn(n, n, device=dev, generator=gen).to(dtype)
            b, out = a.t().contiguous(), torch.empty(n, n, device=dev, dtype=dtype)
            mm = torch.mm
        best = np.inf
        for _ in range(reps + 1):  # the first is a warm-up
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            mm(a, b, out=out)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        peaks[kind] = 2 * n**3 / best / 1e9
    peaks["threads"] = torch.get_num_threads()
    peaks["size"] = n
    if dev.type == "cuda":
        peaks["gpu"] = torch.cuda.get_device_name(dev)
        peaks["tf32"] = torch.backends.cuda.matmul.allow_tf32
    return peaks


def spawn(args: argparse.Namespace, role: str, work: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, __file__, "--child", role, "--work", str(work), "--device", args.device,
           "--k", str(args.k), "--hunt-samples", str(args.hunt_samples),
           "--hunt-budget", str(args.hunt_budget)]
    env = {**os.environ, "COPYSCOPE_PROGRESS": "0"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def measure_peaks(args: argparse.Namespace, work: Path) -> dict[str, object]:
    done = spawn(args, "peaks", work)
    if done.returncode != 0:
        sys.exit(f"measuring the GEMM peaks failed:\n{done.stderr[-2000:]}")
    return json.loads((work / "peaks.json").read_text())


def measure(args: argparse.Namespace, name: str, work: Path) -> dict[str, object]:
    """Run one method ``--repeat`` times, each in a fresh process: fastest time, largest memory."""
    costs: list[dict[str, float]] = []
    for _ in range(args.repeat):
        done = spawn(args, name, work)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no output"]
            return {"error": lines[-1]}
        costs.append(json.loads((work / f"{name}.json").read_text()))
    result: dict[str, object] = {"seconds": min(c["seconds"] for c in costs)}
    for key in ("memory_mb", "gpu_memory_mb"):
        if key in costs[0]:
            result[key] = max(c[key] for c in costs)
    with np.load(work / f"{name}.npz") as z:
        result.update({k: z[k] for k in z.files})
    return result


# --------------------------------------------------------------------------- data and checks


def load_mnist(data: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Flat uint8 (60000, 784) training and (10000, 784) test images, verified by hash."""
    if data is None:
        from copyscope.data import load

        return load("mnist:train").flat, load("mnist:test").flat
    from copyscope.data.mnist import verify

    try:
        with np.load(data, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CopyscopeError(f"{data} is not a readable .npz file.") from e
    verify(arrays, str(data))
    return (arrays["train_images"].reshape(60000, -1), arrays["test_images"].reshape(10000, -1))


def workload(test: np.ndarray, m: int, seed: int = SEED) -> np.ndarray:
    """The first ``m`` of: the test images, then rounds of seeded shifted + noised variants."""
    side = round(np.sqrt(test.shape[1]))
    images = test.reshape(-1, side, side)
    padded = np.pad(images, ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (side, side), axis=(1, 2))
    rng = np.random.default_rng(seed)
    parts, have, rows = [test], len(test), np.arange(len(test))
    while have < m:
        dy, dx = rng.integers(0, 2 * SHIFT + 1, size=(2, len(test)))
        shifted = windows[rows, dy, dx].astype(np.float64)
        noisy = shifted + rng.normal(0.0, NOISE, size=shifted.shape)
        parts.append(np.clip(np.rint(noisy), 0, 255).astype(np.uint8).reshape(len(test), -1))
        have += len(test)
    return np.concatenate(parts)[:m]


def float64_knn(q: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force in float64 (exact here: every value is an integer below 2^53), ties by index."""
    qd, xd = q.astype(np.float64), x.astype(np.float64)
    d2 = (qd**2).sum(1)[:, None] + (xd**2).sum(1)[None] - 2 * qd @ xd.T
    order = np.lexsort((np.broadcast_to(np.arange(len(x)), d2.shape), d2), axis=1)[:, :k]
    return np.take_along_axis(d2, order, 1).round().astype(np.int64), order


# --------------------------------------------------------------------------- the run


def benchmark(args: argparse.Namespace) -> str:
    x, test = load_mnist(args.data)
    if args.quick:
        x, test = x[:6000], test[:1000]
    n, d = x.shape
    methods = [m for m in args.methods if util.find_spec(METHODS[m].module) is not None]
    missing = sorted(set(args.methods) - set(methods))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="copyscope-bench-") as tmp:
        work = Path(tmp)
        peaks = measure_peaks(args, work)
        print(f"GEMM peaks ({args.device}): " + ", ".join(
            f"{k} {peaks[k]:.0f} G op/s" for k in ("fp32", "int8", "fp16") if k in peaks))
        tables = []
        for m in args.samples:
            q = workload(test, m)
            np.save(work / "train.npy", x)
            np.save(work / "queries.npy", q)
            results = {}
            with bar(len(methods), f"{m:,} samples", unit="method") as pb:
                for name in methods:
                    pb.set_postfix_str(name)
                    results[name] = measure(args, name, work)
                    pb.write(f"  {m:,} x {n:,}  {name:<11} " + (
                        f"{results[name]['seconds']:.2f} s" if "seconds" in results[name]
                        else f"failed: {results[name]['error']}"))
                    pb.update()
            tables.append(assess(x, q, results, args, peaks))
    load_after = os.getloadavg()
    return report(args, tables, peaks, (n, d), missing, (load_before, load_after))


@dataclass
class Table:
    m: int
    rows: list[dict[str, str]]
    notes: list[str]
    facts: dict[str, dict[str, float]]  # per method: the numbers the reading is written from


def assess(x: np.ndarray, q: np.ndarray, results: dict[str, dict], args: argparse.Namespace,
           peaks: dict[str, object]) -> Table:
    """Turn the raw measurements of one workload into table rows, with the exactness checks."""
    (m, d), n, k = q.shape, len(x), args.k
    notes = []
    exact = results.get("copyscope", {})
    if "index" not in exact:
        sys.exit("copyscope's search is the exactness reference and must run (and succeed).")
    truth = np.sort(exact_d2(q, x, exact["index"]), axis=1)
    picks = np.unique(np.linspace(0, m - 1, min(args.verify, m)).round().astype(np.int64))
    f64_d2, f64_i = float64_knn(q[picks], x, k)
    top1 = int((exact["index"][picks, 0] == f64_i[:, 0]).sum())
    all_k = int((truth[picks] == f64_d2).all(1).sum())
    notes.append(f"copyscope against a float64 brute force on {len(picks):,} evenly spaced "
                 f"samples: top-1 index identical for {top1:,}, all {k} squared distances "
                 f"identical for {all_k:,}.")
    ref = results.get(REFERENCE[args.device], {})
    flops = 2 * m * n * d
    rows, facts = [], {}
    for name, r in results.items():
        method = METHODS[name]
        row = {"method": method.label}
        if "error" in r:
            rows.append({**row, "seconds": f"failed: {r['error']}"})
            continue
        if name == "hunt":
            rows.append(hunt_row(row, r, exact["index"], n, m, k, ref))
            notes.append(hunt_note(r, exact["index"], n, m, args.hunt_budget))
            facts[name] = {"seconds": hunt_extrapolation(r, n, m),
                           "coverage": float(r["covered"].mean() / n)}
            continue
        gflops = flops / r["seconds"] / 1e9
        own = peaks.get(method.arithmetic) if method.arithmetic else None
        got = np.sort(exact_d2(q, x, r["index"]), axis=1)
        row.update({
            "seconds": f"{r['seconds']:.2f}",
            "GFLOP/s": f"{gflops:,.0f}",
            "% of fp32 peak": f"{100 * gflops / peaks['fp32']:.0f}%",
            "% of own peak": f"{100 * gflops / own:.0f}% {method.arithmetic}" if own else "—",
            "memory MB": f"{r['memory_mb']:,.0f}",
        })
        if "gpu_memory_mb" in r:
            row["GPU memory MB"] = f"{r['gpu_memory_mb']:,.0f}"
        row["speed-up"] = f"{ref['seconds'] / r['seconds']:.2f}×" if "seconds" in ref else "—"
        knn_exact = int((got == truth).all(1).sum())
        row["top-1 index = exact"] = share(int((r["index"][:, 0] == exact["index"][:, 0]).sum()), m)
        row["top-1 distance exact"] = share(int((got[:, 0] == truth[:, 0]).sum()), m)
        row[f"{k}-NN distances exact"] = share(knn_exact, m)
        rows.append(row)
        facts[name] = {"seconds": r["seconds"], "gflops": gflops, "knn_exact": knn_exact / m}
    return Table(m, rows, notes, facts)


def hunt_row(row: dict[str, str], r: dict, exact: np.ndarray, n: int, m: int, k: int,
             ref: dict) -> dict[str, str]:
    total = hunt_extrapolation(r, n, m)
    picks = r["picks"]
    found = int((r["best"] == exact[picks, 0]).sum())
    return {**row, "seconds": f"≈ {total:,.0f} (extrapolated, {total / 3600:,.1f} h)",
            "GFLOP/s": "—", "% of fp32 peak": "—", "% of own peak": "—",
            "memory MB": f"{r['memory_mb']:,.0f}",
            "speed-up": f"{ref['seconds'] / total:.1g}×" if "seconds" in ref else "—",
            "top-1 index = exact": f"{found} of {len(picks)} hunted samples",
            "top-1 distance exact": "—", f"{k}-NN distances exact": "—"}


def hunt_extrapolation(r: dict, n: int, m: int) -> float:
    """Seconds for all m samples against all n items at the measured seconds per SSIM pair."""
    return float(r["spent"].sum() / r["covered"].sum() * n * m)


def hunt_note(r: dict, exact: np.ndarray, n: int, m: int, budget: float) -> str:
    picks, covered = r["picks"], r["covered"]
    reached = int((exact[picks, 0] < covered).sum())
    found = int((r["best"] == exact[picks, 0]).sum())
    per_pair = r["spent"].sum() / covered.sum()
    return (f"SSIM hunt: {len(picks)} evenly spaced samples, {budget:g} s each, "
            f"{per_pair * 1e6:,.0f} µs per SSIM pair; it covered {covered.min():,}–"
            f"{covered.max():,} of the {n:,} training images ({100 * covered.mean() / n:.1f}% "
            f"on average); the exact nearest neighbour lay in the covered part for {reached} of "
            f"{len(picks)} and was the best-SSIM match for {found}. Searching all {n:,} for all "
            f"{m:,} samples at that rate would take ≈ {hunt_extrapolation(r, n, m):,.0f} s "
            "(an extrapolation, not a measurement).")


def share(ok: int, total: int) -> str:
    return f"all {total:,}" if ok == total else f"{100 * ok / total:.2f}% ({total - ok:,} differ)"


# --------------------------------------------------------------------------- the report


def machine(device: str, peaks: dict[str, object]) -> list[str]:
    cpu = cpu_name()
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    v = versions()
    libs = [f"{p} {v[p]}" for p in ("python", "numpy", "torch", "faiss-cpu", "scikit-learn")
            if p in v]
    with contextlib.suppress(metadata.PackageNotFoundError):
        libs.append(f"scikit-image {metadata.version('scikit-image')}")
    lines = [f"- CPU: {cpu}, {os.cpu_count()} logical cores (torch uses {peaks['threads']} "
             f"threads), {ram:.0f} GiB RAM; {v['platform']}"]
    if device == "cuda":
        lines.append(f"- GPU: {peaks['gpu']} (TF32 matmul {'on' if peaks['tf32'] else 'off'})")
    lines.append(f"- Libraries: {', '.join(libs)}")
    return lines


def markdown(rows: list[dict[str, str]]) -> list[str]:
    cols = list(dict.fromkeys(c for r in rows for c in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r.get(c, "") for c in cols) + " |" for r in rows]
    return lines


def report(args: argparse.Namespace, tables: list[Table], peaks: dict[str, object],
           shape: tuple[int, int], missing: list[str], load: tuple) -> str:
    n, d = shape
    exe = Path(sys.executable)
    exe_text = os.path.relpath(exe) if exe.is_relative_to(Path.cwd()) else exe.name
    command = shlex.join([exe_text, os.path.relpath(__file__), *sys.argv[1:]])
    own = ", ".join(f"{k} {peaks[k]:,.0f} G op/s" for k in ("int8", "fp16") if k in peaks)
    ref = METHODS[REFERENCE[args.device]].label
    out = [f"## Search: exact k-NN on {args.device.upper()}", "",
           f"Written by `benchmarks/search.py` on {dt.date.today().isoformat()}.", "",
           f"    {command}", "",
           *machine(args.device, peaks),
           f"- Load average (1, 5, 15 min) at the start {fmt_load(load[0])}, at the end "
           f"{fmt_load(load[1])}",
           f"- GEMM peak measured in this run ({peaks['size']}² torch matmul, best of several): "
           f"fp32 {peaks['fp32']:,.0f} GFLOP/s; for context {own}", "",
           f"Every sample against all {n:,} training images ({d}-d), k = {args.k}. Seconds: wall "
           "time from uint8 arrays in memory to the neighbour indices, index building included, "
           "each method in a fresh process"
           + (f", fastest of {args.repeat}" if args.repeat > 1 else "")
           + f". GFLOP/s = 2·M·N·D / seconds. Memory: peak RSS during the call above the RSS "
           f"before it (data loaded, library imported). Speed-up: against {ref}. Exactness: "
           f"compared with copyscope's neighbours, which are checked against float64 (notes).",
           ""]
    if missing:
        out += [f"Not run (library not installed): {', '.join(missing)}.", ""]
    for t in tables:
        out += [f"### {t.m:,} samples × {n:,} training images", "", *markdown(t.rows), ""]
        out += [f"- {note}" for note in t.notes] + [""]
    out += ["### Reading", "", reading(args, tables, peaks), ""]
    return "\n".join(out)


def fmt_load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in load)


def reading(args: argparse.Namespace, tables: list[Table], peaks: dict[str, object]) -> str:
    """One paragraph stating what the tables show, written from their numbers."""
    ref = REFERENCE[args.device]
    ref_label, k = METHODS[ref].label, args.k
    text = []
    timed = []
    for t in tables:
        if {"copyscope", ref} <= t.facts.keys():
            ours, theirs = t.facts["copyscope"], t.facts[ref]["seconds"]
            timed.append(f"{t.m:,} samples in {ours['seconds']:.2f} s against {theirs:.2f} s for "
                         f"{ref_label} ({theirs / ours['seconds']:.2f}× its speed; "
                         f"{ours['gflops']:,.0f} GFLOP/s, "
                         f"{100 * ours['gflops'] / peaks['fp32']:.0f}% of the measured fp32 peak)")
    if timed:
        text.append(f"copyscope's exact int8 search did {join(timed)}.")
    inexact = [f"{METHODS[name].label} got all {k} distances right for "
               f"{share(round(f['knn_exact'] * t.m), t.m)} of the {t.m:,} samples"
               for t in tables for name, f in t.facts.items() if f.get("knn_exact", 1.0) < 1.0]
    if inexact:
        text.append("Not every method is exact: " + "; ".join(inexact) + ".")
    else:
        text.append(f"Every timed method returned the exact {k} nearest distances for every "
                    "sample (a different index at an equal distance is a tie, not an error).")
    hunted = [t for t in tables if "hunt" in t.facts]
    if hunted:
        h = hunted[0].facts["hunt"]
        text.append(
            f"The SSIM hunt reached {100 * h['coverage']:.1f}% of the training set per sample in "
            f"its {args.hunt_budget:g} s budget; searching all of it for all {hunted[0].m:,} "
            f"samples at its pace would take about {h['seconds'] / 3600:,.1f} hours "
            "(extrapolated), and what it does not reach it cannot call a copy.")
    return " ".join(text)


def join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=None,
                   help="default: " + "; ".join(f"{d}: {' '.join(m)}"
                                                for d, m in DEFAULT_METHODS.items()))
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--repeat", type=int, default=1, help="fresh runs per method (fastest kept)")
    p.add_argument("--verify", type=int, default=300, help="samples checked against float64")
    p.add_argument("--hunt-samples", type=int, default=5)
    p.add_argument("--hunt-budget", type=float, default=1.0, help="seconds per hunted sample")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 6,000 training images, 500 and 2,000 samples, short hunt; "
                        "RESULTS.md is left alone unless --results is given")
    p.add_argument("--data", type=Path, help="MNIST .npz when the copyscope cache is absent")
    p.add_argument("--results", type=Path, help=f"markdown file to update (default {RESULTS})")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "peaks":
        (args.work / "peaks.json").write_text(json.dumps(gemm_peaks(args.device)))
        return
    if args.child:
        child(args.child, args.work, args)
        return
    args.methods = args.methods or DEFAULT_METHODS[args.device]
    if "copyscope" not in args.methods:
        args.methods = ["copyscope", *args.methods]  # the exactness reference
    if args.quick:
        args.samples, args.hunt_samples, args.hunt_budget, args.verify = [500, 2000], 2, 0.2, 100
    try:
        section = benchmark(args)
    except CopyscopeError as e:
        sys.exit(str(e))
    print("\n" + section)
    target = args.results or (None if args.quick else RESULTS)
    if target is not None:
        replace_section(target, f"search:{args.device}", section)
        print(f"\nupdated the {args.device} search section of {target}")


if __name__ == "__main__":
    main()
