"""The dashboards-as-code output: committed JSON is fresh, valid and wired to provisioning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as dm

from grafana import generate
from grafana.clickhouse import ClickHouseQuery, QueryType
from grafana.macros import QueryContext, expand_sql
from grafana.model import SCHEMA_VERSION

PROVISIONING = Path(generate.__file__).resolve().parent / "provisioning"


def _targets(dash: dict) -> list[dict]:
    return [t for p in dash["panels"] for t in p["targets"]]


def test_committed_json_matches_a_fresh_render() -> None:
    assert generate.stale() == [], "run `netpilot grafana render` and commit grafana/dashboards/"
    assert sorted(generate.load_all()) == sorted(generate.render())


def test_committed_json_is_what_grafanas_schema_models() -> None:
    # The SDK's models are generated from Grafana's schemas and keep only the fields those
    # define: a misspelt option, or a field Grafana does not know, is lost on the way back.
    register_default_plugins()  # typed Prometheus targets and panel options
    for name, d in generate.load_all().items():
        model = dm.Dashboard.from_json(d)
        assert json.loads(json.dumps(model, cls=JSONEncoder)) == d, name
        for p in model.panels or []:
            assert isinstance(p, dm.Panel) and p.targets, (name, p.title)
            for t in p.targets:  # ClickHouse targets come back typed (grafana/clickhouse.py)
                assert isinstance(t, ClickHouseQuery) == (p.datasource.type_val == "grafana-clickhouse-datasource")
    bad = generate.load_all()["egress-links.json"]
    bad["panels"][0]["fieldConfig"]["defaults"]["unti"] = "bps"
    assert json.loads(json.dumps(dm.Dashboard.from_json(bad), cls=JSONEncoder)) != bad


def test_clickhouse_query_round_trip_and_refusals() -> None:
    ts = generate.load_all()["network-overview.json"]["panels"][0]["targets"][0]
    q = ClickHouseQuery.from_json(ts)
    assert q.query_type is QueryType.TIME_SERIES and q.format.value == 0 and q.to_json() == ts
    with pytest.raises(ValueError, match="format"):
        ClickHouseQuery.from_json({**ts, "format": 1})
    with pytest.raises(ValueError, match="SQL-editor"):
        ClickHouseQuery.from_json({**ts, "editorType": "builder"})


def test_dashboards_are_current_grafana_schema() -> None:
    dashboards = generate.load_all()
    assert len(dashboards) == 5
    uids = set()
    for name, d in dashboards.items():
        assert d["schemaVersion"] == SCHEMA_VERSION >= 39, name
        assert d["uid"] not in uids and len(d["uid"]) <= 40
        uids.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)) and d["panels"], name
        for p in d["panels"]:
            assert p["type"] in {"timeseries", "table", "heatmap", "stat"}, p["title"]
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
            assert p["targets"] and p["fieldConfig"]["defaults"]["unit"], p["title"]
        for t in _targets(d):
            if t["datasource"]["type"] == "grafana-clickhouse-datasource":
                assert t["editorType"] == "sql" and t["rawSql"].lstrip().upper().startswith("SELECT")
                assert (t["queryType"], t["format"]) in {("timeSeries", 0), ("table", 1)}
            else:
                assert t["datasource"]["type"] == "prometheus" and t["expr"]


def test_template_variables_for_pop_router_link() -> None:
    for name in ("network-overview.json", "egress-links.json"):
        names = [v["name"] for v in generate.load_all()[name]["templating"]["list"]]
        assert names == ["db", "pop", "router", "link"]
    ctx = QueryContext(0, 60, 1, {"db": "netpilot", "pop": ["a"], "router": ["r"], "link": ["l"]})
    clickhouse_variables = 0
    for d in generate.load_all().values():
        for v in d["templating"]["list"]:
            if v["type"] == "query" and v["datasource"]["type"] == "grafana-clickhouse-datasource":
                assert v["multi"] and v["includeAll"] and v["current"]["value"] == ["$__all"]
                assert "netpilot.link_inventory" in expand_sql(v["query"], ctx)
                clickhouse_variables += 1
    assert clickhouse_variables == 8


def test_provisioning_parses_and_references_what_exists() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "netpilot.yaml").read_text())
    assert ds["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in ds["datasources"]}
    assert by_uid["netpilot-clickhouse"]["type"] == "grafana-clickhouse-datasource"
    assert by_uid["netpilot-prometheus"]["type"] == "prometheus"
    # credentials come from the environment, never from the file
    assert by_uid["netpilot-clickhouse"]["secureJsonData"]["password"] == "${NETPILOT_CLICKHOUSE_PASSWORD}"
    used = {
        (t["datasource"]["uid"], t["datasource"]["type"]) for d in generate.load_all().values() for t in _targets(d)
    }
    used |= {
        (v["datasource"]["uid"], v["datasource"]["type"])
        for d in generate.load_all().values()
        for v in d["templating"]["list"]
        if "datasource" in v
    }
    assert used <= {(u, d["type"]) for u, d in by_uid.items()}
    prov = yaml.safe_load((PROVISIONING / "dashboards" / "netpilot.yaml").read_text())
    [provider] = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    assert list(generate.DASHBOARD_DIR.glob("*.json"))
