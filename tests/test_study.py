"""Studies: train -> sample -> audit for every model of a TOML file, resumable; sample quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from copyscope.data import load
from copyscope.errors import CopyscopeError
from copyscope.models.classifier import ClassifierConfig, mnist_classifier
from copyscope.stages.quality import frechet_distance, sample_quality
from copyscope.stages.train import TrainConfig, train
from copyscope.study import read_study, run_study

pytestmark = pytest.mark.usefixtures("one_thread")

STUDY = """
[study]
out = "{out}"
train = "mnist:train[:1000]"
heldout = "mnist:test[:300]"
samples = 60
steps = 3
quality = false
sweep = ["gan-a"]
note = "A note printed under the table."

[[models]]
name = "gan-a"
family = "gan"
size = 16
epochs = 2
batch_size = 8
settings = {{ width = 8, latent_dim = 16 }}

[[models]]
name = "gan-b"
family = "gan"
size = 16
epochs = 1
batch_size = 8
from = "{source}"
samples = 40
settings = {{ width = 8, latent_dim = 16, dropout = 0.0 }}
"""


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    source = train(TrainConfig("gan", train="mnist:train[:1000]", size=16, epochs=1,
                               batch_size=8, model={"width": 8, "latent_dim": 16,
                                                    "dropout": 0.0}),
                   tmp / "committed", device="cpu", show=False)
    path = tmp / "study.toml"
    path.write_text(STUDY.format(out=tmp / "runs", source=source))
    return path


def test_a_study_trains_samples_audits_and_prints_the_table(study_file, run_cli, monkeypatch):
    from copyscope.cli.common import console

    monkeypatch.setattr(console, "width", 160)
    code, out = run_cli("run", study_file)
    assert code == 0, out
    for text in ("gan-a@epoch-0001", "gan-b", "training", "dropout", "carlini_sample",
                 "held-out", "A note printed"):
        assert text in out
    root = study_file.parent / "runs"
    table = pd.read_parquet(root / "study.parquet")
    assert list(table["model"]) == ["gan-a", "gan-a@epoch-0001", "gan-b"]
    assert list(table["samples"]) == [60, 60, 40]
    assert list(table["dropout"]) == [0.3, 0.3, 0.0] and list(table["epoch"]) == [2, 1, 1]
    assert set(table["train_size"]) == {16}
    for run in ("gan-a", "gan-b", "gan-a/epochs/epoch-0001"):
        samples = pd.read_parquet(root / run / "samples.parquet")
        assert len(samples) in (40, 60) and samples["nn_train"].max() < 1000
    summary = pd.read_json(root / "gan-a" / "summary.json", typ="series")
    assert summary["n_train"] == 1000  # audited against the whole training set, not the subset
    assert (root / "gan-b" / "checkpoints" / "epoch-0001.safetensors").exists()


def test_running_a_study_again_skips_finished_stages(study_file, run_cli, monkeypatch):
    assert run_cli("run", study_file)[0] == 0
    code, out = run_cli("run", study_file, "--only", "gan-z")
    assert code == 2 and "no model 'gan-z'" in out
    before = pd.read_parquet(study_file.parent / "runs" / "study.parquet")

    def fail(*a, **k):
        raise AssertionError("a finished stage ran again")

    for name in ("train", "audit"):
        monkeypatch.setattr(f"copyscope.study.{name}", fail)
    monkeypatch.setattr("copyscope.stages.sample.save_npy", fail)
    after = run_study(read_study(study_file), show=False)
    pd.testing.assert_frame_equal(before, after)


@pytest.mark.parametrize(("text", "message"), [
    ("[study]\nout = 'x'\nsampels = 3\n[[models]]\nname='a'\nfamily='gan'\n",
     "unknown key 'sampels'"),
    ("[study]\nsamples = 3\n", "needs out"),
    ("[study]\nout = 'x'\nsweep = ['b']\n[[models]]\nname='a'\nfamily='gan'\n",
     "sweep names 'b'"),
    ("[study]\nout = 'x'\n[[models]]\nname='a'\nfamily='gan'\nsettings={widht=3}\n",
     "unknown setting 'widht'"),
    ("[study\n", "not valid TOML"),
])
def test_bad_study_files_are_one_sentence(tmp_path, run_cli, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CopyscopeError, match=message):
        read_study(path)
    code, out = run_cli("run", path)
    assert code == 2 and message.split("'")[0] in out and "Traceback" not in out


@pytest.fixture(scope="module")
def classifier():
    return mnist_classifier(ClassifierConfig(train="mnist:train[:6000]", epochs=2), show=False)


def test_the_classifier_learns_mnist(classifier):
    assert classifier.test_accuracy > 0.9


def test_quality_tells_digits_from_noise_and_shows_collapse(classifier):
    real = sample_quality("mnist:test[5000:5600]", "mnist:test[:2000]", classifier)
    rng = np.random.default_rng(0)
    from copyscope.data import from_array
    noise = from_array(rng.integers(0, 256, (600, 28, 28), dtype=np.uint8), "noise")
    bad = sample_quality(noise, "mnist:test[:2000]", classifier)
    assert sum(real.class_histogram) == 600
    assert real.mean_confidence > 0.85 > bad.mean_confidence
    assert bad.frechet_distance > 10 * real.frechet_distance
    test = load("mnist:test")
    threes = from_array(test.images[:3000][test.labels[:3000] == 3], "threes")
    collapsed = sample_quality(threes, "mnist:test[:2000]", classifier)
    assert collapsed.class_fractions[3] > 0.9
    assert collapsed.frechet_distance > real.frechet_distance


def test_frechet_distance_of_a_set_to_itself_is_zero(classifier):
    digits = load("mnist:test[:500]")
    assert frechet_distance(classifier, digits, digits) == pytest.approx(0, abs=1e-2)


TEXT_STUDY = """
[study]
out = "{out}"
samples = 6
prompts = 4
bits = 2

