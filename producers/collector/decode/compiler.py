"""Template compiler shared by NetFlow v9 and IPFIX.

A template becomes a numpy structured dtype that names only the fields netpilot uses, at
their byte offsets, with ``itemsize`` = the record length: one ``np.frombuffer`` then
decodes every record of a (joined) data set with no per-record Python. Templates with
variable-length fields (IPFIX length 65535) go through :func:`normalise_varlen`, which
copies each record's fixed fields into the fixed layout first (the slow, rare path).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from producers.collector.decode.errors import DecodeError, Reason

VARLEN = 0xFFFF
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
    SELECTOR_ID = 302
    SAMPLING_PACKET_INTERVAL = 305
    SAMPLING_PACKET_SPACE = 306
    SAMPLING_SIZE = 309
    SAMPLING_POPULATION = 310


REVERSE_PEN = 29305
"""RFC 5103 reverse information elements (biflows, e.g. softflowd -b)."""
REVERSE_BIT = 1 << 16
"""Added to an IE id to name its reverse-direction twin in ``CompiledTemplate.columns``."""
REVERSE_IES = frozenset({1, 2, 6, 32, 139})

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
    variable: bool = field(init=False)
    min_record_length: int = field(init=False)
    columns: dict[int, tuple[str, int]] = field(init=False)
    """IE -> (dtype field name, wire length) for the IEs this template carries."""

    def __post_init__(self) -> None:
        names: list[str] = []
        formats: list[object] = []
        offsets: list[int] = []
        self.columns = {}
        offset = 0
        min_len = 0
        self.variable = False
        for i, f in enumerate(self.fields):
            if f.length == VARLEN:
                self.variable = True
                min_len += 1
                continue  # not in the normalised layout
            # v9 scope fields use their own type space; IPFIX scope fields are real IEs
            usable = f.pen == 0 and (not f.scope or self.version == 10)
            ie = f.ie
            if f.pen == REVERSE_PEN and ie in REVERSE_IES:  # RFC 5103 biflow: known PEN
                usable, ie = True, ie | REVERSE_BIT
            if usable and (ie in USED_IES or ie & REVERSE_BIT) and ie not in self.columns and f.length > 0:
                name = f"f{i}"
                names.append(name)
                formats.append(f">u{f.length}" if f.length in (1, 2, 4, 8) else ("u1", (f.length,)))
                offsets.append(offset)
                self.columns[ie] = (name, f.length)
            offset += f.length
            min_len += f.length
        if min_len == 0:
            raise DecodeError(
                Reason.TEMPLATE_EMPTY,
                "template has no bytes per record",
                version=self.version,
                domain=self.domain,
                template_id=self.template_id,
            )
        self.record_length = offset
        self.min_record_length = min_len
        self.dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": max(offset, 1)})

    def has(self, ie: int) -> bool:
        return ie in self.columns

    @property
    def biflow(self) -> bool:
        return (REVERSE_BIT | 1) in self.columns or (REVERSE_BIT | 2) in self.columns

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
    before it are kept, the rest is dropped.
    """
    out = bytearray()
    pos, end, count = 0, len(body), 0
    fields = tpl.fields
    while end - pos >= tpl.min_record_length:
        rec = bytearray()
        for f in fields:
            if f.length == VARLEN:
                if pos >= end:
                    return bytes(out), count, False
                ln = body[pos]
                pos += 1
                if ln == 255:
                    if pos + 2 > end:
                        return bytes(out), count, False
                    ln = int.from_bytes(body[pos : pos + 2], "big")
                    pos += 2
                pos += ln
            else:
                rec += body[pos : pos + f.length]
                pos += f.length
            if pos > end:
                return bytes(out), count, False
        out += rec
        count += 1
    return bytes(out), count, True


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
