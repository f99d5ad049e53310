"""The ClickHouse tables netpilot owns, derived from the wire schemas in :mod:`netpilot.wire`.

Only portable SQL: plain MergeTree-family engines (no Replicated*, no ON CLUSTER), so the
same statements run on embedded chDB and on a ClickHouse server. Every table sets
``non_replicated_deduplication_window``: without it a non-replicated MergeTree ignores
``insert_deduplication_token`` and a replayed batch would be stored twice (the rollup
targets need it too, or the materialized views double count a replay; both verified on
chDB 26.9 in tests/sinks/clickhouse/test_exactly_once.py).

Codecs were chosen with ``bench/bench_clickhouse.py`` (bytes per flow after OPTIMIZE FINAL):
timestamps sorted first compress with DoubleDelta, counters with T64, addresses with ZSTD.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from netpilot.wire import aggregates, flows
from sinks.clickhouse.settings import Retention


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    codec: str | None = None
    materialized: str | None = None
    """Computed by ClickHouse from the row on insert (never sent by the sink, left out of
    ``SELECT *``)."""

    def ddl(self) -> str:
        computed = f" MATERIALIZED {self.materialized}" if self.materialized else ""
        codec = f" CODEC({self.codec})" if self.codec else ""
        return f"`{self.name}` {self.type}{computed}{codec}"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    engine: str
    order_by: str
    partition_by: str | None
    ttl_column: str | None
    """The DateTime expression the TTL counts from (None: rows never expire)."""
    ttl_days: int | None
    source_topic: str | None = None
    """Catalog id of the topic the sink writes into this table (None: filled by a view)."""

    def ttl_expr(self) -> str | None:
        if self.ttl_column is None or self.ttl_days is None:
            return None
        return f"{self.ttl_column} + INTERVAL {self.ttl_days} DAY"

    def create_sql(self, db: str, dedup_window: int, name: str | None = None) -> str:
        """``name``: create the table under another name (a migration's rebuild copy)."""
        cols = ",\n  ".join(c.ddl() for c in self.columns)
        parts = [
            f"CREATE TABLE IF NOT EXISTS {db}.{name or self.name}\n(\n  {cols}\n)",
            f"ENGINE = {self.engine}",
        ]
        if self.partition_by:
            parts.append(f"PARTITION BY {self.partition_by}")
        parts.append(f"ORDER BY ({self.order_by})")
        if (ttl := self.ttl_expr()) is not None:
            parts.append(f"TTL {ttl}")
        parts.append(f"SETTINGS non_replicated_deduplication_window = {dedup_window}")
        return "\n".join(parts)


@dataclass(frozen=True)
class View:
    name: str
    target: str
    select: str
    source: str = ""
    """The table the view reads (migrations recreate a view that reads another one)."""

    def create_sql(self, db: str) -> str:
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{self.name} TO {db}.{self.target} AS\n"
            + self.select.format(db=db)
        )


# -- type mapping from Arrow (flows/1, flow-aggregates/1) -------------------------------


def ch_type(t: pa.DataType) -> str:
    """ClickHouse type for an Arrow wire type (the fixed-width and dictionary types we use)."""
    if t == flows.ADDR:
        return "IPv6"  # 16-byte IPv4-mapped layout, exactly what the wire carries
    if t == flows.DICT_STR:
        return "LowCardinality(String)"
    if pa.types.is_timestamp(t):
        return "DateTime64(3, 'UTC')"
    ints = {
        pa.uint8(): "UInt8",
        pa.uint16(): "UInt16",
        pa.uint32(): "UInt32",
        pa.uint64(): "UInt64",
        pa.int32(): "Int32",
        pa.int64(): "Int64",
    }
    if t in ints:
        return ints[t]
    raise TypeError(f"no ClickHouse mapping for Arrow type {t}; extend sinks.clickhouse.schema.ch_type")


def _codec_for(name: str, t: pa.DataType) -> str | None:
    if name == "time_received":
        return "DoubleDelta, ZSTD(1)"  # first in the sort key: near-constant deltas
    if pa.types.is_timestamp(t):
        return "Delta, ZSTD(1)"
    if t == flows.ADDR:
        return "ZSTD(1)"
    if t == flows.DICT_STR:
        return None  # LowCardinality already dictionary-encodes
    if pa.types.is_integer(t) and t.bit_width >= 32:
        return "T64, ZSTD(1)"
    return "ZSTD(1)"


