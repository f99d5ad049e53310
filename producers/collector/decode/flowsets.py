"""Shared NetFlow v9 / IPFIX machinery: templates in, grouped data sets, columns out.

Data sets are not decoded where they are found: their bodies are grouped per compiled
template across the whole decode pass and joined, so each group costs one
``np.frombuffer`` and a handful of vectorised column operations (docs/performance.md §3.2).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netpilot.wire.flows import FlowFlags, FlowType
from producers.collector.decode.compiler import IE, REVERSE_BIT, CompiledTemplate, FieldSpec, normalise_varlen
from producers.collector.decode.errors import DecodeError, Reason
from producers.collector.decode.result import ChunkBuilder, TemplateEvent
from producers.collector.decode.sampling import SamplingState
from producers.collector.decode.templates import BoundedTemplateStore, HeldSet, PendingData, TemplateKey

SET_HEADER = struct.Struct(">HH")  # set/flowset id, length: the same in v9 and IPFIX
NTP_EPOCH_OFFSET = 2_208_988_800
U32 = np.int64(1 << 32)
MAX_OPTION_RECORDS = 256


@dataclass
class _Group:
    tpl: CompiledTemplate
    key: TemplateKey
    parts: list[bytes | memoryview] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    export_ms: list[int] = field(default_factory=list)
    uptime_ms: list[int] = field(default_factory=list)
    received_ms: list[int] = field(default_factory=list)


class TemplateDecoder:
    """Template, options and data-set handling common to v9 and IPFIX."""

    def __init__(
        self,
        store: BoundedTemplateStore,
        pending: PendingData,
        sampling: SamplingState,
        default_rate: Callable[[bytes], int],
        max_fields: int,
    ) -> None:
        self.store = store
        self.pending = pending
        self.sampling = sampling
        self.default_rate = default_rate
        self.max_fields = max_fields
        self._groups: dict[int, _Group] = {}

    # -- templates -------------------------------------------------------------------
    def learn(
        self,
        out: ChunkBuilder,
        exporter: bytes,
        version: int,
        domain: int,
        tid: int,
        kind: str,
        fields: list[FieldSpec],
        definition: bytes,
        scope_count: int,
    ) -> None:
        key = (exporter, version, domain, tid)
        known = self.store.get(key)
        if (
            known is not None
            and known.definition == definition
            and known.kind == kind
            and known.scope_field_count == scope_count
        ):
            tpl = known  # exporters re-send templates every few seconds: compile once
        else:
            tpl = CompiledTemplate(version, domain, tid, kind, tuple(fields), definition, scope_count)
        changed, evicted = self.store.put(key, tpl)
        if evicted:
            out.drop(Reason.TEMPLATE_EVICTED, evicted)
        if changed:
            out.result.template_events.append(
                TemplateEvent(exporter, version, domain, tid, kind, definition, scope_count)
            )
        for held in self.pending.release(key):
            self._data(out, key, tpl, memoryview(held.body), held.export_ms, held.uptime_ms, held.received_ms)

    def withdraw(self, out: ChunkBuilder, key: TemplateKey) -> None:
        if self.store.withdraw(key):
            out.result.template_events.append(TemplateEvent(*key, kind="data", definition=None))

    def withdraw_all(self, out: ChunkBuilder, exporter: bytes, version: int, domain: int, kind: str) -> None:
        for key in self.store.withdraw_domain(exporter, version, domain, kind):
            out.result.template_events.append(TemplateEvent(*key, kind=kind, definition=None))

    # -- data ------------------------------------------------------------------------
    def data_set(
        self, out: ChunkBuilder, key: TemplateKey, body: memoryview, export_ms: int, uptime_ms: int, received_ms: int
    ) -> None:
        tpl = self.store.get(key)
        if tpl is None:
            if len(body) < 4:  # padding-only set: nothing worth holding
                return
            pushed = self.pending.hold(key, HeldSet(bytes(body), export_ms, uptime_ms, received_ms))
            if pushed:
                out.drop(Reason.PENDING_OVERFLOW, pushed)
            return
        self._data(out, key, tpl, body, export_ms, uptime_ms, received_ms)

    def _data(
        self,
        out: ChunkBuilder,
        key: TemplateKey,
        tpl: CompiledTemplate,
        body: memoryview,
        export_ms: int,
        uptime_ms: int,
        received_ms: int,
    ) -> None:
        raw: bytes | memoryview
        if tpl.variable:
            if not tpl.record_length:  # only variable-length fields: nothing netpilot reads
                out.drop(Reason.UNSUPPORTED, 1)
                return
            raw, n, ok = normalise_varlen(tpl, body)
            if not ok:
                out.drop(Reason.BAD_RECORD, 1, f"variable-length record overruns its set (template {key[3]})")
        else:
            n = len(body) // tpl.record_length
            raw = body[: n * tpl.record_length]
        if not n:
            return
        if tpl.kind == "options":
            self._options(key, tpl, raw, n)
            return
        g = self._groups.get(id(tpl))
        if g is None:
            g = self._groups[id(tpl)] = _Group(tpl, key)
        g.parts.append(raw)
        g.counts.append(n)
        g.export_ms.append(export_ms)
        g.uptime_ms.append(uptime_ms)
        g.received_ms.append(received_ms)

    def _options(self, key: TemplateKey, tpl: CompiledTemplate, raw: bytes | memoryview, n: int) -> None:
        recs = np.frombuffer(raw, dtype=tpl.dtype, count=n)
        wanted = [
            ie
            for ie in (
                IE.SAMPLING_INTERVAL,
                IE.SAMPLER_ID,
                IE.SAMPLER_RANDOM_INTERVAL,
                IE.SELECTOR_ID,
                IE.SAMPLING_PACKET_INTERVAL,
                IE.SAMPLING_PACKET_SPACE,
                IE.SAMPLING_SIZE,
                IE.SAMPLING_POPULATION,
                IE.SYSTEM_INIT_MS,
            )
            if tpl.has(ie)
        ]
        if not wanted:
            return
        cols = {ie: c for ie in wanted if (c := tpl.uint(recs, ie)) is not None}  # all there: tpl.has(ie)
        # options records are few (one per sampler / interface); a set of thousands is abuse
        for i in range(min(n, MAX_OPTION_RECORDS)):
            self.sampling.learn(key[:3], {ie: int(c[i]) for ie, c in cols.items()})

    # -- end of pass -----------------------------------------------------------------
    def finish(self, out: ChunkBuilder, now_ms: int) -> None:
        expired = self.pending.expire(now_ms)
        if expired:
            out.drop(Reason.NO_TEMPLATE, expired)
        groups, self._groups = self._groups, {}
        for g in groups.values():
            try:
                self._emit(out, g)
            except Exception as exc:  # noqa: BLE001 - a decoder bug must cost records, not the process
                out.drop(
                    Reason.DECODE_FAILED,
                    sum(g.counts),
                    f"template {g.key[3]} of domain {g.key[2]}: {type(exc).__name__}: {exc}",
                )

    def _emit(self, out: ChunkBuilder, g: _Group) -> None:
        tpl: CompiledTemplate = g.tpl
        key = g.key
        exporter, version, domain, _ = key
        n = sum(g.counts)
        recs = np.frombuffer(b"".join(g.parts), dtype=tpl.dtype, count=n)
        counts = np.asarray(g.counts)
        export_ms = np.repeat(np.asarray(g.export_ms, np.int64), counts)
        cols: dict[str, Any] = {}  # arrays, and scalars that ChunkBuilder broadcasts
        u = tpl.uint
        cols["time_received"] = np.repeat(np.asarray(g.received_ms, np.int64), counts)
        start, end = self._times(tpl, recs, export_ms, g, counts, key)
        cols["time_start"], cols["time_end"] = start, end
        cols["flow_type"] = np.uint8(FlowType.NETFLOW9 if version == 9 else FlowType.IPFIX)
        cols["exporter"] = np.frombuffer(exporter, np.uint8)
        cols["observation_domain"] = np.uint32(domain)
        for name, ie in (
            ("in_if", IE.IN_IF),
            ("out_if", IE.OUT_IF),
            ("src_port", IE.SRC_PORT),
            ("dst_port", IE.DST_PORT),
            ("ip_proto", IE.PROTOCOL),
            ("src_as", IE.SRC_AS),
            ("dst_as", IE.DST_AS),
        ):
            v = u(recs, ie)
            if v is not None:
                cols[name] = v
        flags = u(recs, IE.TCP_FLAGS)
        if flags is not None:
            cols["tcp_flags"] = flags & np.uint64(0xFF)
        if "dst_port" not in cols or not tpl.has(IE.SRC_PORT):
            icmp = u(recs, IE.ICMP_TYPE_CODE_V4)
            icmp = icmp if icmp is not None else u(recs, IE.ICMP_TYPE_CODE_V6)
            if icmp is not None:
                cols["dst_port"] = icmp
        for name, ies in (
            ("src_addr", (IE.SRC_V4, IE.SRC_V6)),
            ("dst_addr", (IE.DST_V4, IE.DST_V6)),
            ("next_hop", (IE.NEXT_HOP_V4, IE.NEXT_HOP_V6, IE.BGP_NEXT_HOP_V4, IE.BGP_NEXT_HOP_V6)),
        ):
            for ie in ies:
                a = tpl.addr(recs, ie)
                if a is not None:
                    cols[name] = a
                    break
        octets = _first(tpl, recs, IE.OCTETS, IE.POST_OCTETS, IE.OCTETS_TOTAL)
        packets = _first(tpl, recs, IE.PACKETS, IE.POST_PACKETS, IE.PACKETS_TOTAL)
        octets = np.zeros(n, np.uint64) if octets is None else octets
        packets = np.zeros(n, np.uint64) if packets is None else packets
        cols["bytes"], cols["packets"] = octets, packets
        rate = self.sampling.rates(key[:3], tpl, recs)
        unknown = rate == 0
        n_unknown = int(np.count_nonzero(unknown))
        if n_unknown:
            rate[unknown] = self.default_rate(exporter)
            cols["flags"] = np.where(unknown, np.uint8(FlowFlags.SAMPLING_UNKNOWN), np.uint8(0))
            out.result.sampling_unknown += n_unknown
        cols["sampling_rate"] = np.minimum(rate, np.uint64(0xFFFFFFFF))
        cols["bytes_scaled"] = octets * rate
        cols["packets_scaled"] = packets * rate
        label = "netflow9" if version == 9 else "ipfix"
        if tpl.biflow:
            for m, part in _split_biflow(tpl, recs, cols, rate):
                out.result.flows[(exporter, label)] += m
                out.add(m, part)
            return
        out.result.flows[(exporter, label)] += n
        out.add(n, cols)

    def _times(
        self,
        tpl: CompiledTemplate,
        recs: np.ndarray,
        export_ms: np.ndarray,
        g: _Group,
        counts: np.ndarray,
        key: TemplateKey,
    ) -> tuple[np.ndarray, np.ndarray]:
        u = tpl.uint
        pairs = (
            (IE.START_MS, IE.END_MS, lambda v: v.astype(np.int64)),
            (IE.START_S, IE.END_S, lambda v: v.astype(np.int64) * 1000),
            (IE.START_US, IE.END_US, _ntp_ms),
            (IE.START_NS, IE.END_NS, _ntp_ms),
            (IE.START_DELTA_US, IE.END_DELTA_US, lambda v: export_ms - (v // 1000).astype(np.int64)),
        )
        result = [export_ms, export_ms]
        for i, pick in enumerate((0, 1)):
            for start_ie, end_ie, to_ms in pairs:
                v = u(recs, (start_ie, end_ie)[pick])
                if v is not None:
                    result[i] = to_ms(v)
                    break
            else:
                up = u(recs, (IE.START_UPTIME, IE.END_UPTIME)[pick])
                if up is None:
                    continue
                up = up.astype(np.int64)
                if key[1] == 9:
                    uptime = np.repeat(np.asarray(g.uptime_ms, np.int64), counts)
                    # uptime counters are u32 ms: take the difference modulo 2^32
                    result[i] = export_ms - ((uptime - up) % U32)
                else:
                    d = self.sampling.peek(key[:3])
                    if d is not None and d.system_init_ms:
                        result[i] = d.system_init_ms + up
        return result[0], result[1]


def _split_biflow(
    tpl: CompiledTemplate, recs: np.ndarray, cols: dict[str, Any], rate: np.ndarray
) -> list[tuple[int, dict[str, Any]]]:
    """RFC 5103 biflow records -> forward flows plus reverse flows (src/dst swapped).

    Each direction is kept only when it carried traffic, so a biflow export yields the same
    flows as a unidirectional export of the same packets.
    """
    n = len(recs)
    zeros = np.zeros(n, np.uint64)
    rev_octets = _first(tpl, recs, REVERSE_BIT | IE.OCTETS)
    rev_packets = _first(tpl, recs, REVERSE_BIT | IE.PACKETS)
    rev_octets = zeros if rev_octets is None else rev_octets
    rev_packets = zeros if rev_packets is None else rev_packets
    rev = dict(cols)
    rev["src_addr"], rev["dst_addr"] = cols.get("dst_addr"), cols.get("src_addr")
    rev["src_port"], rev["dst_port"] = cols.get("dst_port"), cols.get("src_port")
    proto = cols.get("ip_proto", zeros)
    icmp = (proto == 1) | (proto == 58)
    if icmp.any():  # ICMP keeps type/code in dst_port; the reverse type is its own field
        fwd_icmp = cols.get("dst_port", zeros)
        rev_icmp = _first(tpl, recs, REVERSE_BIT | IE.ICMP_TYPE_CODE_V4, REVERSE_BIT | IE.ICMP_TYPE_CODE_V6)
        # softflowd leaves the reverse type 0 and keeps the seen type in the forward field
        rev_icmp = fwd_icmp if rev_icmp is None else np.where(rev_icmp == 0, fwd_icmp, rev_icmp)
        rev["src_port"] = np.where(icmp, 0, rev["src_port"] if rev["src_port"] is not None else 0)
        rev["dst_port"] = np.where(icmp, rev_icmp, rev["dst_port"] if rev["dst_port"] is not None else 0)
    rev_flags = _first(tpl, recs, REVERSE_BIT | IE.TCP_FLAGS)
    rev["tcp_flags"] = zeros if rev_flags is None else rev_flags & np.uint64(0xFF)
    rev["bytes"], rev["packets"] = rev_octets, rev_packets
    rev["bytes_scaled"], rev["packets_scaled"] = rev_octets * rate, rev_packets * rate
    out = []
    for part, keep in (
        (cols, (cols["packets"] > 0) | (cols["bytes"] > 0)),
        (rev, (rev_packets > 0) | (rev_octets > 0)),
    ):
        m = int(np.count_nonzero(keep))
        if m:
            out.append(
                (
                    m,
                    {
                        k: (
                            v[keep]
                            if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n and k != "exporter"
                            else v
                        )
                        for k, v in part.items()
                        if v is not None
                    },
                )
            )
    return out


def _first(tpl: CompiledTemplate, recs: np.ndarray, *ies: int) -> np.ndarray | None:
    for ie in ies:
        v = tpl.uint(recs, ie)
        if v is not None:
            return v
    return None


def _ntp_ms(v: np.ndarray) -> np.ndarray:
    secs = (v >> np.uint64(32)).astype(np.int64) - NTP_EPOCH_OFFSET
    frac = (v & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return secs * 1000 + (frac * 1000 >> 32)


def iter_sets(
    out: ChunkBuilder, data: memoryview, pos: int, what: str, domain: int
) -> Iterator[tuple[int, memoryview]]:
    """(set id, body) for each set/flowset; a bad set length ends the walk (counted)."""
    end = len(data)
    while end - pos >= 4:
        set_id, length = SET_HEADER.unpack_from(data, pos)
        if length < 4:
            out.drop(Reason.BAD_LENGTH, 1, f"{what} length {length} (domain {domain})")
            return
        if pos + length > end:
            out.drop(Reason.TRUNCATED, 1, f"{what} {set_id} claims {length} bytes, {end - pos} left (domain {domain})")
            return
        yield set_id, data[pos + 4 : pos + length]
        pos += length


def check_field_count(count: int, max_fields: int, version: int, domain: int, tid: int) -> None:
    if count == 0:
        raise DecodeError(
            Reason.TEMPLATE_EMPTY, "template with 0 fields", version=version, domain=domain, template_id=tid
        )
    if count > max_fields:
        raise DecodeError(
            Reason.TEMPLATE_TOO_LARGE,
            f"template with {count} fields (limit {max_fields})",
            version=version,
            domain=domain,
            template_id=tid,
        )
