"""The client wrapper's fault seam (test_faults.py, test_sink_kill.py drive it in a real sink
process): the file named by NETPILOT_TEST_CLICKHOUSE_FAULT_FILE, read by each new client."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sinks.clickhouse.client import FAULT_FILE_ENV, ClickHouseClient, ClickHouseUnavailable


def test_fault_file_from_the_environment(tmp_path: Path, clickhouse_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fault = tmp_path / "fault"
    fault.write_text("unavailable")
    monkeypatch.setenv(FAULT_FILE_ENV, str(fault))
    client = ClickHouseClient(clickhouse_dsn)
    try:
        with pytest.raises(ClickHouseUnavailable, match="injected fault"):
            client.command("CREATE TABLE default.t (x UInt8) ENGINE = MergeTree ORDER BY x")
        fault.write_text("")
        client.command("CREATE TABLE default.t (x UInt8) ENGINE = MergeTree ORDER BY x")
        fault.write_text("ack-lost")  # applied, then raises once and clears the file
        with pytest.raises(ClickHouseUnavailable, match="acknowledgement was lost"):
            client.insert_arrow("default.t", pa.table({"x": pa.array([1], pa.uint8())}), "tok")
        assert fault.read_text() == ""
        assert client.rows("SELECT count() FROM default.t") == [(1,)]
    finally:
        client.close()
    monkeypatch.delenv(FAULT_FILE_ENV)
    fault.write_text("unavailable")
    unfaulted = ClickHouseClient(clickhouse_dsn)  # no variable: no seam
    try:
        assert unfaulted.rows("SELECT count() FROM default.t") == [(1,)]
        unfaulted.command("SELECT 1")
    finally:
        unfaulted.close()
