"""An empty ClickHouse per test: chDB in the test process by default (one data path at a
time, so the client is closed after use), or a server container with
NETPILOT_TEST_CLICKHOUSE=testcontainers (tests/backends.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sinks.clickhouse.client import ClickHouseClient


@pytest.fixture
def ch_client(clickhouse_dsn: str) -> Iterator[ClickHouseClient]:
    client = ClickHouseClient(clickhouse_dsn)
    yield client
    client.close()
