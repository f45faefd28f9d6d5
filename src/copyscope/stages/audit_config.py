"""Parameters of an audit, kept free of heavy imports so the CLI starts fast.

Each field carries its help text and its check; :meth:`AuditConfig.validate` and the options of
``copyscope audit`` are derived from the fields, so a new setting is declared here once.

A setting of one search backend (``backends``) is recorded only in audits that use that backend,
so adding one leaves every other audit's identity and run.json as they were. A setting that
cannot change any number (``identity=False``: where the search runs) is recorded in run.json
but is no part of the identity, and a backend whose answers are another's bit for bit
(``search.SAME_AS``: ray runs int8 on shards) enters the identity as that one: an audit's
identity means "the same numbers", so a run may be resumed on either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any

from copyscope.detect.criteria import CRITERIA
from copyscope.errors import CopyscopeError
from copyscope.search import BACKENDS, SAME_AS


def setting(default: Any, help: str, check: Callable[[Any], bool], must: str,
            backends: tuple[str, ...] | None = None, identity: bool = True,
            searcher: bool = False) -> Any:
    """A field with its help text and its check (``must`` completes "<name> ...").

    ``backends``: the search backends the setting belongs to (None: every audit); ``identity``:
    whether it can change the numbers; ``searcher``: passed to the backend's searcher.
    """
    return field(default=default, metadata={"help": help, "check": check, "must": must,
                                            "backends": backends, "identity": identity,
                                            "searcher": searcher})


def _unit(x: float) -> bool:
    return 0 < x < 1


@dataclass(frozen=True)
class AuditConfig:
    """Parameters of an audit. Defaults follow the cited papers; all are recorded in run.json."""

    neighbours: int = setting(50, "Carlini et al.'s neighbourhood size n (and the neighbours "
                              "kept per sample).", lambda x: x >= 1, "must be at least 1")
    alpha: float = setting(0.5, "Carlini et al.'s alpha.", lambda x: x > 0, "must be positive")
    gu_threshold: float = setting(1 / 3, "Gu et al.'s nearest / second-nearest ratio threshold.",
                                  _unit, "must lie in (0, 1)")
    heldout_q: float = setting(0.001, "False-positive rate of the held-out criterion.", _unit,
                               "must lie in (0, 1)")
    l2_threshold: float = setting(0.025, "Absolute normalised-L2 threshold.", _unit,
                                  "must lie in (0, 1)")
    default: str = setting("heldout", "Criterion behind is_copy: " + ", ".join(CRITERIA) + ".",
                           lambda x: x in CRITERIA, "must be one of " + ", ".join(CRITERIA))
    cells: int = setting(50, "k-means cells for Meehan et al.'s C_T.", lambda x: x >= 1,
                         "must be at least 1")
    min_cell_samples: int = setting(20, "C_T uses cells holding more than this many samples.",
                                    lambda x: x >= 0, "must be >= 0")
    near_q: float = setting(0.05, "Held-out quantile of nearest-training distance that sets the "
                            "per-item region radius.", _unit, "must lie in (0, 1)")
    item_alpha: float = setting(0.05, "Family-wise level of the per-item test (Bonferroni over "
                                "training items).", _unit, "must lie in (0, 1)")
    seed: int = setting(0, "Seed of the k-means cells (the only random choice in an audit).",
                        lambda x: True, "")
    backend: str = setting("int8", "Search backend: int8 (exact, fastest), faiss "
                           "(IndexFlatL2, exact distances recomputed), ray (int8 on shards "
                           "across Ray workers: identical results), ivf (FAISS IVF for 10M+ "
                           "items: approximate, exact distances, recall measured every run).",
                           lambda x: x in BACKENDS, "must be one of " + ", ".join(BACKENDS))
    chunk: int = setting(4096, "Samples per resumable chunk.", lambda x: x >= 1,
                         "must be at least 1")
    workers: int = setting(2, "Ray workers (--backend ray): shards of the training set, one "
                           "CPU each.", lambda x: x >= 1, "must be at least 1", ("ray",),
                           identity=False, searcher=True)
    address: str = setting("", "Ray head node host:port (--backend ray; default: start a "
                           "local cluster and shut it down afterwards).", lambda x: True, "",
                           ("ray",), identity=False, searcher=True)

    nlist: int = setting(0, "IVF cells (--backend ivf; 0: round(sqrt(N))).", lambda x: x >= 0,
                         "must be >= 0", ("ivf",), searcher=True)
    nprobe: int = setting(16, "IVF cells searched per query (--backend ivf; more: higher "
                          "recall, slower).", lambda x: x >= 1, "must be at least 1", ("ivf",),
                          searcher=True)
    recall_queries: int = setting(1000, "Queries of each kind (samples, held-out, training) "
                                  "searched exactly to measure the IVF recall (--backend ivf).",
                                  lambda x: x >= 1, "must be at least 1", ("ivf",))

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not f.metadata["check"](value):
                raise CopyscopeError(f"Invalid audit setting: {f.name} {f.metadata['must']}.")
            if not self._applies(f) and value != f.default:
                raise CopyscopeError(f"Invalid audit setting: {f.name} applies only to "
                                     f"--backend {' or '.join(f.metadata['backends'])}.")

    def _applies(self, f: Field[Any]) -> bool:
        return f.metadata["backends"] is None or self.backend in f.metadata["backends"]

    def params(self) -> dict[str, Any]:
        """The settings of this audit, as run.json records them (those of other backends left
        out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if self._applies(f)}

    def identity(self) -> dict[str, Any]:
        """The settings that make the numbers (see the module docstring)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if self._applies(f) and f.metadata["identity"]}
        out["backend"] = SAME_AS.get(self.backend, self.backend)
        return out

    def searcher_options(self) -> dict[str, Any]:
        """What the backend's searcher is built with."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if self._applies(f) and f.metadata["searcher"]}
