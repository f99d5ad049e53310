"""Small builders for Grafana dashboard JSON (schemaVersion 41, Grafana 12).

Plain dicts, because the output *is* JSON and the shapes are few: a ClickHouse SQL target
in the grafana-clickhouse-datasource v4 query model (``editorType: "sql"``, ``rawSql``,
``queryType`` table/timeSeries, ``format`` 1 table / 0 time series), a Prometheus target,
panels (timeseries, table, heatmap, stat, barchart) and query/constant variables.
Why not grafana-foundation-sdk: one more dependency for ~150 lines of dicts we test anyway.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 41
"""Grafana 12.0's latest dashboard schema. Grafana main is at 43; 42 (hideFrom.tooltip) and
43 (formatTime -> convertFieldType) touch features these dashboards do not use, so Grafana
migrates them on load without changes."""

CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "netpilot-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "netpilot-prometheus"}

FORMAT_TIMESERIES = 0
FORMAT_TABLE = 1

Json = dict[str, Any]


def ch_target(sql: str, timeseries: bool, ref: str = "A") -> Json:
    return {
        "refId": ref,
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "queryType": "timeSeries" if timeseries else "table",
        "format": FORMAT_TIMESERIES if timeseries else FORMAT_TABLE,
        "rawSql": sql,
        "pluginVersion": "4.10.1",
    }


def prom_target(expr: str, legend: str, ref: str) -> Json:
    return {
        "refId": ref,
        "datasource": PROMETHEUS,
        "expr": expr,
        "legendFormat": legend,
        "range": True,
        "instant": False,
        "editorMode": "code",
    }


def _field_config(
    unit: str,
    thresholds: list[tuple[float | None, str]] | None = None,
    draw_thresholds: bool = False,
    stack: bool = False,
    minimum: float | None = 0,
) -> Json:
    steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
    custom: Json = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10 if not stack else 60,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line+area" if draw_thresholds else "off"},
    }
    defaults: Json = {
        "unit": unit,
        "thresholds": {"mode": "absolute", "steps": steps},
        "color": {"mode": "palette-classic"},
        "custom": custom,
    }
    if minimum is not None:
        defaults["min"] = minimum
    return {"defaults": defaults, "overrides": []}


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    grid: tuple[int, int, int, int],
    **opts: Any,
) -> Json:
    """A panel of type ``kind`` at grid (x, y, w, h)."""
    x, y, w, h = grid
    datasource = targets[0]["datasource"]
    out: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": _field_config(
            unit,
            opts.get("thresholds"),
            opts.get("draw_thresholds", False),
            opts.get("stack", False),
            opts.get("minimum", 0),
        ),
        "options": _options(kind),
    }
    if opts.get("max") is not None:
        out["fieldConfig"]["defaults"]["max"] = opts["max"]
    if kind == "table":
        out["fieldConfig"]["defaults"]["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
    return out


def _options(kind: str) -> Json:
    legend = {"showLegend": True, "displayMode": "table", "placement": "right", "calcs": ["mean", "max"]}
    if kind == "timeseries":
        return {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "table":
        return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    if kind == "heatmap":
        return {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "RdYlGn", "reverse": True, "min": 0, "max": 1},
            "yAxis": {"axisPlacement": "left"},
            "rowsFrame": {"layout": "auto"},
            "legend": {"show": True},
            "tooltip": {"mode": "single", "yHistogram": False},
        }
    if kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    return {}


def query_variable(name: str, label: str, sql: str) -> Json:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": CLICKHOUSE,
        "query": sql,
        "definition": sql,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "options": [],
    }


def constant_variable(name: str, value: str) -> Json:
    return {
        "type": "constant",
        "name": name,
        "query": value,
        "hide": 2,
        "current": {"text": value, "value": value},
        "options": [{"selected": True, "text": value, "value": value}],
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Json],
    variables: list[Json],
    time_from: str = "now-6h",
    tags: tuple[str, ...] = ("netpilot",),
) -> Json:
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": list(tags),
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "timezone": "utc",
        "refresh": "1m",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [
            {
                "type": "dashboards",
                "tags": ["netpilot"],
                "asDropdown": True,
                "title": "netpilot",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables},
        "panels": panels,
    }
