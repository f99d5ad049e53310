"""The one faust.App factory of the streams worker.

Topics come from the catalog (names with ``kafka.topic_prefix``); faust never creates them
(:class:`CatalogTopic`). Faust creates only its *internal* topics, all named
``<app id>-...`` (see :func:`internal_topic_prefix`): one changelog per table,
``<app id>-<table>-changelog``. The leader-election topic is disabled (no ``on_leader``
timers) and no agent re-partitions (every input is already keyed by PoP), so there are no
``-repartition`` topics. The ACLs of the streams KafkaUser must allow create/read/write on
that prefix, plus the consumer group ``<app id>``.

Every event is a whole Kafka message: a flows/1 value is one Arrow batch of thousands of
flows (a faust event costs ~65 us, see docs/streams.md), so values are raw bytes.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import TableT

from netpilot import catalog
from netpilot.errors import ConfigError
from netpilot.settings import KafkaSettings
from streams.faust_producer import App
from streams.settings import StreamsSettings

TABLES = ("window-partials", "link-inventory", "link-counters", "utilisation-pending")
"""Tables with changelogs (``<app id>-<name>-changelog``); see streams.aggregate.store and
streams.utilisation for what each holds."""


class CatalogTopic(faust.Topic):
    """A faust topic that never declares (creates) itself unless faust owns it.

    Catalog topics are created by ``netpilot topics sync`` with the catalog's partitions
    and configs; a worker that created them on the fly would get both wrong.
    """

    async def declare(self) -> None:
        if self.internal:
            await super().declare()


def app_id(settings: StreamsSettings) -> str:
    """The faust app id: also the consumer group and the internal topic prefix."""
    return f"{settings.kafka.topic_prefix}{settings.app_id}"


def internal_topic_prefix(app_id_: str) -> str:
    """Prefix of every topic faust creates for ``app_id_`` (for ACLs: a PREFIXED pattern)."""
    return f"{app_id_}-"


def broker_urls(kafka: KafkaSettings) -> list[str]:
    return [f"kafka://{hp.strip()}" for hp in kafka.bootstrap_servers.split(",") if hp.strip()]


def broker_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """Map netpilot's Kafka settings onto faust (aiokafka) credentials."""
    proto = kafka.security_protocol
    if proto == "PLAINTEXT":
        return None
    context = None
    if proto in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(kafka.ssl_ca_location) if kafka.ssl_ca_location else None)
        if kafka.ssl_certificate_location:
            context.load_cert_chain(
                str(kafka.ssl_certificate_location),
                str(kafka.ssl_key_location) if kafka.ssl_key_location else None,
                kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None,
            )
    if proto == "SSL":
        return faust.SSLCredentials(context)
    if not (kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password):
        raise ConfigError(
            f"kafka.security_protocol={proto} needs kafka.sasl_mechanism, kafka.sasl_username and kafka.sasl_password"
        )
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value(),
        mechanism=kafka.sasl_mechanism,
        ssl_context=context,
    )


@dataclass(frozen=True)
class StreamsApp:
    app: faust.App
    flows: faust.TopicT
    link_stats: faust.TopicT
    link_inventory: faust.TopicT
    aggregates: faust.TopicT
    utilisation: faust.TopicT
    dead_letters: faust.TopicT
    idle_ticks: faust.TopicT
    """Internal ``<app id>-idle-ticks``: the idle timer's ticks, one partition per flows partition."""
    tables: dict[str, TableT[Any, Any]]


def new_faust_app(
    app_id_: str,
    kafka: KafkaSettings,
    *,
    client: str,
    store: str,
    data_dir: Path,
    changelog_replication: int = 1,
    auto_offset_reset: str = "earliest",
    max_request_size: int = 8 * 1024 * 1024,
    session_timeout_s: float = 10.0,
    group_instance_id: str = "",
) -> faust.App:
    """A faust.App configured the netpilot way (any netpilot faust worker can use it):
    catalog topics never declared, no leader topic, no web server, raw bytes values,
    changelog partitions = the catalog's PoP-keyed partition count, and a producer flush
    that waits for every changelog write (streams.faust_producer)."""
    return App(
        app_id_,
        broker=broker_urls(kafka),
        broker_credentials=broker_credentials(kafka),
        broker_client_id=f"{kafka.client_id}-{client}",
        store=store,
        datadir=str(data_dir),
        autodiscover=False,
        web_enabled=False,
        topic_disable_leader=True,
        topic_partitions=catalog.FLOWS.partitions,
        topic_replication_factor=changelog_replication,
        consumer_auto_offset_reset=auto_offset_reset,
        producer_max_request_size=max_request_size,
        consumer_max_fetch_size=max_request_size,
        # a killed worker's partitions move after this long; heartbeats well inside it
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=session_timeout_s / 10,
        # static membership: a restarted worker with the same id takes its old member's place
        # (and partitions) at once; None = dynamic membership (a new member each start)
        consumer_group_instance_id=group_instance_id or None,
        key_serializer="raw",
        value_serializer="raw",
        Topic=CatalogTopic,
    )


def catalog_topic(app: faust.App, kafka: KafkaSettings, t: catalog.Topic) -> faust.TopicT:
    """A catalog topic as a faust topic of raw bytes keys and values."""
    # The catalog keys all inputs by PoP with the same partition count, so faust's
    # assignor gives one worker the same partitions of every input (co-partitioning).
    return app.topic(kafka.topic(t), key_type=bytes, value_type=bytes, partitions=t.partitions, internal=False)


def create_app(settings: StreamsSettings) -> StreamsApp:
    """Build the faust app, its topics and tables (no agents: see streams.aggregate.agents).

    Must be called on the thread whose event loop will run the app.
    """
    kafka = settings.kafka
    app = new_faust_app(
        app_id(settings),
        kafka,
        client="streams",
        store=settings.store,
        data_dir=settings.data_dir,
        changelog_replication=settings.changelog_replication,
        auto_offset_reset=settings.auto_offset_reset,
        max_request_size=settings.producer_max_request_size,
        session_timeout_s=settings.session_timeout_s,
        group_instance_id=settings.group_instance_id,
    )

    def topic(t: catalog.Topic) -> faust.TopicT:
        return catalog_topic(app, kafka, t)

    # bytes values are stored raw (Arrow IPC or JSON produced by the pure modules); str keys
    # go through faust's json codec, which round-trips them as str after a restore.
    tables = {
        name: app.Table(
            name,
            key_type=str,
            value_type=bytes,
            partitions=catalog.FLOWS.partitions,
            extra_topic_configs={"max.message.bytes": str(settings.producer_max_request_size)},
        )
        for name in TABLES
    }
    return StreamsApp(
        app=app,
        flows=topic(catalog.FLOWS),
        link_stats=topic(catalog.LINK_STATS),
        link_inventory=topic(catalog.LINK_INVENTORY),
        aggregates=topic(catalog.FLOW_AGGREGATES),
        utilisation=topic(catalog.LINK_UTILISATION),
        dead_letters=topic(catalog.DEAD_LETTERS),
        idle_ticks=app.topic(
            f"{app_id(settings)}-idle-ticks",
            key_type=bytes,
            value_type=bytes,
            partitions=catalog.FLOWS.partitions,
            internal=True,
            retention=3600.0,
        ),
        tables=tables,
    )
