"""chDB in the test process: one data path at a time, so each client is closed after use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.clickhouse.client import ClickHouseClient


@pytest.fixture
def chdb_client(tmp_path: Path) -> Iterator[ClickHouseClient]:
    client = ClickHouseClient(f"chdb://{tmp_path}/chdb")
    yield client
    client.close()
