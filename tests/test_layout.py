"""The code's shape: layers import one way, functions stay short, docstrings stay in the repo."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "copyscope"
# What each layer may not import (data <- models <- stages <- analysis/report/app/cli).
FORBIDDEN = {
    "data": ("copyscope.models", "copyscope.stages", "copyscope.rundir", "copyscope.records",
             "copyscope.text", "copyscope.search", "copyscope.detect",
             "copyscope.analysis", "copyscope.report", "copyscope.app", "copyscope.cli"),
    "models": ("copyscope.stages", "copyscope.rundir", "copyscope.records",
               "copyscope.analysis", "copyscope.report", "copyscope.app", "copyscope.cli"),
    "search": ("copyscope.models", "copyscope.stages", "copyscope.rundir",
               "copyscope.analysis", "copyscope.report", "copyscope.app", "copyscope.cli"),
    "detect": ("copyscope.models", "copyscope.stages", "copyscope.rundir",
               "copyscope.analysis", "copyscope.report", "copyscope.app", "copyscope.cli"),
    "compress": ("copyscope.stages", "copyscope.rundir", "copyscope.records",
                 "copyscope.analysis", "copyscope.report", "copyscope.app", "copyscope.cli"),
    "text": ("copyscope.models", "copyscope.stages", "copyscope.rundir", "copyscope.records",
             "copyscope.analysis", "copyscope.report", "copyscope.app", "copyscope.cli"),
    "stages": ("copyscope.analysis", "copyscope.report", "copyscope.app", "copyscope.cli"),
    "analysis": ("copyscope.report", "copyscope.app", "copyscope.cli"),
}
MODULES = sorted(SRC.rglob("*.py"))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_one_way(layer):
    for path in (SRC / layer).rglob("*.py"):
        bad = [m for m in imports(path) if m.startswith(FORBIDDEN[layer])]
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(SRC)}:{node.name} ({lines} lines)")
    assert not long


def test_docstrings_point_only_inside_the_repository():
    for path in MODULES:
        text = path.read_text()
        assert "DESIGN.md" not in text and "../shared" not in text, path
