"""Template compiler shared by NetFlow v9 and IPFIX.

A template becomes a numpy structured dtype that names only the fields netpilot uses, at
their byte offsets, with ``itemsize`` = the record length: one ``np.frombuffer`` then
decodes every record of a (joined) data set with no per-record Python. Templates with
variable-length fields (length 65535: IPFIX, and the v9 templates of H3C and Huawei) go
through :func:`normalise_varlen`, which finds where each record's fields start (a short
Python walk over the length prefixes, the only sequential part) and then gathers every
record into a fixed layout with numpy: the fixed fields, plus the first
``SECTION_WIDTH`` bytes of a packet section (IE 313/315) and its length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from producers.collector.decode.errors import DecodeError, Reason
from producers.collector.decode.sflow_headers import HEADER_WIDTH

VARLEN = 0xFFFF
SECTION_WIDTH = HEADER_WIDTH
"""Bytes of a packet section kept for parsing (the sFlow header parser's width)."""
MAX_FIELDS = 512
"""No real exporter sends more; larger counts are lies or attacks (dropped, counted)."""


class IE:
    """Information element ids (IPFIX numbering; v9 uses the same ids below 128)."""

    OCTETS = 1
    PACKETS = 2
    PROTOCOL = 4
    TCP_FLAGS = 6
    SRC_PORT = 7
    SRC_V4 = 8
    IN_IF = 10
    DST_PORT = 11
    DST_V4 = 12
    OUT_IF = 14
    NEXT_HOP_V4 = 15
    SRC_AS = 16
    DST_AS = 17
    BGP_NEXT_HOP_V4 = 18
    END_UPTIME = 21
    START_UPTIME = 22
    POST_OCTETS = 23
    POST_PACKETS = 24
    SRC_V6 = 27
    DST_V6 = 28
    ICMP_TYPE_CODE_V4 = 32
    SAMPLING_INTERVAL = 34
    SAMPLING_ALGORITHM = 35
    SAMPLER_ID = 48
    SAMPLER_MODE = 49
    SAMPLER_RANDOM_INTERVAL = 50
    NEXT_HOP_V6 = 62
    BGP_NEXT_HOP_V6 = 63
    OCTETS_TOTAL = 85
    PACKETS_TOTAL = 86
    ICMP_TYPE_CODE_V6 = 139
    FLOW_ID = 148  # Cisco NSEL NF_F_CONN_ID
    ICMP_TYPE_V4 = 176  # NSEL NF_F_ICMP_TYPE
    ICMP_CODE_V4 = 177
    ICMP_TYPE_V6 = 178
    ICMP_CODE_V6 = 179
    START_S = 150
    END_S = 151
    START_MS = 152
    END_MS = 153
    START_US = 154
    END_US = 155
    START_NS = 156
    END_NS = 157
    START_DELTA_US = 158
    END_DELTA_US = 159
    SYSTEM_INIT_MS = 160
    POST_OCTETS_TOTAL = 171
    POST_PACKETS_TOTAL = 172
    IP_TOTAL_LENGTH = 224
    INITIATOR_OCTETS = 231  # NSEL NF_F_FWD_FLOW_DELTA_BYTES
    RESPONDER_OCTETS = 232  # NSEL NF_F_REV_FLOW_DELTA_BYTES
    FW_EVENT = 233  # firewallEvent, NSEL NF_F_FW_EVENT
    INITIATOR_PACKETS = 298
    RESPONDER_PACKETS = 299
    SELECTOR_ID = 302
    SAMPLING_PACKET_INTERVAL = 305
    SAMPLING_PACKET_SPACE = 306
    SAMPLING_SIZE = 309
    SAMPLING_POPULATION = 310
    DATALINK_FRAME_SIZE = 312
    IP_HEADER_SECTION = 313  # ipHeaderPacketSection: the packet from its IP header on
    DATALINK_SECTION = 315  # dataLinkFrameSection: the frame from its MAC header on
    OBS_TIME_S = 322
    OBS_TIME_MS = 323  # NSEL NF_F_EVENT_TIME_MSEC
    NSEL_FW_EVENT = 40005  # ASA 8.2's NF_F_FW_EVENT (v9 only: beyond the IPFIX IE range)
    # CERT (YAF) enterprise elements, PEN 6871, under ids of their own (see CERT_BIT)
    CERT_INITIAL_TCP_FLAGS = (1 << 17) | 14  # initialTCPFlags: flags of the first packet
    CERT_UNION_TCP_FLAGS = (1 << 17) | 15  # unionTCPFlags: flags of the other packets


REVERSE_PEN = 29305
"""RFC 5103 reverse information elements (biflows: softflowd -b, YAF, nProbe ...)."""
REVERSE_BIT = 1 << 16
"""Added to an IE id to name its reverse-direction twin in ``CompiledTemplate.columns``."""
REVERSE_COUNTERS = (
    (IE.OCTETS, IE.PACKETS),
    (IE.POST_OCTETS, IE.POST_PACKETS),
    (IE.OCTETS_TOTAL, IE.PACKETS_TOTAL),
    (IE.POST_OCTETS_TOTAL, IE.POST_PACKETS_TOTAL),
)
"""The (octets, packets) counters read for a flow, in order of preference; each has a
reverse form under PEN 29305 (RFC 5103 §6.1: every counter is reversible)."""
REVERSE_IES = frozenset(
    {ie for pair in REVERSE_COUNTERS for ie in pair} | {IE.TCP_FLAGS, IE.ICMP_TYPE_CODE_V4, IE.ICMP_TYPE_CODE_V6}
)
SECTION_IES = frozenset({IE.IP_HEADER_SECTION, IE.DATALINK_SECTION})
CERT_PEN = 6871
CERT_BIT = 1 << 17
"""Added to a CERT enterprise element's id to name it in ``CompiledTemplate.columns``."""
CERT_IES = frozenset({14, 15})
ENTERPRISE_REVERSE = 0x4000
"""RFC 5103 §6.1: the reverse of an enterprise element sets this bit of its id (YAF's
reverseUnionTCPFlags is 6871/16399)."""

# The IEs any decoder reads; every other field is skipped through the dtype offsets.
USED_IES: frozenset[int] = frozenset(v for k, v in vars(IE).items() if not k.startswith("_"))


@dataclass(frozen=True)
class FieldSpec:
    ie: int
    length: int
    pen: int = 0  # enterprise number; 0 = IANA
    scope: bool = False


@dataclass
class CompiledTemplate:
    version: int
    domain: int
    template_id: int
    kind: str  # "data" | "options"
    fields: tuple[FieldSpec, ...]
    definition: bytes
    scope_field_count: int = 0
    dtype: np.dtype = field(init=False)
    record_length: int = field(init=False)
    """Fixed record length; for variable-length templates the normalised length."""
    fixed_length: int = field(init=False)
    """Bytes of the fixed-length fields per record (the fixed part of the layout)."""
    variable: bool = field(init=False)
    min_record_length: int = field(init=False)
    columns: dict[int, tuple[str, int]] = field(init=False)
    """IE -> (dtype field name, wire length) for the IEs this template carries; a packet
    section of variable length has length ``VARLEN`` and its byte count in ``f<i>_len``."""
    segments: tuple[int, ...] = field(init=False)
    """Variable-length templates: the fixed bytes before, between and after the
    variable-length fields (one more entry than there are such fields)."""
    varlen_slots: tuple[str | None, ...] = field(init=False)
    """Per variable-length field, the section column it fills, or None (skipped)."""

    def __post_init__(self) -> None:
        names: list[str] = []
        formats: list[object] = []
        offsets: list[int] = []
        self.columns = {}
        offset = 0
        min_len = 0
        self.variable = False
        segments = [0]
        slots: list[str | None] = []
        sections: list[tuple[int, str]] = []
        for i, f in enumerate(self.fields):
            # v9 scope fields use their own type space; IPFIX scope fields are real IEs
            usable = f.pen == 0 and (not f.scope or self.version == 10)
            ie = f.ie
            if f.pen == REVERSE_PEN and ie in REVERSE_IES:  # RFC 5103 biflow: known PEN
                usable, ie = True, ie | REVERSE_BIT
            elif f.pen == CERT_PEN and (ie & ~ENTERPRISE_REVERSE) in CERT_IES:  # YAF's TCP flags
                reverse = REVERSE_BIT if ie & ENTERPRISE_REVERSE else 0
                usable, ie = True, CERT_BIT | (ie & ~ENTERPRISE_REVERSE) | reverse
            wanted = usable and (ie in USED_IES or bool(ie & REVERSE_BIT)) and ie not in self.columns
            if f.length == VARLEN:
                self.variable = True
                min_len += 1
                segments.append(0)
                if wanted and ie in SECTION_IES:  # kept, after the fixed fields
                    sections.append((ie, f"f{i}"))
                    slots.append(f"f{i}")
                else:
                    slots.append(None)
                continue  # not in the fixed layout
            if wanted and f.length > 0:
                name = f"f{i}"
                names.append(name)
                formats.append(f">u{f.length}" if f.length in (1, 2, 4, 8) else ("u1", (f.length,)))
                offsets.append(offset)
                self.columns[ie] = (name, f.length)
            offset += f.length
            min_len += f.length
            segments[-1] += f.length
        if min_len == 0:
            raise DecodeError(
                Reason.TEMPLATE_EMPTY,
                "template has no bytes per record",
                version=self.version,
                domain=self.domain,
                template_id=self.template_id,
            )
        self.fixed_length = offset
        for ie, name in sections:
            names += [name, f"{name}_len"]
            formats += [("u1", (SECTION_WIDTH,)), ">u2"]
            offsets += [offset, offset + SECTION_WIDTH]
            self.columns[ie] = (name, VARLEN)
            offset += SECTION_WIDTH + 2
        self.segments = tuple(segments)
        self.varlen_slots = tuple(slots)
        self.record_length = offset
        self.min_record_length = min_len
        self.dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": max(offset, 1)})

    def has(self, ie: int) -> bool:
        return ie in self.columns

    @property
    def biflow(self) -> bool:
        """RFC 5103 reverse counters, or the initiator/responder pair of a firewall."""
        if self.has(IE.RESPONDER_OCTETS) or self.has(IE.RESPONDER_PACKETS):
            return True
        return any((REVERSE_BIT | ie) in self.columns for pair in REVERSE_COUNTERS for ie in pair)

    def section(self, records: np.ndarray, ie: int) -> tuple[np.ndarray, np.ndarray] | None:
        """A packet section IE as (``(n, SECTION_WIDTH)`` bytes, bytes present per record)."""
        entry = self.columns.get(ie)
        if entry is None:
            return None
        name, length = entry
        n = len(records)
        if length == VARLEN:
            return records[name], np.minimum(records[f"{name}_len"].astype(np.int64), SECTION_WIDTH)
        out = np.zeros((n, SECTION_WIDTH), np.uint8)
        w = min(length, SECTION_WIDTH)
        v = records[name]
        out[:, :w] = v.reshape(n, -1)[:, :w] if v.ndim > 1 else v.astype(f">u{length}").view(np.uint8).reshape(n, -1)
        return out, np.full(n, w, np.int64)

    def uint(self, records: np.ndarray, ie: int) -> np.ndarray | None:
        """The IE as uint64 per record (any wire length), or None if absent."""
        entry = self.columns.get(ie)
        if entry is None:
            return None
        name, length = entry
        v = records[name]
        if length in (1, 2, 4, 8):
            return v.astype(np.uint64)
        if length > 8:  # e.g. a 16-byte "counter": keep the low 8 bytes
            v = v[:, length - 8 :]
            length = 8
        out = np.zeros(len(records), np.uint64)
        for k in range(length):
            out = (out << np.uint64(8)) | v[:, k].astype(np.uint64)
        return out

    def addr(self, records: np.ndarray, ie: int) -> np.ndarray | None:
        """An address IE as (n, 16) IPv4-mapped/IPv6 bytes, or None if absent."""
        entry = self.columns.get(ie)
        if entry is None:
            return None
        name, length = entry
        v = records[name]
        n = len(records)
        out = np.zeros((n, 16), np.uint8)
        if length == 4:
            out[:, 10:12] = 0xFF
            out[:, 12:16] = v.astype(">u4").view(np.uint8).reshape(n, 4)
        elif length == 16:
            out[:] = v
        else:
            return None
        return out


def normalise_varlen(tpl: CompiledTemplate, body: memoryview) -> tuple[bytes, int, bool]:
    """Walk variable-length records, return (fixed-layout bytes, record count, ok).

    ``ok`` is False when a record ran past the end of the set (lying lengths): the records
    before it are kept, the rest is dropped. Length prefixes are RFC 7011 §7: one byte, or
    255 and two more bytes. Only the walk from prefix to prefix is Python; the copying is
    numpy, for all records at once.
    """
    segments = tpl.segments
    k = len(segments) - 1  # variable-length fields per record
    first, rest = segments[0], segments[1:]
    end, pos = len(body), 0
    starts: list[int] = []  # per record: start of segment 0, then (value start, value length) per field
    ok = True
    need = tpl.min_record_length
    while end - pos >= need:
        rec = [pos]
        p = pos + first
        for seg in rest:
            if p >= end:
                ok = False
                break
            ln = body[p]
            p += 1
            if ln == 255:
                if p + 2 > end:
                    ok = False
                    break
                ln = (body[p] << 8) | body[p + 1]
                p += 2
            rec += (p, ln)
            p += ln + seg
        if not ok or p > end:
            ok = False
            break
        starts += rec
        pos = p
    n = len(starts) // (1 + 2 * k)
    if not n:
        return b"", 0, ok
    table = np.asarray(starts, np.int64).reshape(n, 1 + 2 * k)
    data = np.frombuffer(body, np.uint8)
    out = np.zeros((n, tpl.record_length), np.uint8)
    layout = tpl.dtype.fields
    assert layout is not None  # a structured dtype
    dst = 0
    seg_start = table[:, 0]
    for j, seg in enumerate(segments):
        if seg:
            out[:, dst : dst + seg] = data[seg_start[:, None] + np.arange(seg)]
            dst += seg
        if j == k:
            break
        vstart, vlen = table[:, 1 + 2 * j], table[:, 2 + 2 * j]
        name = tpl.varlen_slots[j]
        if name is not None:
            off = layout[name][1]
            idx = vstart[:, None] + np.arange(SECTION_WIDTH)
            present = np.arange(SECTION_WIDTH) < vlen[:, None]
            out[:, off : off + SECTION_WIDTH] = np.where(present, data[np.minimum(idx, len(data) - 1)], 0)
            out[:, off + SECTION_WIDTH : off + SECTION_WIDTH + 2] = (
                np.minimum(vlen, 0xFFFF).astype(">u2").view(np.uint8).reshape(n, 2)
            )
        seg_start = vstart + vlen
    return out.tobytes(), n, ok


def parse_fields(
    buf: memoryview, pos: int, count: int, enterprise_bit: bool, scope_count: int = 0
) -> tuple[list[FieldSpec], int]:
    """Read ``count`` (type, length[, PEN]) field specifiers starting at ``pos``."""
    fields: list[FieldSpec] = []
    end = len(buf)
    for i in range(count):
        if pos + 4 > end:
            raise DecodeError(Reason.TRUNCATED, f"template ends inside field {i} of {count}")
        ie = (buf[pos] << 8) | buf[pos + 1]
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        pos += 4
        pen = 0
        if enterprise_bit and ie & 0x8000:
            if pos + 4 > end:
                raise DecodeError(Reason.TRUNCATED, "template ends inside an enterprise number")
            pen = int.from_bytes(buf[pos : pos + 4], "big")
            ie &= 0x7FFF
            pos += 4
        fields.append(FieldSpec(ie, length, pen, i < scope_count))
    return fields, pos
