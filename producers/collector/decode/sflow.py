"""sFlow v5: flow samples (standard and expanded) and generic interface counter samples.

The XDR walk over samples and records is Python (its layout is variable by design), but
it only records offsets and a few integers per sample; the sampled packet headers are
copied into one ``(n, HEADER_WIDTH)`` matrix and parsed for all samples at once by
:mod:`producers.collector.decode.sflow_headers`. Counter samples (rare: one per interface
every ~20 s) become :class:`~netpilot.wire.links.LinkStats` with ``source="sflow"``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netpilot.wire.flows import FlowFlags, FlowType
from netpilot.wire.links import LinkStats
from producers.collector.decode.errors import DecodeError, Reason
from producers.collector.decode.result import ChunkBuilder, order_key
from producers.collector.decode.sflow_headers import HEADER_WIDTH, parse_headers

U32 = struct.Struct(">I")
U32X2 = struct.Struct(">II")
DGRAM_TAIL = struct.Struct(">IIII")  # sub_agent_id, sequence, uptime, sample count
FLOW_SAMPLE = struct.Struct(">8I")
EXPANDED_FLOW_SAMPLE = struct.Struct(">11I")
RAW_HEADER = struct.Struct(">4I")  # header protocol, frame length, stripped, header length
GENERIC_IF = struct.Struct(">IIQIIQIIIIIIQIIIIII")
SAMPLE_META = struct.Struct("<8I16s")
META_DTYPE = np.dtype(
    [
        ("hlen", "<u4"),
        ("proto", "<u4"),
        ("frame", "<u4"),
        ("rate", "<u4"),
        ("in_if", "<u4"),
        ("out_if", "<u4"),
        ("src_as", "<u4"),
        ("dst_as", "<u4"),
        ("next_hop", "u1", (16,)),
    ]
)
assert META_DTYPE.itemsize == SAMPLE_META.size
MAX_SAMPLES = 4096  # a 64 KiB datagram cannot hold more; larger counts are lies
VERSION = 5


@dataclass
class SFlowBatch:
    headers: bytearray = field(default_factory=bytearray)
    meta: bytearray = field(default_factory=bytearray)
    """One SAMPLE_META record per sample (one pack call instead of eight appends)."""
    n: int = 0
    exporters: list[bytes] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    domain: list[int] = field(default_factory=list)
    received_ms: list[int] = field(default_factory=list)
    datagram: list[int] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)


def _addr(data: memoryview, pos: int) -> tuple[bytes, int]:
    """An sFlow address (type, 4 or 16 bytes) as 16-byte mapped bytes and the next offset."""
    kind = U32.unpack_from(data, pos)[0]
    if kind == 1:
        return b"\x00" * 10 + b"\xff\xff" + bytes(data[pos + 4 : pos + 8]), pos + 8
    if kind == 2:
        return bytes(data[pos + 4 : pos + 20]), pos + 20
    if kind == 0:
        return bytes(16), pos + 4
    raise DecodeError(Reason.BAD_SAMPLE, f"sFlow address type {kind}", version=VERSION)


def collect(b: SFlowBatch, out: ChunkBuilder, exporter: bytes, data: memoryview, received_ms: int) -> None:
    end = len(data)
    try:
        _, pos = _addr(data, 4)
        sub_agent, sequence, _, nsamples = DGRAM_TAIL.unpack_from(data, pos)
    except struct.error as exc:
        raise DecodeError(Reason.TRUNCATED, f"sFlow datagram header: {exc}", version=VERSION, offset=0) from exc
    out.sequence = sequence
    if nsamples > MAX_SAMPLES:
        raise DecodeError(Reason.BAD_COUNT, f"sFlow sample count {nsamples}", version=VERSION, offset=pos + 12)
    pos += DGRAM_TAIL.size
    out.result.datagrams[(exporter, "sflow5")] += 1
    flows = 0
    for _ in range(nsamples):
        if end - pos < 8:
            out.drop(Reason.TRUNCATED, 1, "sFlow datagram ends before its samples do", pos)
            break
        at = pos
        fmt, slen = U32X2.unpack_from(data, pos)
        pos += 8
        if slen > end - pos:
            out.drop(Reason.TRUNCATED, 1, f"sFlow sample claims {slen} bytes, {end - pos} left", at)
            break
        body = data[pos : pos + slen]
        pos += slen
        try:
            if fmt in (1, 3):
                flows += _flow_sample(b, body, expanded=fmt == 3)
            elif fmt in (2, 4):
                stats = _counter_sample(body, fmt == 4, received_ms)
                out.result.link_stats.extend(stats)
                out.result.link_stats_exporters.extend([exporter] * len(stats))
            else:
                out.drop(Reason.UNSUPPORTED, 1, f"sFlow sample format {fmt}", at)
        except (DecodeError, struct.error) as exc:
            out.drop(getattr(exc, "reason", Reason.BAD_SAMPLE), 1, f"sFlow sample: {exc}", at)
    if flows:
        b.exporters.append(exporter)
        b.counts.append(flows)
        b.domain.append(sub_agent)
        b.received_ms.append(received_ms)
        b.datagram.append(out.datagram)
        b.sequence.append(sequence)


def _flow_sample(b: SFlowBatch, s: memoryview, expanded: bool) -> int:
    if expanded:
        _, _, _, rate, _, _, in_fmt, in_val, out_fmt, out_val, nrec = EXPANDED_FLOW_SAMPLE.unpack_from(s, 0)
        pos = EXPANDED_FLOW_SAMPLE.size
    else:
        _, _, rate, _, _, inp, outp, nrec = FLOW_SAMPLE.unpack_from(s, 0)
        in_fmt, in_val, out_fmt, out_val = inp >> 30, inp & 0x3FFFFFFF, outp >> 30, outp & 0x3FFFFFFF
        pos = FLOW_SAMPLE.size
    header: memoryview | None = None
    proto = frame = 0
    next_hop, src_as, dst_as = bytes(16), 0, 0
    end = len(s)
    for _ in range(min(nrec, 64)):
        rfmt, rlen = U32X2.unpack_from(s, pos)
        pos += 8
        if rlen > end - pos:
            raise DecodeError(Reason.BAD_SAMPLE, f"flow record claims {rlen} bytes, {end - pos} left")
        r = s[pos : pos + rlen]
        pos += rlen
        if rfmt == 1:
            proto, frame, _, hlen = RAW_HEADER.unpack_from(r, 0)
            if hlen > rlen - RAW_HEADER.size:
                raise DecodeError(Reason.BAD_SAMPLE, f"raw header of {hlen} bytes in a {rlen}-byte record")
            header = r[RAW_HEADER.size : RAW_HEADER.size + hlen]
        elif rfmt == 1002:  # extended router: next hop
            next_hop, _ = _addr(r, 0)
        elif rfmt == 1003:  # extended gateway: next hop, own AS, src AS, peer AS, AS path
            next_hop, p = _addr(r, 0)
            _, src_as, _, nseg = struct.unpack_from(">IIII", r, p)
            p += 16
            for _ in range(min(nseg, 64)):
                _, seg_len = U32X2.unpack_from(r, p)
                p += 8
                if seg_len:
                    dst_as = U32.unpack_from(r, p + 4 * (seg_len - 1))[0]
                p += 4 * seg_len
    if header is None:
        raise DecodeError(Reason.UNSUPPORTED, "flow sample without a raw packet header record")
    w = min(len(header), HEADER_WIDTH)
    b.headers += header[:w]
    if w < HEADER_WIDTH:
        b.headers += bytes(HEADER_WIDTH - w)
    # format 0 = an ifIndex; 0x3FFFFFFF there means "the agent itself": not a link
    b.meta += SAMPLE_META.pack(
        w,
        proto,
        frame,
        rate,
        in_val if in_fmt == 0 and in_val != 0x3FFFFFFF else 0,
        out_val if out_fmt == 0 and out_val != 0x3FFFFFFF else 0,
        src_as,
        dst_as,
        next_hop,
    )
    b.n += 1
    return 1


def _counter_sample(s: memoryview, expanded: bool, received_ms: int) -> list[LinkStats]:
    if expanded:
        _, _, _, nrec = struct.unpack_from(">IIII", s, 0)
        pos = 16
    else:
        _, _, nrec = struct.unpack_from(">III", s, 0)
        pos = 12
    stats = []
    for _ in range(min(nrec, 64)):
        rfmt, rlen = U32X2.unpack_from(s, pos)
        pos += 8
        if rfmt == 1 and rlen >= GENERIC_IF.size:
            (
                if_index,
                _,
                speed,
                _,
                status,
                in_octets,
                _,
                _,
                _,
                _,
                _,
                _,
                out_octets,
                _,
                _,
                _,
                out_discards,
                out_errors,
                _,
            ) = GENERIC_IF.unpack_from(s, pos)
            stats.append(
                LinkStats(
                    pop="",
                    router="",
                    if_index=if_index,
                    source="sflow",
                    ts=received_ms / 1000,
                    in_octets=in_octets,
                    out_octets=out_octets,
                    speed_bps=float(speed),
                    oper_up=bool(status & 2),
                    out_discards=out_discards,
                    out_errors=out_errors,
                )
            )
        pos += rlen
    return stats


def finish(b: SFlowBatch, out: ChunkBuilder, default_rate: Callable[[bytes], int]) -> None:
    n = b.n
    if not n:
        return
    counts = np.asarray(b.counts)
    meta = np.frombuffer(bytes(b.meta), META_DTYPE, count=n)
    h = parse_headers(
        np.frombuffer(bytes(b.headers), np.uint8).reshape(n, HEADER_WIDTH),
        meta["hlen"].astype(np.int64),
        meta["proto"].astype(np.int64),
    )
    rate = meta["rate"].astype(np.uint64)
    frame = meta["frame"].astype(np.uint64)
    unknown = rate == 0
    flags = np.zeros(n, np.uint8)
    n_unknown = int(np.count_nonzero(unknown))
    if n_unknown:
        defaults = np.repeat(np.array([default_rate(e) for e in b.exporters], np.uint64), counts)
        rate = np.where(unknown, defaults, rate)
        flags[unknown] = FlowFlags.SAMPLING_UNKNOWN
        out.result.sampling_unknown += n_unknown
    received = np.repeat(np.asarray(b.received_ms, np.int64), counts)
    exporters = np.frombuffer(b"".join(b.exporters), np.uint8).reshape(-1, 16)
    cols: dict[str, Any] = dict(h)  # arrays, and scalars that ChunkBuilder broadcasts
    del cols["ip_length"]  # sFlow counts the frame length, like the agent
    cols.update(
        {
            "time_received": received,
            "time_start": received,
            "time_end": received,
            "flow_type": np.uint8(FlowType.SFLOW5),
            "exporter": np.repeat(exporters, counts, axis=0),
            "observation_domain": np.repeat(np.asarray(b.domain, np.uint32), counts),
            "in_if": meta["in_if"],
            "out_if": meta["out_if"],
            "bytes": frame,
            "packets": np.ones(n, np.uint64),
            "sampling_rate": rate,
            "bytes_scaled": frame * rate,
            "packets_scaled": rate.copy(),
            "src_as": meta["src_as"],
            "dst_as": meta["dst_as"],
            "next_hop": np.ascontiguousarray(meta["next_hop"]),
            "flags": flags,
        }
    )
    if out.provenance:
        cols["datagram"] = np.repeat(np.asarray(b.datagram, np.int64), counts)
        cols["template_id"] = np.uint16(0)
        cols["sequence"] = np.repeat(np.asarray(b.sequence, np.int64), counts)
        cols["order"] = order_key(np.asarray(b.datagram), 0, counts)
    for e, c in zip(b.exporters, b.counts):
        out.result.flows[(e, "sflow5")] += c
    out.add(n, cols)
