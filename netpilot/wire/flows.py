"""flows/1: batches of decoded flows as one Arrow IPC stream per Kafka message.

Why Arrow IPC (measured in ``bench/bench_wire.py``, figures in docs/wire-format.md):
the collector builds numpy columns, Arrow wraps them without copying, the consumer gets
columns back zero-copy and hands the same table to polars (aggregation) and to
ClickHouse ``insert_arrow`` (sink). A numpy structured array would be as fast to encode but
has no standard reader on the consuming side and no place for dictionaries.

Addresses (exporter, src, dst, next hop, dst prefix) are 16-byte big-endian values in one
layout for both families: IPv4 is IPv4-mapped IPv6 (``::ffff:a.b.c.d``), which is what a
ClickHouse ``IPv6`` column stores. ``dst_prefix_len`` is relative to the family (24 for a
/24, 48 for an IPv6 /48).

Versioning: the Arrow schema metadata carries ``netpilot.schema=flows`` and
``netpilot.version=<major>.<minor>``; the Kafka header ``schema`` carries the same. Readers
accept any minor of a major they know (minors only add columns) and raise
:class:`~netpilot.errors.WireVersionError` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, IntFlag

import numpy as np
import pyarrow as pa

from netpilot.errors import WireError, WireVersionError
from netpilot.wire.arrow import open_stream, write_stream

SCHEMA_NAME = "flows"
MAJOR = 1
MINOR = 1  # 1.1 added fw_event
SCHEMA_ID = f"{SCHEMA_NAME}/{MAJOR}"
CONTENT_TYPE = "application/vnd.apache.arrow.stream"
TIME_COLUMNS = ("time_received",)
"""Columns a consumer checks against its clock (:class:`netpilot.wire.intake.Intake`): the
collector's receive time. ``time_start``/``time_end`` are the exporter's and are bounded
where they enter, in the collector's decoders."""


class FlowType(IntEnum):
    """Which export protocol a flow came from (``flow_type`` column)."""

    NETFLOW5 = 1
    NETFLOW9 = 2
    IPFIX = 3
    SFLOW5 = 4

    @property
    def label(self) -> str:
        return {1: "netflow5", 2: "netflow9", 3: "ipfix", 4: "sflow5"}[int(self)]


class FlowFlags(IntFlag):
    """Bits of the ``flags`` column."""

    NONE = 0
    SAMPLING_UNKNOWN = 1
    """The exporter sent no sampling rate; the configured default was applied."""
    LINK_UNKNOWN = 2
    """(exporter, out_if) is not in the link inventory."""
    PREFIX_UNKNOWN = 4
    """No route covers dst_addr."""


class FirewallEvent(IntEnum):
    """``fw_event`` column: IPFIX firewallEvent (IE 233; Cisco NSEL's NF_F_FW_EVENT).

    0 for every flow that is not a firewall event record. Which events carry counters is
    decided by the decoder (docs/collector.md, "Firewall events").
    """

    NONE = 0
    CREATED = 1
    DELETED = 2
    DENIED = 3
    ALERT = 4
    UPDATE = 5


ADDR = pa.binary(16)
TS = pa.timestamp("ms", tz="UTC")
DICT_STR = pa.dictionary(pa.int32(), pa.string())

FLOW_SCHEMA = pa.schema(
    [
        pa.field("time_received", TS, nullable=False),
        pa.field("time_start", TS, nullable=False),
        pa.field("time_end", TS, nullable=False),
        pa.field("flow_type", pa.uint8(), nullable=False),
        pa.field("exporter", ADDR, nullable=False),
        pa.field("observation_domain", pa.uint32(), nullable=False),
        pa.field("pop", DICT_STR, nullable=False),
        pa.field("router", DICT_STR, nullable=False),
        pa.field("in_if", pa.uint32(), nullable=False),
        pa.field("out_if", pa.uint32(), nullable=False),
        pa.field("link_id", DICT_STR, nullable=False),
        pa.field("src_addr", ADDR, nullable=False),
        pa.field("dst_addr", ADDR, nullable=False),
        pa.field("src_port", pa.uint16(), nullable=False),
        pa.field("dst_port", pa.uint16(), nullable=False),
        pa.field("ip_proto", pa.uint8(), nullable=False),
        pa.field("tcp_flags", pa.uint8(), nullable=False),
        pa.field("bytes", pa.uint64(), nullable=False),
        pa.field("packets", pa.uint64(), nullable=False),
        pa.field("sampling_rate", pa.uint32(), nullable=False),
        pa.field("bytes_scaled", pa.uint64(), nullable=False),
        pa.field("packets_scaled", pa.uint64(), nullable=False),
        pa.field("src_as", pa.uint32(), nullable=False),
        pa.field("dst_as", pa.uint32(), nullable=False),
        pa.field("dst_prefix", ADDR, nullable=False),
        pa.field("dst_prefix_len", pa.uint8(), nullable=False),
        pa.field("next_hop", ADDR, nullable=False),
        pa.field("flags", pa.uint8(), nullable=False),
        pa.field("fw_event", pa.uint8(), nullable=False),
    ],
    metadata={"netpilot.schema": SCHEMA_NAME, "netpilot.version": f"{MAJOR}.{MINOR}"},
)

