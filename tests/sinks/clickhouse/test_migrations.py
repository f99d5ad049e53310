"""Migrations: derived from the wire schemas, check-then-apply, idempotent."""

from __future__ import annotations

import pyarrow as pa

from netpilot.wire import aggregates, flows
from sinks.clickhouse import schema
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.migrations import SCHEMA_VERSION, current_ttl_days, migrate
from sinks.clickhouse.settings import Retention
from streams.aggregate import windows
from tests.sinks.clickhouse import test_aggregate_dedup as dedup

DB = "netpilot"


def _snapshot(c: ClickHouseClient) -> list[tuple]:
    return list(
        c.rows(
            "SELECT name, engine_full, create_table_query FROM system.tables "
            "WHERE database = 'netpilot' AND name != 'schema_migrations' ORDER BY name"
        )
    )


def test_raw_columns_follow_the_flows_wire_schema() -> None:
    raw = schema.table_for("flows_raw")
    assert [c.name for c in raw.columns] == list(flows.FIELD_NAMES)
    types = {c.name: c.type for c in raw.columns}
    assert types["src_addr"] == types["dst_addr"] == types["exporter"] == "IPv6"
    assert types["pop"] == types["router"] == types["link_id"] == "LowCardinality(String)"
    assert types["time_received"] == "DateTime64(3, 'UTC')" and types["sampling_rate"] == "UInt32"
    assert raw.order_by.startswith("toStartOfFiveMinutes(time_received)")
    try:
        schema.ch_type(pa.float16())
    except TypeError as exc:
        assert "extend" in str(exc)
    else:
        raise AssertionError("unknown Arrow types must be refused")


def test_aggregates_are_keyed_by_every_column_but_the_sums() -> None:
    """A wire column left out of the sort key would merge two rows of one window away."""
    assert sorted(aggregates.ROW_KEY + aggregates.SUM_COLUMNS) == sorted(aggregates.AGGREGATE_SCHEMA.names)
    assert windows.GROUP_KEYS == aggregates.ROW_KEY  # what streams publishes one row per
    agg = schema.table_for("flow_aggregates")
    assert agg.order_by == ", ".join(aggregates.ROW_KEY)
    assert agg.engine == f"ReplacingMergeTree({schema.AGGREGATE_VERSION})"
    [version] = [c for c in agg.columns if c.name == schema.AGGREGATE_VERSION]
    assert version.materialized is not None
    assert all(c in version.materialized for c in aggregates.SUM_COLUMNS)


def test_migrate_twice_changes_nothing(ch_client: ClickHouseClient) -> None:
    first = migrate(ch_client, DB, Retention(), 1000)
    assert "table:flows_raw" in first.applied and "view:flows_1h_mv" in first.applied
    before = _snapshot(ch_client)
    second = migrate(ch_client, DB, Retention(), 1000)
    assert second.applied == () and len(second.skipped) == len(first.applied) + len(first.skipped)
    assert _snapshot(ch_client) == before
    names = {r[0] for r in before}
    assert {
        "flows_raw",
        "flows_1m",
        "flows_5m",
        "flows_1h",
        "flows_1m_mv",
        "link_stats",
        "link_utilisation",
        "link_inventory",
        "flow_aggregates",
        "recommendations",
        "cycle_summaries",
        "autopilot_applied",
    } <= names
    history = ch_client.rows("SELECT count() FROM netpilot.schema_migrations")[0][0]
    assert history == len(first.applied) - 1  # every step but 'database' is recorded


def test_changed_retention_and_missing_column_are_each_one_step(ch_client: ClickHouseClient) -> None:
    migrate(ch_client, DB, Retention(), 1000)
    ch_client.command("ALTER TABLE netpilot.link_stats DROP COLUMN if_name")
    assert migrate(ch_client, DB, Retention(), 1000, dry_run=True).applied == ("columns:link_stats",)
    report = migrate(ch_client, DB, Retention(raw_days=3, rollup_1h_days=400), 1000)
    assert set(report.applied) == {"columns:link_stats", "ttl:flows_raw", "ttl:flows_1h"}
    assert current_ttl_days(ch_client, DB, "flows_raw") == 3
    assert current_ttl_days(ch_client, DB, "flows_1h") == 400
    assert ch_client.rows(
        "SELECT count() FROM system.columns WHERE database = 'netpilot' AND table = 'link_stats' AND name = 'if_name'"
    ) == [(1,)]
    assert migrate(ch_client, DB, Retention(raw_days=3, rollup_1h_days=400), 1000).applied == ()


