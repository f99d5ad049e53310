"""Shared fixtures: a real Kafka broker for the session, isolated topics per test.

The broker is the project's own (``netpilot.dev.kafka``), in ``.netpilot/test-kafka`` on
port 19092, below the kernel's ephemeral range (32768-60999 here), so that no outgoing
connection can hold it when the broker starts (override with NETPILOT_TEST_KAFKA_DIR /
NETPILOT_TEST_KAFKA_PORT). A broker
already running there is reused and left running; one this session started is stopped at
the end unless NETPILOT_TEST_KEEP_KAFKA=1 (handy when iterating). With Docker reachable,
NETPILOT_TEST_KAFKA=testcontainers puts the broker and NETPILOT_TEST_CLICKHOUSE=testcontainers
ClickHouse in containers instead (tests/backends.py); the pytest header says which was used.

Markers (registered in pyproject.toml; `make test-fast` deselects all three): ``kafka``,
``netns`` and ``slow`` are applied here from the fixtures a test uses, directly or through
another fixture; a module that needs them without such a fixture sets ``pytestmark``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from netpilot import catalog
from netpilot.settings import KafkaSettings
from tests import backends

if TYPE_CHECKING:
    from confluent_kafka.admin import ClusterMetadata

    from netpilot.dev.kafka import LocalKafka

REPO = Path(__file__).resolve().parent.parent

FIXTURE_MARKS = {
    "kafka_broker": "kafka",  # the session's real broker (kafka_settings & co. use it)
    "local_kafka_broker": "kafka",  # the local broker even when kafka_broker is a container
    "routers": "netns",  # real BIRD routers (tests/sinks/bgp)
    "frr": "netns",  # FRR in a network namespace: root
    "bmp_lab": "netns",  # FRR bgpd (BMP) + BIRD peers on loopback (tests/producers/routes/bmp)
    "exports": "netns",  # Debian's real flow exporters; fprobe sniffs lo: root
    "routing_lab": "netns",  # netpilot dev lab: FRR, BIRD, tc, iperf3 in namespaces (tests/netpilot/dev)
    "lab": "netns",  # NetLab: snmpd in network namespaces (tests/producers/linkstats)
    "strimzi_apiserver": "slow",  # a real API server + etcd, built with Go on first use
    "bare_apiserver": "slow",
    "chart": "slow",  # helm, built with Go on first use (tests/deploy)
    "k8s_apiserver": "slow",  # the upstream kube-apiserver + etcd, built with Go on first use
    "grafana_store": "slow",  # a ~15 s simulator run into chDB
    "container_image": "slow",  # make image: mmdebstrap + pip into a chroot, cached (tests/deploy)
}
"""Fixture name -> the marker every test using it gets (check tests/ before reusing a name)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for mark in sorted({m for f, m in FIXTURE_MARKS.items() if f in used}):
            item.add_marker(getattr(pytest.mark, mark))


