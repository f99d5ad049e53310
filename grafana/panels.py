"""Read the dashboard JSON back as runnable queries: what the tests and ``netpilot report``
execute, so both run exactly what Grafana would (macros expanded by grafana/macros.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from grafana.macros import QueryContext, expand_sql
from sinks.clickhouse.client import ClickHouseClient

CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    title: str
    kind: str
    """Grafana panel type (timeseries, table, heatmap ...)."""
    unit: str
    sql: str
    timeseries: bool
    thresholds: tuple[tuple[float, str], ...] = ()
    """(value, colour) of the thresholds drawn on the panel (e.g. the autopilot triggers)."""


def clickhouse_panels(dashboards: Mapping[str, Mapping[str, Any]]) -> list[PanelQuery]:
    out = []
    for _name, d in dashboards.items():
        for p in d["panels"]:
            defaults = p["fieldConfig"]["defaults"]
            drawn = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off") != "off"
            steps = tuple((s["value"], s["color"]) for s in defaults["thresholds"]["steps"] if s["value"] is not None)
            for t in p["targets"]:
                if t["datasource"]["type"] == CLICKHOUSE_TYPE:
                    out.append(
                        PanelQuery(
                            d["title"],
                            p["title"],
                            p["type"],
                            defaults["unit"],
                            t["rawSql"],
                            t["format"] == 0,
                            steps if drawn else (),
                        )
                    )
    return out


def prometheus_exprs(dashboards: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every Prometheus target."""
    return [
        (p["title"], t["expr"])
        for d in dashboards.values()
        for p in d["panels"]
        for t in p["targets"]
        if t["datasource"]["type"] == "prometheus"
    ]


def query_arrow(client: ClickHouseClient, sql: str) -> pa.Table:
    """Run SQL, columns back as Arrow (DateTime arrives as uint32 seconds)."""
    return pa.ipc.open_stream(client.raw(sql, fmt="ArrowStream")).read_all()


def run_panel(client: ClickHouseClient, panel: PanelQuery, ctx: QueryContext) -> pa.Table:
    return query_arrow(client, expand_sql(panel.sql, ctx))


def all_variable_values(client: ClickHouseClient, dashboard: Mapping[str, Any], ctx: QueryContext) -> QueryContext:
    """Resolve the dashboard's variables as Grafana does on load with "All" selected:
    constants first, then each query variable in order (later ones see earlier values)."""
    values: dict[str, str | Sequence[str]] = dict(ctx.variables)
    for v in dashboard["templating"]["list"]:
        if v["type"] == "constant":
            values.setdefault(v["name"], v["query"])
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query" and v["name"] not in ctx.variables:
            sql = expand_sql(v["query"], replace(ctx, variables=values))
            # no options (empty store): one empty value keeps `IN (...)` valid SQL
            values[v["name"]] = [str(r[0]) for r in client.rows(sql)] or [""]
    return replace(ctx, variables=values)
