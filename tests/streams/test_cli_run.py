"""`netpilot streams run` as a process: it consumes, serves /metrics and /healthz, stops
cleanly (exit 0) on SIGTERM, and a worker killed with SIGKILL loses and doubles nothing."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from netpilot import catalog
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings
from netpilot.wire import aggregates as wire_agg
from netpilot.wire import flows as F
from tests.streams.helpers import StreamsWorker, flows_at, read_until, scrape


@pytest.fixture
def workers(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator:
    started: list[StreamsWorker] = []

    def start(name: str) -> StreamsWorker:
        w = StreamsWorker(kafka_settings, tmp_path / "data", tmp_path / f"{name}.log")
        started.append(w)
        return w

    yield start
    for w in started:
        w.close()


def _send(k: KafkaSettings, *tables) -> None:
    producer = KafkaProducer(k)
    for table in tables:
        producer.produce(k.topic(catalog.FLOWS), F.encode_flows(table), key="par", headers=F.headers())
    producer.flush()


def _minute(t0: int, seconds: range) -> object:
    return flows_at("par", "par-l1", t0 + 1000 * np.asarray(seconds, np.int64), "198.51.100.0")


def test_run_processes_flows_and_stops_on_sigterm(kafka_settings: KafkaSettings, workers) -> None:
    t0 = (int(time.time()) // 60) * 60_000 - 120_000
    _send(kafka_settings, _minute(t0, range(0, 40)))
    w = workers("run")
    w.wait_for('netpilot_streams_flows_total{pop="par"} 40.0')
    # windows close (and their counter moves) right after the batch is counted: wait for it
    w.wait_for('netpilot_streams_windows_closed_total{window_s="10"}')  # 10 s windows closed
    assert scrape(f"{w.url}/healthz").strip() == "ok"
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(timeout=60) == 0


def test_sigkill_mid_window_loses_and_doubles_nothing(kafka_settings: KafkaSettings, workers) -> None:
    k = kafka_settings
    t0 = (int(time.time()) // 60) * 60_000 - 180_000
    _send(k, _minute(t0, range(0, 20)), _minute(t0, range(20, 30)))
    first = workers("first")
    first.wait_for('netpilot_streams_flows_total{pop="par"} 30.0')
    first.proc.send_signal(signal.SIGKILL)  # no commit, no flush: whatever was sent is all
    first.proc.wait()
    _send(k, _minute(t0, range(30, 60)), _minute(t0, range(200, 201)))
    second = workers("second")

    def totals(messages: list) -> dict:
        out: dict = defaultdict(int)
        for m in messages:
            for r in wire_agg.decode_aggregates(m.value()).to_pylist():
                if r["window_start"].timestamp() * 1000 < t0 + 60_000:
                    out[r["window_s"]] += r["flows"]
        return dict(out)

    second.wait_for('netpilot_streams_windows_closed_total{window_s="60"}', timeout=90)
    aggs = read_until(k, k.topic(catalog.FLOW_AGGREGATES), lambda ms: totals(ms) == {10: 60, 60: 60}, timeout=30)
    assert totals(aggs) == {10: 60, 60: 60}
    rows = [
        (r["window_s"], r["window_start"], r["link_id"], r["dst_prefix"])
        for m in aggs
        for r in wire_agg.decode_aggregates(m.value()).to_pylist()
    ]
    assert len(rows) == len(set(rows)), "a window was published twice"
