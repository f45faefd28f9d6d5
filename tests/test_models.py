"""Model families: exact likelihoods, causal sampling, seeded subsets, exact resume, pipelines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from copyscope.data import load
from copyscope.errors import CopyscopeError
from copyscope.models.base import make_config
from copyscope.models.checkpoints import checkpoint_meta
from copyscope.models.checkpoints import checkpoints as checkpoint_files
from copyscope.models.pixelcnn import GatedPixelCNN, PixelCNNConfig
from copyscope.records import SampleRecord
from copyscope.rundir import RunDir
from copyscope.seeds import epoch_batches
from copyscope.stages.sample import sample
from copyscope.stages.train import TrainConfig, subset_indices, train


def checkpoints(run):
    return checkpoint_files(run / "checkpoints")


def run_info(run):
    """The sample record's facts, flat."""
    r = RunDir(run).read(SampleRecord)
    return {**r.model, "epoch": r.epoch, "seed": r.seed, "steps": r.steps}

TINY = {
    "diffusion": {"block_out_channels": [8, 16], "norm_num_groups": 4},
    "gan": {"width": 8, "latent_dim": 16},
    "pixelcnn": {"hidden": 8, "dilations": [1, 2]},
}
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(family: str, **kw) -> TrainConfig:
    base = {"family": family, "model": TINY[family], "train": "mnist:train[:2000]", "size": 32,
            "epochs": 3, "batch_size": 16}
    return TrainConfig(**(base | kw))


@pytest.fixture(scope="module")
def pixelcnn() -> GatedPixelCNN:
    torch.manual_seed(0)
    return GatedPixelCNN(PixelCNNConfig(image_size=12, hidden=8, dilations=(1, 2))).eval()


@pytest.mark.parametrize("head", ["softmax", "logistic"])
def test_pixelcnn_distributions_are_causal_and_normalised(head):
    torch.manual_seed(0)
    pixelcnn = GatedPixelCNN(PixelCNNConfig(image_size=12, hidden=8, dilations=(1, 2),
                                            head=head)).eval()
    x = torch.randint(0, 256, (3, 1, 12, 12), dtype=torch.uint8)
    with torch.inference_mode():
        probs = pixelcnn.conditionals(x)
        assert probs.shape == (3, 12, 12, 256)
        assert torch.allclose(probs.sum(-1), torch.ones(3, 12, 12), atol=1e-5)
        picked = probs.gather(-1, x[:, 0, :, :, None].long())[..., 0]
        assert torch.allclose(pixelcnn.log_prob(x), picked.log().flatten(1).sum(1), atol=1e-3)
        base = pixelcnn.conditionals(x)
        for i, j in [(0, 0), (4, 7), (11, 3)]:
            y = x.clone()
            y[:, 0, i, j] ^= 0x80
            changed = (pixelcnn.conditionals(y) - base).abs().amax(dim=(0, 3)).flatten()
            k = i * 12 + j
            assert changed[: k + 1].max() == 0  # nothing at or before (i, j) sees pixel (i, j)
            if k + 1 < 144:
                assert changed[k + 1 :].max() > 0


