"""``copyscope text``: index a corpus; find generated texts' verbatim spans in it; measure how
much of a text model's training text greedy decoding extracts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from copyscope.cli.common import console, markup, say

if TYPE_CHECKING:
    from copyscope.stages.extract import Extraction
    from copyscope.stages.text import TextSpans

Opt = typer.Option
CORPUS_HELP = ("shakespeare, shakespeare:train, shakespeare:heldout, a folder of .txt files, a "
               ".txt file, or a .jsonl/.csv/.parquet table (column from --column or FILE:COLUMN), "
               "optionally sliced like corpus.jsonl[:1000]")

app = typer.Typer(help="Verbatim overlap of texts with a training corpus (suffix array).",
                  no_args_is_help=True)


@app.command("index")
def index_command(
    corpus: Annotated[str, typer.Argument(help=f"The corpus: {CORPUS_HELP}.")],
    out: Annotated[Path, Opt("--out", "-o", help="Index folder (a run directory) to write.")],
    column: Annotated[str | None, Opt(help="Table column holding the text (default: text, or "
                                      "TRANSCRIPTION for transcripts).")] = None,
    id_column: Annotated[str | None, Opt(help="Table column naming each document.")] = None,
    segments: Annotated[bool, Opt("--segments", help="Transcripts: one document per timed "
                                  "segment instead of per transcript.")] = False,
    force: Annotated[bool, Opt("--force", help="Replace a different run in --out.")] = False,
    shard_bytes: Annotated[int | None, Opt(help="Build the index in shards of at most this many "
                                           "corpus bytes each (memory ~13x that per shard); "
                                           "same answers as one index.")] = None,
) -> None:
    """Build the suffix-array index of a corpus (documents never matched across)."""
    from copyscope.stages.text import index_corpus

    index = index_corpus(corpus, out, column, id_column, segments, force,
                         shard_bytes=shard_bytes)
    c = index.meta["corpus"]
    say("Indexed {c[documents]:,} documents, {c[chars]:,} characters ({c[bytes]:,} bytes) of "
        "{c[spec]}: [bold]{out}[/]", c=c, out=out)


@app.command("spans")
def spans_command(
    index: Annotated[Path, typer.Argument(help="An index folder from `copyscope text index`.")],
    texts: Annotated[str, Opt("--texts", "-t", help=f"The texts to check: {CORPUS_HELP}, or a "
                              "run directory's generated texts.")],
    out: Annotated[Path, Opt("--out", "-o", help="Run directory to write.")],
    column: Annotated[str | None, Opt(help="Table column holding the text.")] = None,
    id_column: Annotated[str | None, Opt(help="Table column naming each text.")] = None,
    min_length: Annotated[int, Opt(help="Shortest span counted as copied, in characters "
                                   "(Lee et al. 2022).")] = 50,
    heldout: Annotated[str, Opt(help="Held-out human text never indexed (the control): a "
                                "corpus SPEC, 'auto' (shakespeare:heldout for an index of "
                                "shakespeare:train) or 'none'.")] = "auto",
    heldout_q: Annotated[float, Opt(help="False-positive rate of the held-out criterion.")]
    = 0.001,
    force: Annotated[bool, Opt("--force", help="Replace a different run in --out.")] = False,
) -> None:
    """Find every text's verbatim spans in the corpus and judge it against held-out text."""
    from copyscope.stages.text import find_spans

    result = find_spans(index, texts, out, column, id_column, min_length,
                        None if heldout == "none" else heldout, heldout_q, force)
    print_summary(result)


@app.command("extract")
def extract_command(
    run: Annotated[Path, typer.Argument(help="A text model's training run (copyscope train "
                                        "--family textlm, or gzip on text).")],
    out: Annotated[Path, Opt("--out", "-o", help="Run directory to write (extraction.parquet, "
                             "extraction.json).")],
    heldout: Annotated[str, Opt(help="Held-out text the model never saw (the control): a "
                                "corpus SPEC, 'auto' (shakespeare:heldout for a model of "
                                "shakespeare:train) or 'none'.")] = "auto",
    prompts: Annotated[int, Opt(help="Prompts per set (training text, held-out text), at "
                                "seeded positions.")] = 500,
    prefix: Annotated[list[int] | None, Opt(help="Prefix length in bytes, repeatable "
                                            "(default 32, 64, 128, 256).")] = None,
    suffix: Annotated[int, Opt(help="Bytes greedy decoding must reproduce exactly.")] = 50,
    seed: Annotated[int, Opt(help="Seed of the prompt positions.")] = 0,
    checkpoint: Annotated[str | None, Opt(help="Checkpoint (default: newest).")] = None,
    force: Annotated[bool, Opt("--force", help="Replace a different run in --out.")] = False,
) -> None:
    """k-extractability (Carlini et al. 2022): does greedy decoding continue training prefixes
    with the training text, and how often does it do so for held-out text?"""
    from copyscope.stages.extract import PREFIXES, extract

    result = extract(run, out, None if heldout == "none" else heldout, prompts,
                     tuple(prefix or PREFIXES), suffix, seed, checkpoint=checkpoint, force=force)
    print_extraction(result)


def print_extraction(result: Extraction) -> None:
    s = result.summary
    table = Table(title=f"Greedy decoding reproduces the next {s.suffix} bytes "
                  f"(model context {s.model_context or '-'} bytes)")
    for col in ("prefix bytes", *(f"{name} prompts" for name in s.by_prefix)):
        table.add_column(col, justify="right")
    for k in map(str, s.prefixes):
        table.add_row(k, *(f"{r[k]['extracted']:,} / {r[k]['n']:,}: "
                           f"{_rate(r[k]['rate'], r[k]['ci95'])}" for r in s.by_prefix.values()))
    console.print(table)
    console.print(f"Written to [bold]{result.path}[/]: extraction.parquet, extraction.json, "
                  "run.json")


def print_summary(result: TextSpans) -> None:
    s = result.summary
    share = "-" if s.copied_share is None else f"{100 * s.copied_share:.2f}%"
    longest = s.longest_span
    say("{s.n_texts:,} texts, {s.chars:,} characters: {share} inside verbatim spans of at least "
        "{s.min_length} characters; longest span {longest[max]:,} characters (median per text "
        "{longest[median]:g}).", s=s, share=share, longest=longest)
    table = Table(title=markup("Verdicts (control: {heldout}, {n:,} held-out chunks)",
                               heldout=s.heldout or "none", n=s.heldout_chunks))
    for col in ("criterion", "copies", "copy rate (95% CI)", "held-out false-positive rate"):
        table.add_column(col, justify="left" if col == "criterion" else "right")
    for name, c in s.criteria.items():
        mark = " (default)" if name == s.default_criterion else ""
        fpr = (_rate(c["heldout_fpr"], c["heldout_fpr_ci95"]) if "heldout_fpr" in c else "-")
        table.add_row(name + mark, f"{c['copies']:,}", _rate(c["copy_rate"], c["copy_rate_ci95"]),
                      fpr)
    console.print(table)
    if result.out is not None:
        say("Written to [bold]{out}[/]: texts.parquet, spans.parquet, controls.parquet, "
            "text_summary.json, run.json", out=result.out)


def _rate(rate: float, ci: list[float]) -> str:
    if rate != rate:  # NaN: nothing to count
        return "-"
    return f"{100 * rate:.2f}% ({100 * ci[0]:.2f}-{100 * ci[1]:.2f})"
