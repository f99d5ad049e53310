"""The topic catalog: the one place a topic is defined.

Topic creation (``netpilot topics sync``), the Strimzi KafkaTopic/KafkaUser CRs, producers
and consumers all read this module; no other file spells a topic name.

Naming: ``netpilot.<what>.v<N>``. The suffix is the *wire schema* major version of the
values: a breaking schema change creates a new topic, so old and new producers/consumers
can run side by side during a rolling upgrade (akvorado does the same with ``flows-v5``).

Partitioning: everything a PoP produces meets in one partition, so one worker owns a PoP's
whole state. Topics keyed by PoP use Kafka's default (murmur2) partitioner. Compacted topics
need a finer key (``pop|link_id`` ...) so compaction keeps one record per entity; their
producers pick the partition from the PoP alone with :func:`netpilot.kafka.partitioning.partition_for`,
which is the same murmur2 the Java client uses, so ``pop`` and ``pop|x`` land together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class Component(StrEnum):
    """Every process that touches Kafka. Used for ACLs (KafkaUser per component)."""

    COLLECTOR = "collector"
    SNMP_POLLER = "snmp-poller"
    INVENTORY = "inventory"
    ROUTES = "routes"
    STREAMS = "streams"
    AUTOPILOT = "autopilot"
    SINK_CLICKHOUSE = "sink-clickhouse"
    SINK_PROMETHEUS = "sink-prometheus"
    AUTOPILOT_CONSUMER = "autopilot-consumer"


CleanupPolicy = Literal["delete", "compact", "compact,delete"]


@dataclass(frozen=True)
class Topic:
    """One Kafka topic and its contract."""

    id: str
    """Stable identifier used in code (``catalog.FLOWS.name`` etc.)."""
    name: str
    partitions: int
    replication: int
    cleanup_policy: CleanupPolicy
    retention_ms: int | None
    key: str
    """What the message key holds, e.g. ``pop`` or ``pop|prefix``."""
    partition_by: str
    """What decides the partition (``key`` or ``pop``)."""
    value_schema: str
    """Wire schema id ``<name>/<major>`` (see :mod:`netpilot.wire`)."""
    purpose: str
    producers: tuple[Component, ...]
    consumers: tuple[Component, ...]
    config: Mapping[str, str] = field(default_factory=dict)
    """Extra topic-level configs (beyond cleanup/retention) applied on creation."""

    def topic_config(self) -> dict[str, str]:
        """The full topic-level config the broker should have for this topic."""
        cfg: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        if "compact" in self.cleanup_policy:
            # Compacted topics are read whole at start-up; keep segments small so the
            # cleaner runs and tombstones go away in hours, not weeks.
            cfg.setdefault("segment.ms", str(HOUR_MS))
            cfg.setdefault("delete.retention.ms", str(DAY_MS))
            cfg.setdefault("min.cleanable.dirty.ratio", "0.1")
        cfg.update(self.config)
        return cfg


_FLOW_BATCH_BYTES = str(8 * 1024 * 1024)  # batches of ~10k flows can exceed the 1 MiB default

FLOWS = Topic(
    id="flows",
    name="netpilot.flows.v1",
    partitions=6,
    replication=1,
    cleanup_policy="delete",
    retention_ms=DAY_MS,
    key="pop",
    partition_by="key",
    value_schema="flows/1",
    purpose="Decoded, sampling-corrected, enriched flows; many flows per message (Arrow IPC).",
    producers=(Component.COLLECTOR,),
    consumers=(Component.STREAMS, Component.SINK_CLICKHOUSE),
    config={"max.message.bytes": _FLOW_BATCH_BYTES, "compression.type": "producer"},
)

RAW_DATAGRAMS = Topic(
    id="raw_datagrams",
    name="netpilot.raw-datagrams.v1",
    partitions=3,
    replication=1,
    cleanup_policy="delete",
    retention_ms=6 * HOUR_MS,
    key="exporter",
    partition_by="key",
    value_schema="raw-datagram/1",
    purpose="Optional copy of exporter datagrams as received, for replay and troubleshooting.",
    producers=(Component.COLLECTOR,),
    consumers=(),
    config={"max.message.bytes": _FLOW_BATCH_BYTES},
)

LINK_STATS = Topic(
    id="link_stats",
    name="netpilot.link-stats.v1",
    partitions=6,
    replication=1,
    cleanup_policy="delete",
    retention_ms=3 * DAY_MS,
    key="pop",
    partition_by="key",
    value_schema="link-stats/1",
    purpose="Interface counters and rates per link (SNMP polls and sFlow counter samples).",
    producers=(Component.SNMP_POLLER, Component.COLLECTOR),
    consumers=(Component.STREAMS, Component.AUTOPILOT, Component.SINK_CLICKHOUSE),
)

LINK_INVENTORY = Topic(
    id="link_inventory",
    name="netpilot.link-inventory.v1",
    partitions=6,
    replication=1,
    cleanup_policy="compact",
    retention_ms=None,
    key="pop|link_id",
    partition_by="pop",
    value_schema="link-inventory/1",
    purpose="Links with capacity, peer and thresholds; a tombstone deletes a link.",
    producers=(Component.INVENTORY,),
    consumers=(
        Component.COLLECTOR,
        Component.STREAMS,
        Component.SINK_CLICKHOUSE,
        Component.SINK_PROMETHEUS,
        Component.AUTOPILOT,
        Component.AUTOPILOT_CONSUMER,
    ),
)

ROUTES = Topic(
    id="routes",
    name="netpilot.routes.v1",
    partitions=6,
    replication=1,
    cleanup_policy="compact",
    retention_ms=None,
    key="pop|link_id|prefix",
    partition_by="pop",
    value_schema="route/1",
    purpose="Per PoP and link, the prefixes that link can reach with BGP attributes; a tombstone is a withdrawal.",
    producers=(Component.ROUTES,),
    consumers=(Component.ROUTES, Component.COLLECTOR, Component.AUTOPILOT, Component.AUTOPILOT_CONSUMER),
)

EXPORTER_TEMPLATES = Topic(
    id="exporter_templates",
    name="netpilot.exporter-templates.v1",
    partitions=1,
    replication=1,
    cleanup_policy="compact",
    retention_ms=None,
    key="exporter|observation_domain|template_id[|source_port]",
    partition_by="key",
    value_schema="exporter-template/1",
    purpose="NetFlow v9/IPFIX (options) templates, so a restarted or second collector decodes data at once.",
    producers=(Component.COLLECTOR,),
    consumers=(Component.COLLECTOR,),
)

FLOW_AGGREGATES = Topic(
    id="flow_aggregates",
    name="netpilot.flow-aggregates.v1",
    partitions=6,
    replication=1,
    cleanup_policy="delete",
    retention_ms=3 * DAY_MS,
    key="pop",
    partition_by="key",
    value_schema="flow-aggregates/1",
    purpose="Closed event-time windows of bytes/packets/flows per (PoP, link, dst prefix, dst AS).",
    producers=(Component.STREAMS,),
    consumers=(Component.SINK_CLICKHOUSE, Component.AUTOPILOT),
    config={"max.message.bytes": _FLOW_BATCH_BYTES},
)

LINK_UTILISATION = Topic(
    id="link_utilisation",
    name="netpilot.link-utilisation.v1",
    partitions=6,
    replication=1,
    cleanup_policy="delete",
    retention_ms=3 * DAY_MS,
    key="pop",
    partition_by="key",
    value_schema="link-utilisation/1",
    purpose="Per link and window: rate from counters and from flows, capacity, coverage.",
    producers=(Component.STREAMS,),
    consumers=(Component.SINK_CLICKHOUSE, Component.SINK_PROMETHEUS),
)

RECOMMENDATIONS = Topic(
    id="recommendations",
    name="netpilot.autopilot-recommendations.v1",
    partitions=6,
    replication=1,
    cleanup_policy="compact",
    retention_ms=None,
    key="pop|prefix",
    partition_by="pop",
    value_schema="recommendation/1",
    purpose="Autopilot ADD/REFRESH/WITHDRAW per (PoP, prefix); compaction keeps the latest.",
    producers=(Component.AUTOPILOT,),
    consumers=(Component.AUTOPILOT_CONSUMER, Component.SINK_CLICKHOUSE, Component.SINK_PROMETHEUS),
)

CYCLE_SUMMARIES = Topic(
    id="cycle_summaries",
    name="netpilot.autopilot-cycles.v1",
    partitions=6,
    replication=1,
    cleanup_policy="delete",
    retention_ms=7 * DAY_MS,
    key="pop",
    partition_by="key",
    value_schema="cycle-summary/1",
    purpose="One summary per PoP and autopilot cycle (overloads, residual, moves, stale inputs).",
    producers=(Component.AUTOPILOT,),
    consumers=(Component.SINK_CLICKHOUSE, Component.SINK_PROMETHEUS),
)

APPLIED_OVERRIDES = Topic(
    id="applied_overrides",
    name="netpilot.autopilot-applied.v1",
    partitions=6,
    replication=1,
    cleanup_policy="compact",
    retention_ms=None,
    key="pop|prefix",
    partition_by="pop",
    value_schema="applied-override/1",
    purpose="Overrides the PoP routers have installed, read back from their RIBs by the "
    "injector; a tombstone: no router holds it any more.",
    producers=(Component.AUTOPILOT_CONSUMER,),
    consumers=(Component.SINK_CLICKHOUSE, Component.SINK_PROMETHEUS),
)

INJECTOR_CONTROL = Topic(
    id="injector_control",
    name="netpilot.injector-control.v1",
    partitions=1,
    replication=1,
    cleanup_policy="compact",
    retention_ms=None,
    key="approval|pop|prefix or drain|pop",
    partition_by="key",
    value_schema="injector-control/1",
    purpose="What people tell the injector: approvals and rejections (suggest mode), drain "
    "and resume (the kill switch); compaction keeps the latest word per key.",
    producers=(Component.AUTOPILOT_CONSUMER,),
    consumers=(Component.AUTOPILOT_CONSUMER,),
)

DEAD_LETTERS = Topic(
    id="dead_letters",
    name="netpilot.dead-letters.v1",
    partitions=1,
    replication=1,
    cleanup_policy="delete",
    retention_ms=7 * DAY_MS,
    key="source topic|partition|offset",
    partition_by="key",
    value_schema="dead-letter/1",
    purpose="Messages a consumer could not decode or process, with the reason in headers.",
    producers=(
        Component.STREAMS,
        Component.AUTOPILOT,
        Component.SINK_CLICKHOUSE,
        Component.SINK_PROMETHEUS,
        Component.COLLECTOR,
        Component.AUTOPILOT_CONSUMER,
    ),
    consumers=(),
    config={"max.message.bytes": _FLOW_BATCH_BYTES},
)

ALL_TOPICS: tuple[Topic, ...] = (
    FLOWS,
    RAW_DATAGRAMS,
    LINK_STATS,
    LINK_INVENTORY,
    ROUTES,
    EXPORTER_TEMPLATES,
    FLOW_AGGREGATES,
    LINK_UTILISATION,
    RECOMMENDATIONS,
    CYCLE_SUMMARIES,
    APPLIED_OVERRIDES,
    INJECTOR_CONTROL,
    DEAD_LETTERS,
)

BY_ID: Mapping[str, Topic] = {t.id: t for t in ALL_TOPICS}


def topics_produced_by(component: Component) -> tuple[Topic, ...]:
    return tuple(t for t in ALL_TOPICS if component in t.producers)


def topics_consumed_by(component: Component) -> tuple[Topic, ...]:
    return tuple(t for t in ALL_TOPICS if component in t.consumers)


def consumer_group(component: Component) -> str:
    """The consumer group id a component uses (also named in its KafkaUser ACLs)."""
    return f"netpilot-{component.value}"