FIELD_NAMES: tuple[str, ...] = tuple(FLOW_SCHEMA.names)

# numpy dtype per non-string, non-address column: what producers fill.
NUMPY_DTYPES: Mapping[str, np.dtype] = {
    f.name: np.dtype(f.type.to_pandas_dtype()) for f in FLOW_SCHEMA if pa.types.is_integer(f.type)
}
TIMESTAMP_FIELDS = ("time_received", "time_start", "time_end")
ADDRESS_FIELDS = ("exporter", "src_addr", "dst_addr", "dst_prefix", "next_hop")
STRING_FIELDS = ("pop", "router", "link_id")


def _addr_array(values: np.ndarray | pa.Array) -> pa.Array:
    if isinstance(values, pa.Array):
        return values.cast(ADDR) if values.type != ADDR else values
    arr = np.ascontiguousarray(values, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != 16:
        raise ValueError(f"address column must be shaped (n, 16) uint8, got {arr.shape}")
    return pa.FixedSizeBinaryArray.from_buffers(ADDR, len(arr), [None, pa.py_buffer(arr)])


def _dict_array(values: object, n: int) -> pa.Array:
    if isinstance(values, pa.DictionaryArray):
        return values.cast(DICT_STR) if values.type != DICT_STR else values
    if isinstance(values, str):  # one value for the whole batch: n zero indices
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([values], pa.string()))
    if isinstance(values, tuple) and len(values) == 2:  # (indices, dictionary)
        indices, dictionary = values
        return pa.DictionaryArray.from_arrays(
            pa.array(np.asarray(indices, dtype=np.int32)), pa.array(list(dictionary), pa.string())
        )
    return pa.array(values, pa.string()).dictionary_encode().cast(DICT_STR)


def flow_table(columns: Mapping[str, object], n: int | None = None) -> pa.Table:
    """Build a flows/1 table from columns; missing columns get zero / empty values.

    Accepted column values: numpy arrays (integers; timestamps as int64 milliseconds or
    ``datetime64``), ``(n, 16)`` uint8 arrays for addresses, and for ``pop``/``router``/
    ``link_id`` a single string, a ``(indices, dictionary)`` pair or a sequence of strings.
    No per-flow Python work happens for numpy inputs.
    """
    unknown = set(columns) - set(FIELD_NAMES)
    if unknown:
        raise ValueError(f"unknown flow columns {sorted(unknown)}; known: {FIELD_NAMES}")
    if n is None:
        for name, value in columns.items():
            if name not in STRING_FIELDS or not isinstance(value, str):
                n = len(value)  # type: ignore[arg-type]
                break
        else:
            raise ValueError("cannot infer the row count: pass n=")
    arrays: list[pa.Array] = []
    for f in FLOW_SCHEMA:
        value = columns.get(f.name)
        if f.name in ADDRESS_FIELDS:
            arr = _addr_array(np.zeros((n, 16), np.uint8) if value is None else value)
        elif f.name in STRING_FIELDS:
            arr = _dict_array("" if value is None else value, n)
        elif f.name in TIMESTAMP_FIELDS:
            if value is None:
                value = np.zeros(n, dtype=np.int64)
            if isinstance(value, pa.Array):
                arr = value.cast(TS)
            else:
                v = np.asarray(value)
                if np.issubdtype(v.dtype, np.datetime64):
                    v = v.astype("datetime64[ms]").astype(np.int64)
                arr = pa.array(v.astype(np.int64, copy=False)).view(pa.int64()).cast(TS)
        else:
            if value is None:
                arr = pa.array(np.zeros(n, dtype=NUMPY_DTYPES[f.name]))
            elif isinstance(value, pa.Array):
                arr = value.cast(f.type)
            else:
                arr = pa.array(np.asarray(value).astype(NUMPY_DTYPES[f.name], copy=False))
        if len(arr) != n:
            raise ValueError(f"column {f.name!r} has {len(arr)} rows, expected {n}")
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=FLOW_SCHEMA)