def test_rollups_cascade_and_a_schema_1_view_is_recreated(ch_client: ClickHouseClient) -> None:
    migrate(ch_client, DB, Retention(), 1000)
    reads = {v.name: v.source for v in schema.views()}
    assert reads == {"flows_1m_mv": "flows_raw", "flows_5m_mv": "flows_1m", "flows_1h_mv": "flows_5m"}
    # a database migrated by schema 1: every rollup read flows_raw
    ch_client.command("DROP VIEW netpilot.flows_5m_mv")
    ch_client.command(
        "CREATE MATERIALIZED VIEW netpilot.flows_5m_mv TO netpilot.flows_5m AS SELECT "
        "toStartOfFiveMinutes(time_received) AS window_start, pop, link_id, router, out_if, dst_as, "
        "src_as, ip_proto, sum(bytes_scaled) AS bytes, sum(packets_scaled) AS packets, "
        "sum(toUInt64(greatest(sampling_rate, 1))) AS flows, count() AS samples FROM netpilot.flows_raw "
        "GROUP BY window_start, pop, link_id, router, out_if, dst_as, src_as, ip_proto"
    )
    report = migrate(ch_client, DB, Retention(), 1000)
    assert report.applied == ("view-source:flows_5m_mv", "view:flows_5m_mv")
    [(query,)] = ch_client.rows(
        "SELECT create_table_query FROM system.tables WHERE database = 'netpilot' AND name = 'flows_5m_mv'"
    )
    assert "FROM netpilot.flows_1m" in query
    assert migrate(ch_client, DB, Retention(), 1000).applied == ()


def test_schema_2_database_gets_the_applied_table_and_keeps_its_data(ch_client: ClickHouseClient) -> None:
    migrate(ch_client, DB, Retention(), 1000)
    # a database migrated by schema 2: everything but autopilot_applied, with rows in it
    ch_client.command("DROP TABLE netpilot.autopilot_applied")
    ch_client.command(
        "INSERT INTO netpilot.cycle_summaries (generated_at, cycle_id, pop, mode) "
        "VALUES (now64(3), 'c1', 'ams1', 'suggest')"
    )
    before = [r for r in _snapshot(ch_client) if r[0] != "autopilot_applied"]
    report = migrate(ch_client, DB, Retention(), 1000)
    assert report.applied == ("table:autopilot_applied",)
    assert [r for r in _snapshot(ch_client) if r[0] != "autopilot_applied"] == before
    assert ch_client.rows("SELECT cycle_id, pop FROM netpilot.cycle_summaries") == [("c1", "ams1")]
    [(engine, sorting)] = ch_client.rows(
        "SELECT engine_full, sorting_key FROM system.tables WHERE database = 'netpilot' AND name = 'autopilot_applied'"
    )
    assert engine.startswith("ReplacingMergeTree(version)") and sorting == "pop, prefix"
    assert "non_replicated_deduplication_window = 1000" in engine  # replays are dropped here too
    [(step, description)] = ch_client.rows(
        "SELECT step, description FROM netpilot.schema_migrations "
        "WHERE step = 'table:autopilot_applied' "
        "ORDER BY applied_at DESC LIMIT 1"
    )
    assert description.startswith(f"v{SCHEMA_VERSION}:") and SCHEMA_VERSION >= 3
    assert migrate(ch_client, DB, Retention(), 1000).applied == ()


# flow_aggregates as schema 3 created it: a plain MergeTree on part of the row key
SCHEMA_3_AGGREGATES = schema.Table(
    "flow_aggregates",
    schema.columns_from_arrow(aggregates.AGGREGATE_SCHEMA),
    "MergeTree",
    order_by="window_start, pop, link_id, dst_prefix, dst_prefix_len",
    partition_by="toYYYYMM(window_start)",
    ttl_column="toDateTime(window_start)",
    ttl_days=Retention().links_days,
)