def test_pixelcnn_windowed_sampling_equals_full_image_sampling(pixelcnn):
    """generate() runs the network on a window; it must draw exactly what the full image gives."""
    with torch.inference_mode():
        fast = pixelcnn.generate(5, torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        x = torch.zeros(5, 1, 12, 12, dtype=torch.uint8)
        for i in range(12):
            for j in range(12):
                p = pixelcnn.logits(x)[:, :, i, j].softmax(1)
                x[:, 0, i, j] = torch.multinomial(p, 1, generator=g)[:, 0].to(torch.uint8)
    assert pixelcnn.reach == 4
    assert torch.equal(fast[..., 0], x[:, 0])


def test_subsets_are_seeded_class_balanced_and_recorded():
    train = load("mnist:train")
    a = subset_indices(train, 300, seed=0)
    assert np.array_equal(a, subset_indices(train, 300, seed=0))
    assert not np.array_equal(a, subset_indices(train, 300, seed=1))
    assert len(np.unique(a)) == 300
    assert (np.bincount(train.labels[a], minlength=10) == 30).all()
    counts = np.bincount(train.labels[subset_indices(train, 3005, 0)], minlength=10)
    assert sorted(counts) == [300] * 5 + [301] * 5
    assert len(subset_indices(train, 1, 0)) == 1
    assert np.array_equal(subset_indices(train, None, 0), np.arange(60000))
    with pytest.raises(CopyscopeError, match="cannot draw"):
        subset_indices(load("mnist:train[:10]"), 11, 0)


def test_an_epoch_visits_every_item_and_fills_a_batch():
    batches = epoch_batches(10, 4, seed=0, epoch=0)
    assert sorted(np.concatenate(batches)) == list(range(10))
    assert [len(b) for b in batches] == [4, 4, 2]
    one = epoch_batches(1, 8, seed=0, epoch=5)
    assert len(one) == 1 and (one[0] == 0).all() and len(one[0]) == 8
    assert not np.array_equal(np.concatenate(epoch_batches(50, 8, 0, 0)),
                              np.concatenate(epoch_batches(50, 8, 0, 1)))


def test_unknown_settings_are_one_sentence():
    from copyscope.models.gan import GANConfig
    with pytest.raises(CopyscopeError, match="unknown setting 'dropuot'"):
        make_config(GANConfig, {"dropuot": 0.1}, "--set")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _same(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_killed_training_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL mid-run, start again: the weights equal those of an uninterrupted run, bit for bit.
    The GAN has dropout, batch norm and two optimizers, so every kind of state must come back.
    The killed process is asked for many epochs so that it is surely still running when killed;
    epochs are not part of a run's identity, so the resumed run stops at 4 like the clean one."""
    cfg = tiny("gan", size=64, epochs=4)
    clean = train(cfg, tmp_path / "clean", device="cpu", show=False)
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "copyscope", "train", "--family", "gan",
               "--train", cfg.train, "--size", "64", "--epochs", "1000", "--batch-size", "16",
               "--set", "width=8", "--set", "latent_dim=16", "--device", "cpu",
               "--out", str(killed)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = killed / "checkpoints" / "epoch-0001.safetensors"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert 1 <= len(checkpoints(killed)) < 4
    resumed = train(cfg, killed, device="cpu", show=False)
    last = "epoch-0004.safetensors"
    assert _same(clean / "checkpoints" / last, resumed / "checkpoints" / last)
    assert checkpoint_meta(resumed / "checkpoints" / last).step == 4 * 4
    stage = json.loads((resumed / "run.json").read_text())["stages"]["train"]
    assert stage["status"] == "complete" and stage["inputs"]["train_size"] == 64
    assert np.array_equal(np.load(resumed / "train_indices.npy"),
                          subset_indices(load(cfg.train), 64, 0))


def test_a_finished_run_without_resume_state_is_kept_not_retrained(tmp_path):
    """A finished run committed without resume.pt (as models/ keeps finished GANs) counts as
    done when asked for its own epochs, and asked for more it is refused: it cannot go on from
    its checkpoint, and training from scratch would overwrite it."""
    from dataclasses import replace

    cfg = tiny("gan", size=32, epochs=2)
    run = train(cfg, tmp_path / "gan", device="cpu", show=False)
    (run / "resume.pt").unlink()
    last = run / "checkpoints" / "epoch-0002.safetensors"
    before = last.read_bytes()
    train(cfg, run, device="cpu", show=False)
    assert last.read_bytes() == before
    with pytest.raises(CopyscopeError, match=r"optimizer state \(resume\.pt\)"):
        train(replace(cfg, epochs=3), run, device="cpu", show=False)
    assert last.read_bytes() == before and not (run / "checkpoints" / "epoch-0003.safetensors"
                                                ).exists()


@pytest.mark.parametrize("family", ["diffusion", "pixelcnn"])
def test_an_interrupted_run_resumes_exactly(family, tmp_path, monkeypatch):
    cfg = tiny(family)
    clean = train(cfg, tmp_path / "clean", device="cpu", show=False)
    from copyscope.models import family_class

    cls = family_class(family)
    real_step, calls = cls.train_step, []

    def interrupted(self, batch, optimizers):
        calls.append(1)
        if len(calls) == 5:  # mid-epoch 3 (2 steps per epoch)
            raise KeyboardInterrupt
        return real_step(self, batch, optimizers)

    monkeypatch.setattr(cls, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", device="cpu", show=False)
    monkeypatch.undo()
    assert [p.name for p in checkpoints(tmp_path / "resumed")] == [
        "epoch-0001.safetensors", "epoch-0002.safetensors"]
    train(cfg, tmp_path / "resumed", device="cpu", show=False)
    last = "checkpoints/epoch-0003.safetensors"
    assert _same(clean / last, tmp_path / "resumed" / last)


def test_more_epochs_continue_a_finished_run(tmp_path):
    cfg = tiny("gan", epochs=2)
    run = train(cfg, tmp_path / "r", device="cpu", show=False)
    train(tiny("gan", epochs=4), run, device="cpu", show=False)
    straight = train(tiny("gan", epochs=4), tmp_path / "s", device="cpu", show=False)
    last = "checkpoints/epoch-0004.safetensors"
    assert _same(run / last, straight / last)


def test_a_folder_holding_another_run_is_refused(tmp_path, run_cli):
    train(tiny("gan", epochs=1), tmp_path / "r", device="cpu", show=False)
    code, out = run_cli("train", "--family", "gan", "--train", "mnist:train[:2000]", "--size",
                        "16", "--set", "width=8", "--out", tmp_path / "r")
    assert code == 2 and "already holds a different train run" in out
    assert "Traceback" not in out
    code, out = run_cli("train", "--family", "vae", "--out", tmp_path / "v")
    assert code == 2 and "unknown model family 'vae'" in out
    code, out = run_cli("train", "--family", "gan", "--set", "width", "--out", tmp_path / "v")
    assert code == 2 and "KEY=VALUE" in out


def test_samples_are_sharded_seeded_resumable_and_described(tmp_path, monkeypatch):
    from copyscope.stages import sample as sample_module

    run = train(tiny("gan", epochs=2), tmp_path / "gan", device="cpu", show=False)
    monkeypatch.setattr(sample_module, "SHARD", 40)
    clean = sample(run, 100, out=tmp_path / "clean", seed=7, batch_size=16, device="cpu",
                   show=False)
    real_save, saved = sample_module.save_npy, []

    def interrupted(path, images):
        if len(saved) == 1:
            raise KeyboardInterrupt
        saved.append(path)
        real_save(path, images)

    monkeypatch.setattr(sample_module, "save_npy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sample(run, 100, seed=7, batch_size=16, device="cpu", show=False)
    monkeypatch.setattr(sample_module, "save_npy", real_save)
    first = run / "samples" / "shard-00000.npy"
    mtime = first.stat().st_mtime_ns
    sample(run, 100, seed=7, batch_size=16, device="cpu", show=False)
    assert first.stat().st_mtime_ns == mtime  # finished shards are kept, not redrawn
    shards = sorted((run / "samples").glob("*.npy"))
    assert [np.load(s).shape for s in shards] == [(40, 28, 28), (40, 28, 28), (20, 28, 28)]
    for s in shards:
        assert np.array_equal(np.load(s), np.load(clean / "samples" / s.name))
    assert load(str(run)).images.shape == (100, 28, 28, 1)  # a run directory is a samples SPEC
    info = run_info(run)
    assert info["family"] == "gan" and info["train_size"] == 32 and info["dropout"] == 0.3
    assert info["epoch"] == 2 and info["seed"] == 7 and info["steps"] is None
    stage = json.loads((run / "run.json").read_text())["stages"]["sample"]
    assert stage["model"]["run"] == str(run) and stage["step"] == 4 and stage["n"] == 100
    other = sample(run, 30, seed=8, checkpoint="epoch-1", device="cpu", show=False)
    assert other == run / "epochs" / "epoch-0001"
    assert run_info(other)["epoch"] == 1
    assert not np.array_equal(load(str(other)).images[:30], load(str(run)).images[:30])


def test_diffusion_samples_with_ddim_and_ancestral_ddpm(tmp_path):
    run = train(tiny("diffusion", epochs=1, model={**TINY["diffusion"],
                                                  "num_train_timesteps": 20}),
                tmp_path / "d", device="cpu", show=False)
    a = sample(run, 6, out=tmp_path / "ddim", steps=4, device="cpu", show=False)
    b = sample(run, 6, out=tmp_path / "ddpm", ancestral=True, device="cpu", show=False)
    assert run_info(a)["steps"] == 4 and run_info(b)["steps"] == 20
    sa, sb = load(str(a)).images, load(str(b)).images
    assert sa.shape == sb.shape == (6, 28, 28, 1) and not np.array_equal(sa, sb)
    again = sample(run, 6, out=tmp_path / "ddim2", steps=4, device="cpu", show=False)
    assert np.array_equal(load(str(again)).images, sa)


def test_a_users_diffusers_pipeline_directory_is_sampled_from_local_files(tmp_path, run_cli,
                                                                          monkeypatch):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    from copyscope.models.diffusion import denoise

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(
        tmp_path / "pipe")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out = run_cli("sample", tmp_path / "pipe", "-n", "5", "--steps", "3", "--out",
                        tmp_path / "s", "--device", "cpu")
    assert code == 0, out
    images = np.load(tmp_path / "s" / "samples" / "shard-00000.npy")
    assert images.shape == (5, 16, 16) and images.dtype == np.uint8
    info = run_info(tmp_path / "s")
    assert info["family"] == "pipeline" and info["steps"] == 3 and info["train_size"] is None
    from copyscope.models.base import SamplingPlan
    from copyscope.seeds import derived_seed
    from copyscope.stages.sample import SAMPLE

    g = torch.Generator().manual_seed(derived_seed(0, 0, SAMPLE))
    with torch.inference_mode():
        direct = denoise(unet.eval(), DDPMScheduler(num_train_timesteps=50).config, 5, g,
                         SamplingPlan("ddim", 3))
    assert np.array_equal(direct[..., 0].numpy(), images)
    code, out = run_cli("sample", tmp_path / "pipe", "-n", "5")
    assert code == 2 and "give --out" in out
    (tmp_path / "bad").mkdir()
    code, out = run_cli("sample", tmp_path / "bad", "-n", "5", "--out", tmp_path / "o")
    assert code == 2 and "neither a training run" in out


def test_a_diffusion_model_trained_on_one_image_regenerates_it(tmp_path):
    """The scientific check in miniature: >= 95% of the samples of a diffusion model trained on
    one image are flagged by every criterion, and point at that image. The same audit of an
    early checkpoint flags few, so the check can fail. (Tiny and CPU-fast: the UNet predicts x0,
    which memorises one image in a few hundred steps; the study's models predict v.)"""
    from copyscope.detect.criteria import CRITERIA
    from copyscope.stages.audit import audit

    cfg = TrainConfig("diffusion", train="mnist:train[:2000]", size=1, epochs=450, batch_size=4,
                      checkpoint_every=30, model={**TINY["diffusion"], "lr": 6e-3,
                                                  "prediction_type": "sample"})
    run = train(cfg, tmp_path / "one", device="cpu", show=False)
    source = int(np.load(run / "train_indices.npy")[0])
    args = {"train": "mnist:train[:2000]", "heldout": "mnist:test[:1000]", "show": False}
    late = audit(str(sample(run, 40, steps=10, device="cpu", show=False)), **args).samples
    for name in CRITERIA:
        assert late[f"copy_{name}"].mean() >= 0.95, name
    assert (late["nn_train"] == source).all()
    early_run = sample(run, 40, checkpoint="epoch-30", steps=10, device="cpu", show=False)
    early = audit(str(early_run), **args).samples
    assert early["copy_l2"].mean() < 0.5 and early["copy_heldout"].mean() < 0.5


def test_pixelcnn_learning_rate_decays_per_step_from_the_optimizer_state():
    torch.manual_seed(0)
    model = GatedPixelCNN(PixelCNNConfig(image_size=12, hidden=4, dilations=(1,), lr=0.01,
                                         lr_decay=0.5, head="logistic"))
    optimizers = model.configure_optimizers()
    x = torch.randint(0, 256, (2, 1, 12, 12), dtype=torch.uint8)
    rates = []
    for _ in range(3):
        model.train_step(x, optimizers)
        rates.append(optimizers["pixelcnn"].param_groups[0]["lr"])
    assert rates == pytest.approx([0.01, 0.005, 0.0025])  # step s uses lr * decay ** s
    with pytest.raises(CopyscopeError, match="head 'mixture' is unknown"):
        PixelCNNConfig(head="mixture")


def test_checkpoints_are_ordered_by_epoch_past_four_digits(tmp_path):
    """epoch-12000 is newer than epoch-9500, although its name sorts first."""
    from copyscope.models.checkpoints import find_checkpoint

    for epoch in (500, 9500, 12000, 10000):
        (tmp_path / f"epoch-{epoch:04d}.safetensors").write_bytes(b"")
    (tmp_path / "epoch-notes.safetensors").write_bytes(b"")
    assert [p.name for p in checkpoint_files(tmp_path)] == [
        "epoch-0500.safetensors", "epoch-9500.safetensors", "epoch-10000.safetensors",
        "epoch-12000.safetensors"]
    assert find_checkpoint(tmp_path).name == "epoch-12000.safetensors"
