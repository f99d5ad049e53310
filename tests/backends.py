"""Which ClickHouse and which Kafka the tests run against.

By default the suite needs no container runtime: ClickHouse is chDB in the test process
(``chdb:///path``, a fresh path per test) and Kafka the project's own local broker
(:mod:`netpilot.dev.kafka`). With Docker reachable, two variables swap in real servers in
containers (testcontainers), reached the way production reaches them:

- ``NETPILOT_TEST_CLICKHOUSE=testcontainers``: a ClickHouse server container
  (``NETPILOT_TEST_CLICKHOUSE_IMAGE``, default :data:`CLICKHOUSE_IMAGE`) through its
  ``http://`` DSN, for the sink and Grafana-query tests;
- ``NETPILOT_TEST_KAFKA=testcontainers``: a Kafka container in KRaft mode
  (``NETPILOT_TEST_KAFKA_IMAGE``, default :data:`KAFKA_IMAGE`) behind ``kafka_broker``.

When a variable asks for containers but no Docker daemon answers, the tests fall back to
the local backend and say so: the pytest header names the backend of each service and why
(``pytest_report_header`` in tests/conftest.py). Any other value is a usage error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import pytest

CLICKHOUSE_ENV = "NETPILOT_TEST_CLICKHOUSE"
KAFKA_ENV = "NETPILOT_TEST_KAFKA"
TESTCONTAINERS = "testcontainers"
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Kafka 3.9 in KRaft mode; KafkaContainer drives Confluent images
DOCKER_PING_TIMEOUT_S = 5

Service = Literal["clickhouse", "kafka"]
_LOCAL = {"clickhouse": "chdb", "kafka": "local broker"}
_LOCAL_VALUE = {"clickhouse": "chdb", "kafka": "local"}
"""The value that asks for the local backend explicitly (the same as leaving it unset)."""
_ENV = {"clickhouse": CLICKHOUSE_ENV, "kafka": KAFKA_ENV}


@dataclass(frozen=True)
class Backend:
    service: Service
    name: str
    """``chdb``, ``local broker`` or ``testcontainers``."""
    why: str

    @property
    def containers(self) -> bool:
        return self.name == TESTCONTAINERS

    def describe(self) -> str:
        return f"{self.service}: {self.name} ({self.why})"


def docker_unreachable(timeout_s: float = DOCKER_PING_TIMEOUT_S) -> str | None:
    """None when a Docker daemon answers a ping, else why not, in one line. Asks the way
    testcontainers will connect (DOCKER_HOST, ~/.testcontainers.properties, the default
    socket)."""
    try:
        from testcontainers.core.docker_client import DockerClient

        client = DockerClient(timeout=int(timeout_s)).client
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the daemon means "no Docker"
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"Docker not reachable: {type(exc).__name__}: {first}"[:240]
    return None


def choose(
    service: Service,
    environ: Mapping[str, str] = os.environ,
    probe: Callable[[], str | None] = docker_unreachable,
) -> Backend:
    """The backend for ``service`` from its variable; ``probe`` is asked only when the
    variable wants containers."""
    var, local = _ENV[service], _LOCAL[service]
    wanted = environ.get(var, "").strip()
    if wanted in ("", _LOCAL_VALUE[service]):
        return Backend(service, local, f"{var}={wanted}" if wanted else f"{var} unset")
    if wanted != TESTCONTAINERS:
        raise ValueError(
            f"{var}={wanted!r}: use {TESTCONTAINERS!r}, or {_LOCAL_VALUE[service]!r} (the same as unset) for {local}"
        )
    reason = probe()
    if reason is None:
        return Backend(service, TESTCONTAINERS, "Docker reachable")
    return Backend(service, local, f"{var}={TESTCONTAINERS} but {reason}; fell back to {local}")


_CHOSEN = pytest.StashKey[dict[str, Backend]]()


def configure(config: pytest.Config, environ: Mapping[str, str] = os.environ) -> None:
    """Choose once per session (Docker is pinged at most once per service)."""
    config.stash[_CHOSEN] = {s: choose(s, environ) for s in ("clickhouse", "kafka")}


def chosen(config: pytest.Config) -> dict[str, Backend]:
    return config.stash[_CHOSEN]


class ClickHouseServer:
    """A ClickHouse server container; :meth:`fresh_dsn` gives each test an empty server, as
    a fresh chDB path does (the tests and the queries use the database ``netpilot``)."""

    def __init__(self, container: object, dsn: str) -> None:
        self.container = container
        self.dsn = dsn

    def fresh_dsn(self) -> str:
        from sinks.clickhouse.client import ClickHouseClient

        client = ClickHouseClient(self.dsn)
        try:
            for (name,) in client.rows(
                "SELECT name FROM system.databases WHERE name NOT IN "
                "('system', 'default', 'information_schema', 'INFORMATION_SCHEMA')"
            ):
                client.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
            for (table,) in client.rows("SELECT name FROM system.tables WHERE database = 'default'"):
                client.command(f"DROP TABLE IF EXISTS default.`{table}` SYNC")
        finally:
            client.close()
        return self.dsn


@contextmanager
def clickhouse_container() -> Iterator[ClickHouseServer]:
    from testcontainers.community.clickhouse import ClickHouseContainer

    image = os.environ.get("NETPILOT_TEST_CLICKHOUSE_IMAGE", CLICKHOUSE_IMAGE)
    with ClickHouseContainer(image, port=8123, username="netpilot", password="netpilot", dbname="default") as ch:
        host, port = ch.get_container_host_ip(), ch.get_exposed_port(8123)
        yield ClickHouseServer(ch, f"http://netpilot:netpilot@{host}:{port}")


@contextmanager
def kafka_container() -> Iterator[str]:
    """A single-node KRaft Kafka; yields its bootstrap address."""
    from testcontainers.community.kafka import KafkaContainer

    image = os.environ.get("NETPILOT_TEST_KAFKA_IMAGE", KAFKA_IMAGE)
    with KafkaContainer(image).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()
