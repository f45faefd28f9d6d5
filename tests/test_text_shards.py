"""Text at scale: an index built in shards answers exactly as one index over the whole corpus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from copyscope.data.corpus import from_texts
from copyscope.errors import CopyscopeError
from copyscope.text import SuffixIndex, measure
from copyscope.text.sharded import ShardedIndex, open_index, shard_bounds


def corpus_and_texts():
    """Documents over a small alphabet (with accents, so byte and character offsets differ)
    that share long passages, and texts stitched from pieces of them."""
    rng = np.random.default_rng(1)
    alphabet = list("abcé ")
    base = "".join(rng.choice(alphabet, 400))
    docs = ["".join(rng.choice(alphabet, int(rng.integers(20, 200)))) + base[i * 7:i * 7 + 90]
            for i in range(30)]
    texts = [docs[3][5:80] + "".join(rng.choice(alphabet, 30)) + docs[25][:120],
             base[50:300], "".join(rng.choice(alphabet, 150)), "é"]
    return from_texts(docs, ids=[f"d{i}" for i in range(30)]), from_texts(texts)


def test_a_sharded_index_gives_the_longest_matches_of_one_index(tmp_path):
    corpus, texts = corpus_and_texts()
    whole = SuffixIndex.build(corpus, show=False)
    sharded = ShardedIndex.build(corpus, tmp_path / "idx", shard_bytes=600, show=False)
    assert len(sharded.shards) >= 5 and len(sharded) == 30
    stored = open_index(tmp_path / "idx")
    assert isinstance(stored, ShardedIndex) and not stored.shards[0].sa.flags.owndata
    query = np.frombuffer("".join(texts.texts()).encode(), np.uint8)
    a, b = whole.matches(query), stored.matches(query)
    assert np.array_equal(a.length, b.length) and np.array_equal(a.count, b.count)
    found = [corpus.document(d)[o:o + n] for d, o, n in zip(b.doc, b.offset, b.length,
                                                          strict=True)]
    assert found == [query[i:i + n].tobytes() for i, n in enumerate(b.length)]
    one, many = measure(whole, texts, min_length=20), measure(stored, texts, min_length=20)
    pd.testing.assert_frame_equal(one.texts, many.texts)
    same = ["text", "id", "start", "length", "count"]
    pd.testing.assert_frame_equal(one.spans[same], many.spans[same])
    assert len(one.spans) >= 2
    for span in many.spans.itertuples():  # each source is a real occurrence of the span
        doc = corpus.text(int(span.source_id[1:]))
        assert doc[span.source_offset:span.source_offset + span.length] == \
            texts.text(span.text)[span.start:span.start + span.length]


def test_shards_hold_whole_documents_within_the_budget():
    offsets = np.array([0, 10, 20, 200, 205, 210])  # documents of 10, 10, 180, 5 and 5 bytes
    assert list(shard_bounds(offsets, 30)) == [0, 2, 3, 5]  # the long one gets its own shard
    assert list(shard_bounds(offsets, 10**6)) == [0, 5]


def test_cli_builds_a_sharded_index_and_finds_the_same_spans(tmp_path, run_cli):
    corpus, texts = corpus_and_texts()
    folder, queries = tmp_path / "corpus", tmp_path / "texts"
    for where, c in ((folder, corpus), (queries, texts)):
        where.mkdir()
        for i, t in enumerate(c.texts()):
            (where / f"{i:03d}.txt").write_text(t)
    assert run_cli("text", "index", folder, "--out", tmp_path / "one")[0] == 0
    code, out = run_cli("text", "index", folder, "--out", tmp_path / "many", "--shard-bytes",
                        "700")
    assert code == 0, out
    assert (tmp_path / "many" / "shard-0003" / "sa.npy").is_file()
    for name in ("one", "many"):
        code, out = run_cli("text", "spans", tmp_path / name, "--texts", queries, "--out",
                            tmp_path / f"spans-{name}", "--min-length", "20", "--heldout",
                            "none")
        assert code == 0, out
    one = pd.read_parquet(tmp_path / "spans-one" / "texts.parquet")
    many = pd.read_parquet(tmp_path / "spans-many" / "texts.parquet")
    pd.testing.assert_frame_equal(one, many)
    (tmp_path / "many" / "shard-0002" / "index.json").unlink()
    with pytest.raises(CopyscopeError, match="not a copyscope text index"):
        open_index(tmp_path / "many")