def pytest_configure(config: pytest.Config) -> None:
    try:
        backends.configure(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from exc


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which ClickHouse and Kafka this run uses, and why (tests/backends.py)."""
    return [f"netpilot backends: {b.describe()}" for b in backends.chosen(config).values()]


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's broker: the local one, or a Kafka container with
    NETPILOT_TEST_KAFKA=testcontainers and Docker reachable (tests/backends.py)."""
    if backends.chosen(request.config)["kafka"].containers:
        with backends.kafka_container() as bootstrap:
            yield bootstrap
    else:
        yield request.getfixturevalue("local_kafka_broker")


@pytest.fixture(scope="session")
def local_kafka_broker() -> Iterator[str]:
    """The project's own broker, whatever NETPILOT_TEST_KAFKA says (tests of `netpilot dev kafka`)."""
    from netpilot.dev.kafka import LocalKafka

    state = Path(os.environ.get("NETPILOT_TEST_KAFKA_DIR", REPO / ".netpilot" / "test-kafka"))
    port = int(os.environ.get("NETPILOT_TEST_KAFKA_PORT", "19092"))
    broker = LocalKafka(state, port=port)
    info = broker.up()
    yield info.bootstrap
    if not info.reused and os.environ.get("NETPILOT_TEST_KEEP_KAFKA") != "1":
        broker.down()


def catalog_topics(bootstrap: str, prefix: str) -> Iterator[KafkaSettings]:
    """KafkaSettings with topic prefix ``prefix`` and every catalog topic created for it
    (visible to every metadata view); the topics are deleted afterwards."""
    from netpilot.kafka.admin import TopicAdmin

    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    admin = TopicAdmin(settings)
    admin.sync(catalog.ALL_TOPICS)
    _wait_until_visible(admin, [settings.topic(t) for t in catalog.ALL_TOPICS])
    yield settings
    admin.delete(settings.topic(t) for t in catalog.ALL_TOPICS)


@pytest.fixture
def kafka_settings(kafka_broker: str) -> Iterator[KafkaSettings]:
    """KafkaSettings with a unique topic prefix and every catalog topic created for it."""
    yield from catalog_topics(kafka_broker, f"t{uuid.uuid4().hex[:10]}.")


@contextlib.contextmanager
def private_broker(
    folder: Path, prefix: str, topics: Iterable[catalog.Topic]
) -> Iterator[tuple[LocalKafka, KafkaSettings]]:
    """A broker of the test's own (for tests that stop it) with ``topics`` made and visible;
    it is stopped afterwards."""
    from netpilot.dev.kafka import LocalKafka
    from netpilot.kafka.admin import TopicAdmin

    topics = list(topics)
    broker = LocalKafka(folder, port=broker_ports())
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.up().bootstrap, topic_prefix=prefix)
        admin = TopicAdmin(kafka)
        admin.sync(topics)
        _wait_until_visible(admin, [kafka.topic(t) for t in topics])
        yield broker, kafka
    finally:
        broker.down()


class ClusterView:
    """A test's metadata reads of a cluster whose nodes it kills, retried through the fault.

    Right after a node's SIGKILL, ``list_topics`` can time out while the other nodes serve
    (seen in the chaos test, 1 in 15 three-node runs, and once in the `dev kafka --nodes 3`
    test); most likely, from librdkafka's code, not traced, because a request in flight to
    the killed node is retried on that same node. A read that times out is sent again
    from a fresh client, for up to ``timeout`` seconds; only the test's own reads go
    through this, the pipeline's clients are what the tests observe."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.client = AdminClient({"bootstrap.servers": bootstrap})

    def metadata(self, topic: str | None = None, timeout: float = 60) -> ClusterMetadata:
        import time

        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.client.list_topics(topic, timeout=10)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                self.client = AdminClient({"bootstrap.servers": self.bootstrap})


def broker_ports(n: int = 2) -> int:
    """The first of ``n`` free consecutive ports (a broker's and its controller's, per node)
    below the ephemeral range (32768-60999): while a broker is down, librdkafka's reconnects
    take ephemeral source ports, and one of them can take the broker's own port (a TCP
    self-connect), so that the restart finds it in use."""
    import random
    import socket

    for _ in range(200):
        port = random.randrange(20_000, 32_000 - n)
        try:
            for p in range(port, port + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no {n} free consecutive ports below 32000")


def _wait_until_visible(admin, names: list[str], timeout: float = 15.0) -> None:
    """Topic creation returns before every metadata view has the topic (KRaft propagation)."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        md = admin.client.list_topics(timeout=5)
        if all(n in md.topics and md.topics[n].error is None and md.topics[n].partitions for n in names):
            return
        time.sleep(0.1)
    raise AssertionError(f"topics not visible after {timeout}s: {names}")


@pytest.fixture(scope="session")
def clickhouse_server(request: pytest.FixtureRequest) -> Iterator[backends.ClickHouseServer | None]:
    """A ClickHouse server container for the session with NETPILOT_TEST_CLICKHOUSE=testcontainers
    and Docker reachable; None when the tests use chDB."""
    if not backends.chosen(request.config)["clickhouse"].containers:
        yield None
        return
    with backends.clickhouse_container() as server:
        yield server


@pytest.fixture
def clickhouse_dsn(clickhouse_server: backends.ClickHouseServer | None, tmp_path: Path) -> str:
    """An empty ClickHouse for one test: a fresh chDB path, or the server container emptied."""
    if clickhouse_server is None:
        return f"chdb://{tmp_path}/chdb"
    return clickhouse_server.fresh_dsn()
