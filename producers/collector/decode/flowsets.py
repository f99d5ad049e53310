"""Shared NetFlow v9 / IPFIX machinery: templates in, grouped data sets, columns out.

Data sets are not decoded where they are found: their bodies are grouped per compiled
template across the whole decode pass and joined, so each group costs one
``np.frombuffer`` and a handful of vectorised column operations (docs/performance.md §3.2;
the columns are built in :mod:`producers.collector.decode.records`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netpilot.wire.flows import FlowFlags, FlowType
from producers.collector.decode import records
from producers.collector.decode.compiler import IE, CompiledTemplate, FieldSpec, normalise_varlen
from producers.collector.decode.errors import DecodeError, Reason
from producers.collector.decode.firewall import FirewallState
from producers.collector.decode.result import ChunkBuilder, TemplateEvent, order_key
from producers.collector.decode.sampling import SamplingState
from producers.collector.decode.templates import BoundedTemplateStore, DomainKey, HeldSet, PendingData, TemplateKey

SET_HEADER = struct.Struct(">HH")  # set/flowset id, length: the same in v9 and IPFIX
Arrival = tuple[int, int, int, int, int, int]
"""Per data set: export ms, sysUpTime ms (v9), received ms, datagram, sequence, set offset."""
MAX_OPTION_RECORDS = 256


@dataclass
class _Group:
    tpl: CompiledTemplate
    key: TemplateKey
    parts: list[bytes | memoryview] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)


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
        self.firewall = FirewallState()
        self._groups: dict[int, _Group] = {}

    # -- templates -------------------------------------------------------------------
    def learn(
        self,
        out: ChunkBuilder,
        domain: DomainKey,
        tid: int,
        kind: str,
        fields: list[FieldSpec],
        definition: bytes,
        scope_count: int,
    ) -> None:
        key: TemplateKey = (*domain, tid)
        exporter, port, version, dom = domain
        known = self.store.get(key)
        if (
            known is not None
            and known.definition == definition
            and known.kind == kind
            and known.scope_field_count == scope_count
        ):
            tpl = known  # exporters re-send templates every few seconds: compile once
        else:
            tpl = CompiledTemplate(version, dom, tid, kind, tuple(fields), definition, scope_count)
        changed, evicted = self.store.put(key, tpl)
        if evicted:
            out.drop(Reason.TEMPLATE_EVICTED, evicted)
        if changed:
            out.result.template_events.append(
                TemplateEvent(exporter, version, dom, tid, kind, definition, scope_count, port)
            )
        for held in self.pending.release(key):
            at = (held.export_ms, held.uptime_ms, held.received_ms, held.datagram, held.sequence, held.offset)
            self._data(out, key, tpl, memoryview(held.body), at, None)

    def withdraw(self, out: ChunkBuilder, key: TemplateKey) -> None:
        if self.store.withdraw(key):
            exporter, port, version, domain, tid = key
            out.result.template_events.append(
                TemplateEvent(exporter, version, domain, tid, "data", None, source_port=port)
            )

    def withdraw_all(self, out: ChunkBuilder, domain: DomainKey, kind: str) -> None:
        for exporter, port, version, dom, tid in self.store.withdraw_domain(domain, kind):
            out.result.template_events.append(TemplateEvent(exporter, version, dom, tid, kind, None, source_port=port))

    # -- data ------------------------------------------------------------------------
    def data_set(
        self,
        out: ChunkBuilder,
        key: TemplateKey,
        body: memoryview,
        export_ms: int,
        uptime_ms: int,
        received_ms: int,
        offset: int,
    ) -> None:
        tpl = self.store.get(key)
        if tpl is None:
            if len(body) < 4:  # padding-only set: nothing worth holding
                return
            held = HeldSet(bytes(body), export_ms, uptime_ms, received_ms, out.datagram, out.sequence, offset)
            pushed = self.pending.hold(key, held)
            if pushed:
                out.drop(Reason.PENDING_OVERFLOW, pushed, f"data held for template {key[4]} pushed out", offset)
            return
        self._data(out, key, tpl, body, (export_ms, uptime_ms, received_ms, out.datagram, out.sequence, offset), offset)

    def _data(
        self,
        out: ChunkBuilder,
        key: TemplateKey,
        tpl: CompiledTemplate,
        body: memoryview,
        at: Arrival,
        offset: int | None,
    ) -> None:
        raw: bytes | memoryview
        if tpl.variable:
            if not tpl.record_length:  # only variable-length fields: nothing netpilot reads
                out.drop(Reason.UNSUPPORTED, 1, f"template {key[4]} has only variable-length fields", offset, at[3])
                return
            raw, n, ok = normalise_varlen(tpl, body)
            if not ok:
                out.drop(
                    Reason.BAD_RECORD,
                    1,
                    f"variable-length record overruns its set (template {key[4]}, {n} records before it kept)",
                    offset,
                    at[3],
                )
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
        g.arrivals.append(at)

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
            self.sampling.learn(key[:4], {ie: int(c[i]) for ie, c in cols.items()})

    # -- end of pass -----------------------------------------------------------------
    def finish(self, out: ChunkBuilder, now_ms: int | None, flush: bool = False) -> None:
        """Decode the pass's groups; drop held data older than its age limit (all of it
        with ``flush``: the end of a capture, where no template can come any more)."""
        for key, held in self.pending.expire(None if flush else now_ms):
            why = "capture ended" if flush else "waited too long"
            out.drop(
                Reason.NO_TEMPLATE,
                1,
                f"data set for template {key[4]} of domain {key[3]}: no template ({why})",
                None,
                held.datagram,
            )
        groups, self._groups = self._groups, {}
        for g in groups.values():
            try:
                self._emit(out, g)
            except Exception as exc:  # noqa: BLE001 - a decoder bug must cost records, not the process
                out.drop(
                    Reason.DECODE_FAILED,
                    sum(g.counts),
                    f"template {g.key[4]} of domain {g.key[3]}: {type(exc).__name__}: {exc}",
                    None,
                    g.arrivals[0][3],
                )

    def _emit(self, out: ChunkBuilder, g: _Group) -> None:
        tpl: CompiledTemplate = g.tpl
        key = g.key
        exporter, _, version, domain, tid = key
        n = sum(g.counts)
        recs = np.frombuffer(b"".join(g.parts), dtype=tpl.dtype, count=n)
        counts = np.asarray(g.counts)
        arrivals = np.asarray(g.arrivals, np.int64)  # (parts, 6): one row per data set

        def per_record(column: int) -> np.ndarray:
            return np.repeat(arrivals[:, column], counts)

        export_ms = per_record(0)
        cols: dict[str, Any] = {}  # arrays, and scalars that ChunkBuilder broadcasts
        u = tpl.uint
        cols["time_received"] = per_record(2)
        d = self.sampling.peek(key[:4])
        cols["time_start"], cols["time_end"] = records.times(
            tpl,
            recs,
            export_ms,
            (lambda: per_record(1)) if version == 9 else None,
            d.system_init_ms if d is not None else 0,
        )
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
        flags = records.tcp_flags(tpl, recs)
        if flags is not None:
            cols["tcp_flags"] = flags
        icmp = records.icmp_type_code(tpl, recs)
        if icmp is not None:  # ICMP type/code go in dst_port (the convention sFlow follows too)
            if "dst_port" not in cols or not tpl.has(IE.SRC_PORT):
                cols["dst_port"] = icmp
            elif "ip_proto" in cols:  # ports and ICMP fields in one template (NSEL): by protocol
                is_icmp = (cols["ip_proto"] == 1) | (cols["ip_proto"] == 58)
                cols["dst_port"] = np.where(is_icmp & (cols["dst_port"] == 0), icmp, cols["dst_port"])
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
        octets = records.first(tpl, recs, *records.OCTETS)
        packets = records.first(tpl, recs, *records.PACKETS)
        section = records.section_columns(tpl, recs)
        if section is not None:  # a sampled packet: what the template lacks comes from it
            for name, v in section.items():
                if name != "ip_length" and name not in cols:
                    cols[name] = v
            if octets is None:
                octets = records.first(tpl, recs, IE.DATALINK_FRAME_SIZE, IE.IP_TOTAL_LENGTH)
                octets = section["ip_length"] if octets is None else octets
            if packets is None:
                packets = np.ones(n, np.uint64)
        octets = np.zeros(n, np.uint64) if octets is None else octets
        packets = np.zeros(n, np.uint64) if packets is None else packets
        event = records.first(tpl, recs, IE.FW_EVENT, IE.NSEL_FW_EVENT)
        counted = None
        if event is not None:  # firewall events: which records count (decode/firewall.py)
            cols["fw_event"] = event
            conn = u(recs, IE.FLOW_ID)
            counted = self.firewall.counted(key[:4], event, conn, int(cols["time_received"][-1]))
            octets = np.where(counted, octets, np.uint64(0))
            packets = np.where(counted, packets, np.uint64(0))
            # an update's counters are for its interval, not since the connection began
            cols["time_start"] = np.where(event == 5, cols["time_end"], cols["time_start"])
        cols["bytes"], cols["packets"] = octets, packets
        rate = self.sampling.rates(key[:4], tpl, recs)
        unknown = rate == 0
        n_unknown = int(np.count_nonzero(unknown))
        if n_unknown:
            rate[unknown] = self.default_rate(exporter)
            cols["flags"] = np.where(unknown, np.uint8(FlowFlags.SAMPLING_UNKNOWN), np.uint8(0))
        cols["sampling_rate"] = np.minimum(rate, np.uint64(0xFFFFFFFF))
        cols["bytes_scaled"] = octets * rate
        cols["packets_scaled"] = packets * rate
        if out.provenance:
            cols["datagram"] = per_record(3)
            cols["template_id"] = np.uint16(tid)
            cols["sequence"] = per_record(4)
            cols["order"] = order_key(arrivals[:, 3], arrivals[:, 5], counts)
        label = "netflow9" if version == 9 else "ipfix"
        if tpl.biflow:
            parts = records.split_biflow(tpl, recs, cols, rate, counted, keep_all=event is not None)
        else:
            parts = [(n, cols)]
        for m, part in parts:
            out.result.flows[(exporter, label)] += m
            if n_unknown:
                out.result.sampling_unknown += int(np.count_nonzero(part["flags"]))
            out.add(m, part)


def iter_sets(
    out: ChunkBuilder, data: memoryview, pos: int, what: str, domain: int
) -> Iterator[tuple[int, memoryview, int]]:
    """(set id, body, offset of the body) per set/flowset; a bad set length ends the walk
    (counted). Zero bytes after the last set are padding (exporters pad datagrams), not a
    set of length 0."""
    end = len(data)
    while end - pos >= 4:
        set_id, length = SET_HEADER.unpack_from(data, pos)
        if length < 4:
            if not any(data[pos:]):
                return
            out.drop(Reason.BAD_LENGTH, 1, f"{what} length {length} (domain {domain})", pos)
            return
        if pos + length > end:
            out.drop(
                Reason.TRUNCATED, 1, f"{what} {set_id} claims {length} bytes, {end - pos} left (domain {domain})", pos
            )
            return
        yield set_id, data[pos + 4 : pos + length], pos + 4
        pos += length
    if pos < end and any(data[pos:]):
        out.drop(Reason.TRUNCATED, 1, f"{end - pos} bytes after the last {what} (domain {domain})", pos)


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
