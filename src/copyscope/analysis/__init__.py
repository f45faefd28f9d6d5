"""Dataset-wide trends of an audit: which training items get copied, how often, and why.

Library functions shared by the report and the web app. They read a finished run directory
(:func:`open_audit`, once) and return DataFrames, matplotlib figures or uint8 images; none of them
searches again, so each view is fast.

    from copyscope.analysis import open_audit, pair_view, distance_histogram
    run = open_audit("runs/demo-audit")
    view = pair_view(run, 17)            # .panels, .measures, .verdicts, .strip()
    fig = distance_histogram(run)        # the core figure
    items.by_class(run), items.outlierness(run), trends.compare([run, other])

The modules that need matplotlib or SciPy's statistics (``figures``, ``items``, ``stage``) load
on first use (PEP 562): those imports take over a second, and the web app starts without them.
"""

from importlib import import_module
from typing import Any

from copyscope.analysis import pairs, trends
from copyscope.analysis.audited import AuditedRun, open_audit
from copyscope.analysis.pairs import PairView, item_view, most_regenerated, pair_view, top_copies

_LAZY = {"figures": None, "items": None, "stage": None,
         "distance_histogram": "figures", "Analysis": "stage", "analyse": "stage"}

__all__ = [
    "Analysis",
    "AuditedRun",
    "PairView",
    "analyse",
    "distance_histogram",
    "figures",
    "item_view",
    "items",
    "most_regenerated",
    "open_audit",
    "pair_view",
    "pairs",
    "stage",
    "top_copies",
    "trends",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(f"{__name__}.{_LAZY[name] or name}")
    return module if _LAZY[name] is None else getattr(module, name)
