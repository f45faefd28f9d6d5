"""What the report shows about a text run, as plain data for the template (``text.html.j2``).

Three lines of evidence, each shown when its stage wrote into the folder and left out with a
sentence when not: verbatim spans of the generated texts judged against held-out human text
(``copyscope text spans``), k-extractability of training text (``copyscope text extract``), and
membership with bits per byte against the classical compressors (``copyscope compress measure``).
"""

from __future__ import annotations

from typing import Any

from copyscope.analysis.text_figures import extraction_figure, spans_figure
from copyscope.analysis.texts import TextResults
from copyscope.errors import CopyscopeError
from copyscope.records import CompressionSummary, ExtractionSummary
from copyscope.report.embed import svg_uri
from copyscope.rundir import RunDir
from copyscope.text.passages import Documents
from copyscope.text.sharded import open_index

SHOWN_CHARS = 600
"""A longer copied span is shown by its first and last half of this many characters."""
METHODS = ("model", "gzip", "bz2", "lzma", "zstd")


def text_section(results: TextResults, top: int = 12) -> dict[str, Any]:
    """Everything the report says about one text run; ``top`` spans and texts are listed."""
    stages = RunDir(results.path).manifest().get("stages", {})
    section: dict[str, Any] = {"id": f"text-{results.name}", "name": results.name,
                               "path": str(results.path), "missing": [],
                               "commands": [(k, v["command"]) for k, v in stages.items()
                                            if v.get("command")]}
    missing = section["missing"]
    if results.summary is not None:
        section["spans"] = spans_part(results, top)
    else:
        missing.append("No verbatim spans here (no text_summary.json): run `copyscope text "
                       "spans` on the generated texts with --out this folder.")
    if results.extraction is not None:
        section["extraction"] = extraction_part(results.extraction)
    else:
        missing.append("No k-extractability here (no extraction.json): run `copyscope text "
                       "extract` on the text model.")
    if results.compression is not None:
        section["compression"] = compression_part(results.compression)
    else:
        missing.append("No membership or bits per byte here (no text compression.json): run "
                       "`copyscope compress measure` on the text model.")
    return section


def spans_part(results: TextResults, top: int) -> dict[str, Any]:
    """The spans answer, the held-out comparison, the most-copied texts and longest spans."""
    s, texts, spans, controls = results.summary, results.texts, results.spans, results.controls
    assert s is not None and texts is not None and spans is not None and controls is not None
    criteria = [{"name": k, "default": k == s.default_criterion, **v}
                for k, v in s.criteria.items()]
    columns = [c for c in ("text", "id", "chars", "longest_span", "spans", "copied_share",
                           "heldout_p", "is_copy") if c in texts]
    ranked = texts.sort_values(["longest_span", "text"], ascending=[False, True])
    part: dict[str, Any] = {
        "summary": s, "criteria": criteria,
        "default": next(c for c in criteria if c["default"]),
        "flagged": int(texts["is_copy"].sum()),
        "figure": svg_uri(spans_figure(texts, controls, s.min_length)),
        "texts": ranked[columns].head(top).to_dict("records"),
        "heldout": {"chunks": len(controls),
                    "longest_median": float(controls["longest_span"].median())
                    if len(controls) else None,
                    "longest_max": int(controls["longest_span"].max()) if len(controls) else None},
    }
    longest = spans.sort_values(["length", "text"], ascending=[False, True]).head(top)
    try:
        part["longest"] = _passages(results, longest)
    except CopyscopeError as e:
        part["longest"], part["passages_error"] = [], str(e)
    return part


def _passages(results: TextResults, spans: Any) -> list[dict[str, Any]]:
    """The longest spans with their source passage, read from the index the spans stage used."""
    if spans.empty:
        return []
    record, summary = results.record, results.summary
    assert summary is not None
    where = ((record.inputs or {}).get("index") or {}).get("path") if record else None
    if not where:
        raise CopyscopeError(f"{results.path}: run.json names no index, so the source passages "
                             "cannot be shown.")
    index = open_index(where)
    if index.corpus_sha256 != summary.index.get("sha256"):
        raise CopyscopeError(f"{where} now holds another corpus than the one these spans were "
                             "found in (content hash differs), so its passages are not shown.")
    docs = Documents(index)
    out = []
    for r in spans.to_dict("records"):
        p = docs.passage(int(r["source_doc"]), int(r["source_offset"]), int(r["length"]))
        match = p.match if len(p.match) <= SHOWN_CHARS else \
            f"{p.match[:SHOWN_CHARS // 2]} … {p.match[-SHOWN_CHARS // 2:]}"
        out.append({"text": r["id"], "start": int(r["start"]), "length": int(r["length"]),
                    "count": int(r["count"]), "source": p.doc_id, "offset": p.offset,
                    "before": p.before, "match": match, "after": p.after})
    return out


def extraction_part(e: ExtractionSummary) -> dict[str, Any]:
    """k-extractability by prefix length and by occurrence bin, training against held-out."""
    sets = [name for name in ("train", "heldout") if name in e.by_prefix]
    by_prefix = [{"prefix": p, **{name: e.by_prefix[name][str(p)] for name in sets}}
                 for p in e.prefixes]
    by_count = [{"prefix": p, "bin": b,
                 **{name: e.by_count.get(name, {}).get(str(p), {}).get(b) for name in sets}}
                for p in e.prefixes for b in e.count_bins]
    return {"summary": e, "sets": sets, "by_prefix": by_prefix,
            "by_count": [r for r in by_count if any(r[name] for name in sets)],
            "figure": svg_uri(extraction_figure(e))}


def compression_part(c: CompressionSummary) -> dict[str, Any]:
    """Bits per byte of the model and each classical compressor, on chunks and whole files,
    raw and adjusted for the model's size, and membership."""
    sets = [name for name in ("train", "heldout") if name in c.rates]
    methods = [m for m in METHODS if all(m in c.rates[name] for name in sets)]
    rows = [{"method": m, **{name: c.rates[name][m] for name in sets}} for m in methods]
    sizes = {name: {k: c.rates[name].get(k) for k in ("chunks", "chunk_bytes", "files",
                                                       "file_bytes", "best_classical",
                                                       "model_vs_gzip")}
             for name in sets}
    return {"summary": c, "sets": sets, "rows": rows, "sizes": sizes,
            "membership": c.membership or {}, "stored": c.stored_bits, "model": c.model}
