"""Rewrite the table of committed models in models/README.md from their run.json files.

    .venv/bin/python scripts/models_table.py

One row per ``models/<name>/``: status, the command that trained it, epochs and steps done, the
training time (the sum of its epochs' seconds), the final loss and the parameter count. The table
sits between ``<!-- models:begin -->`` and ``<!-- models:end -->``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from copyscope.records import TrainRecord
from copyscope.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- models:begin -->", "<!-- models:end -->"
HEADER = ("| folder | status | command | epochs | steps | time | final loss (diffusion: "
          "v-prediction MSE; GAN: generator; PixelCNN, textlm: bits per dimension or byte) | "
          "parameters |\n|---|---|---|---:|---:|---:|---:|---:|")


def command(record: TrainRecord, name: str) -> str:
    """The training command as it would be typed from the repository root."""
    words = shlex.split(record.command or "") or ["copyscope"]
    words[0] = "copyscope"  # however it was started (.venv/bin/copyscope, python -m copyscope)
    if "--out" in words:
        words[words.index("--out") + 1] = f"models/{name}"
    return shlex.join(words)


def row(path: Path) -> str | None:
    record = RunDir(path).read(TrainRecord)
    if record is None:
        return None
    hours = sum(record.epoch_seconds or []) / 3600
    loss = "—" if record.final_loss is None else f"{record.final_loss:.4g}"
    status = "complete" if record.complete else f"in training ({record.epochs_done or 0} done)"
    return (f"| `{path.name}` | {status} | `{command(record, path.name)}` | "
            f"{record.epochs_done or 0} | {record.steps_done or 0:,} | {hours:.2f} h | {loss} | "
            f"{record.parameters or 0:,} |")


def main() -> None:
    rows = [r for p in sorted((REPO / "models").iterdir()) if p.is_dir() and (r := row(p))]
    readme = REPO / "models" / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block to rewrite.")
    table = "\n".join([BEGIN, HEADER, *rows, END])
    readme.write_text(text[: text.index(BEGIN)] + table + text[text.index(END) + len(END):])
    print(f"{readme}: {len(rows)} models")


if __name__ == "__main__":
    main()
