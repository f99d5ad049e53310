"""The service dashboard works for any component: every component exports the service
contract it is built on, and the dashboard asks for nothing else. (Its PromQL runs against a
real Prometheus scraping real components in test_panels_prometheus.py.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from grafana import generate
from netpilot.obs.service import BACKLOG, DURATION, ERRORS, FAMILIES, LAG, PROCESSED
from producers.collector.metrics import CollectorMetrics
from producers.inventory.metrics import InventoryMetrics
from producers.linkstats.metrics import SnmpMetrics
from producers.routes.bmp.metrics import BmpMetrics
from sinks.bgp.metrics import injector_metrics
from sinks.clickhouse.metrics import sink_metrics
from sinks.prometheus.metrics import exporter_metrics
from streams.autopilot.metrics import AutopilotMetrics
from streams.metrics import StreamsMetrics

REPO = Path(__file__).resolve().parents[2]

# component -> (its metrics builder, the optional families it has)
COMPONENTS: dict[str, tuple[Callable[[CollectorRegistry], object], set[str]]] = {
    "collector": (CollectorMetrics.create, {DURATION, BACKLOG}),
    "snmp": (SnmpMetrics.create, {DURATION}),
    "inventory": (InventoryMetrics.create, set()),
    "bmp": (BmpMetrics.create, {BACKLOG}),
    "streams": (StreamsMetrics.create, {LAG}),
    "autopilot": (AutopilotMetrics.create, {DURATION}),
    "sink-prometheus": (exporter_metrics, {DURATION, BACKLOG}),
    "sink-clickhouse": (sink_metrics, {DURATION, BACKLOG}),
    "injector": (injector_metrics, {DURATION}),
}


def _series(registry: CollectorRegistry) -> list[tuple[str, dict[str, str]]]:
    text = generate_latest(registry).decode()
    return [(s.name, s.labels) for f in text_string_to_metric_families(text) for s in f.samples]


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_every_component_exports_the_contract(component: str) -> None:
    build, optional = COMPONENTS[component]
    reg = CollectorRegistry()
    build(reg)
    series = _series(reg)
    contract = [(n, labels) for n, labels in series if n.startswith("netpilot_service_")]
    assert contract and all(labels["component"] == component for _n, labels in contract)
    names = {n for n, _labels in contract}
    assert PROCESSED in names
    # at least one reason at 0 from the start: the errors panel shows a line, not "No data"
    assert any(n == ERRORS for n, _labels in contract), component
    assert (f"{DURATION}_count" in names) == (DURATION in optional)
    assert (BACKLOG in names) == (BACKLOG in optional)
    assert (LAG in names) == (LAG in optional)


def test_no_component_is_left_out() -> None:
    # every running component builds its metrics with metrics_for(...) in a metrics.py; each
    # of those must declare its service view, and be listed above
    declared = set()
    for path in (p for top in ("producers", "streams", "sinks") for p in REPO.glob(f"{top}/**/metrics.py")):
        text = path.read_text()
        for name in re.findall(r'metrics_for\("([\w-]+)"', text):
            assert ".service(" in text, f"{path}: {name} exports no service view"
            declared.add(name)
    assert declared == set(COMPONENTS)


def test_service_dashboard_asks_only_for_the_contract() -> None:
    d = generate.load_all()["service.json"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert list(variables) == ["component", "instance"]
    assert variables["component"]["query"] == f"label_values({PROCESSED}, component)"
    assert not variables["component"]["multi"] and variables["instance"]["allValue"] == ".*"
    exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
    assert len(exprs) >= 8
    used = set()
    for e in exprs:
        assert set(re.findall(r"\bnetpilot_\w+", e)) <= {*FAMILIES, f"{DURATION}_bucket"}, e
        assert '{component="$component", instance=~"$instance"}' in e, e
        used |= {f for f in FAMILIES if f in e}
    assert used == set(FAMILIES)
