"""Migrations: derived from the wire schemas, check-then-apply, idempotent."""

from __future__ import annotations

import pyarrow as pa

from netpilot.wire import flows
from sinks.clickhouse import schema
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.migrations import SCHEMA_VERSION, current_ttl_days, migrate
from sinks.clickhouse.settings import Retention

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
