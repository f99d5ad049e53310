"""NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records.

Records of every v5 datagram in a decode pass are joined and decoded with one
``np.frombuffer``; header values (times, sampling) are repeated per record.

When the header's record count and the datagram's length disagree, the whole records the
datagram holds are decoded (never more than the count says, when the rest is zero
padding) and the records the two disagree on are counted as ``count_mismatch``: a header
claiming 30 records in a datagram of 20 gives 20 flows and 10 counted.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from netpilot.wire.flows import FlowFlags, FlowType, ipv4_to_addr
from producers.collector.decode.errors import DecodeError, Reason
from producers.collector.decode.result import ChunkBuilder, order_key

HEADER = struct.Struct(">HHIIIIBBH")
RECORD = np.dtype(
    [
        ("src", ">u4"),
        ("dst", ">u4"),
        ("nexthop", ">u4"),
        ("input", ">u2"),
        ("output", ">u2"),
        ("packets", ">u4"),
        ("octets", ">u4"),
        ("first", ">u4"),
        ("last", ">u4"),
        ("src_port", ">u2"),
        ("dst_port", ">u2"),
        ("pad1", "u1"),
        ("tcp_flags", "u1"),
        ("proto", "u1"),
        ("tos", "u1"),
        ("src_as", ">u2"),
        ("dst_as", ">u2"),
        ("src_mask", "u1"),
        ("dst_mask", "u1"),
        ("pad2", ">u2"),
    ]
)
assert RECORD.itemsize == 48
MAX_RECORDS = 30
U32 = np.int64(1 << 32)


@dataclass
class V5Batch:
    """Record bytes and per-datagram header values gathered over a decode pass."""

    parts: list[memoryview] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    exporters: list[bytes] = field(default_factory=list)
    heads: list[tuple[int, int, int, int, int, int, int]] = field(default_factory=list)
    """Per datagram: export ms, uptime ms, rate, domain, received ms, datagram, sequence."""


HEADER_SIZE, RECORD_SIZE = HEADER.size, RECORD.itemsize


def collect(batch: V5Batch, out: ChunkBuilder, exporter: bytes, data: memoryview, received_ms: int) -> None:
    """Check one datagram and queue its records (decoded in :func:`finish`)."""
    size = len(data)
    if size < HEADER_SIZE:
        raise DecodeError(Reason.TRUNCATED, f"v5 datagram of {size} bytes", version=5, offset=0)
    _, count, uptime, secs, nsecs, sequence, engine_type, engine_id, sampling = HEADER.unpack_from(data, 0)
    out.sequence = sequence
    if count == 0 or count > MAX_RECORDS:
        raise DecodeError(Reason.BAD_COUNT, f"v5 record count {count} (1..{MAX_RECORDS})", version=5, offset=2)
    need = HEADER_SIZE + count * RECORD_SIZE
    if size < need:
        present = (size - HEADER_SIZE) // RECORD_SIZE
        out.drop(
            Reason.COUNT_MISMATCH,
            count - present,
            f"v5 header counts {count} records, the datagram holds {present}: {present} decoded",
            HEADER_SIZE + present * RECORD_SIZE,
        )
        count, need = present, HEADER_SIZE + present * RECORD_SIZE
    elif size > need and any(data[need:]):  # more than padding after the counted records
        out.drop(
            Reason.COUNT_MISMATCH,
            max(1, (size - need) // RECORD_SIZE),
            f"v5 header counts {count} records, {size - need} more bytes follow them",
            need,
        )
    out.result.datagrams[(exporter, "netflow5")] += 1
    if not count:
        return
    batch.parts.append(data[HEADER_SIZE:need])
    batch.counts.append(count)
    batch.exporters.append(exporter)
    # the top two bits of the sampling field are the sampling mode
    batch.heads.append(
        (
            secs * 1000 + nsecs // 1_000_000,
            uptime,
            sampling & 0x3FFF,
            engine_type << 8 | engine_id,
            received_ms,
            out.datagram,
            sequence,
        )
    )


def finish(batch: V5Batch, out: ChunkBuilder, default_rate: Callable[[bytes], int]) -> None:
    if not batch.parts:
        return
    counts = np.asarray(batch.counts)
    n = int(counts.sum())
    r = np.frombuffer(b"".join(batch.parts), dtype=RECORD, count=n)
    heads = np.asarray(batch.heads, np.int64)

    def rep(column: int) -> np.ndarray:
        return np.repeat(heads[:, column], counts)

    export_ms, uptime = rep(0), rep(1)
    exporters = np.frombuffer(b"".join(batch.exporters), np.uint8).reshape(-1, 16)
    rate = rep(2).astype(np.uint64)
    unknown = rate == 0
    n_unknown = int(np.count_nonzero(unknown))
    flags = np.zeros(n, np.uint8)
    if n_unknown:
        defaults = np.repeat(np.array([default_rate(e) for e in batch.exporters], np.uint64), counts)
        rate = np.where(unknown, defaults, rate)
        flags[unknown] = FlowFlags.SAMPLING_UNKNOWN
        out.result.sampling_unknown += n_unknown
    octets = r["octets"].astype(np.uint64)
    packets = r["packets"].astype(np.uint64)
    cols = {
        "time_received": rep(4),
        # first/last are router uptime in ms (u32, wraps): age relative to the export time
        "time_start": export_ms - ((uptime - r["first"].astype(np.int64)) % U32),
        "time_end": export_ms - ((uptime - r["last"].astype(np.int64)) % U32),
        "flow_type": np.uint8(FlowType.NETFLOW5),
        "exporter": np.repeat(exporters, counts, axis=0),
        "observation_domain": rep(3).astype(np.uint32),
        "in_if": r["input"],
        "out_if": r["output"],
        "src_addr": ipv4_to_addr(r["src"]),
        "dst_addr": ipv4_to_addr(r["dst"]),
        "src_port": r["src_port"],
        "dst_port": r["dst_port"],
        "ip_proto": r["proto"],
        "tcp_flags": r["tcp_flags"],
        "bytes": octets,
        "packets": packets,
        "sampling_rate": rate,
        "bytes_scaled": octets * rate,
        "packets_scaled": packets * rate,
        "src_as": r["src_as"],
        "dst_as": r["dst_as"],
        "flags": flags,
    }
    if out.provenance:
        cols["datagram"] = rep(5)
        cols["template_id"] = np.uint16(0)
        cols["sequence"] = rep(6)
        cols["order"] = order_key(heads[:, 5], 0, counts)
    nh = r["nexthop"]
    if nh.any():
        addr = ipv4_to_addr(nh)
        addr[nh == 0] = 0  # 0.0.0.0 means "no next hop", not ::ffff:0.0.0.0
        cols["next_hop"] = addr
    for e, c in zip(batch.exporters, batch.counts):
        out.result.flows[(e, "netflow5")] += c
    out.add(n, cols)