def columns_from_arrow(schema: pa.Schema) -> tuple[Column, ...]:
    return tuple(Column(f.name, ch_type(f.type), _codec_for(f.name, f.type)) for f in schema)


LC = "LowCardinality(String)"
TS = "DateTime64(3, 'UTC')"


def _cols(*spec: tuple[str, str] | tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in spec)


# -- the tables -----------------------------------------------------------------------

ROLLUPS = (("flows_1m", "toStartOfMinute"), ("flows_5m", "toStartOfFiveMinutes"), ("flows_1h", "toStartOfHour"))
ROLLUP_KEYS = ("pop", "link_id", "router", "out_if", "dst_as", "src_as", "ip_proto")
AGGREGATE_VERSION = "dedup_version"
"""flow_aggregates' ReplacingMergeTree version: bytes + packets + flows + samples."""
# Summed in UInt128 and capped: streams saturates a sum at 2**64 - 1 (streams.arith), and a
# wrapped UInt64 sum would make such a row lose to its partial repeat.
_AGGREGATE_VERSION_SQL = f"toUInt64(least(toUInt128(bytes) + packets + flows + samples, {2**64 - 1}))"


def tables(r: Retention) -> tuple[Table, ...]:
    """Every table, in creation order (views need their source and target first)."""
    rollup_days = {"flows_1m": r.rollup_1m_days, "flows_5m": r.rollup_5m_days, "flows_1h": r.rollup_1h_days}
    rollup_cols = _cols(
        ("window_start", "DateTime('UTC')", "DoubleDelta, ZSTD(1)"),
        ("pop", LC),
        ("link_id", LC),
        ("router", LC),
        ("out_if", "UInt32"),
        ("dst_as", "UInt32"),
        ("src_as", "UInt32"),
        ("ip_proto", "UInt8"),
        ("bytes", "UInt64", "T64, ZSTD(1)"),
        ("packets", "UInt64", "T64, ZSTD(1)"),
        ("flows", "UInt64", "T64, ZSTD(1)"),
        ("samples", "UInt64", "T64, ZSTD(1)"),
    )
    out = [
        Table(
            "flows_raw",
            columns_from_arrow(flows.FLOW_SCHEMA),
            "MergeTree",
            # a coarse time bucket first keeps time-range scans cheap; pop/link next
            # groups similar rows together, which is most of the compression
            order_by="toStartOfFiveMinutes(time_received), pop, link_id, dst_as, time_received",
            partition_by="toYYYYMMDD(time_received)",
            ttl_column="toDateTime(time_received)",
            ttl_days=r.raw_days,
            source_topic="flows",
        ),
    ]
    out += [
        Table(
            name,
            rollup_cols,
            "SummingMergeTree((bytes, packets, flows, samples))",
            order_by="window_start, " + ", ".join(ROLLUP_KEYS),
            partition_by="toYYYYMM(window_start)",
            ttl_column="window_start",
            ttl_days=rollup_days[name],
        )
        for name, _ in ROLLUPS
    ]
    out += [
        # The streams worker can publish a closed window twice, the repeat holding the same
        # keys with sums at most the first copy's, column by column (docs/streams.md,
        # "Guarantees and their limits"); a new Kafka message, so the insert token does not
        # catch it. One row per window key: the sort key is the wire's full row key, and of
        # rows sharing it the largest copy wins. Not `flows` alone as the version: a share
        # of a record spread back from a later window adds bytes but no flows, so a repeat
        # can tie on flows with fewer bytes, and a tie keeps the last insert. The sum of the
        # four grows with any of them. Readers use FINAL (a merge may not have run yet).
        Table(
            "flow_aggregates",
            (
                *columns_from_arrow(aggregates.AGGREGATE_SCHEMA),
                Column(
                    AGGREGATE_VERSION,
                    "UInt64",
                    "T64, ZSTD(1)",
                    materialized=_AGGREGATE_VERSION_SQL,
                ),
            ),
            f"ReplacingMergeTree({AGGREGATE_VERSION})",
            order_by=", ".join(aggregates.ROW_KEY),
            partition_by="toYYYYMM(window_start)",
            ttl_column="toDateTime(window_start)",
            ttl_days=r.links_days,
            source_topic="flow_aggregates",
        ),
        Table(
            "link_stats",
            _cols(
                ("ts", TS, "DoubleDelta, ZSTD(1)"),
                ("pop", LC),
                ("router", LC),
                ("link_id", LC),
                ("if_index", "UInt32"),
                ("if_name", LC),
                ("source", LC),
                ("interval_s", "Nullable(Float64)"),
                ("out_octets", "Nullable(UInt64)"),
                ("in_octets", "Nullable(UInt64)"),
                ("out_bps", "Nullable(Float64)"),
                ("in_bps", "Nullable(Float64)"),
                ("speed_bps", "Nullable(Float64)"),
                ("oper_up", "Bool"),
                ("out_discards", "Nullable(UInt64)"),
                ("out_errors", "Nullable(UInt64)"),
                ("counter_reset", "Bool"),
            ),
            "MergeTree",
            order_by="toStartOfHour(ts), pop, router, if_index, ts",
            partition_by="toYYYYMM(ts)",
            ttl_column="toDateTime(ts)",
            ttl_days=r.links_days,
            source_topic="link_stats",
        ),
        Table(
            "link_utilisation",
            _cols(
                ("window_start", TS, "DoubleDelta, ZSTD(1)"),
                ("window_s", "Float32"),
                ("pop", LC),
                ("link_id", LC),
                ("capacity_bps", "Float64"),
                ("counter_bps", "Nullable(Float64)"),
                ("flow_bps", "Float64"),
                ("utilisation", "Nullable(Float64)"),
                ("coverage", "Nullable(Float64)"),
            ),
            "MergeTree",
            order_by="toStartOfHour(window_start), pop, link_id, window_start",
            partition_by="toYYYYMM(window_start)",
            ttl_column="toDateTime(window_start)",
            ttl_days=r.links_days,
            source_topic="link_utilisation",
        ),
        # The inventory topic is compacted (latest per pop|link_id): keep the latest row per
        # link; the Kafka offset is the version (one key always lands in one partition).
        Table(
            "link_inventory",
            _cols(
                ("pop", LC),
                ("link_id", LC),
                ("router", LC),
                ("exporter", "String"),
                ("if_name", "String"),
                ("if_index", "Nullable(UInt32)"),
                ("capacity_bps", "Float64"),
                ("peer_asn", "Nullable(UInt32)"),
                ("peer_type", LC),
                ("drained", "Bool"),
                ("description", "String"),
                ("deleted", "Bool"),
                ("version", "UInt64"),
            ),
            "ReplacingMergeTree(version)",
            order_by="pop, link_id",
            partition_by=None,
            ttl_column=None,
            ttl_days=None,
            source_topic="link_inventory",
        ),
        Table(
            "recommendations",
            _cols(
                ("generated_at", TS),
                ("valid_until", TS),
                ("hold_until", f"Nullable({TS})"),
                ("id", "String"),
                ("cycle_id", "String"),
                ("pop", LC),
                ("action", LC),
                ("mode", LC),
                ("prefix", "String"),
                ("afi", "UInt8"),
                ("split_from", "Nullable(String)"),
                ("rate_bps", "Float64"),
                ("samples", "Nullable(UInt64)"),
                ("from_link_id", LC),
                ("from_peer_type", LC),
                ("from_util_after", "Nullable(Float64)"),
                ("to_link_id", LC),
                ("to_peer_type", LC),
                ("to_util_after", "Nullable(Float64)"),
                ("reason", LC),
                ("rank", "UInt32"),
                ("detail", "String", "ZSTD(3)"),
            ),
            "MergeTree",
            order_by="toStartOfDay(generated_at), pop, prefix, generated_at",
            partition_by="toYYYYMM(generated_at)",
            ttl_column="toDateTime(generated_at)",
            ttl_days=r.autopilot_days,
            source_topic="recommendations",
        ),
        Table(
            "cycle_summaries",
            _cols(
                ("generated_at", TS),
                ("cycle_id", "String"),
                ("pop", LC),
                ("mode", LC),
                ("overloaded_links", f"Array({LC})"),
                ("unresolved_bps", "Map(String, Float64)"),
                ("adds", "UInt32"),
                ("refreshes", "UInt32"),
                ("withdraws", "UInt32"),
                ("active_overrides", "UInt32"),
                ("detoured_bps", "Float64"),
                ("stale_inputs", f"Array({LC})"),
                ("fail_static", "Bool"),
                ("kill_switch", "Bool"),
                ("moves_lower_bound", "UInt32"),
                ("moves_ratio", "Nullable(Float64)"),
            ),
            "MergeTree",
            order_by="toStartOfDay(generated_at), pop, generated_at",
            partition_by="toYYYYMM(generated_at)",
            ttl_column="toDateTime(generated_at)",
            ttl_days=r.autopilot_days,
            source_topic="cycle_summaries",
        ),
        # What the routers hold, as the injector read it back (applied-override/1, a
        # compacted topic): like link_inventory, the latest row per (pop, prefix) wins, the
        # Kafka offset is the version, and a tombstone is a row with ``deleted`` so a query
        # can tell "no longer installed" (and since when: ``published_at``) from "never was".
        # No TTL: one row per overridden prefix, bounded like the topic.
        Table(
            "autopilot_applied",
            _cols(
                ("pop", LC),
                ("prefix", "String"),
                ("link_id", LC),
                ("next_hop", "String"),
                ("routers", f"Array({LC})"),
                ("local_pref", "Nullable(UInt32)"),
                ("communities", "Array(String)"),
                ("recommendation_id", "Nullable(String)"),
                ("since", f"Nullable({TS})"),
                ("confirmed_at", f"Nullable({TS})"),
                ("published_at", f"Nullable({TS})"),
                ("deleted", "Bool"),
                ("version", "UInt64"),
            ),
            "ReplacingMergeTree(version)",
            order_by="pop, prefix",
            partition_by=None,
            ttl_column=None,
            ttl_days=None,
            source_topic="applied_overrides",
        ),
    ]
    return tuple(out)


