"""The planner stays pure: its modules never reach faust or the Kafka clients, and the
modules of ``streams/autopilot`` import each other without a cycle.

Checked on the source (``ast``), not by importing: every ``import`` counts, including the
ones inside functions and under ``if TYPE_CHECKING:`` (a cycle through type hints is still
two modules that know each other's internals).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PACKAGE = "streams.autopilot"

# The faust worker and what only runs it: the app and its tables (worker), the service
# around it, its CLI, its settings and its Prometheus metrics.
RUNTIME = frozenset({"cli", "metrics", "service", "settings", "worker"})
# The pure planner (``plan(snapshot, state, policy, now)``), its inputs, its explanations and
# the scenario runner: no broker, no faust.
PLANNING = frozenset(
    {
        "__init__",
        "candidates",
        "errors",
        "explain",
        "finish",
        "gates",
        "headroom",
        "inputs",
        "model",
        "placement",
        "planner",
        "policy",
        "prefixes",
        "scenario",
        "selection",
        "state",
        "tables",
        "trend",
    }
)
FORBIDDEN = ("faust", "netpilot.kafka")


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Short name -> file, for the modules directly in ``package`` under ``root``."""
    folder = root.joinpath(*package.split("."))
    return {p.stem: p for p in sorted(folder.glob("*.py"))}


def _imports(path: Path, package: str) -> set[str]:
    """Every absolute module name ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: every module here is directly in ``package``
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            out.add(stem)
            out.update(f"{stem}.{alias.name}" for alias in node.names)
    return out


def _graph(root: Path, package: str) -> dict[str, set[str]]:
    """Short name -> short names of the package's modules it imports."""
    modules = _modules(root, package)
    names = {f"{package}.{m}": m for m in modules if m != "__init__"} | {package: "__init__"}
    return {m: {names[i] for i in _imports(p, package) if i in names} - {m} for m, p in modules.items()}


def _reach(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _forbidden(root: Path, package: str, planning: Iterable[str]) -> dict[str, list[str]]:
    """Planning module -> the forbidden imports it reaches (itself or through the package)."""
    modules, graph = _modules(root, package), _graph(root, package)
    found: dict[str, list[str]] = {}
    for start in planning:
        for m in sorted(_reach(graph, start)):
            bad = sorted(
                i for i in _imports(modules[m], package) if any(i == f or i.startswith(f + ".") for f in FORBIDDEN)
            )
            if bad:
                found.setdefault(start, []).extend(f"{m}: {i}" for i in bad)
    return found


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def test_every_module_is_classified() -> None:
    """A new module must be listed as planning or runtime (and a listed one must exist)."""
    assert not PLANNING & RUNTIME
    assert set(_modules(REPO, PACKAGE)) == PLANNING | RUNTIME


def test_planning_modules_never_import_faust_or_kafka() -> None:
    assert _forbidden(REPO, PACKAGE, sorted(PLANNING)) == {}


def test_no_import_cycle_in_the_package() -> None:
    assert _cycles(_graph(REPO, PACKAGE)) == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The old planner <-> finish cycle (through ``TYPE_CHECKING``), a relative import cycle,
    and faust / the Kafka clients reached through another module, all found."""
    pkg = tmp_path / "pkg" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "planner.py").write_text("from pkg.sub.finish import finish\n")
    (pkg / "finish.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.planner import _Cycle\n"
    )
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    (pkg / "model.py").write_text("from pkg.sub import glue\n")
    (pkg / "glue.py").write_text("import faust.types\nfrom netpilot.kafka.producer import KafkaProducer\n")
    (pkg / "clean.py").write_text("import numpy\nfrom pkg.sub import errors\n")
    (pkg / "errors.py").write_text("from netpilot.errors import NetpilotError\n")
    assert _cycles(_graph(tmp_path, "pkg.sub")) == [["a", "b"], ["finish", "planner"]]
    assert _forbidden(tmp_path, "pkg.sub", ["clean", "model", "planner"]) == {
        "model": ["glue: faust.types", "glue: netpilot.kafka.producer", "glue: netpilot.kafka.producer.KafkaProducer"]
    }
