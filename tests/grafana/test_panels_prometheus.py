"""Every PromQL expression of the dashboards against Debian's prometheus, which scrapes the
real collector, streams worker, ClickHouse sink and Prometheus exporter sink while they
process simulator traffic (and the store's utilisation and autopilot messages). The service
dashboard's run once per component, with its variables resolved as Grafana would."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

from grafana import generate
from grafana.macros import QueryContext, expand_promql
from grafana.panels import prometheus_exprs
from netpilot import catalog
from netpilot.dev.pipeline import Child
from netpilot.kafka.producer import KafkaProducer
from netpilot.obs.http import MetricsServer
from netpilot.obs.service import BACKLOG, DURATION, ERRORS, FAMILIES, LAG, PROCESSED, REQUIRED
from netpilot.settings import KafkaSettings, MetricsSettings
from producers.collector.service import CollectorService
from producers.collector.settings import CollectorSettings
from sinks.prometheus.service import PrometheusSinkService
from sinks.prometheus.settings import PrometheusSinkSettings
from tests.grafana.pipeline import Prometheus, collector_inventory_file, kafka_env, replay
from tests.grafana.store import Store, _collector_inventory
from tests.sinks.clickhouse.helpers import free_port

DASHBOARDS = generate.load_all()
SERVICE = DASHBOARDS.pop("service.json")
EXPRS = prometheus_exprs(DASHBOARDS)
SERVICE_EXPRS = prometheus_exprs({"service.json": SERVICE})
DATAGRAMS = 3000
# the components this test runs -> the optional contract families each has (netpilot/obs/service.py)
RUNNING = {
    "collector": {DURATION, BACKLOG},
    "streams": {LAG},
    "sink-clickhouse": {DURATION, BACKLOG},
    "sink-prometheus": {DURATION, BACKLOG},
}


def _names(expr: str) -> set[str]:
    return set(re.findall(r"\bnetpilot_\w+", expr))


def _wait(prom: Prometheus, expr: str, children: list[Child], timeout: float = 90) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = prom.query(expr)
        if result and float(result[0]["value"][1]) > 0:
            return float(result[0]["value"][1])
        time.sleep(0.5)
    raise AssertionError(f"{expr} stayed empty/zero for {timeout}s\n" + "\n".join(c.tail() for c in children))


def _publish(kafka: KafkaSettings, store: Store) -> None:
    """The store's inventory, utilisation and autopilot messages, as their producers key them."""
    producer = KafkaProducer(kafka)
    for topic in (catalog.LINK_INVENTORY, catalog.LINK_UTILISATION, catalog.RECOMMENDATIONS, catalog.CYCLE_SUMMARIES):
        for m in store.messages[topic.id]:
            key = {
                "link_inventory": f"{m.pop}|{getattr(m, 'link_id', '')}",
                "recommendations": f"{m.pop}|{getattr(m, 'prefix', '')}",
            }.get(topic.id, m.pop)
            producer.produce(kafka.topic(topic), m.encode(), key=key, headers=type(m).headers())
    for key, applied, _at in store.applied:  # the stand-in injector's read-back, tombstone too
        producer.produce(
            kafka.topic(catalog.APPLIED_OVERRIDES),
            None if applied is None else applied.encode(),
            key=key,
            partition_key=key.split("|")[0],
        )
    producer.flush(30)


def _service_variables(prom: Prometheus, component: str) -> dict[str, str | list[str]]:
    """The service dashboard's variables as Grafana resolves them from their queries."""
    by_name = {v["name"]: v for v in SERVICE["templating"]["list"]}
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", by_name["component"]["query"])
    assert m is not None and component in prom.label_values(m.group(2), m.group(1))
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", by_name["instance"]["query"])
    assert m is not None
    instances = prom.label_values(m.group(2), m.group(1).replace("$component", component))
    assert len(instances) == 1, (component, instances)  # one process of each here
    return {"component": component, "instance": instances}


def _check_service_dashboard(prom: Prometheus, base: QueryContext) -> None:
    """Per component: the families it exports answer, the others give "No data" (not an
    error), and the contract's values are the component's own counters."""
    for component, optional in RUNNING.items():
        ctx = replace(base, variables=_service_variables(prom, component))
        for title, expr in SERVICE_EXPRS:
            [family] = [f for f in FAMILIES if f in expr]
            result = prom.query(expand_promql(expr, ctx))
            if family in REQUIRED or family in optional:
                assert result, f"{component}: {title}: {expr} has no series"
            else:
                assert not result, f"{component}: {title}: {expr} should have no data, got {result}"
        processed = prom.query(f'sum({PROCESSED}{{component="{component}"}})')
        assert float(processed[0]["value"][1]) > 0, component  # everyone here handled traffic
        assert prom.query(f'count({ERRORS}{{component="{component}"}})'), component  # reasons at 0
    # the view sums the component's own counters: both come from the same scrape
    pairs = [
        (f'{PROCESSED}{{component="collector", item="flows"}}', "netpilot_collector_flows_total"),
        (f'{PROCESSED}{{component="sink-clickhouse", item="rows"}}', "netpilot_sink_clickhouse_rows_total"),
        (f'{DURATION}_count{{component="sink-clickhouse"}}', "netpilot_sink_clickhouse_insert_duration_seconds_count"),
    ]
    for contract, own in pairs:
        [row] = prom.query(f"sum({contract}) - sum({own})")
        assert float(row["value"][1]) == 0, (contract, own)
        assert float(prom.query(f"sum({own})")[0]["value"][1]) > 0, own


