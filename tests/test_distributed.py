"""Ray: the sharded search, the audit and the sampling give the local answers, bit for bit, also
when a worker dies. One local 2-CPU cluster serves the whole module (Ray takes seconds to start).
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from copyscope.search import make_searcher
from copyscope.stages.sample import sample
from copyscope.stages.train import TrainConfig, train

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


class KillOnFirstUpdate:
    """A progress bar that kills a worker once the first round of queries is back, while the
    later rounds are still queued on it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __call__(self, *args, **kwargs):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            self.pid = 0


def test_sharded_search_equals_the_local_search_even_when_a_worker_is_killed(
        train60k, test10k, monkeypatch):
    x = train60k[:3000].reshape(3000, -1).copy()
    x[2900:2910] = x[1495:1505]  # duplicates on both sides of the shard boundary (1500)
    q = test10k[:300].reshape(300, -1)
    local = make_searcher("int8").fit(x)
    searcher = make_searcher("ray", workers=2).fit(x)
    try:
        a, b = searcher.search(q, 50, show=False), local.search(q, 50, show=False)
        assert np.array_equal(a.d2, b.d2) and np.array_equal(a.index, b.index)
        pids = searcher.pids()
        monkeypatch.setattr("copyscope.search.ray_sharded.QUERY_ROWS", 100)  # 30 rounds
        monkeypatch.setattr("copyscope.search.ray_sharded.bar", KillOnFirstUpdate(pids[1]))
        a = searcher.search(x, 9, exclude_self=True, show=False)
        b = local.search(x, 9, exclude_self=True, show=False)
        assert np.array_equal(a.d2, b.d2) and np.array_equal(a.index, b.index)
        after = searcher.pids()
        assert after[0] == pids[0] and after[1] != pids[1]  # the killed worker was restarted
    finally:
        searcher.close()
    assert ray.is_initialized()  # a cluster it joined is left running


def test_an_audit_on_ray_writes_the_local_audits_bytes(tmp_path, run_cli, monkeypatch):
    common = ("--samples", "mnist:test[500:700]", "--train", "mnist:train[:2000]",
              "--heldout", "mnist:test[:400]", "--cells", "5", "--chunk", "64")
    assert run_cli("audit", *common, "--out", tmp_path / "local")[0] == 0
    # nothing from the cache: every neighbour list of the second audit is found on Ray
    monkeypatch.setattr("copyscope.stages.audit.cached_arrays", lambda kind, key, f: f())
    code, out = run_cli("audit", *common, "--out", tmp_path / "ray", "--backend", "ray",
                        "--workers", "2")
    assert code == 0, out
    for name in ("samples.parquet", "controls.parquet", "items.parquet", "summary.json"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    stage = json.loads((tmp_path / "ray" / "run.json").read_text())["stages"]["audit"]
    local = json.loads((tmp_path / "local" / "run.json").read_text())["stages"]["audit"]
    assert stage["identity"] == local["identity"]  # the same numbers: one identity
    assert stage["params"]["backend"] == "ray" and stage["params"]["workers"] == 2
    assert "workers" not in local["params"] and stage["device"].startswith("ray (2 workers")


def test_sampling_on_ray_draws_the_local_images(tmp_path):
    cfg = TrainConfig(family="gan", model={"width": 8, "latent_dim": 16},
                      train="mnist:train[:2000]", size=32, epochs=1, batch_size=16)
    run = train(cfg, tmp_path / "gan", device="cpu", show=False)
    from copyscope.stages import sample as sample_module

    sample_module.SHARD, shard = 40, sample_module.SHARD  # the driver cuts the shards
    try:
        local = sample(run, 100, out=tmp_path / "local", seed=3, batch_size=16, device="cpu",
                       show=False)
        remote = sample(run, 100, out=tmp_path / "ray", seed=3, batch_size=16, show=False,
                        backend="ray", workers=2)
    finally:
        sample_module.SHARD = shard
    names = sorted(p.name for p in (local / "samples").glob("*.npy"))
    assert names == sorted(p.name for p in (remote / "samples").glob("*.npy")) and len(names) == 3
    for name in names:
        assert np.array_equal(np.load(local / "samples" / name),
                              np.load(remote / "samples" / name))


@pytest.mark.parametrize("args,expected", [
    (("--backend", "ray", "--workers", "0"), "workers must be at least 1"),
    (("--backend", "ray", "--address", "127.0.0.1:1"), "Ray address 127.0.0.1:1 does not answer"),
    (("--backend", "ray", "--address", "nowhere"), "is not host:port"),
    (("--workers", "3"), "workers applies only to --backend ray"),
])
def test_bad_ray_settings_are_one_sentence_and_write_nothing(args, expected, tmp_path, run_cli):
    code, out = run_cli("audit", "--samples", "mnist:test[:50]", "--train", "mnist:train[:300]",
                        "--heldout", "mnist:test[50:100]", "--out", tmp_path / "r", *args)
    assert code == 2 and expected in out and "Traceback" not in out, out
    assert not (tmp_path / "r").exists()
    code, out = run_cli("sample", tmp_path, "-n", "5", "--backend", "ray", "--workers", "0")
    assert code == 2 and "--workers must be at least 1, not 0" in out
