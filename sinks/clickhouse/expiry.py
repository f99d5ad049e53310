"""Rows that are already past their table's TTL when the sink inserts them.

ClickHouse drops such rows from the table at once (chDB 26.9 does it in the insert itself,
a server at its next merge), but the insert still succeeds and the materialized views still
see them: a flow older than ``flows_raw``'s TTL but younger than a rollup's is kept in that
rollup. So the sink inserts every row, as decoded (a batch stays a function of its offsets,
which the replay from a write-ahead intent relies on), and counts the expired ones
per table (``rows_expired_total``) next to ``rows_total``: what the table keeps of a batch is
``rows - rows_expired``. See docs/sinks.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from sinks.clickhouse.schema import Table

_DAY_MS = 86_400_000
_SOURCE = re.compile(r"^(?:toDateTime\()?`?(\w+)`?\)?$")


def ttl_source(table: Table) -> str | None:
    """The column a table's TTL counts from (None: rows never expire)."""
    if table.ttl_column is None or table.ttl_days is None:
        return None
    m = _SOURCE.match(table.ttl_column.strip())
    if m is None:
        raise ValueError(f"{table.name}: TTL expression {table.ttl_column!r} is not a column or toDateTime(column)")
    return m.group(1)


@dataclass(frozen=True)
class Expired:
    rows: int
    oldest_ms: int | None
    """The oldest expired row's TTL column (ms since the epoch)."""


NONE = Expired(0, None)


def expired_rows(table: Table, data: pa.Table, now_s: float) -> Expired:
    """How many rows of ``data`` (shaped like ``table``) are past the table's TTL at ``now_s``."""
    column = ttl_source(table)
    if column is None or table.ttl_days is None or not data.num_rows or column not in data.column_names:
        return NONE
    col = data.column(column)
    if pa.types.is_timestamp(col.type):
        ms = col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    else:  # DateTime columns built from unix seconds
        ms = pc.multiply(col.cast(pa.int64()), 1000)
    cutoff = int(now_s * 1000) - table.ttl_days * _DAY_MS
    mask = pc.less(ms, cutoff)
    n = pc.sum(mask).as_py() or 0
    if not n:
        return NONE
    return Expired(int(n), pc.min(pc.filter(ms, mask)).as_py())
