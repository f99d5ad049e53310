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
    export_ms: list[int] = field(default_factory=list)
    uptime: list[int] = field(default_factory=list)
    rate: list[int] = field(default_factory=list)
    domain: list[int] = field(default_factory=list)
    received_ms: list[int] = field(default_factory=list)
    datagram: list[int] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)


def collect(batch: V5Batch, out: ChunkBuilder, exporter: bytes, data: memoryview, received_ms: int) -> None:
    """Check one datagram and queue its records (decoded in :func:`finish`)."""
    if len(data) < HEADER.size:
        raise DecodeError(Reason.TRUNCATED, f"v5 datagram of {len(data)} bytes", version=5, offset=0)
    _, count, uptime, secs, nsecs, sequence, engine_type, engine_id, sampling = HEADER.unpack_from(data, 0)
    out.sequence = sequence
    if count == 0 or count > MAX_RECORDS:
        raise DecodeError(Reason.BAD_COUNT, f"v5 record count {count} (1..{MAX_RECORDS})", version=5, offset=2)
    present = (len(data) - HEADER.size) // RECORD.itemsize
    if present < count:
        out.drop(
            Reason.COUNT_MISMATCH,
            count - present,
            f"v5 header counts {count} records, the datagram holds {present}: {present} decoded",
            HEADER.size + present * RECORD.itemsize,
        )
        count = present
    else:
        tail = data[HEADER.size + count * RECORD.itemsize :]
        if any(tail):  # more than padding after the counted records: say so, decode the counted
            out.drop(
                Reason.COUNT_MISMATCH,
                max(1, len(tail) // RECORD.itemsize),
                f"v5 header counts {count} records, {len(tail)} more bytes follow them",
                HEADER.size + count * RECORD.itemsize,
            )
    out.result.datagrams[(exporter, "netflow5")] += 1
    if not count:
        return
    batch.parts.append(data[HEADER.size : HEADER.size + count * RECORD.itemsize])
    batch.datagram.append(out.datagram)
    batch.sequence.append(sequence)
    batch.counts.append(count)
    batch.exporters.append(exporter)
    batch.export_ms.append(secs * 1000 + nsecs // 1_000_000)
    batch.uptime.append(uptime)
    batch.rate.append(sampling & 0x3FFF)  # the top two bits are the sampling mode
    batch.domain.append(engine_type << 8 | engine_id)
    batch.received_ms.append(received_ms)


def finish(batch: V5Batch, out: ChunkBuilder, default_rate: Callable[[bytes], int]) -> None:
    if not batch.parts:
        return
    counts = np.asarray(batch.counts)
    n = int(counts.sum())
    r = np.frombuffer(b"".join(batch.parts), dtype=RECORD, count=n)
    rep = lambda values, dt=np.int64: np.repeat(np.asarray(values, dt), counts)  # noqa: E731
    export_ms, uptime = rep(batch.export_ms), rep(batch.uptime)
    exporters = np.frombuffer(b"".join(batch.exporters), np.uint8).reshape(-1, 16)
    rate = rep(batch.rate, np.uint64)
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
        "time_received": rep(batch.received_ms),
        # first/last are router uptime in ms (u32, wraps): age relative to the export time
        "time_start": export_ms - ((uptime - r["first"].astype(np.int64)) % U32),
        "time_end": export_ms - ((uptime - r["last"].astype(np.int64)) % U32),
        "flow_type": np.uint8(FlowType.NETFLOW5),
        "exporter": np.repeat(exporters, counts, axis=0),
        "observation_domain": rep(batch.domain, np.uint32),
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
        cols["datagram"] = rep(batch.datagram)
        cols["template_id"] = np.uint16(0)
        cols["sequence"] = rep(batch.sequence)
        cols["order"] = order_key(np.asarray(batch.datagram), 0, counts)
    nh = r["nexthop"]
    if nh.any():
        addr = ipv4_to_addr(nh)
        addr[nh == 0] = 0  # 0.0.0.0 means "no next hop", not ::ffff:0.0.0.0
        cols["next_hop"] = addr
    for e, c in zip(batch.exporters, batch.counts):
        out.result.flows[(e, "netflow5")] += c
    out.add(n, cols)
