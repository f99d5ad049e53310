"""Small pure pieces: the intent format, the read-only guard, DSN checks, JSON -> Arrow."""

from __future__ import annotations

import pytest

from netpilot.errors import ConfigError, WireError
from netpilot.wire.injector import AppliedOverride
from netpilot.wire.links import LinkStats
from sinks.clickhouse import convert
from sinks.clickhouse.client import check_dsn, describe_dsn
from sinks.clickhouse.query_http import is_read_only
from sinks.clickhouse.sink import INTENT, dedup_token, parse_intent


def test_intent_round_trip_and_garbage() -> None:
    assert parse_intent(f"{INTENT}10-42") == (10, 42)
    assert parse_intent("") is None and parse_intent(None) is None
    assert parse_intent(f"{INTENT}x-1") is None and parse_intent("other:1-2") is None
    assert dedup_token("t", 3, 10, 42) == "t/3/10-42"


def test_query_guard_allows_one_read_only_statement() -> None:
    assert is_read_only("SELECT 1") and is_read_only("  with x as (select 1) select * from x;")
    assert is_read_only("SHOW TABLES") and is_read_only("describe netpilot.flows_raw")
    for sql in (
        "INSERT INTO t VALUES (1)",
        "DROP TABLE t",
        "SELECT 1; DROP TABLE t",
        "ALTER TABLE t DELETE WHERE 1",
        "optimize table t final",
    ):
        assert not is_read_only(sql), sql


def test_dsn_forms() -> None:
    check_dsn("chdb:///var/lib/x")
    check_dsn("https://u:secret@ch.example:8443/db")
    assert "secret" not in describe_dsn("https://u:secret@ch.example:8443/db")
    for bad in ("chdb://relative/path", "postgres://x", "chdb:relative"):
        with pytest.raises(ConfigError):
            check_dsn(bad)


def test_json_batch_becomes_columns_and_bad_json_is_a_wire_error() -> None:
    m = LinkStats(pop="ams", router="r1", if_index=7, ts=1_800_000_000.5, out_bps=1e9)
    items = [convert.decode("link_stats", 5, b"ams", m.encode())] * 3
    t = convert.to_arrow("link_stats", items)
    assert t.num_rows == 3 and t.column("out_bps").to_pylist() == [1e9] * 3
    assert t.column("in_bps").null_count == 3  # None stays NULL, not 0
    assert t.column("ts")[0].value == 1_800_000_000_500
    with pytest.raises(WireError):
        convert.decode("link_stats", 6, b"ams", b"{not json")
    with pytest.raises(WireError):
        convert.decode("flows", 7, b"ams", None)
    with pytest.raises(WireError):
        convert.decode("link_inventory", 8, b"no-separator", None)
    with pytest.raises(WireError):
        convert.decode("applied_overrides", 9, b"ams1|", None)


def test_applied_override_and_its_tombstone_become_rows() -> None:
    m = AppliedOverride(
        pop="ams1",
        prefix="203.0.113.0/24",
        next_hop="192.0.2.31",
        routers=("ams1-r2",),
        since=1_800_000_000.0,
        confirmed_at=1_800_000_030.25,
    )
    t = convert.to_arrow(
        "applied_overrides",
        [
            convert.decode("applied_overrides", 7, m.key().encode(), m.encode(), 1_800_000_031.0),
            convert.decode("applied_overrides", 8, m.key().encode(), None, 1_800_000_090.5),
        ],
    )
    assert t.column("deleted").to_pylist() == [False, True]
    assert t.column("version").to_pylist() == [7, 8]  # the offset orders the replacements
    assert t.column("prefix").to_pylist() == ["203.0.113.0/24"] * 2
    assert t.column("link_id").to_pylist() == ["", ""]  # not in the inventory / tombstone
    assert [v.value for v in t.column("confirmed_at")] == [1_800_000_030_250, None]
    assert [v.value for v in t.column("published_at")] == [1_800_000_031_000, 1_800_000_090_500]
