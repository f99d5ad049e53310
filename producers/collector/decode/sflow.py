"""sFlow v5: flow samples (standard and expanded) and generic interface counter samples.

Columnar by design. Per datagram, :func:`collect` reads the header and copies the datagram
into the pass's buffer. :func:`finish` then does the rest for all datagrams at once with
numpy: the walk over sample headers (one numpy step per sample *position*; a datagram's
samples beyond ``VECTOR_SAMPLES`` in Python), the fixed flow sample fields, the walk over
each sample's flow records (one numpy step per record position, at most 64), the raw packet
header record and, in place in the buffer, the sampled headers themselves
(:mod:`producers.collector.decode.sflow_headers`). Only extended router/gateway records
(next hop, AS path: variable layout) and counter samples (rare: one per interface every
~20 s, as :class:`~netpilot.wire.links.LinkStats` with ``source="sflow"``) are read in
Python, one at a time.
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
from producers.collector.decode.sflow_headers import HEADER_WIDTH, parse_headers_at

U32 = struct.Struct(">I")
U32X2 = struct.Struct(">II")
DGRAM_TAIL = struct.Struct(">IIII")  # sub_agent_id, sequence, uptime, sample count
GENERIC_IF = struct.Struct(">IIQIIQIIIIIIQIIIIII")
MAX_SAMPLES = 4096  # a 64 KiB datagram cannot hold more; larger counts are lies
MAX_RECORDS = 64  # flow records looked at per sample
VERSION = 5
AGENT_END = {1: 12, 2: 24, 0: 8}  # where the datagram header goes on, by agent address type
PAD = 64  # zeroed bytes after the datagrams in buf, for reads just past a sample's end
VECTOR_SAMPLES = 32  # sample positions walked with numpy; later samples of a datagram: Python
KEEP_BUFFER = 32 << 20  # a decoder keeps its copy buffer up to this size between passes
STANDARD_FIXED, EXPANDED_FIXED = 32, 44  # bytes of a flow sample before its records
RAW_HEADER_FIXED = 16  # header protocol, frame length, stripped, header length
IF_AGENT = 0x3FFFFFFF  # an interface value meaning "the agent itself": not a link


@dataclass
class SFlowBatch:
    buf: bytearray = field(default_factory=bytearray)
    """The datagrams with flow samples, one after the other (``size`` bytes of it). The
    decoder hands the same buffer to its next pass: fresh megabytes every pass would cost
    more in page faults than the copy does."""
    size: int = 0
    datagrams: list[tuple[int, int, int, int, bytes, int, int, int, int]] = field(default_factory=list)
    """Per datagram with samples: where it starts in ``buf``, its length, where its samples
    start (in it), the sample count, exporter, sub-agent id, receive time, decoder-wide
    index and sequence number."""


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
        kind = U32.unpack_from(data, 4)[0]  # the agent's address: its type says its length
        pos = AGENT_END.get(kind, 0)
        if not pos:
            raise DecodeError(Reason.BAD_SAMPLE, f"sFlow address type {kind}", version=VERSION)
        sub_agent, sequence, _, nsamples = DGRAM_TAIL.unpack_from(data, pos)
    except struct.error as exc:
        raise DecodeError(Reason.TRUNCATED, f"sFlow datagram header: {exc}", version=VERSION, offset=0) from exc
    out.sequence = sequence
    if nsamples > MAX_SAMPLES:
        raise DecodeError(Reason.BAD_COUNT, f"sFlow sample count {nsamples}", version=VERSION, offset=pos + 12)
    pos += DGRAM_TAIL.size
    out.result.datagrams[(exporter, "sflow5")] += 1
    if not nsamples:
        return
    base = b.size
    if base + end + PAD > len(b.buf):
        grown = bytearray(max(2 * len(b.buf), base + end + PAD, 1 << 16))
        grown[:base] = b.buf[:base]
        b.buf = grown  # a new object: numpy views of the old one may still be alive
    b.buf[base : base + end] = data
    b.size = base + end
    b.datagrams.append((base, end, pos, nsamples, exporter, sub_agent, received_ms, out.datagram, sequence))


def _walk(
    b: SFlowBatch, out: ChunkBuilder, u32: Callable[[np.ndarray], np.ndarray], meta: list[tuple[Any, ...]]
) -> tuple[np.ndarray, np.ndarray]:
    """Walk the sample headers of every datagram: the flow samples' offsets in ``b.buf`` and
    datagram (index in ``meta``), in datagram then sample order.

    One numpy step per sample *position* across all datagrams, for the first
    ``VECTOR_SAMPLES``; a datagram with more samples (rare, and a way to make the vector
    steps cheap for an attacker) has the rest walked in Python. Counter samples become
    link stats; other formats and broken lengths are counted drops.
    """
    base = np.array([m[0] for m in meta], np.int64)
    dend = base + np.array([m[1] for m in meta], np.int64)
    cur = base + np.array([m[2] for m in meta], np.int64)
    left = np.array([m[3] for m in meta], np.int64)
    found_dg: list[np.ndarray] = []
    found_at: list[np.ndarray] = []
    found_fmt: list[np.ndarray] = []
    active = np.arange(len(meta))
    for _ in range(VECTOR_SAMPLES):
        active = active[left[active] > 0]
        if not len(active):
            break
        p, e = cur[active], dend[active]
        fmt, slen = u32(p), u32(p + 4)
        short = e - p < 8
        lying = ~short & (slen > e - p - 8)
        for mask, what in ((short, None), (lying, "claims")):
            for k in np.flatnonzero(mask).tolist():
                d = int(active[k])
                off = int(p[k] - base[d])
                msg = (
                    "sFlow datagram ends before its samples do"
                    if what is None
                    else f"sFlow sample claims {int(slen[k])} bytes, {int(e[k] - p[k] - 8)} left"
                )
                out.drop(Reason.TRUNCATED, 1, msg, off, meta[d][7])
        good = ~(short | lying)
        found_dg.append(active[good])
        found_at.append(p[good])
        found_fmt.append(fmt[good])
        cur[active] = p + 8 + slen
        left[active] = np.where(good, left[active] - 1, 0)
    for d in np.flatnonzero(left > 0).tolist():  # the samples beyond VECTOR_SAMPLES
        pos, end, at_list, fmt_list = int(cur[d]), int(dend[d]), [], []
        for _ in range(int(left[d])):
            if end - pos < 8:
                out.drop(
                    Reason.TRUNCATED, 1, "sFlow datagram ends before its samples do", pos - int(base[d]), meta[d][7]
                )
                break
            fmt_, slen_ = U32X2.unpack_from(b.buf, pos)
            if slen_ > end - pos - 8:
                msg = f"sFlow sample claims {slen_} bytes, {end - pos - 8} left"
                out.drop(Reason.TRUNCATED, 1, msg, pos - int(base[d]), meta[d][7])
                break
            at_list.append(pos)
            fmt_list.append(fmt_)
            pos += 8 + slen_
        found_dg.append(np.full(len(at_list), d, np.int64))
        found_at.append(np.array(at_list, np.int64))
        found_fmt.append(np.array(fmt_list, np.int64))
    dg, at, fmt = np.concatenate(found_dg), np.concatenate(found_at), np.concatenate(found_fmt)
    order = np.argsort(at, kind="stable")  # datagrams lie one after the other in the buffer
    dg, at, fmt = dg[order], at[order], fmt[order]
    flow = (fmt == 1) | (fmt == 3)
    if not flow.all():
        for k in np.flatnonzero(~flow).tolist():
            d, a, f = int(dg[k]), int(at[k]), int(fmt[k])
            off = a - int(base[d])
            if f == 2 or f == 4:
                exporter, received_ms = meta[d][4], meta[d][6]
                slen_ = U32.unpack_from(b.buf, a + 4)[0]
                try:
                    stats = _counter_sample(memoryview(b.buf)[a + 8 : a + 8 + slen_], f == 4, received_ms)
                except struct.error as exc:
                    out.drop(Reason.BAD_SAMPLE, 1, f"sFlow sample: {exc}", off, meta[d][7])
                else:
                    out.result.link_stats.extend(stats)
                    out.result.link_stats_exporters.extend([exporter] * len(stats))
            else:
                out.drop(Reason.UNSUPPORTED, 1, f"sFlow sample format {f}", off, meta[d][7])
        dg, at = dg[flow], at[flow]
    return at, dg


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


def _extended(raw: bytearray, start: int, rlen: int, rfmt: int) -> tuple[bytes, tuple[int, int] | None]:
    """An extended router (1002) or gateway (1003) record: next hop[, (src AS, dst AS)].

    Raises DecodeError / struct.error on a malformed record (the sample is dropped).
    """
    r = memoryview(raw)[start : start + rlen]
    next_hop, p = _addr(r, 0)
    next_hop = next_hop.ljust(16, b"\x00")  # a cut address keeps what is there
    if rfmt == 1002:
        return next_hop, None
    # extended gateway: next hop, own AS, src AS, src peer AS, AS path (dst AS: its last AS)
    _, src_as, _, nseg = struct.unpack_from(">IIII", r, p)
    p += 16
    dst_as = 0
    for _ in range(min(nseg, 64)):
        _, seg_len = U32X2.unpack_from(r, p)
        p += 8
        if seg_len:
            dst_as = U32.unpack_from(r, p + 4 * (seg_len - 1))[0]
        p += 4 * seg_len
    return next_hop, (src_as, dst_as)


def finish(b: SFlowBatch, out: ChunkBuilder, default_rate: Callable[[bytes], int]) -> None:
    if not b.datagrams:
        return
    raw, size = b.buf, b.size
    # a u32 view at *every* byte offset (stride 1): reading a big-endian word at any
    # offsets is one gather; the zeroed padding keeps the last offsets in range
    raw[size : size + PAD] = bytes(PAD)
    padded = np.frombuffer(raw, np.uint8, count=size + PAD)
    words = np.ndarray((size + PAD - 3,), ">u4", padded, 0, (1,))
    top = size  # offsets are clipped here: what is read there is masked out anyway

    def u32(at: np.ndarray) -> np.ndarray:
        return words[np.minimum(at, top)].astype(np.int64)

    at, dg = _walk(b, out, u32, b.datagrams)
    n = len(at)
    if not n:
        return
    starts, _, _, _, exporter_list, domain, received_ms, datagram_list, sequence = zip(*b.datagrams, strict=True)
    n_datagrams = len(starts)
    fmt, slen = u32(at), u32(at + 4)
    body = at + 8
    end = body + slen
    expanded = fmt == 3
    bad = slen < np.where(expanded, EXPANDED_FIXED, STANDARD_FIXED)
    if expanded.any():
        rate = np.where(expanded, u32(body + 12), u32(body + 8))
        in_fmt = np.where(expanded, u32(body + 24), 0)
        out_fmt = np.where(expanded, u32(body + 32), 0)
        in_val, out_val = u32(body + 28), u32(body + 36)
        inp, outp = u32(body + 20), u32(body + 24)
        in_fmt = np.where(expanded, in_fmt, inp >> 30)
        out_fmt = np.where(expanded, out_fmt, outp >> 30)
        in_val = np.where(expanded, in_val, inp & IF_AGENT)
        out_val = np.where(expanded, out_val, outp & IF_AGENT)
        nrec = np.where(expanded, u32(body + 40), u32(body + 28))
    else:
        rate, inp, outp, nrec = u32(body + 8), u32(body + 20), u32(body + 24), u32(body + 28)
        in_fmt, out_fmt, in_val, out_val = inp >> 30, outp >> 30, inp & IF_AGENT, outp & IF_AGENT
    pos = body + np.where(expanded, EXPANDED_FIXED, STANDARD_FIXED)
    hstart = np.zeros(n, np.int64)
    hlen = np.full(n, -1, np.int64)  # -1: no raw packet header record (yet)
    proto = np.zeros(n, np.int64)
    frame = np.zeros(n, np.int64)
    extended: list[tuple[int, int, int, int]] = []  # (sample, record start, length, format), in order
    live = np.flatnonzero(~bad & (nrec > 0))
    for k in range(MAX_RECORDS):
        live = live[(nrec[live] > k) & ~bad[live]]
        if not len(live):
            break
        p, e = pos[live], end[live]
        short = e - p < 8
        rfmt, rlen = u32(p), u32(p + 4)
        r0 = p + 8
        short |= rlen > e - r0
        pos[live] = r0 + rlen
        is_raw = (rfmt == 1) & ~short
        short |= is_raw & (rlen < RAW_HEADER_FIXED)
        is_raw &= ~short
        if is_raw.any():
            s, r = live[is_raw], r0[is_raw]
            h = u32(r + 12)
            lying = h > rlen[is_raw] - RAW_HEADER_FIXED
            bad[s[lying]] = True
            s, r, h = s[~lying], r[~lying], h[~lying]
            proto[s], frame[s], hstart[s], hlen[s] = u32(r), u32(r + 4), r + RAW_HEADER_FIXED, h
        bad[live[short]] = True
        ext = ((rfmt == 1002) | (rfmt == 1003)) & ~short
        if ext.any():
            extended.extend(zip(live[ext].tolist(), r0[ext].tolist(), rlen[ext].tolist(), rfmt[ext].tolist()))
    next_hop = np.zeros((n, 16), np.uint8)
    src_as = np.zeros(n, np.int64)
    dst_as = np.zeros(n, np.int64)
    for s, r, rl, rf in sorted(extended, key=lambda x: x[0]) if extended else ():
        if bad[s]:
            continue
        try:
            hop, ases = _extended(raw, r, rl, rf)
        except (DecodeError, struct.error):
            bad[s] = True
            continue
        next_hop[s] = np.frombuffer(hop, np.uint8)
        if ases is not None:
            src_as[s], dst_as[s] = ases
    unsupported = ~bad & (hlen < 0)
    ok = ~(bad | unsupported)
    if not ok.all():
        dg_base = starts
        for reason, mask in ((Reason.BAD_SAMPLE, bad), (Reason.UNSUPPORTED, unsupported)):
            for s in np.flatnonzero(mask).tolist():
                what = "malformed flow record" if reason == Reason.BAD_SAMPLE else "no raw packet header record"
                d = int(dg[s])
                out.drop(reason, 1, f"sFlow flow sample: {what}", int(at[s]) - dg_base[d], datagram_list[d])
        keep = np.flatnonzero(ok)
        dg = dg[keep]
        hstart, hlen, proto, frame, rate = hstart[keep], hlen[keep], proto[keep], frame[keep], rate[keep]
        in_fmt, in_val, out_fmt, out_val = in_fmt[keep], in_val[keep], out_fmt[keep], out_val[keep]
        src_as, dst_as, next_hop = src_as[keep], dst_as[keep], next_hop[keep]
    kept = np.bincount(dg, minlength=n_datagrams)
    for e, c in zip(exporter_list, kept.tolist()):
        if c:
            out.result.flows[(e, "sflow5")] += c
    m = len(dg)
    if not m:
        return
    parsed = parse_headers_at(padded, hstart, np.minimum(hlen, HEADER_WIDTH), proto)
    rate = rate.astype(np.uint64)
    frame = frame.astype(np.uint64)
    unknown = rate == 0
    flags = np.zeros(m, np.uint8)
    n_unknown = int(np.count_nonzero(unknown))
    if n_unknown:
        defaults = np.array([default_rate(e) for e in exporter_list], np.uint64)[dg]
        rate = np.where(unknown, defaults, rate)
        flags[unknown] = FlowFlags.SAMPLING_UNKNOWN
        out.result.sampling_unknown += n_unknown
    received = np.asarray(received_ms, np.int64)[dg]
    exporters = np.frombuffer(b"".join(exporter_list), np.uint8).reshape(-1, 16)
    cols: dict[str, Any] = dict(parsed)  # arrays, and scalars that ChunkBuilder broadcasts
    del cols["ip_length"]  # sFlow counts the frame length, like the agent
    # format 0 = an ifIndex; IF_AGENT there means "the agent itself": not a link
    cols.update(
        {
            "time_received": received,
            "time_start": received,
            "time_end": received,
            "flow_type": np.uint8(FlowType.SFLOW5),
            "exporter": exporters[dg],
            "observation_domain": np.asarray(domain, np.uint32)[dg],
            "in_if": np.where((in_fmt == 0) & (in_val != IF_AGENT), in_val, 0).astype(np.uint32),
            "out_if": np.where((out_fmt == 0) & (out_val != IF_AGENT), out_val, 0).astype(np.uint32),
            "bytes": frame,
            "packets": np.ones(m, np.uint64),
            "sampling_rate": rate,
            "bytes_scaled": frame * rate,
            "packets_scaled": rate.copy(),
            "src_as": src_as.astype(np.uint32),
            "dst_as": dst_as.astype(np.uint32),
            "next_hop": next_hop,
            "flags": flags,
        }
    )
    if out.provenance:
        datagram = np.asarray(datagram_list, np.int64)
        cols["datagram"] = datagram[dg]
        cols["template_id"] = np.uint16(0)
        cols["sequence"] = np.asarray(sequence, np.int64)[dg]
        cols["order"] = order_key(datagram, 0, kept)
    out.add(m, cols)
