"""``netpilot report``: the dashboards' ClickHouse panels as PNG charts and one HTML page,
for users without a Grafana server. It runs the same JSON the dashboards ship, with macros
expanded as the plugin does (grafana/macros.py) and every variable on "All" unless narrowed."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from grafana.charts import render_png
from grafana.generate import load_all
from grafana.macros import MacroError, QueryContext, expand_sql, grafana_interval
from grafana.panels import all_variable_values, clickhouse_panels, query_arrow
from sinks.clickhouse.client import ClickHouseClient, ClickHouseError

MAX_POINTS = 300
"""Data points per chart: what a ~1100 px wide PNG shows without aliasing."""


@dataclass(frozen=True)
class RenderedPanel:
    dashboard: str
    title: str
    png: Path | None
    rows: int
    sql: str
    error: str | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def build_report(
    client: ClickHouseClient,
    out: Path,
    since_s: float,
    now: float | None = None,
    narrow: Mapping[str, Sequence[str]] | None = None,
    database: str = "netpilot",
) -> list[RenderedPanel]:
    """Run every ClickHouse panel over [now - since, now] and write PNGs + index.html to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    base = QueryContext(
        now - since_s,
        now,
        grafana_interval(since_s, MAX_POINTS),
        {"db": database, **{k: list(v) for k, v in (narrow or {}).items()}},
    )
    dashboards = load_all()
    panels = clickhouse_panels(dashboards)
    contexts: dict[str, QueryContext] = {}
    results: list[RenderedPanel] = []
    for p in panels:
        sql = p.sql
        try:
            if p.dashboard not in contexts:
                [dash] = [d for d in dashboards.values() if d["title"] == p.dashboard]
                contexts[p.dashboard] = all_variable_values(client, dash, replace(base))
            sql = expand_sql(p.sql, contexts[p.dashboard])
            table = query_arrow(client, sql)
        except (ClickHouseError, MacroError) as exc:  # one broken panel must not hide the others
            results.append(RenderedPanel(p.dashboard, p.title, None, 0, sql, str(exc)[:2000]))
            continue
        png = out / f"{_slug(p.dashboard.split('/')[-1])}--{_slug(p.title)}.png"
        render_png(p, table, png, f"{p.dashboard} · {_range_text(base)}", (base.from_s, base.to_s))
        results.append(RenderedPanel(p.dashboard, p.title, png, table.num_rows, sql))
    (out / "index.html").write_text(_html(results, base))
    return results


def _range_text(ctx: QueryContext) -> str:
    f = datetime.fromtimestamp(ctx.from_s, UTC).strftime("%Y-%m-%d %H:%M")
    t = datetime.fromtimestamp(ctx.to_s, UTC).strftime("%H:%M UTC")
    return f"{f} – {t}, {int(ctx.interval_s)} s buckets"


def _html(results: list[RenderedPanel], ctx: QueryContext) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>netpilot report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}img{max-width:100%;"
        "border:1px solid #ddd}.err{color:#b00}details{margin:.3em 0 2em}pre{white-space:pre-wrap;"
        "font-size:80%;background:#f6f6f6;padding:.5em}</style></head><body>",
        f"<h1>netpilot report</h1><p>{html.escape(_range_text(ctx))}</p>",
    ]
    dashboard = None
    for r in results:
        if r.dashboard != dashboard:
            dashboard = r.dashboard
            parts.append(f"<h2>{html.escape(dashboard)}</h2>")
        parts.append(f"<h3>{html.escape(r.title)}</h3>")
        if r.error:
            parts.append(f"<p class='err'>query failed: {html.escape(r.error)}</p>")
        elif r.png is not None:
            parts.append(f"<img src='{html.escape(r.png.name)}' alt='{html.escape(r.title)}'><p>{r.rows} rows</p>")
        parts.append(f"<details><summary>SQL</summary><pre>{html.escape(r.sql)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