[[models]]
name = "gzip-sonnet"
family = "gzip"
train = "{corpus}"
heldout = "{held}"
settings = {{ length = 60 }}
"""


def test_a_text_model_in_a_study_gets_spans_extraction_and_bits(tmp_path, monkeypatch):
    """A text model's run directory ends with its texts, their spans against the training
    corpus (held-out split as the control), k-extractability and bits per byte; the study
    table, which compares image audits, has no row for it."""
    from copyscope.records import CompressionSummary, ExtractionSummary, TextSummary
    from copyscope.rundir import RunDir
    from copyscope.stages import measure_text

    monkeypatch.setattr(measure_text, "CHUNK_BYTES", 96)
    sonnet = load_corpus_text()
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "seen.txt").write_text(sonnet[:700])
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / "unseen.txt").write_text(sonnet[700:1400])
    path = tmp_path / "study.toml"
    path.write_text(TEXT_STUDY.format(out=tmp_path / "runs", corpus=tmp_path / "corpus",
                                      held=tmp_path / "held"))
    table = run_study(read_study(path), show=False)
    run = RunDir(tmp_path / "runs" / "gzip-sonnet")
    spans, extraction = run.read(TextSummary), run.read(ExtractionSummary)
    bits = run.read(CompressionSummary)
    assert table.empty
    rows = pd.read_parquet(tmp_path / "runs" / "text_study.parquet")
    assert list(rows["model"]) == ["gzip-sonnet"] and rows["texts"].iloc[0] == 6
    assert rows["train_extracted_32"].iloc[0] == extraction_rate(tmp_path, 32)
    assert spans is not None and spans.n_texts == 6
    assert extraction is not None and extraction.prompts["train"] == 4
    assert bits is not None and bits.kind == "text"
    assert len(list((run.path / "samples").glob("*.jsonl"))) == 1


def extraction_rate(tmp_path, prefix: int) -> float:
    import json

    found = json.loads((tmp_path / "runs" / "gzip-sonnet" / "extraction.json").read_text())
    return found["by_prefix"]["train"][str(prefix)]["rate"]


def load_corpus_text() -> str:
    from copyscope.data.textspec import load_corpus

    return load_corpus("shakespeare:train[48:49]").text(0)


def test_the_demo_evaluates_the_committed_models_without_training():
    """Every model of configs/demo.toml is its committed run (same identity: family settings,
    training data and subset, batch size, seed) with at least the epochs the demo asks for, so
    make demo neither retrains nor refuses a folder holding a different run."""
    from pathlib import Path

    from copyscope.models import family_class
    from copyscope.models.base import Trainable
    from copyscope.records import TrainRecord
    from copyscope.rundir import RunDir
    from copyscope.stages.train import training_data

    root = Path(__file__).resolve().parents[1]
    study = read_study(root / "configs" / "demo.toml")
    for spec in study.models:
        if spec.source is None:  # fitted by the demo itself: only a family that does not train
            assert not issubclass(family_class(spec.train.family), Trainable), spec.name
            continue
        record = RunDir(root / spec.source).read(TrainRecord)
        assert record is not None, spec.name
        assert record.identity == training_data(spec.train).identity, spec.name
        assert (record.epochs_done or 0) >= spec.train.epochs, spec.name
