"""Text: suffix-array index, longest-match spans, n-gram novelty, held-out control."""

from copyscope.text.index import Matches, SuffixIndex, merge_matches
from copyscope.text.spans import SpanResult, measure
from copyscope.text.stage import TextSpans, find_spans, index_corpus

__all__ = ["Matches", "SpanResult", "SuffixIndex", "TextSpans", "find_spans", "index_corpus",
           "measure", "merge_matches"]