def test_every_promql_returns_series(
    kafka_settings: KafkaSettings, grafana_store: Store, tmp_path: Path, clickhouse_dsn: str
) -> None:
    from producers.simulator.scenario import load_scenario
    from tests.grafana.store import DEMO

    inv = collector_inventory_file(
        _collector_inventory(grafana_store.sim_dir, load_scenario(DEMO)), tmp_path / "inventory.yaml"
    )
    port = free_port()
    registry = CollectorRegistry()
    collector = CollectorService(
        CollectorSettings(
            kafka=kafka_settings,
            listen_address="127.0.0.1",
            netflow_port=port,
            sflow_port=port,
            inventory_file=inv,
            batch_max_ms=100,
            metrics=MetricsSettings(enabled=False),
        ),
        registry,
    )
    collector_metrics = MetricsServer(registry)
    exporter = PrometheusSinkService(PrometheusSinkSettings(kafka=kafka_settings))
    ports = {"sink": free_port(), "streams": free_port()}
    env = kafka_env(kafka_settings)
    children: list[Child] = []
    prom: Prometheus | None = None
    try:
        collector.start()
        collector_metrics.start()
        exporter.start()
        assert exporter.url is not None
        ports["exporter"] = int(exporter.url.rsplit(":", 1)[1])
        children.append(
            Child(
                "sink-clickhouse",
                ["sink", "clickhouse", "run"],
                {
                    **env,
                    "NETPILOT_SINK_CLICKHOUSE__DSN": clickhouse_dsn,
                    "NETPILOT_SINK_CLICKHOUSE__GROUP_ID": f"grafana-test-{uuid.uuid4().hex[:8]}",
                    "NETPILOT_SINK_CLICKHOUSE__METRICS__LISTEN": f"127.0.0.1:{ports['sink']}",
                },
                tmp_path / "sink.log",
            )
        )
        children.append(
            Child(
                "streams",
                ["streams", "run"],
                {
                    **env,
                    "NETPILOT_STREAMS__APP_ID": f"grafana-test-{uuid.uuid4().hex[:8]}",
                    "NETPILOT_STREAMS__DATA_DIR": str(tmp_path / "streams"),
                    "NETPILOT_STREAMS__METRICS__LISTEN": f"127.0.0.1:{ports['streams']}",
                },
                tmp_path / "streams.log",
            )
        )
        prom = Prometheus(tmp_path / "prom", {"collector": collector_metrics.port, **ports})
        prom.wait_targets_up()
        assert replay(grafana_store.sim_dir / "datagrams.pcap", port, DATAGRAMS) == DATAGRAMS
        _publish(kafka_settings, grafana_store)
        _wait(prom, "sum(netpilot_collector_messages_published_total)", children)
        _wait(prom, 'sum(netpilot_sink_clickhouse_rows_total{table=~".*flows_raw"})', children)
        _wait(prom, "sum(netpilot_streams_flows_total)", children)
        _wait(prom, "count(netpilot_link_utilisation_ratio)", children)
        _wait(prom, "count(netpilot_autopilot_active_overrides)", children)
        # the lag gauge appears once the sink has an assignment and a fetch response
        _wait(prom, "count(netpilot_sink_clickhouse_consumer_lag_messages)", children)
        time.sleep(3)  # a few more scrapes, so every rate() window holds two samples
        known = prom.metric_names()
        links = grafana_store.messages["link_inventory"]
        ctx = QueryContext(
            time.time() - 3600,
            time.time(),
            interval_s=1,
            scrape_interval_s=1,
            variables={
                "pop": sorted({x.pop for x in links}),
                "router": sorted({x.router for x in links}),
                "link": sorted(x.link_id for x in links),
            },
        )
        empty = []
        for title, expr in EXPRS:
            # `or vector(0)` must not hide a misspelt name: each name was announced by a scrape
            for name in _names(expr):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert name in known or base in known, f"{title}: {name} is exported by no component"
            if not prom.query(expand_promql(expr, ctx)):
                empty.append((title, expr))
        assert not empty, f"PromQL with no series: {empty}\n" + "\n".join(c.tail() for c in children)
        assert len(EXPRS) >= 12
        _check_service_dashboard(prom, ctx)
    finally:
        if prom is not None:
            prom.stop()
        for c in children:
            c.stop()
        exporter.stop()
        collector.stop()
        collector_metrics.stop()
