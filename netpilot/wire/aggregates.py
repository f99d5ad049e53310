"""flow-aggregates/1: closed windows per (PoP, link, dst prefix, dst AS), Arrow IPC.

Same encoding rules as flows/1 (one Arrow IPC stream per message, version in the schema
metadata and the ``schema`` header).
"""

from __future__ import annotations

import pyarrow as pa

from netpilot.errors import WireError, WireVersionError
from netpilot.wire.arrow import open_stream, write_stream
from netpilot.wire.flows import ADDR, DICT_STR, TS

SCHEMA_NAME = "flow-aggregates"
MAJOR = 1
SCHEMA_ID = f"{SCHEMA_NAME}/{MAJOR}"
TIME_COLUMNS = ("window_start",)
"""Columns a consumer checks against its clock (:class:`netpilot.wire.intake.Intake`)."""

AGGREGATE_SCHEMA = pa.schema(
    [
        pa.field("window_start", TS, nullable=False),
        pa.field("window_s", pa.uint32(), nullable=False),
        pa.field("pop", DICT_STR, nullable=False),
        pa.field("link_id", DICT_STR, nullable=False),
        pa.field("dst_prefix", ADDR, nullable=False),
        pa.field("dst_prefix_len", pa.uint8(), nullable=False),
        pa.field("dst_as", pa.uint32(), nullable=False),
        pa.field("bytes", pa.uint64(), nullable=False),
        pa.field("packets", pa.uint64(), nullable=False),
        pa.field("flows", pa.uint64(), nullable=False),
        pa.field("samples", pa.uint64(), nullable=False),
    ],
    metadata={"netpilot.schema": SCHEMA_NAME, "netpilot.version": f"{MAJOR}.0"},
)
ROW_KEY = ("window_start", "window_s", "pop", "link_id", "dst_prefix", "dst_prefix_len", "dst_as")
"""What identifies one row: a closed window holds one row per key, and a republished window
(docs/streams.md, "Guarantees and their limits") repeats rows under the same keys, so a
consumer deduplicates on exactly these columns. The other columns are the sums."""
SUM_COLUMNS = ("bytes", "packets", "flows", "samples")


def encode_aggregates(table: pa.Table) -> bytes:
    table = table.select(AGGREGATE_SCHEMA.names).cast(AGGREGATE_SCHEMA)
    return write_stream(table, AGGREGATE_SCHEMA, "lz4")


def headers() -> list[tuple[str, bytes]]:
    """Kafka headers every flow-aggregates/1 message carries."""
    return [("schema", SCHEMA_ID.encode()), ("content-type", b"application/vnd.apache.arrow.stream")]


def decode_aggregates(value: bytes) -> pa.Table:
    reader = open_stream(value, "aggregates batch")
    meta = reader.schema.metadata or {}
    if meta.get(b"netpilot.schema") != SCHEMA_NAME.encode():
        raise WireVersionError(f"not a {SCHEMA_NAME} batch: {meta.get(b'netpilot.schema')!r}")
    if meta.get(b"netpilot.version", b"").split(b".")[0] != str(MAJOR).encode():
        raise WireVersionError(f"{SCHEMA_NAME} version {meta.get(b'netpilot.version')!r} unsupported")
    try:
        return reader.read_all().select(AGGREGATE_SCHEMA.names)
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise WireError(f"aggregates batch is corrupt: {exc}") from exc
