"""The broker goes away while the sink holds a batch: the sink waits and retries, it never
exits, and every row lands exactly once when the broker is back.

A private broker (its own folder and port), since the test stops it: the session's shared
broker is left alone. The batch timer (3 s) is longer than it takes to stop the broker after
the messages are acknowledged, so the sink's commits (the intent before the insert, the
offset after it) meet the outage — the path that used to raise ``_WAIT_COORD`` and stop the
service.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from netpilot import catalog
from netpilot.settings import KafkaSettings
from tests.sinks.clickhouse.helpers import SinkProcess, free_port, make_flows, produce

TOTALS = "SELECT count(), sum(bytes), sum(bytes_scaled) FROM netpilot.flows_raw"
M = "netpilot_sink_clickhouse_"

pytestmark = pytest.mark.kafka  # a private broker, not the kafka_broker fixture


def test_sink_rides_out_a_broker_restart_without_loss_or_duplicates(tmp_path: Path, clickhouse_dsn: str) -> None:
    from netpilot.dev.kafka import LocalKafka
    from netpilot.kafka.admin import TopicAdmin
    from tests.conftest import _wait_until_visible as wait_until_visible

    broker = LocalKafka(tmp_path / "kafka", port=free_port())
    bootstrap = broker.up().bootstrap
    sink: SinkProcess | None = None
    try:
        kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix="br.")
        admin = TopicAdmin(kafka)
        admin.sync(catalog.ALL_TOPICS)  # a private broker: the topics go with its folder
        wait_until_visible(admin, [kafka.topic(t) for t in catalog.ALL_TOPICS])
        base_ms = (int(time.time()) // 3600 - 1) * 3_600_000  # the previous hour: never ahead of the clock
        first = make_flows(n_messages=6, rows_per_message=500, seed=11, base_ms=base_ms)
        second = make_flows(n_messages=6, rows_per_message=500, seed=12, base_ms=base_ms)
        sink = SinkProcess(
            kafka,
            clickhouse_dsn,
            f"sink-br-{uuid.uuid4().hex[:8]}",
            tmp_path / "sink.log",
            {  # dynamic membership, as deployed: the outage outlasts the session, so
                # the sink loses its partitions and takes them back from the intents
                "NETPILOT_KAFKA__LIBRDKAFKA": json.dumps({"session.timeout.ms": "6000"}),
                "NETPILOT_SINK_CLICKHOUSE__GROUP_INSTANCE_ID": "",
                "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_SECONDS": "3",
                "NETPILOT_LOG__LEVEL": "debug",
                "NETPILOT_SINK_CLICKHOUSE__BACKOFF_INITIAL_S": "0.2",
                "NETPILOT_SINK_CLICKHOUSE__BACKOFF_MAX_S": "1",
            },
        ).start()
        produce(kafka, first.messages)
        sink.wait_metric(M + "messages_total", len(first.messages), timeout=60)  # polled, not flushed
        broker.down()  # SIGTERM; the folder (and every topic and offset) is kept
        # the outage outlasts the batch timer: the sink's commits fail meanwhile
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            assert sink.proc is not None and sink.proc.poll() is None, sink.tail()
            time.sleep(0.2)
        assert broker.up().bootstrap == bootstrap

        produce(kafka, second.messages)
        expected = [[first.rows + second.rows, first.bytes + second.bytes, first.bytes_scaled + second.bytes_scaled]]
        got = sink.wait_query(TOTALS, expected, timeout=180)
        assert got == expected, (
            got,
            sink.query("SELECT pop, count(), sum(bytes) FROM netpilot.flows_raw GROUP BY pop ORDER BY pop"),
            sink.tail(),
        )
        assert sink.metric(M + 'errors_total{reason="commit"') >= 1, "the outage never reached a commit"
        assert sink.stop() == 0, sink.tail()
    finally:
        if sink is not None and sink.proc is not None and sink.proc.poll() is None:
            sink.kill()
        broker.down()
