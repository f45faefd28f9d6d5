"""The model as a lossless compressor: codec round trips, refusals, baselines, gzip as a model,
and the bits a model stores about a training item."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from copyscope.compress import baselines
from copyscope.compress.codec import code_lengths, decode, encode, read_header
from copyscope.compress.format import HEADER_BYTES, MAGIC, VERSION, pixels_sha256
from copyscope.data import load
from copyscope.errors import CopyscopeError
from copyscope.models.base import DensityModel, Trainable
from copyscope.models.checkpoints import checkpoint_meta
from copyscope.models.gzipmodel import GzipConfig, GzipModel
from copyscope.models.pixelcnn import GatedPixelCNN, PixelCNNConfig
from copyscope.stages.coding import decode_file, encode_file
from copyscope.stages.measure import measure
from copyscope.stages.train import TrainConfig, load_model, train

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 6
HASH = "ab" * 32


def tiny(head: str) -> GatedPixelCNN:
    torch.manual_seed(1)
    return GatedPixelCNN(PixelCNNConfig(image_size=SIZE, hidden=4, dilations=(1,),
                                        head=head)).eval()


MODELS = {head: tiny(head) for head in ("softmax", "logistic")}
IMAGES = arrays(np.uint8, st.tuples(st.integers(1, 4), st.just(SIZE), st.just(SIZE), st.just(1)),
                elements=st.integers(0, 255))
SPECIAL = st.sampled_from(["zeros", "full", "noise", "ramp"]).map(
    lambda kind: {"zeros": np.zeros((2, SIZE, SIZE, 1), np.uint8),
                  "full": np.full((1, SIZE, SIZE, 1), 255, np.uint8),
                  "noise": np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 1),
                                                             dtype=np.uint8),
                  "ramp": np.arange(SIZE * SIZE, dtype=np.uint8).reshape(1, SIZE, SIZE, 1)}[kind])


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(images=st.one_of(IMAGES, SPECIAL), head=st.sampled_from(list(MODELS)),
       batch=st.integers(1, 3))
def test_decode_reproduces_every_pixel(images, head, batch):
    model = MODELS[head]
    coded = encode(model, HASH, images, batch=batch, show=False)
    assert np.array_equal(decode(model, HASH, coded.data, show=False), images)
    assert coded.payload_bits <= coded.bits_ideal * 1.01 + 64  # within 1% plus termination


def test_the_header_records_model_count_shape_batch_and_pixels():
    images = np.random.default_rng(1).integers(0, 256, (5, SIZE, SIZE, 1), dtype=np.uint8)
    data = encode(MODELS["softmax"], HASH, images, batch=2, show=False).data
    header = read_header(data)
    assert data[:4] == MAGIC and struct.unpack_from("<H", data, 4)[0] == VERSION
    assert (header.model_sha256, header.count, header.shape, header.batch) == (HASH, 5,
                                                                              (SIZE, SIZE, 1), 2)
    assert header.pixels_sha256 == pixels_sha256(images)


def test_many_images_code_within_one_percent_of_the_ideal():
    images = load("mnist:test[:40]").images[:, 11:17, 11:17]
    coded = encode(MODELS["logistic"], HASH, images, batch=16, show=False)
    assert coded.payload_bits - coded.bits_ideal <= 0.01 * coded.bits_ideal + 64
    lengths = code_lengths(MODELS["logistic"], images, batch=16, show=False)
    assert np.allclose(lengths.bits_ideal.sum(), coded.bits_ideal)
    with torch.inference_mode():
        exact = -MODELS["logistic"].log_prob(torch.from_numpy(np.moveaxis(images, -1, 1).copy()))
    assert np.allclose(lengths.bits_ideal, exact.numpy() / np.log(2), rtol=1e-4)
    assert (lengths.bits_model >= lengths.bits_ideal).all()
    assert (lengths.bits_model <= lengths.bits_ideal + 96).all()


def _rewrite(data: bytes, offset: int, value: bytes) -> bytes:
    body = data[:offset] + value + data[offset + len(value) : -4]
    return body + struct.pack("<I", zlib.crc32(body))


def test_damaged_foreign_and_unknown_files_are_refused():
    model = MODELS["softmax"]
    images = np.random.default_rng(2).integers(0, 256, (3, SIZE, SIZE, 1), dtype=np.uint8)
    data = encode(model, HASH, images, show=False).data
    flipped = bytearray(data)
    flipped[HEADER_BYTES] ^= 0x10
    cases = [
        ("truncated", data[:-7]),
        ("truncated", data[:20]),
        ("corrupt", bytes(flipped)),
        ("format version 9", _rewrite(data, 4, struct.pack("<H", 9))),
        ("not a copyscope compressed file", b"PK\x03\x04" + data[4:]),
    ]
    for message, bad in cases:
        with pytest.raises(CopyscopeError, match=message):
            decode(model, HASH, bad, "x.cs", show=False)
    with pytest.raises(CopyscopeError, match="made by another model"):
        decode(model, "cd" * 32, data, "x.cs", show=False)


def test_floats_that_differ_on_decode_are_caught_by_the_checksum():
    """A decoder whose probabilities drift (another machine) must refuse, not return pixels."""
    images = load("mnist:test[:3]").images[:, 11:17, 11:17]
    data = encode(MODELS["softmax"], HASH, images, show=False).data
    drifted = tiny("softmax")
    with torch.no_grad():
        drifted.out.bias += 1e-3 * torch.randn(256, generator=torch.Generator().manual_seed(0))
    with pytest.raises(CopyscopeError, match=r"fail its checksum|does not decode"):
        decode(drifted, HASH, data, "x.cs", show=False)


def test_shape_and_dtype_are_checked():
    with pytest.raises(CopyscopeError, match="shape"):
        encode(MODELS["softmax"], HASH, np.zeros((2, 7, 7, 1), np.uint8), show=False)
    with pytest.raises(CopyscopeError, match="uint8"):
        encode(MODELS["softmax"], HASH, np.zeros((2, SIZE, SIZE, 1), np.float32), show=False)


def test_baselines_compress_items_alone_and_the_set_whole():
    images = load("mnist:test[:30]").images
    for name, compress in baselines.COMPRESSORS.items():
        per = baselines.bits_per_item(name, images)
        assert per.shape == (30,) and (per > 0).all()
        assert per[3] == 8 * len(compress(images[3:4]))
        assert baselines.bits_whole(name, images) < per.sum(), name  # a set shares structure
    assert baselines.tile(images[:5]).shape == (56, 84, 1)


# -- gzip as a generative model -------------------------------------------------------------

@pytest.fixture(scope="module")
def gzip_model() -> GzipModel:
    model = GzipModel(GzipConfig(image_size=4))
    model.fit(torch.from_numpy(np.moveaxis(load("mnist:train[:3]").images[:, 12:16, 12:16],
                                           -1, 1).copy()))
    return model


def test_gzip_is_a_density_model_and_a_generator_but_not_trainable(gzip_model):
    assert isinstance(gzip_model, DensityModel) and not isinstance(gzip_model, Trainable)
    assert isinstance(MODELS["softmax"], DensityModel) and isinstance(MODELS["softmax"], Trainable)


def test_gzip_conditionals_follow_the_definition(gzip_model):
    """ρ(b | x_<i) ∝ 2^(-ℓ(x_<i b)), ℓ from compressing context and prefix from scratch."""
    x = torch.from_numpy(np.moveaxis(load("mnist:test[:2]").images[:, 12:16, 12:16], -1, 1)
                         .copy())
    probs = gzip_model.conditionals(x)
    assert probs.shape == (2, 4, 4, 256)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 4, 4, dtype=torch.float64))
    context = gzip_model.context.numpy().tobytes()
    item = x[1, 0].flatten().numpy().tobytes()
    for k in (0, 5, 11):
        lengths = []
        for b in range(256):
            coder = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
            out = coder.compress(context) + coder.flush(zlib.Z_SYNC_FLUSH)
            for row in range(0, k, 4):  # each row of the item ends with a sync flush
                out += coder.compress(item[row : min(row + 4, k)])
                if row + 4 <= k:
                    out += coder.flush(zlib.Z_SYNC_FLUSH)
            out += coder.compress(bytes((b,))) + coder.flush()
            lengths.append(8 * len(out))
        expected = np.exp2(-(np.array(lengths) - min(lengths)))
        expected /= expected.sum()
        assert np.allclose(probs[1].reshape(16, 256)[k].numpy(), expected)
    log_p = gzip_model.log_prob(x)
    picked = probs.flatten(1, 2).gather(2, x.flatten(1)[..., None].long())[..., 0]
    assert torch.allclose(log_p, picked.log().sum(1))


def test_gzip_sampling_is_seeded(gzip_model):
    a = gzip_model.generate(2, torch.Generator().manual_seed(5))
    assert torch.equal(a, gzip_model.generate(2, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, gzip_model.generate(2, torch.Generator().manual_seed(6)))
    assert a.shape == (2, 4, 4, 1) and a.dtype == torch.uint8


def test_gzip_round_trips_through_the_codec(gzip_model):
    images = load("mnist:test[:2]").images[:, 12:16, 12:16]
    data = encode(gzip_model, HASH, images, show=False).data
    assert np.array_equal(decode(gzip_model, HASH, data, show=False), images)


def test_gzip_training_stores_the_subset_and_optimises_nothing(tmp_path):
    run = train(TrainConfig(family="gzip", train="mnist:train[:500]", size=7), tmp_path / "g",
                show=False)
    model, path = load_model(run)
    meta = checkpoint_meta(path)
    subset = load("mnist:train[:500]").images[np.load(run / "train_indices.npy")]
    assert np.array_equal(model.context.numpy(), subset)
    assert meta.step == 0 and 1.0 < meta.loss < 8.0


# -- a run's model: files, measure, stored bits ---------------------------------------------

@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> dict[str, Path]:
    """12x12 centre crops of MNIST digits: small enough to train and code in seconds."""
    folder = tmp_path_factory.mktemp("crops")
    paths = {"train": folder / "train.npy", "heldout": folder / "heldout.npy"}
    np.save(paths["train"], load("mnist:train[:20]").images[:, 8:20, 8:20, 0])
    np.save(paths["heldout"], load("mnist:test[:30]").images[:, 8:20, 8:20, 0])
    return paths


@pytest.fixture(scope="module")
def one_image_run(crops, tmp_path_factory) -> Path:
    config = TrainConfig(family="pixelcnn", train=str(crops["train"]), size=1, epochs=100,
                         batch_size=8, checkpoint_every=100,
                         model={"image_size": 12, "hidden": 8, "dilations": [1, 2], "lr": 0.02})
    return train(config, tmp_path_factory.mktemp("runs") / "pixelcnn-1", show=False)


def test_a_model_trained_on_one_image_stores_it_in_bits(one_image_run, crops, tmp_path):
    result = measure(one_image_run, tmp_path / "bits", heldout=str(crops["heldout"]), show=False)
    table, summary = result.items, result.summary
    seen = table[table["set"] == "train"]
    unseen = table[table["set"] == "heldout"]
    assert len(seen) == 1 and seen["item"].iloc[0] == np.load(one_image_run /
                                                               "train_indices.npy")[0]
    assert seen["bits_ideal"].iloc[0] <= 0.10 * unseen["bits_ideal"].mean()
    stored = summary.stored_bits
    assert stored["total_ci95"][0] > 0 and stored["total"] > 0
    assert seen["stored_p"].iloc[0] == pytest.approx(1 / 31)  # beyond every held-out item
    assert summary.membership["bits"]["auc"] == 1.0
    assert summary.rates["train"]["model"]["item_bpd"] < summary.rates["train"]["gzip"]["item_bpd"]
    for column in ("set", "item", "label", "bits_model", "bits_ideal", "bits_gzip", "bits_bz2",
                   "bits_lzma", "bits_zstd", "bits_png", "bits_webp"):
        assert column in table.columns
    again = measure(one_image_run, tmp_path / "bits", heldout=str(crops["heldout"]), show=False)
    assert again.items.equals(table)  # the same seed gives the same numbers


def test_files_round_trip_and_refusals_write_nothing(one_image_run, crops, tmp_path, run_cli):
    code, text = run_cli("compress", "encode", one_image_run, "--images",
                         f"{crops['heldout']}[:5]", "--out", tmp_path / "x.cs")
    assert code == 0, text
    code, text = run_cli("compress", "decode", one_image_run, tmp_path / "x.cs", "--out",
                         tmp_path / "back.npy")
    assert code == 0, text
    assert np.array_equal(np.load(tmp_path / "back.npy"), np.load(crops["heldout"])[:5])
    damaged = bytearray((tmp_path / "x.cs").read_bytes())
    damaged[HEADER_BYTES + 3] ^= 1
    (tmp_path / "bad.cs").write_bytes(bytes(damaged))
    with pytest.raises(CopyscopeError, match="corrupt"):
        decode_file(one_image_run, tmp_path / "bad.cs", tmp_path / "no.npy", show=False)
    assert not (tmp_path / "no.npy").exists()
    code, text = run_cli("compress", "decode", one_image_run, tmp_path / "bad.cs", "--out",
                         tmp_path / "no.npy")
    assert code == 2 and "corrupt" in text and not (tmp_path / "no.npy").exists()
    with pytest.raises(CopyscopeError, match="shape"):
        encode_file(one_image_run, "mnist:test[:2]", tmp_path / "y.cs", show=False)
    assert not (tmp_path / "y.cs").exists()


def test_measure_from_the_command_line(one_image_run, crops, tmp_path, run_cli):
    code, text = run_cli("compress", "measure", one_image_run, "--heldout", crops["heldout"],
                         "--out", tmp_path / "m")
    assert code == 0, text
    assert "Stored:" in text and (tmp_path / "m" / "compression.parquet").is_file()
    assert (tmp_path / "m" / "compression.json").is_file()


def test_a_model_without_exact_likelihoods_is_refused(tmp_path, run_cli):
    run = train(TrainConfig(family="gan", train="mnist:train[:100]", size=8, epochs=1,
                            batch_size=8, model={"width": 4, "latent_dim": 4}), tmp_path / "gan",
                show=False)
    with pytest.raises(CopyscopeError, match="no exact likelihood"):
        measure(run, tmp_path / "bits", heldout="mnist:test[:5]", show=False)
    code, text = run_cli("compress", "measure", run, "--out", tmp_path / "bits")
    assert code == 2 and "no exact likelihood" in text and len(text.strip().splitlines()) <= 2
    assert not (tmp_path / "bits" / "compression.parquet").exists()


def test_committed_pixelcnn_checkpoints_still_load():
    model, _ = load_model(Path(__file__).resolve().parents[1] / "models" / "pixelcnn-3000")
    assert model.config.head == "softmax" and isinstance(model, DensityModel)


def test_a_decode_does_not_depend_on_the_thread_count():
    """Torch's floats differ between 1 and 2 threads (enough to derail a decode, measured with
    the committed pixelcnn-3000); the codec pins one thread on both sides."""
    from copyscope.stages.coding import open_model

    loaded = open_model(Path(__file__).resolve().parents[1] / "models" / "pixelcnn-3000")
    images = load("mnist:test[:4]").images
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        data = encode(loaded.model, loaded.sha256, images, show=False).data
        torch.set_num_threads(2)
        assert np.array_equal(decode(loaded.model, loaded.sha256, data, show=False), images)
    finally:
        torch.set_num_threads(threads)


def test_the_training_set_itself_gives_its_unseen_rest_as_the_control(one_image_run, crops,
                                                                      tmp_path):
    result = measure(one_image_run, tmp_path / "rest", heldout=str(crops["train"]), show=False)
    seen = np.load(one_image_run / "train_indices.npy")
    held = result.items[result.items["set"] == "heldout"]["item"].to_numpy()
    assert len(held) == 19 and not np.isin(held, seen).any()
    assert result.summary.membership["bits"]["auc"] == 1.0


def test_storage_in_bits_reaches_the_report_and_the_app(one_image_run, crops, tmp_path):
    """The measure written beside an audit of the same model: the report's storage section
    and the app's bits for a query and for the stored training item."""
    from copyscope.analysis import open_audit
    from copyscope.app import bits
    from copyscope.report import write_report
    from copyscope.stages.audit import audit
    from copyscope.stages.sample import sample

    run = sample(one_image_run, 12, out=tmp_path / "px", device="cpu", show=False)
    audit(str(run), train=str(crops["train"]), heldout=str(crops["heldout"]), out=run,
          show=False)
    measure(one_image_run, run, heldout=str(crops["heldout"]), show=False)
    audited = open_audit(run)
    assert audited.storage is not None
    item = int(np.load(one_image_run / "train_indices.npy")[0])
    train = load(str(crops["train"])).images
    seen, unseen = (bits.lines({"px": audited}, train[item], item),
                    bits.lines({"px": audited}, load(str(crops["heldout"])).images[0]))
    assert "stores **+" in seen[0] and "100.0% of the 30 unseen items" in seen[0]
    assert "stores" not in unseen[0] and "bits" in unseen[0]
    page = write_report([run], tmp_path / "r.html", show=False).read_text()
    assert "<h3>Storage in bits</h3>" in page and f"#{item} (label" in page
