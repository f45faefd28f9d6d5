"""Text benchmark: the suffix-array index and longest-match spans, beside what a user would pick.

    nice -n 10 .venv/bin/python benchmarks/text.py             # the published run
    .venv/bin/python benchmarks/text.py --repeat 1 --no-infini-gram --results out.md   # quick

One run on the Shakespeare training split (shakespeare:train, seed 0: 64 texts, 8.07 MB), its
held-out split (13 texts of 8 works, 1.47 MB) as queries:

  build    copyscope's SuffixIndex.build (separators, suffix array, inverse suffix array, LCP
           array, files written) beside pydivsufsort.divsufsort alone on the same bytes, and the
           PyPI package infini-gram's indexer (u8 tokens = raw bytes, no tokenizer) on the same
           documents. Best of --repeat runs, Numba compilation excluded (warmed up first).
  queries  longest match at every byte: the held-out split (1.47 MB, short matches), and 1 MB of
           training text (every match runs to the end of its text: the worst case for methods
           that re-scan a match); and measure() (character conversion, spans, novelty) on the
           held-out split cut into 1,000-character texts.
  cross-check  infini-gram's creativity() against copyscope's longest matches at 1,000 byte
           positions (five held-out and five training passages of 100 bytes), and the time of
           each for those positions.
  duplication  duplication(): how much of each First Folio text lies verbatim
           (spans >= 50 characters) in its modern edition.
  control  the held-out null of longest_span for chunks of 200, 1,000 and 5,000 characters.

With --highlight, only the Text tab's query: highlight() on 10 KB of text with the index opened
once, beside the spans stage per request; it writes its own section (text-app).

Only the text (or text-app) section of benchmarks/RESULTS.md, between its markers, is rewritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
from results import cpu_name, replace_section

from copyscope.data import shakespeare
from copyscope.data.corpus import TextCorpus, from_texts
from copyscope.rundir import versions
from copyscope.text import SuffixIndex, measure
from copyscope.text.control import chunks, heldout_text
from copyscope.text.duplication import duplication
from copyscope.text.index import with_separators

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "RESULTS.md"
SEED = 0
PASSAGE = 100


CPU = {}
"""CPU seconds (all threads of this process) of the fastest run of each timed call, by label."""


def best(fn: Callable[[], object], repeat: int, label: str = "") -> tuple[float, object]:
    """Fastest wall time of ``repeat`` runs; its CPU time is kept in CPU[label]."""
    times, out = [], None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    wall, CPU[label] = min(times)
    return wall, out


def infini_gram_build(corpus: TextCorpus, where: Path) -> tuple[float, str | None]:
    """Index the corpus with infini-gram's own indexer; return (seconds, why not or None).

    Its tokenize step imports transformers even with no tokenizer, so the tokenized files are
    written here in its format (0xFF before every document's bytes; u64 document offsets), which
    makes the indexer skip that step; the timed part is its suffix-array build (Rust)."""
    try:
        metadata.version("infini-gram")
    except metadata.PackageNotFoundError:
        return 0.0, "the PyPI package infini-gram is not installed"
    where.mkdir(parents=True, exist_ok=True)
    with open(where / "tokenized.0", "wb") as data, open(where / "offset.0", "wb") as offsets:
        at = 0
        for d in range(len(corpus)):
            doc = b"\xff" + corpus.document(d)
            offsets.write(np.array([at], np.uint64).tobytes())
            data.write(doc)
            at += len(doc)
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    cmd = [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(where / "none"),
           "--save_dir", str(where), "--token_dtype", "u8", "--cpus", str(os.cpu_count()),
           "--mem", "8", "--ulimit", str(files)]
    (where / "none").mkdir(exist_ok=True)
    start, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["infini-gram"] = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    if run.returncode != 0 or not (where / "table.0").exists():
        tail = (run.stderr or run.stdout).strip().splitlines()[-1:]
        return seconds, f"its indexer failed ({' '.join(tail)})"
    return seconds, None


def infini_gram_creativity(where: Path, queries: list[bytes]) -> tuple[float, list[list[int]]]:
    from infini_gram.engine import InfiniGramEngine

    # u8 engines take vocab_size as a byte: 255, so the (unused) eos id must be below it
    engine = InfiniGramEngine(index_dir=str(where), eos_token_id=254, vocab_size=255,
                              version=4, token_dtype="u8")
    start = time.perf_counter()
    rs = [engine.creativity(input_ids=list(q))["rs"] for q in queries]
    seconds = time.perf_counter() - start
    return seconds, [[r - i for i, r in enumerate(x)] for x in rs]


def passages(corpus: TextCorpus, n: int, rng: np.random.Generator) -> list[bytes]:
    out = []
    for d in rng.choice(len(corpus), n, replace=False):
        doc = corpus.document(int(d))
        s = int(rng.integers(0, len(doc) - PASSAGE))
        out.append(doc[s:s + PASSAGE])
    return out


def machine() -> list[str]:
    cpu = cpu_name()
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    v = versions()
    libs = [f"{p} {v[p]}" for p in ("python", "numpy") if p in v]
    for pkg in ("pydivsufsort", "numba", "infini-gram"):
        try:
            libs.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            libs.append(f"{pkg} (not installed)")
    return [f"- CPU: {cpu}, {os.cpu_count()} logical cores, {ram:.0f} GiB RAM; {v['platform']}",
            f"- Libraries: {', '.join(libs)}"]


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def table(rows: list[dict[str, str]]) -> list[str]:
    cols = list(rows[0])
    return (["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            + ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows])


def mbs(nbytes: int, seconds: float) -> str:
    return f"{nbytes / 1e6 / seconds:.2f}"


def row(what: str, nbytes: int, wall: float, label: str) -> dict[str, str]:
    cpu = CPU[label]
    return {"what": what, "wall s": f"{wall:.2f}", "MB/s (wall)": mbs(nbytes, wall),
            "CPU s": f"{cpu:.2f}", "MB per CPU-second": mbs(nbytes, cpu)}


def benchmark(args: argparse.Namespace) -> str:
    import pydivsufsort

    load_start = load()
    train, held = shakespeare.load("train"), shakespeare.load("heldout")
    text, _ = with_separators(train)
    warm = SuffixIndex.build(held.select([0]), show=False)  # compile the Numba loops
    warm.matches(held.document(0)[:1000])

    t_sa, _ = best(lambda: pydivsufsort.divsufsort(text), args.repeat, "sa")
    t_mem, index = best(lambda: SuffixIndex.build(train, show=False), args.repeat, "mem")
    with tempfile.TemporaryDirectory() as tmp:
        t_disk, _ = best(lambda: SuffixIndex.build(train, Path(tmp) / "i", show=False),
                         args.repeat, "disk")
    parts = index.meta["timings_s"]
    n = train.nbytes
    build_rows = [
        row("pydivsufsort.divsufsort alone (suffix array only)", n, t_sa, "sa"),
        row("copyscope SuffixIndex.build, in memory (SA + ISA + LCP)", n, t_mem, "mem"),
        row("copyscope SuffixIndex.build to disk (+ 5 files, index.json)", n, t_disk, "disk")]

    q_held = np.frombuffer(with_separators(held)[0], np.uint8)
    copied = train.data[:1_000_000]
    t_qh, m_held = best(lambda: index.matches(q_held), args.repeat, "held")
    t_qc, m_copied = best(lambda: index.matches(copied), args.repeat, "copied")
    pieces = [held.text(d)[i:i + 1000] for d in range(len(held))
              for i in range(0, len(held.text(d)) - 999, 1000)]
    texts = from_texts(pieces)
    t_spans, spans = best(lambda: measure(index, texts), args.repeat, "spans")
    query_rows = [
        row(f"held-out split, whole texts ({q_held.size / 1e6:.2f} MB)", q_held.size, t_qh,
            "held") | {"mean / max match": f"{m_held.length.mean():.1f} / "
                                           f"{m_held.length.max():,} bytes"},
        row("training text, entirely copied (1.00 MB)", copied.size, t_qc, "copied")
        | {"mean / max match": f"{m_copied.length.mean():,.0f} / "
                               f"{m_copied.length.max():,} bytes"},
        row(f"measure(): {len(texts):,} held-out texts of 1,000 characters "
            f"({texts.nbytes / 1e6:.2f} MB)", texts.nbytes, t_spans, "spans")
        | {"mean / max match": f"{spans.creativity.mean():.1f} / "
                               f"{spans.creativity.max():,} characters"}]

    rng = np.random.default_rng(SEED)
    queries = passages(held, 5, rng) + passages(train, 5, rng)
    start = time.perf_counter()
    ours = [index.matches(q).length for q in queries]
    t_ours = time.perf_counter() - start
    cross: list[str]
    infini_row = None
    if args.infini_gram:
        with tempfile.TemporaryDirectory() as tmp:
            t_ig, why = infini_gram_build(train, Path(tmp))
            if why is None:
                infini_row = row("infini-gram 2.6 indexer (u8 = raw bytes; Rust SA build, 2 "
                                 "workers)", n, t_ig, "infini-gram")
                t_igq, theirs = infini_gram_creativity(Path(tmp), queries)
                agree = sum(int(np.sum(np.asarray(t) == o)) for t, o in
                            zip(theirs, ours, strict=True))
                total = sum(len(q) for q in queries)
                differ = [(k, i, int(o[i]), int(np.asarray(t)[i]))
                          for k, (t, o) in enumerate(zip(theirs, ours, strict=True))
                          for i in np.flatnonzero(np.asarray(t) != o)]
                cross = [
                    f"- Longest match at {total:,} byte positions (5 held-out and 5 training "
                    f"passages of {PASSAGE} bytes): equal at {agree:,} of {total:,}."
                    + (f" Where they differ (passage, position, copyscope, infini-gram): "
                       f"{differ[:5]}." if differ else ""),
                    f"- Time for those positions: copyscope {1e3 * t_ours:.2f} ms, infini-gram "
                    f"creativity() {1e3 * t_igq:.0f} ms ({t_igq / max(t_ours, 1e-9):,.0f}x).",
                ]
            else:
                cross = [f"- infini-gram could not be run: {why}."]
    else:
        cross = ["- infini-gram cross-check skipped (--no-infini-gram)."]
    if infini_row:
        build_rows.append(infini_row)

    dup = duplication()
    dup_lines = table([{
        "work": r.title, "modern / Folio file": f"{r.modern} / {r.folio}",
        "Folio chars": f"{r.folio_chars:,}", "longest span": f"{r.longest_span:,}",
        "spans >= 50": f"{r.spans:,}", "Folio chars in them": f"{100 * r.copied_share:.1f}%"}
        for r in dup.itertuples()])
    null = heldout_text(index, held)
    null_rows = []
    for length in (200, 1000, 5000):
        c = chunks(null, length, 50)
        ls = c["longest_span"].to_numpy()
        null_rows.append({
            "chunk (characters)": f"{length:,}", "chunks": f"{len(c):,}",
            "median longest span": f"{np.median(ls):g}",
            "99th / 99.9th percentile": f"{np.quantile(ls, 0.99, method='higher')} / "
                                        f"{np.quantile(ls, 0.999, method='higher')}",
            "max": f"{ls.max():,}", "chunks with a span >= 50": f"{np.mean(ls >= 50):.2%}"})

    exe = Path(sys.executable)
    command = shlex.join([f"{exe.parent.parent.name}/bin/{exe.name}", "benchmarks/text.py",
                          *sys.argv[1:]])
    lines = [
        "## Text: suffix-array index and longest-match spans", "",
        f"Written by `benchmarks/text.py` on {dt.date.today().isoformat()}.", "",
        f"    {command}", "",
        *machine(),
        f"- Load average (1, 5, 15 min) at the start {load_start}, at the end {load()}. "
        f"{args.note} CPU s is the CPU time of the run (all its threads; for infini-gram, its "
        "indexer processes): MB per CPU-second is the rate on a core of one's own.",
        f"- Corpus: shakespeare:train (seed 0): {len(train)} texts, {n / 1e6:.2f} MB; queries from "
        f"shakespeare:heldout ({len(held)} texts of 8 works). Best of {args.repeat} runs.", "",
        "### Index build", "", *table(build_rows), "",
        f"Inside the in-memory build: suffix array {parts['suffix_array']:.2f} s, inverse and "
        f"LCP arrays (Numba, Φ algorithm) {parts['inverse_and_lcp']:.2f} s. The LCP and inverse "
        "arrays are what make every query O(L log n) however long its matches are.", "",
        "### Longest match at every position", "", *table(query_rows), "",
        "### Cross-check with infini-gram (Liu et al. 2024)", "", *cross, "",
        "### Duplication: the two editions of each play", "",
        f"Share of each First Folio text inside verbatim spans of at least 50 characters found "
        f"in its modern (Gutenberg) edition: median {dup['copied_share'].median():.1%}, range "
        f"{dup['copied_share'].min():.1%}-{dup['copied_share'].max():.1%} over "
        f"{len(dup)} plays. The editions are the same plays, but Folio spelling (vnfold, "
        "heare, selfe) breaks most 50-character runs: near-duplicates, rarely verbatim.", "",
        *dup_lines, "",
        "### Held-out null: longest verbatim span of unseen Shakespeare", "", *table(null_rows),
    ]
    return "\n".join(lines) + "\n"


def highlight_queries(train: TextCorpus, held: TextCorpus, size: int = 10_000
                      ) -> dict[str, str]:
    """10 KB queries: unseen text (a few short matches) and training passages of 500 characters
    joined by unseen ones (20 long spans, each with its source passage)."""
    unseen = held.text(1)[:size]
    copied, k = [], 0
    while sum(map(len, copied)) < size:
        doc = train.text(k % len(train))
        at = (k * 7919) % max(1, len(doc) - 500)
        copied += [doc[at:at + 500], held.text(2)[k * 37:k * 37 + 20]]
        k += 1
    return {"unseen text (10 KB)": unseen, "copied passages (10 KB)": "".join(copied)[:size]}


def highlight_benchmark(args: argparse.Namespace) -> str:
    """The app's Text tab: highlight() on 10 KB (index opened once) against the spans stage per
    request (find_spans: opens the index and the held-out control each time)."""
    from copyscope.analysis.texts import open_lookup
    from copyscope.stages.text import find_spans, index_corpus
    from copyscope.text.highlight import highlight

    load_start = load()
    train, held = shakespeare.load("train"), shakespeare.load("heldout")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index_corpus(train, Path(tmp) / "index", show=False)
        find_spans(Path(tmp) / "index", held.select([0]), Path(tmp) / "spans", show=False)
        lookup = open_lookup(Path(tmp) / "spans")
        for name, q in highlight_queries(train, held).items():
            query = from_texts([q], source="query")
            highlight(lookup, q)  # the held-out cache and the Numba loops, once
            t_all, _ = best(lambda q=q: highlight(lookup, q).html, args.repeat, "hl")
            t_match, _ = best(lambda query=query: measure(lookup.index, query, novelty_n=()),
                              args.repeat, "match")
            t_null, _ = best(lambda q=q: chunks(lookup.heldout, len(q), 50), args.repeat,
                             "null")
            t_stage, _ = best(lambda query=query: find_spans(Path(tmp) / "index", query,
                                                             show=False), args.repeat, "stage")
            spans = highlight(lookup, q)
            rows.append({"query": name, "spans": f"{len(spans.spans)}",
                         "highlight() ms": f"{1e3 * t_all:.1f}",
                         "of which matching ms": f"{1e3 * t_match:.1f}",
                         "of which held-out null ms": f"{1e3 * t_null:.1f}",
                         "find_spans per request ms": f"{1e3 * t_stage:.1f}"})
    command = "nice -n 10 .venv/bin/python benchmarks/text.py --highlight"
    return "\n".join([
        "## Text tab: one 10 KB text against the Shakespeare index", "",
        f"Written by `benchmarks/text.py --highlight` on {dt.date.today()}.", "",
        f"    {command}", "", *machine(),
        f"- Load average at the start {load_start}, at the end {load()} (shared machine).",
        f"- Index: shakespeare:train ({train.nbytes / 1e6:.2f} MB), held-out control "
        f"shakespeare:heldout; best of {args.repeat} runs, after one warm-up query.",
        "- highlight() (copyscope.text.highlight, what the app's Text tab calls): spans, source "
        "passages, held-out judgement and the HTML, with the index opened once "
        "(memory-mapped). Beside it, what a user would do without it: the spans stage "
        "(find_spans, no output folder) per request, which opens the index and the held-out "
        "control again each time.", "", *table(rows)]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-infini-gram", dest="infini_gram", action="store_false")
    parser.add_argument("--highlight", action="store_true",
                        help="only the Text tab's 10 KB query (its own section, text-app)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="a sentence about the machine while it ran")
    args = parser.parse_args()
    if args.highlight:
        section = highlight_benchmark(args)
        replace_section(args.results, "text-app", section)
    else:
        section = benchmark(args)
        replace_section(args.results, "text", section)
    print(section)


if __name__ == "__main__":
    main()
