"""No loss, no duplicates: the real sink process SIGKILLed mid-stream, then restarted."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from netpilot.settings import KafkaSettings
from sinks.clickhouse.client import FAULT_FILE_ENV
from sinks.clickhouse.schema import ROLLUPS
from tests.sinks.clickhouse.helpers import SinkProcess, make_flows, produce, query_stopped

TOTALS = "SELECT count(), sum(bytes), sum(bytes_scaled) FROM netpilot.flows_raw"


def _hour_ago_ms() -> int:
    return (int(time.time()) // 3600 - 1) * 3_600_000


def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    data = make_flows(n_messages=90, rows_per_message=2000, seed=1, base_ms=_hour_ago_ms())
    thirds = [data.messages[i::3] for i in range(3)]
    group = f"sink-kill-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "sink.log"
    env = {"NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_ROWS": "6000", "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_SECONDS": "0.2"}

    # Three rounds: produce a third, start the sink, SIGKILL it once it has inserted some
    # rows (so batches are in flight, some inserted but not committed).
    for round_no, part in enumerate(thirds):
        produce(kafka_settings, part)
        sink = SinkProcess(kafka_settings, clickhouse_dsn, group, log, env).start()
        sink.wait_metric("netpilot_sink_clickhouse_rows_total", 6000 * (round_no + 1), timeout=90)
        sink.kill()

    # Restart; it must catch up to exactly the produced totals, and stay there.
    sink = SinkProcess(kafka_settings, clickhouse_dsn, group, log, env).start()
    expected = [[data.rows, data.bytes, data.bytes_scaled]]
    got = sink.wait_query(TOTALS, expected, timeout=120)
    assert got == expected, sink.tail()
    time.sleep(1.5)  # anything still in flight would show as a duplicate now
    assert sink.query(TOTALS) == expected
    assert sink.stop() == 0, sink.tail()

    # Read again with the sink stopped, through the CLI (one process per chDB path), and
    # check every rollup against the raw rows of the same (window-aligned) range.
    assert query_stopped(sink.dsn, TOTALS) == expected
    assert_rollups_match_raw(sink.dsn, data.rows, data.bytes_scaled)


def assert_rollups_match_raw(dsn: str, rows: int, bytes_scaled: int) -> None:
    for table, fn in ROLLUPS:
        # A sub-range that starts and ends on window boundaries, then the whole table.
        span = "1 HOUR" if table == "flows_1h" else "10 MINUTE"  # data spans 30 minutes
        rng = f"WITH (SELECT {fn}(min(time_received)) FROM netpilot.flows_raw) AS lo, lo + INTERVAL {span} AS hi "
        raw = query_stopped(
            dsn,
            rng + "SELECT sum(bytes_scaled), sum(packets_scaled), count() "
            "FROM netpilot.flows_raw WHERE time_received >= lo AND time_received < hi",
        )
        rollup = query_stopped(
            dsn,
            rng + f"SELECT sum(bytes), sum(packets), sum(samples) "
            f"FROM netpilot.{table} WHERE window_start >= lo AND window_start < hi",
        )
        assert rollup == raw and raw[0][2] > 0, table
        whole = query_stopped(dsn, f"SELECT sum(bytes), sum(samples) FROM netpilot.{table}")
        assert whole == [[bytes_scaled, rows]], table


def test_crash_between_insert_and_commit_replays_the_same_batch(
    kafka_settings: KafkaSettings, tmp_path: Path, clickhouse_dsn: str
) -> None:
    """Deterministic version of the dangerous window: the process dies right after
    ClickHouse acknowledged an insert and before the offset commit."""
    data = make_flows(n_messages=12, rows_per_message=1000, seed=2, base_ms=_hour_ago_ms())
    produce(kafka_settings, data.messages)
    fault = tmp_path / "fault"
    fault.write_text("kill-after-insert")
    group = f"sink-crash-{uuid.uuid4().hex[:8]}"
    env = {FAULT_FILE_ENV: str(fault), "NETPILOT_SINK_CLICKHOUSE__BATCH_MAX_ROWS": "3000"}
    sink = SinkProcess(kafka_settings, clickhouse_dsn, group, tmp_path / "sink.log", env).start()
    assert sink.proc is not None and sink.proc.wait(60) == -9, sink.tail()

    fault.write_text("")
    sink = SinkProcess(kafka_settings, clickhouse_dsn, group, tmp_path / "sink.log", env).start()
    expected = [[data.rows, data.bytes, data.bytes_scaled]]
    assert sink.wait_query(TOTALS, expected, timeout=60) == expected, sink.tail()
    assert sink.metric("netpilot_sink_clickhouse_intent_replays_total") >= 1
    time.sleep(1.0)
    assert sink.query(TOTALS) == expected
    assert sink.stop() == 0, sink.tail()