def encode_flows(table: pa.Table, compression: str = "lz4") -> bytes:
    """Serialise a flows/1 table into one Kafka message value (one Arrow IPC stream)."""
    if not table.schema.equals(FLOW_SCHEMA, check_metadata=False):
        table = table.select(list(FIELD_NAMES)).cast(FLOW_SCHEMA)
    return write_stream(table, FLOW_SCHEMA, compression)


def headers() -> list[tuple[str, bytes]]:
    """Kafka headers every flows/1 message carries."""
    return [("schema", SCHEMA_ID.encode()), ("content-type", CONTENT_TYPE.encode())]


def check_version(metadata: Mapping[bytes, bytes] | None) -> str:
    """Return the ``major.minor`` version in Arrow schema metadata or raise."""
    meta = metadata or {}
    name = meta.get(b"netpilot.schema", b"").decode(errors="replace")
    version = meta.get(b"netpilot.version", b"").decode(errors="replace")
    if name != SCHEMA_NAME:
        raise WireVersionError(f"not a flows batch: schema {name or '<missing>'!r}, expected {SCHEMA_NAME!r}")
    major = version.split(".", 1)[0]
    if major != str(MAJOR):
        raise WireVersionError(
            f"flows batch version {version!r} is not readable by this netpilot "
            f"(reads {MAJOR}.x); upgrade the consumer or read the matching topic"
        )
    return version


def decode_flows(value: bytes | memoryview | pa.Buffer) -> pa.Table:
    """Decode one Kafka message value into a flows/1 table (zero-copy where possible).

    Raises :class:`WireVersionError` for another schema/version and :class:`WireError`
    for anything that is not a well-formed Arrow stream of the expected columns.
    """
    reader = open_stream(value, "flows batch")
    check_version(reader.schema.metadata)
    try:
        table = reader.read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        # a truncated body surfaces as OSError ("Expected to be able to read N bytes")
        raise WireError(f"flows batch is truncated or corrupt: {exc}") from exc
    missing = [n for n in FIELD_NAMES if n not in table.schema.names]
    if missing:
        raise WireError(f"flows batch lacks columns {missing}")
    for f in FLOW_SCHEMA:
        actual = table.schema.field(f.name).type
        if actual != f.type:
            raise WireError(f"flows column {f.name!r} has type {actual}, expected {f.type}")
    if table.schema.names != list(FIELD_NAMES):  # newer minor: drop columns we do not know
        table = table.select(list(FIELD_NAMES))
    return table


# ---------------------------------------------------------------------------------------
# Address helpers (vectorised).

_MAPPED_PREFIX = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)


def ipv4_to_addr(ipv4: np.ndarray) -> np.ndarray:
    """uint32 IPv4 addresses (host order values) -> (n, 16) IPv4-mapped addresses."""
    v = np.asarray(ipv4, dtype=np.uint32)
    out = np.zeros((len(v), 16), dtype=np.uint8)
    out[:, 10:12] = 0xFF
    out[:, 12:16] = v.astype(">u4").view(np.uint8).reshape(-1, 4)
    return out


def is_ipv4(addr: np.ndarray) -> np.ndarray:
    """Boolean mask: which (n, 16) addresses are IPv4-mapped."""
    a = np.asarray(addr, dtype=np.uint8).reshape(-1, 16)
    return np.all(a[:, :12] == _MAPPED_PREFIX, axis=1)


def addr_to_str(addr: bytes) -> str:
    """One 16-byte address -> its text form (IPv4 for mapped addresses). Not for hot paths."""
    import ipaddress

    ip = ipaddress.IPv6Address(bytes(addr))
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


def str_to_addr(text: str) -> bytes:
    """Text address (v4 or v6) -> the 16-byte layout. Not for hot paths."""
    import ipaddress

    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return b"\x00" * 10 + b"\xff\xff" + ip.packed
    return ip.packed
