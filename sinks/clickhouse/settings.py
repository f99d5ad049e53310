"""Settings of ``netpilot sink clickhouse``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from netpilot import catalog
from netpilot.settings import ComponentSettings


class Retention(BaseModel):
    """How long each kind of table keeps rows (ClickHouse TTL, in days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_days: int = Field(15, ge=1, description="raw flows (the bulk of the disk)")
    rollup_1m_days: int = Field(30, ge=1, description="1-minute rollups")
    rollup_5m_days: int = Field(180, ge=1, description="5-minute rollups")
    rollup_1h_days: int = Field(730, ge=1, description="1-hour rollups")
    links_days: int = Field(90, ge=1, description="link stats, utilisation, flow aggregates")
    autopilot_days: int = Field(365, ge=1, description="recommendations and cycle summaries")


class ClickHouseSinkSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "sink-clickhouse"

    dsn: SecretStr = Field(
        SecretStr("chdb:///var/lib/netpilot/clickhouse"),
        description="chdb:///abs/path (embedded, default) or http(s)://user:pass@host:port",
    )
    database: str = Field("netpilot", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    retention: Retention = Retention()
    migrate_on_start: bool = Field(True, description="apply needed migrations before consuming")
    topics: tuple[str, ...] = Field(
        tuple(t.id for t in catalog.topics_consumed_by(catalog.Component.SINK_CLICKHOUSE)),
        description="catalog ids of the topics to consume",
    )
    group_id: str = Field(catalog.consumer_group(catalog.Component.SINK_CLICKHOUSE), description="Kafka consumer group")
    group_instance_id: str = Field(
        "",
        description="Kafka static membership (group.instance.id): a sink restarted with the same id gets "
        "its partitions back at once, not after the session timeout. Empty: dynamic membership. Each "
        "running instance needs its own (the Helm chart passes the pod name)",
    )
    batch_max_rows: int = Field(100_000, ge=1, description="flush a partition's batch at this many rows")
    batch_max_seconds: float = Field(1.0, gt=0, description="... or when its first message is this old")
    poll_max_messages: int = Field(500, ge=1)
    backoff_initial_s: float = Field(0.5, gt=0, description="first wait after a failed insert")
    backoff_max_s: float = Field(15.0, gt=0, description="longest wait between insert retries")
    dedup_window: int = Field(1000, ge=100, description="non_replicated_deduplication_window of every table")
    query_listen: str | None = Field(
        None, description="host:port of the read-only /query endpoint (embedded mode readers)"
    )