def views() -> tuple[View, ...]:
    """Rollups as a cascade: raw -> 1m -> 5m -> 1h. Sums are associative, so each level is
    as exact as the one it reads, and only the first view aggregates raw rows: the other
    two read the (much smaller) block the previous view just wrote. Measured with
    bench/bench_clickhouse.py (docs/sinks.md). Sampling-corrected: ``bytes_scaled``/
    ``packets_scaled`` are already multiplied by the sampling rate; ``flows`` estimates
    flows as the sum of sampling rates, ``samples`` counts flow records."""
    keys = ", ".join(ROLLUP_KEYS)
    (first, first_fn), *rest = ROLLUPS
    out = [
        View(
            f"{first}_mv",
            first,
            f"SELECT {first_fn}(time_received) AS window_start, {keys},\n"
            "  sum(bytes_scaled) AS bytes, sum(packets_scaled) AS packets,\n"
            "  sum(toUInt64(greatest(sampling_rate, 1))) AS flows, count() AS samples\n"
            "FROM {db}.flows_raw\n"
            f"GROUP BY window_start, {keys}",
            source="flows_raw",
        )
    ]
    source = first
    for name, fn in rest:
        out.append(
            View(
                f"{name}_mv",
                name,
                f"SELECT {fn}(window_start) AS window_start, {keys},\n"
                "  sum(bytes) AS bytes, sum(packets) AS packets,\n"
                "  sum(flows) AS flows, sum(samples) AS samples\n"
                f"FROM {{db}}.{source}\n"
                f"GROUP BY window_start, {keys}",
                source=source,
            )
        )
        source = name
    return tuple(out)


MIGRATIONS_TABLE = Table(
    "schema_migrations",
    _cols(("step", "String"), ("description", "String"), ("applied_at", "DateTime('UTC')")),
    "MergeTree",
    order_by="applied_at, step",
    partition_by=None,
    ttl_column=None,
    ttl_days=None,
)


def by_topic(r: Retention) -> dict[str, Table]:
    """Catalog topic id -> the table the sink inserts its messages into."""
    return {t.source_topic: t for t in tables(r) if t.source_topic}


def table_for(name: str, r: Retention | None = None) -> Table:
    for t in tables(r or Retention()):
        if t.name == name:
            return t
    raise KeyError(name)


__all__ = [
    "Column",
    "Table",
    "View",
    "tables",
    "views",
    "by_topic",
    "table_for",
    "MIGRATIONS_TABLE",
    "ROLLUPS",
    "AGGREGATE_VERSION",
    "ch_type",
]