def _schema_3_aggregates(c: ClickHouseClient) -> None:
    """A schema-3 flow_aggregates holding a window, its partial repeat (two inserts) and a
    cycle summary elsewhere."""
    migrate(c, DB, Retention(), 1000)
    c.command("DROP TABLE netpilot.flow_aggregates")
    c.command(SCHEMA_3_AGGREGATES.create_sql(DB, 1000))
    c.insert_arrow("netpilot.flow_aggregates", dedup.table_of(dedup.FIRST), "flow_aggregates/0/7-7")
    c.insert_arrow("netpilot.flow_aggregates", dedup.table_of(dedup.REPEAT), "flow_aggregates/0/9-9")
    c.command(
        "INSERT INTO netpilot.cycle_summaries (generated_at, cycle_id, pop, mode) "
        "VALUES (now64(3), 'c1', 'ams1', 'suggest')"
    )


def _assert_rebuilt(c: ClickHouseClient) -> None:
    [(engine, sorting)] = c.rows(
        "SELECT engine_full, sorting_key FROM system.tables WHERE database = 'netpilot' AND name = 'flow_aggregates'"
    )
    assert engine.startswith("ReplacingMergeTree(dedup_version)"), engine
    assert sorting == ", ".join(aggregates.ROW_KEY)
    assert "non_replicated_deduplication_window = 1000" in engine
    assert current_ttl_days(c, DB, "flow_aggregates") == Retention().links_days
    # every row of the first copy came across, and the repeat no longer counts (the copy
    # step itself refuses to swap unless it holds as many rows as the old table)
    assert [tuple(r) for r in c.rows(dedup.KEYED)] == dedup.FIRST
    assert not c.rows("SELECT name FROM system.tables WHERE database = 'netpilot' AND name LIKE '%rebuild%'")
    assert c.rows("SELECT cycle_id, pop FROM netpilot.cycle_summaries") == [("c1", "ams1")]


def test_schema_3_flow_aggregates_is_rebuilt_deduplicating_with_every_row(ch_client: ClickHouseClient) -> None:
    _schema_3_aggregates(ch_client)
    before = [r for r in _snapshot(ch_client) if r[0] != "flow_aggregates"]
    # the plain table counts the repeat
    assert ch_client.rows("SELECT sum(bytes) FROM netpilot.flow_aggregates") == [
        (sum(r[4] for r in dedup.FIRST) + sum(r[4] for r in dedup.REPEAT),)
    ]
    report = migrate(ch_client, DB, Retention(), 1000)
    assert report.applied == ("engine:flow_aggregates",)
    _assert_rebuilt(ch_client)
    assert [r for r in _snapshot(ch_client) if r[0] != "flow_aggregates"] == before
    [(description,)] = ch_client.rows(
        "SELECT description FROM netpilot.schema_migrations WHERE step = 'engine:flow_aggregates'"
    )
    assert description.startswith(f"v{SCHEMA_VERSION}:") and SCHEMA_VERSION >= 4
    assert migrate(ch_client, DB, Retention(), 1000).applied == ()


def test_an_interrupted_rebuild_is_finished_by_the_next_run(ch_client: ClickHouseClient) -> None:
    # stopped before the exchange: the live table untouched, a half-made copy next to it
    _schema_3_aggregates(ch_client)
    copy = "netpilot.flow_aggregates__rebuild"
    ch_client.command(schema.table_for("flow_aggregates").create_sql(DB, 1000, name="flow_aggregates__rebuild"))
    ch_client.insert_arrow(copy, dedup.table_of(dedup.FIRST[:2]), "half")
    assert migrate(ch_client, DB, Retention(), 1000).applied == ("engine:flow_aggregates",)
    _assert_rebuilt(ch_client)

    # stopped after the exchange: the old table left under the copy's name
    ch_client.command(SCHEMA_3_AGGREGATES.create_sql(DB, 1000).replace("flow_aggregates", "flow_aggregates__rebuild"))
    ch_client.insert_arrow(copy, dedup.table_of(dedup.FIRST), "old")
    assert migrate(ch_client, DB, Retention(), 1000).applied == ("engine:flow_aggregates",)
    _assert_rebuilt(ch_client)
    assert migrate(ch_client, DB, Retention(), 1000).applied == ()
