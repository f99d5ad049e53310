"""YAML to plain Python while remembering where every value came from.

PyYAML's ``safe_load`` forgets line numbers and silently keeps the last of two duplicate
keys. Operators edit the inventory by hand, so both matter: we compose the node tree
(which carries marks), build the Python value ourselves, record ``path -> line`` for every
node and report duplicate keys instead of hiding them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    """One problem in a source file: where (line, path) and what."""

    file: str
    line: int | None
    path: Path_
    message: str
    column: int | None = None

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        dotted = format_path(self.path)
        return f"{where}: {dotted}: {self.message}" if dotted else f"{where}: {self.message}"


def format_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@dataclass
class MarkedDocument:
    """A parsed document: the plain value plus the line of every path in it."""

    file: str
    value: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """Line of ``path`` or of its closest ancestor that exists in the file."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), None)

    def issue(self, path: Path_, message: str) -> Issue:
        return Issue(self.file, self.line_of(path), tuple(path), message)


class YamlSyntaxError(ValueError):
    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.describe())
        self.issue = issue


def load_marked(path: Path) -> MarkedDocument:
    """Parse one YAML file; syntax errors raise :class:`YamlSyntaxError` with file:line:col."""
    name = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise YamlSyntaxError(Issue(name, None, (), f"cannot read: {exc.strerror}")) from exc
    return parse_marked(text, name)


def parse_marked(text: str, name: str = "<string>") -> MarkedDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        raise YamlSyntaxError(Issue(name, line, (), f"not valid YAML: {exc.problem or exc}", col)) from exc
    doc = MarkedDocument(name, None)
    if node is None:
        doc.value = {}
        return doc
    doc.value = _build(node, (), doc)
    return doc


def _build(node: yaml.Node, path: Path_, doc: MarkedDocument) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or isinstance(key, (list, dict)):
                doc.issues.append(Issue(doc.file, key_node.start_mark.line + 1, path, "a key must be a plain scalar"))
                continue
            key = str(key)
            child = (*path, key)
            if key in out:
                first = doc.lines.get(child)
                doc.issues.append(
                    Issue(
                        doc.file,
                        key_node.start_mark.line + 1,
                        child,
                        f"duplicate key {key!r} (first defined on line {first}); the later one would silently win",
                    )
                )
                continue
            out[key] = _build(value_node, child, doc)
            doc.lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc) for i, item in enumerate(node.value)]
    return _scalar(node)


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.Node) -> Any:
    # PyYAML's own constructor, so "10", "true", "1.5" get their usual types.
    if not isinstance(node, yaml.ScalarNode):
        return None
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError:
        return node.value
