"""The mechanism the sink relies on, checked on chDB itself: a repeated insert with the same
deduplication token is dropped, in the raw table *and* in every rollup view."""

from __future__ import annotations

import time

from netpilot.wire import flows
from sinks.clickhouse import convert
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.settings import Retention
from tests.sinks.clickhouse.helpers import make_flows

ROLLUP_SUMS = (
    "SELECT (SELECT sum(bytes) FROM netpilot.flows_1m), (SELECT sum(bytes) FROM "
    "netpilot.flows_5m), (SELECT sum(samples) FROM netpilot.flows_1h)"
)


def test_same_token_is_inserted_once_everywhere(ch_client: ClickHouseClient) -> None:
    migrate(ch_client, "netpilot", Retention(), 1000)
    data = make_flows(n_messages=3, rows_per_message=700, seed=5, base_ms=int(time.time()) * 1000)
    items = [convert.decode("flows", i, b"k", v) for i, (_k, v) in enumerate(data.messages)]
    table = convert.to_arrow("flows", items)
    assert table.num_rows == data.rows and table.schema.field("pop").type == flows.DICT_STR

    for _ in range(3):  # a batch replayed twice after crashes
        ch_client.insert_arrow("netpilot.flows_raw", table, "flows/0/0-2")
    one = [(data.rows, data.bytes_scaled)]
    assert ch_client.rows("SELECT count(), sum(bytes_scaled) FROM netpilot.flows_raw") == one
    assert ch_client.rows(ROLLUP_SUMS) == [(data.bytes_scaled, data.bytes_scaled, data.rows)]

    # Another token is another batch: stored again (tokens, not content, decide).
    ch_client.insert_arrow("netpilot.flows_raw", table, "flows/0/3-5")
    assert ch_client.rows("SELECT count() FROM netpilot.flows_raw") == [(2 * data.rows,)]
    assert ch_client.rows(ROLLUP_SUMS) == [(2 * data.bytes_scaled, 2 * data.bytes_scaled, 2 * data.rows)]
