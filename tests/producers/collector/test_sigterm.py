"""SIGTERM flushes: flows received but still waiting in the open decode pass are decoded and
published before the collector process exits (docs/collector.md, "Stopping")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from netpilot import catalog
from netpilot.settings import KafkaSettings
from netpilot.wire.flows import decode_flows
from tests.producers.collector.test_service import INVENTORY, data, read, send, template

REPO = Path(__file__).resolve().parents[3]


def _rx_queue(port: int) -> int | None:
    """Bytes waiting in the kernel buffer of the UDP socket bound to ``port`` (None: none)."""
    with open("/proc/net/udp") as fh:
        next(fh)
        for line in fh:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port:
                return int(cols[4].split(":")[1], 16)
    return None


@pytest.mark.timeout(180)
def test_sigterm_publishes_the_open_pass(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(INVENTORY)
    cfg = tmp_path / "collector.yaml"
    k = kafka_settings
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": k.bootstrap_servers, "topic_prefix": k.topic_prefix},
                "log": {"format": "json"},
                "metrics": {"enabled": False},
                "collector": {
                    "listen_address": "127.0.0.1",
                    "netflow_port": 0,
                    "sflow_port": 0,
                    "inventory_file": str(inv),
                    # a pass that would stay open for ten minutes: only the stop can flush it
                    "batch_max_ms": 600_000,
                    "load_templates": False,
                },
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "netpilot.cli", "collector", "run", "--config", str(cfg)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 60
        ports: list[int] = []
        while not ports and time.monotonic() < deadline and proc.poll() is None:
            for line in list(lines):
                if line.startswith("{") and json.loads(line).get("event") == "collector listening":
                    ports = json.loads(line)["ports"]
            time.sleep(0.05)
        assert ports, f"collector did not start: {''.join(lines)[-2000:]}"
        send(ports[0], [template(), data([7, 8, 9, 7])])
        # the receiver has read both datagrams off the socket: they sit in the open pass
        deadline = time.monotonic() + 30
        while _rx_queue(ports[0]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _rx_queue(ports[0]) == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, "".join(lines)[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
    rows = [r for m in read(k, catalog.FLOWS, until=4) for r in decode_flows(m.value()).to_pylist()]
    assert sorted(r["out_if"] for r in rows) == [7, 7, 8, 9]
    events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert "stopping" in events and events.index("stopping") < len(events) - 1
