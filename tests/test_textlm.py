"""The text LM and gzip on text: likelihoods, training and resume, seeded sampling, the codec on
bytes, k-extractability and membership of a memorised text, and refusals in one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from copyscope.compress.codec import decode, encode, read_header
from copyscope.data.textspec import load_corpus
from copyscope.errors import CopyscopeError
from copyscope.models.base import DensityModel, Generator, Trainable
from copyscope.models.checkpoints import checkpoints
from copyscope.models.gzipmodel import GzipConfig, GzipModel
from copyscope.models.textlm import TextLM, TextLMConfig, blocks
from copyscope.stages import measure_text
from copyscope.stages.extract import extract
from copyscope.stages.measure import measure
from copyscope.stages.sample import sample
from copyscope.stages.train import TrainConfig, load_model, train

pytestmark = pytest.mark.usefixtures("one_thread")
HASH = "cd" * 32
REPO = Path(__file__).resolve().parents[1]
TINY = {"context": 16, "layers": 2, "dim": 16, "heads": 2, "length": 40}
MEMORISE = {"context": 32, "layers": 2, "dim": 64, "heads": 4, "lr": 0.003, "min_lr": 0.0003,
            "warmup": 20, "decay_steps": 300, "length": 64}


def tiny_lm(**kw) -> TextLM:
    torch.manual_seed(0)
    return TextLM(TextLMConfig(**(TINY | kw))).eval()


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> dict[str, Path]:
    """600 bytes of one sonnet (to memorise) and of another (never seen), as .txt folders."""
    sonnets = load_corpus("shakespeare:train[48:49]").text(0)
    root = tmp_path_factory.mktemp("texts")
    out = {}
    for name, start in (("seen", "Shall I compare thee"), ("unseen", "When in disgrace")):
        (root / name).mkdir()
        i = sonnets.index(start)
        (root / name / f"{name}.txt").write_text(sonnets[i : i + 600])
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def memorised(texts, tmp_path_factory) -> Path:
    """A tiny LM trained 300 steps on the 600-byte sonnet (one batch of 32 windows an epoch)."""
    config = TrainConfig(family="textlm", train=str(texts["seen"]), epochs=300, batch_size=32,
                         checkpoint_every=300, model=MEMORISE)
    return train(config, tmp_path_factory.mktemp("runs") / "lm", device="cpu", show=False)


def test_the_lm_is_a_trainable_density_model_whose_two_paths_agree():
    model = tiny_lm()
    assert all(isinstance(model, p) for p in (Trainable, DensityModel, Generator))
    assert blocks(40, 16) == [(0, 16, 0), (16, 24, 9), (24, 32, 17), (32, 40, 25)]
    x = torch.randint(0, 256, (3, 40), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(1))
    seen: list[torch.Tensor] = []

    def teacher(probs: torch.Tensor) -> torch.Tensor:
        seen.append(probs)
        return x[:, len(seen) - 1]

    with torch.inference_mode():
        assert torch.equal(model.autoregress(3, teacher, length=40), x)
        cond = model.conditionals(x)  # parallel windows, (3, 40, 256)
        stepped = torch.stack(seen, 1)  # KV-cached, byte by byte
        assert torch.allclose(cond, stepped, atol=1e-5)
        assert torch.allclose(cond.sum(-1), torch.ones(3, 40), atol=1e-5)
        log_p = cond.log().gather(2, x[..., None].long())[..., 0].sum(1)
        assert torch.allclose(model.log_prob(x), log_p, atol=1e-3)
        changed = x.clone()
        changed[:, 20] += 1  # a byte changes only what comes after it (within its windows)
        assert torch.equal(model.conditionals(changed)[:, :21], cond[:, :21])


def test_training_windows_never_cross_a_document_and_resume_exactly(tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    folder.mkdir()
    corpus = load_corpus("shakespeare:train[30:31]").text(0)
    for k in range(2):  # two documents of 256 bytes: 32 windows of 16 bytes an epoch, 2 steps
        (folder / f"d{k}.txt").write_text(corpus[256 * k : 256 * (k + 1)])
    config = TrainConfig(family="textlm", train=str(folder), epochs=3, batch_size=16,
                         model=TINY)
    clean = train(config, tmp_path / "clean", device="cpu", show=False)
    record = json.loads((clean / "run.json").read_text())["stages"]["train"]
    assert record["inputs"]["kind"] == "text" and record["inputs"]["epoch"]["windows"] == 32
    assert record["steps_done"] == 6
    real_step, batches = TextLM.train_step, []

    def interrupted(self, batch, optimizers):
        batches.append(batch.clone())
        if len(batches) == 5:  # mid-epoch 3
            raise KeyboardInterrupt
        return real_step(self, batch, optimizers)

    monkeypatch.setattr(TextLM, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", device="cpu", show=False)
    monkeypatch.undo()
    data = load_corpus(str(folder)).data.tobytes()
    halves = (data[:256], data[256:])
    for b in batches:  # every window lies inside one document
        assert all(any(bytes(w) in h for h in halves) for w in b.numpy())
    assert [p.name for p in checkpoints(tmp_path / "resumed" / "checkpoints")] == [
        "epoch-0001.safetensors", "epoch-0002.safetensors"]
    train(config, tmp_path / "resumed", device="cpu", show=False)
    last = "checkpoints/epoch-0003.safetensors"
    a, b = load_file(str(clean / last)), load_file(str(tmp_path / "resumed" / last))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_greedy_decoding_extracts_the_memorised_text_and_not_unseen_text(memorised, texts,
                                                                         tmp_path):
    result = extract(memorised, tmp_path / "x", heldout=str(texts["unseen"]), prompts=20,
                     prefixes=(8, 32), suffix=50, show=False)
    s = result.summary
    assert s.by_prefix["train"]["32"]["rate"] >= 0.75  # memorised: most prompts continue exactly
    assert s.by_prefix["heldout"]["32"]["extracted"] == 0  # never saw it: nothing extracted
    assert s.by_prefix["heldout"]["8"]["extracted"] == 0
    table = result.table
    train_rows = table[table["set"] == "train"]
    assert (train_rows["count"] >= 1).all() and set(train_rows["count_bin"]) <= {"1", "2-3"}
    assert (table.loc[table["set"] == "heldout", "count"] == 0).all()
    seen = (texts["seen"] / "seen.txt").read_text()
    for row in train_rows[train_rows["extracted"]].itertuples():
        assert seen[row.offset : row.offset + 50] == row.generated
    assert s.by_count["train"]["32"]["1"]["n"] == int((train_rows.query(
        "prefix_bytes == 32")["count_bin"] == "1").sum())
    again = extract(memorised, tmp_path / "x", heldout=str(texts["unseen"]), prompts=20,
                    prefixes=(8, 32), suffix=50, show=False)
    assert again.table.equals(table)


def test_membership_and_bits_of_the_memorised_text(memorised, texts, tmp_path, monkeypatch):
    monkeypatch.setattr(measure_text, "CHUNK_BYTES", 64)  # 9 chunks of each 600-byte text
    result = measure(memorised, tmp_path / "m", heldout=str(texts["unseen"]), files=1,
                     show=False)
    s, table = result.summary, result.items
    assert s.kind == "text" and s.dims == 64
    assert (table["set"] == "train").sum() == 9 and (table["set"] == "heldout").sum() == 9
    for score in ("loss", "zlib_ratio", "min_20pct"):
        assert s.membership[score]["auc"] == 1.0 and s.membership[score]["tpr_at_1pct_fpr"] == 1
    train_rates, held = s.rates["train"], s.rates["heldout"]
    assert train_rates["model"]["chunk_bpb"] < 0.5 * train_rates["gzip"]["chunk_bpb"]
    assert held["model"]["chunk_bpb"] > train_rates["model"]["chunk_bpb"]
    assert train_rates["model"]["file_bpb"] < train_rates["gzip"]["file_bpb"]
    assert train_rates["model"]["chunk_adjusted_rate"] > train_rates["model"]["chunk_raw_rate"]
    assert (table["bits_model"] >= table["bits_ideal"]).all()
    assert s.stored_bits["total"] > 0


def test_codec_round_trips_bytes_for_the_lm_and_gzip(texts):
    data = np.frombuffer((texts["seen"] / "seen.txt").read_bytes()[:120], np.uint8)
    items = data.reshape(3, 40).copy()
    gz = GzipModel(GzipConfig(length=40))
    gz.fit(torch.from_numpy(data.copy()))
    for model in (tiny_lm(), gz):
        for batch in (1, 2):
            coded = encode(model, HASH, items, batch=batch, show=False)
            assert read_header(coded.data).shape == (1, 40, 1)
            assert np.array_equal(decode(model, HASH, coded.data, show=False), items)
            assert coded.payload_bits <= coded.bits_ideal * 1.01 + 64
    with pytest.raises(CopyscopeError, match="codes texts"):
        encode(tiny_lm(), HASH, items[:, :, None, None], show=False)
    long = np.zeros((1, 70000), np.uint8)
    with pytest.raises(CopyscopeError, match="65,535"):
        encode(tiny_lm(), HASH, long, show=False)


def test_sampling_is_seeded_and_writes_bytes_and_texts(memorised, tmp_path):
    a = sample(memorised, 5, out=tmp_path / "a", seed=3, batch_size=5, device="cpu", show=False)
    b = sample(memorised, 5, out=tmp_path / "b", seed=3, batch_size=5, device="cpu", show=False)
    c = sample(memorised, 5, out=tmp_path / "c", seed=4, batch_size=5, device="cpu", show=False)
    shard = "samples/shard-00000.npy"
    raw = np.load(a / shard)
    assert raw.shape == (5, 64) and raw.dtype == np.uint8
    assert np.array_equal(raw, np.load(b / shard)) and not np.array_equal(raw, np.load(c / shard))
    texts = load_corpus(str(a)).texts()  # the run directory is a text SPEC
    assert texts == [bytes(r).decode("utf-8", errors="replace") for r in raw]


def test_gzip_on_text_keeps_its_bytes_and_samples_seeded(texts, tmp_path):
    run = train(TrainConfig(family="gzip", train=str(texts["seen"]), model={"length": 24}),
                tmp_path / "gz", show=False)
    model, _ = load_model(run)
    assert model.kind == "text"
    assert model.context.numpy().tobytes() == (texts["seen"] / "seen.txt").read_bytes()
    one = model.generate(2, torch.Generator().manual_seed(5))
    assert one.shape == (2, 24)
    assert torch.equal(one, model.generate(2, torch.Generator().manual_seed(5)))
    assert not torch.equal(one, model.generate(2, torch.Generator().manual_seed(6)))
    x = one.clone()
    assert torch.allclose(model.log_prob(x), model.conditionals(x).gather(
        2, x[..., None].long())[..., 0].log().sum(1))


def test_bad_inputs_are_one_sentence(memorised, texts, tmp_path, run_cli):
    cases = [
        (["train", "--family", "textlm", "--train", "mnist:train[:10]", "--out",
          tmp_path / "a"], "is not a known corpus"),
        (["train", "--family", "textlm", "--train", texts["seen"], "--set", "context=1024",
          "--out", tmp_path / "b"], "no document is at least 1024 bytes long"),
        (["train", "--family", "textlm", "--train", texts["seen"], "--set", "dim=30",
          "--out", tmp_path / "c"], "dim must be a multiple of heads"),
        (["text", "extract", memorised, "--out", tmp_path / "d", "--heldout", texts["unseen"],
          "--prompts", "0"], "prompts must be at least 1"),
        (["text", "extract", memorised, "--out", tmp_path / "e", "--heldout", texts["unseen"],
          "--prefix", "600"], "no document is at least 650 bytes long"),
        (["text", "extract", memorised, "--out", tmp_path / "f", "--heldout",
          texts["seen"]], "is the model's training text itself"),
        (["compress", "measure", memorised, "--out", tmp_path / "g", "--heldout",
          texts["unseen"], "--train", "mnist:test"], "--train is for image runs"),
        (["text", "extract", tmp_path / "nothing", "--out", tmp_path / "h"],
         "holds no training run"),
        (["text", "extract", REPO / "models" / "pixelcnn-3000", "--out", tmp_path / "i"],
         "this needs a model trained on text"),
        (["compress", "measure", REPO / "models" / "pixelcnn-3000", "--out", tmp_path / "j",
          "--files", "2"], "--files is for text runs"),
    ]
    for args, message in cases:
        code, out = run_cli(*args)
        assert code == 2 and message in out and "Traceback" not in out, (args, out)
        assert len(out.strip().splitlines()) <= 2, out
