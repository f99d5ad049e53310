"""Routes from a YAML or CSV file, validated with file:line errors.

YAML::

    routes:
      - {pop: fra1, link: transit-a, prefix: 203.0.113.0/24, next_hop: 198.51.100.1,
         as_path: [64500, 64510], origin: igp, local_pref: 100, med: 0, communities: ["64500:100"]}

CSV (header required; ``as_path`` and ``communities`` space-separated)::

    pop,link,prefix,next_hop,as_path,origin,local_pref,med,communities
    fra1,transit-a,203.0.113.0/24,198.51.100.1,64500 64510,igp,100,0,64500:100
"""

from __future__ import annotations

import csv
import ipaddress
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from netpilot.errors import ConfigError
from netpilot.wire.routes import Route
from producers.inventory.yamlmarks import Issue, YamlSyntaxError, load_marked

CSV_COLUMNS = ("pop", "link", "prefix", "next_hop", "as_path", "origin", "local_pref", "med", "communities")
REQUIRED = ("pop", "link", "prefix")


class RoutesFileError(ConfigError):
    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        shown = issues[:50]
        more = f"\n  ... and {len(issues) - 50} more" if len(issues) > 50 else ""
        super().__init__(
            f"routes file has {len(issues)} problem(s):\n" + "\n".join("  " + i.describe() for i in shown) + more
        )


def load_routes_file(path: Path | str) -> list[Route]:
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _load_csv(path)
    return _load_yaml(path)


def _load_yaml(path: Path) -> list[Route]:
    try:
        doc = load_marked(path)
    except YamlSyntaxError as exc:
        raise RoutesFileError([exc.issue]) from exc
    issues = list(doc.issues)
    rows = doc.value.get("routes") if isinstance(doc.value, dict) else None
    if not isinstance(rows, list):
        raise RoutesFileError(issues + [doc.issue((), "expected a top-level 'routes:' list")])
    routes = []
    for i, row in enumerate(rows):
        route, problems = _route(row)
        routes.extend([route] if route else [])
        issues.extend(doc.issue(("routes", i, *sub), msg) for sub, msg in problems)
    if issues:
        raise RoutesFileError(issues)
    return routes


def _load_csv(path: Path) -> list[Route]:
    name = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RoutesFileError([Issue(name, None, (), f"cannot read: {exc.strerror}")]) from exc
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        raise RoutesFileError(
            [
                Issue(
                    name,
                    1,
                    (),
                    f"bad header: unknown columns {unknown}, missing {missing}; columns are {', '.join(CSV_COLUMNS)}",
                )
            ]
        )
    routes: list[Route] = []
    issues: list[Issue] = []
    for row in reader:
        line = reader.line_num
        data: dict[str, Any] = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
        for col in ("as_path", "communities"):
            if col in data:
                data[col] = data[col].split()
        route, problems = _route(data)
        routes.extend([route] if route else [])
        issues.extend(Issue(name, line, sub, msg) for sub, msg in problems)
    if issues:
        raise RoutesFileError(issues)
    return routes


def _route(row: object) -> tuple[Route | None, list[tuple[tuple, str]]]:
    if not isinstance(row, dict):
        return None, [((), "each route must be a mapping")]
    data = dict(row)
    if "link" in data:
        data["link_id"] = data.pop("link")
    problems: list[tuple[tuple, str]] = []
    for key in REQUIRED:
        if key not in row:
            problems.append(((key,), f"required key {key!r} is missing"))
    unknown = [k for k in row if k not in CSV_COLUMNS]
    problems.extend(((k,), f"unknown key {k!r} (typo?)") for k in unknown)
    prefix = data.get("prefix")
    if prefix is not None:
        try:
            data["prefix"] = str(ipaddress.ip_network(str(prefix), strict=True))
        except ValueError as exc:
            problems.append((("prefix",), f"{exc}"))
    if problems:
        return None, problems
    try:
        return Route.model_validate(data), []
    except ValidationError as exc:
        return None, [
            (tuple("link" if p == "link_id" else p for p in e["loc"]), f"{e['msg']} (got {e.get('input')!r})")
            for e in exc.errors()
        ]
