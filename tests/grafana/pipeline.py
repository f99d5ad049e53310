"""A small real pipeline for the PromQL test: collector (in process) -> Kafka -> streams and
ClickHouse sink (child processes), each serving its own /metrics, scraped by Debian's
prometheus."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from netpilot.settings import KafkaSettings
from producers.collector.pcapfile import CaptureStats, read_datagrams
from tests.sinks.clickhouse.helpers import free_port


def collector_inventory_file(inventory, path: Path) -> Path:  # type: ignore[no-untyped-def]
    path.write_text(yaml.safe_dump(inventory.model_dump(mode="json")))
    return path


def replay(pcap: Path, port: int, limit: int) -> int:
    """Send the capture's first ``limit`` datagrams to 127.0.0.1:port, each from its exporter."""
    socks: dict[bytes, socket.socket] = {}
    sent = 0
    try:
        for d in read_datagrams(pcap, CaptureStats()):
            s = socks.get(d.src)
            if s is None:
                s = socks[d.src] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((socket.inet_ntoa(d.src[12:]), 0))
            s.sendto(d.payload, ("127.0.0.1", port))
            sent += 1
            if sent % 200 == 0:
                time.sleep(0.01)  # stay under the receive buffer; this is not a load test
            if sent >= limit:
                break
    finally:
        for s in socks.values():
            s.close()
    return sent


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    return {
        "NETPILOT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "NETPILOT_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "NETPILOT_LOG__FORMAT": "json",
    }


class Prometheus:
    """``/usr/bin/prometheus`` scraping the given targets every second."""

    def __init__(self, root: Path, targets: dict[str, int]) -> None:
        self.port = free_port()
        cfg = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        root.mkdir(parents=True, exist_ok=True)
        conf = root / "prometheus.yml"
        conf.write_text(yaml.safe_dump(cfg))
        self.log = root / "prometheus.log"
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={conf}",
                    f"--storage.tsdb.path={root / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        return json.loads(urllib.request.urlopen(url, timeout=10).read())

    def wait_targets_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                active = self.api("targets")["data"]["activeTargets"]
                if active and all(t["health"] == "up" for t in active):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"prometheus targets not up: {self.api('targets')}")

    def query(self, expr: str) -> list[dict]:
        body = self.api("query", query=expr)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def label_values(self, label: str, selector: str) -> list[str]:
        """What a Grafana ``label_values(selector, label)`` variable offers."""
        body = self.api(f"label/{label}/values", **{"match[]": selector})
        assert body["status"] == "success", body
        return sorted(body["data"])

    def metric_names(self) -> set[str]:
        """Every metric family the scrapes announced (HELP/TYPE), with or without samples."""
        return set(self.api("metadata")["data"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
