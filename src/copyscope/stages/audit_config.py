"""Parameters of an audit, kept free of heavy imports so the CLI starts fast.

Each field carries its help text and its check; :meth:`AuditConfig.validate` and the options of
``copyscope audit`` are derived from the fields, so a new setting is declared here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from copyscope.detect.criteria import CRITERIA
from copyscope.errors import CopyscopeError
from copyscope.search import BACKENDS


def setting(default: Any, help: str, check: Callable[[Any], bool], must: str) -> Any:
    """A field with its help text and its check (``must`` completes "<name> ...")."""
    return field(default=default, metadata={"help": help, "check": check, "must": must})


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
    backend: str = setting("int8", "Search backend: int8 (exact, fastest) or faiss "
                           "(IndexFlatL2, exact distances recomputed).",
                           lambda x: x in BACKENDS, "must be one of " + ", ".join(BACKENDS))
    chunk: int = setting(4096, "Samples per resumable chunk.", lambda x: x >= 1,
                         "must be at least 1")

    def validate(self) -> None:
        for f in fields(self):
            if not f.metadata["check"](getattr(self, f.name)):
                raise CopyscopeError(f"Invalid audit setting: {f.name} {f.metadata['must']}.")
