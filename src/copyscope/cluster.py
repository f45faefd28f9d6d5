"""Ray, the distributed engine of `--backend ray` (the optional extra `copyscope[distributed]`).

:func:`connect` joins the cluster at an address, or starts a local one with one CPU per worker.
Ray is imported only here and in the modules that run on it, so copyscope works without it.
"""

from __future__ import annotations

import contextlib
import socket
from types import ModuleType
from urllib.parse import urlsplit

from copyscope.errors import CopyscopeError

PROBE_S = 5.0
"""How long an address may take to accept a connection before it counts as not answering."""


def ray_module() -> ModuleType:
    try:
        import ray
    except ImportError as e:
        raise CopyscopeError("--backend ray needs Ray, which is not installed: "
                             "pip install 'copyscope[distributed]'.") from e
    return ray


def check_workers(workers: int) -> None:
    if workers < 1:
        raise CopyscopeError(f"--workers must be at least 1, not {workers}.")


def check(address: str, workers: int) -> None:
    """Fail now, before anything is written, if the search could not run: Ray missing, no
    workers, or nothing answering at ``address``."""
    check_workers(workers)
    ray_module()
    if address:
        _probe(address)


def connect(address: str | None, workers: int) -> tuple[ModuleType, bool]:
    """Ray, connected: to ``address`` (host:port of a head node, or ray://host:port), else to
    the Ray this process already runs, else to a new local cluster of ``workers`` CPUs. Returns
    the module and whether this call started the cluster (its caller then shuts it down)."""
    check(address, workers)
    ray = ray_module()
    if ray.is_initialized():
        return ray, False
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        return ray, False
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    return ray, True


def disconnect(ray: ModuleType, started: bool) -> None:
    """Shut down the cluster this process started; leave one it joined running."""
    if started:
        with contextlib.suppress(Exception):
            ray.shutdown()


def _probe(address: str) -> None:
    """One sentence, instead of Ray's endless retries, when nothing listens at ``address``."""
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise CopyscopeError(f"Ray address {address!r} is not host:port (e.g. 10.0.0.5:6379).")
    try:
        with socket.create_connection((host, port), timeout=PROBE_S):
            pass
    except OSError as e:
        raise CopyscopeError(
            f"Ray address {address} does not answer ({e.strerror or e}); start a head node "
            "there with `ray start --head`, or leave --address out for a local cluster.") from e
