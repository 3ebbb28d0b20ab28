"""The package's imports point one way: no module reaches, however lazily, a module that
imports it back. Every import counts, at module level, inside functions and under
TYPE_CHECKING, because each is a dependency a reader has to hold in mind."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "function" / "drs_report"


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports (`from pkg import sub` names pkg.sub)."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    if path.name != "__init__.py":
                        anchor.pop()
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                submodules = [a.name for a in node.names if f"{base}.{a.name}" in files]
                targets.update(f"{base}.{sub}" for sub in submodules)
                if len(submodules) < len(node.names):
                    targets.add(base)
        resolved = set()
        for target in targets:
            while target not in files and "." in target:
                target = target.rsplit(".", 1)[0]
            # The package root only holds the version; every module may read it.
            if target in files and target not in (name, "drs_report"):
                resolved.add(target)
        graph[name] = resolved
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_in_the_package() -> None:
    assert cycles(import_graph()) == []


def test_the_check_finds_a_circle(tmp_path: Path) -> None:
    package = tmp_path / "drs_report"
    (package / "channels").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text("def f():\n    from drs_report.channels import v\n")
    (package / "channels" / "__init__.py").write_text("from drs_report.config import C\n")
    (package / "channels" / "base.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from drs_report.delivery import Message\n")
    (package / "delivery.py").write_text("from .channels.base import X\n")
    graph = import_graph(package)
    assert graph["drs_report.delivery"] == {"drs_report.channels.base"}
    assert cycles(graph) == [["drs_report.channels", "drs_report.config"],
                             ["drs_report.channels.base", "drs_report.delivery"]]


def test_the_layers_named_in_the_design() -> None:
    graph = import_graph()
    # Configuration checks channel options without the channel modules.
    assert "drs_report.channels" not in graph["drs_report.config"]
    assert "drs_report.channel_options" in graph["drs_report.config"]
    # Channels take their message from below delivery, not from delivery.
    for module in ("drs_report.channels.base", "drs_report.channels.chat"):
        assert "drs_report.delivery" not in graph[module]
    assert "drs_report.message" in graph["drs_report.channels.chat"]
