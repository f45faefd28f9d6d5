"""Text: suffix-array index, longest-match spans, n-gram novelty, held-out control.

The measures only; the stages that write run directories are in :mod:`copyscope.stages.text`.
"""

from copyscope.text.index import Matches, SuffixIndex, merge_matches
from copyscope.text.spans import SpanResult, measure

__all__ = ["Matches", "SpanResult", "SuffixIndex", "measure", "merge_matches"]
