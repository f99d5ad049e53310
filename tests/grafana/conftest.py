"""One simulator-filled store for the whole folder (building it takes ~15 s): chDB, or with
NETPILOT_TEST_CLICKHOUSE=testcontainers a ClickHouse server container of its own (the sink
tests empty theirs before each test; tests/backends.py).

chDB holds one data path per process: the fixture closes its client, and each test opens
and closes its own on the same path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sinks.clickhouse.client import ClickHouseClient
from tests import backends
from tests.grafana.store import Store, build_store


@pytest.fixture(scope="session")
def grafana_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("grafana-store")
    if backends.chosen(request.config)["clickhouse"].containers:
        with backends.clickhouse_container() as server:
            yield build_store(root, server.dsn)
    else:
        yield build_store(root, f"chdb://{root}/chdb")


@pytest.fixture
def store_client(grafana_store: Store) -> Iterator[ClickHouseClient]:
    client = grafana_store.client()
    yield client
    client.close()
