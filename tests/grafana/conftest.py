"""One simulator-filled chDB store for the whole folder (building it takes ~15 s).

chDB holds one data path per process: the fixture closes its client, and each test opens
and closes its own on the same path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sinks.clickhouse.client import ClickHouseClient
from tests.grafana.store import Store, build_store


@pytest.fixture(scope="session")
def grafana_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.mktemp("grafana-store"))


@pytest.fixture
def store_client(grafana_store: Store) -> Iterator[ClickHouseClient]:
    client = grafana_store.client()
    yield client
    client.close()
