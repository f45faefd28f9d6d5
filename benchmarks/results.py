"""One benchmark's section of benchmarks/RESULTS.md, kept between HTML-comment markers."""

from __future__ import annotations

import platform
from pathlib import Path

from copyscope.files import atomic_path


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    info = Path("/proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines()
             if ln.startswith("model name")] if info.exists() else []
    return names[0] if names else platform.processor() or platform.machine()


def replace_section(path: Path, name: str, section: str) -> None:
    """Replace the block between ``<!-- name:begin -->`` and ``<!-- name:end -->``, or append it."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{section.rstrip()}\n{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(new)
