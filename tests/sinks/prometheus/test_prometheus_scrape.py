"""Debian's prometheus scrapes the exporter; PromQL returns the link utilisation we sent."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings, MetricsSettings
from netpilot.wire.injector import AppliedOverride
from netpilot.wire.links import LinkInventory, LinkUtilisation
from sinks.prometheus.service import PrometheusSinkService
from sinks.prometheus.settings import PrometheusSinkSettings

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _promql(port: int, query: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_link_utilisation(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    assert Path(PROMETHEUS).exists(), "run scripts/install-system-deps.sh (Debian prometheus)"
    now = time.time()
    p = KafkaProducer(kafka_settings)
    for link, cap, util in (("ams-l1", 1e10, 0.42), ("ams-l2", 1e11, 0.07)):
        inv = LinkInventory(pop="ams", link_id=link, router="ams-r1", capacity_bps=cap, peer_type="transit")
        p.produce(kafka_settings.topic(catalog.LINK_INVENTORY), inv.encode(), key=f"ams|{link}", partition_key="ams")
        u = LinkUtilisation(
            pop="ams",
            link_id=link,
            window_start=now - 60,
            window_s=60,
            capacity_bps=cap,
            counter_bps=util * cap,
            flow_bps=0.9 * util * cap,
            utilisation=util,
            coverage=0.9,
        )
        p.produce(kafka_settings.topic(catalog.LINK_UTILISATION), u.encode(), key="ams")
    # what the injector read back: two overrides installed, a third one gone (tombstone)
    applied = kafka_settings.topic(catalog.APPLIED_OVERRIDES)
    for prefix, confirmed in (("192.0.2.0/24", now - 20), ("198.51.100.0/24", now - 50), ("203.0.113.0/24", now - 5)):
        a = AppliedOverride(
            pop="ams",
            prefix=prefix,
            link_id="ams-l2",
            next_hop="192.0.2.31",
            routers=("ams-r1",),
            since=now - 300,
            confirmed_at=confirmed,
        )
        p.produce(applied, a.encode(), key=a.key(), headers=AppliedOverride.headers(), partition_key="ams")
    p.produce(applied, None, key="ams|203.0.113.0/24", partition_key="ams")
    p.flush()

    exporter_port = _free_port()
    settings = PrometheusSinkSettings(
        kafka=kafka_settings,
        group_id="test-prom-exporter",
        metrics=MetricsSettings(listen=f"127.0.0.1:{exporter_port}"),
    )
    svc = PrometheusSinkService(settings, CollectorRegistry())
    svc.start()
    prom_port = _free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: netpilot\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )
    prom = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "prometheus.log", "wb"),  # noqa: SIM115
    )
    try:
        query = 'netpilot_link_utilisation_ratio{pop="ams",link_id="ams-l1",peer_type="transit"}'
        deadline = time.monotonic() + 60
        result: list[dict] = []
        while time.monotonic() < deadline and not result:
            try:
                result = _promql(prom_port, query)
            except OSError:
                pass
            time.sleep(0.5)
        assert result, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert float(result[0]["value"][1]) == 0.42
        bps = _promql(prom_port, 'sum(netpilot_link_traffic_bits_per_second{pop="ams"})')
        assert float(bps[0]["value"][1]) == 0.42e10 + 0.07e11
        top = _promql(prom_port, "topk(1, netpilot_link_utilisation_ratio)")
        assert top[0]["metric"]["link_id"] == "ams-l1"
        up = _promql(prom_port, 'up{job="netpilot"}')
        assert float(up[0]["value"][1]) == 1.0
        # the tombstone was applied: 2 installed, aged from the newest remaining read-back
        # (another topic than the utilisation: its messages may be applied a scrape later)
        applied_q = 'netpilot_autopilot_applied_overrides{pop="ams"} == 2'
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _promql(prom_port, applied_q):
            time.sleep(0.5)
        [count] = _promql(prom_port, 'netpilot_autopilot_applied_overrides{pop="ams"}')
        assert float(count["value"][1]) == 2 and set(count["metric"]) == {"__name__", "pop", "job", "instance"}
        [age] = _promql(prom_port, 'netpilot_autopilot_applied_age_seconds{pop="ams"}')
        assert 20 <= float(age["value"][1]) <= 20 + (time.time() - now) + 1
    finally:
        prom.terminate()
        prom.wait(30)
        svc.stop()
