"""Dataset-wide trends of an audit: which training items get copied, how often, and why.

Library functions shared by the report and the web app. They read a finished run directory
(:func:`open_run`, once) and return DataFrames, matplotlib figures or uint8 images; none of them
searches again, so each view is fast.

    from copyscope.analysis import open_run, pair_view, distance_histogram
    run = open_run("runs/demo-audit")
    view = pair_view(run, 17)            # .panels, .measures, .verdicts, .strip()
    fig = distance_histogram(run)        # the core figure
    items.by_class(run), items.outlierness(run), trends.compare([run, other])
"""

from copyscope.analysis import figures, items, pairs, trends
from copyscope.analysis.figures import distance_histogram
from copyscope.analysis.pairs import PairView, item_view, most_regenerated, pair_view, top_copies
from copyscope.analysis.rundata import RunData, open_run
from copyscope.analysis.stage import Analysis, analyse

__all__ = [
    "Analysis",
    "PairView",
    "RunData",
    "analyse",
    "distance_histogram",
    "figures",
    "item_view",
    "items",
    "most_regenerated",
    "open_run",
    "pair_view",
    "pairs",
    "top_copies",
    "trends",
]
