"""IPFIX (RFC 7011): header, (options) templates with enterprise fields, withdrawals, data.

Set ids: 2 = templates, 3 = options templates, >= 256 = data. A template record with a
field count of 0 withdraws that template; template id 2 / 3 withdraws all of that kind in
the observation domain. Enterprise-specific fields are skipped (they stay in the record
layout, so the fields after them decode correctly).
"""

from __future__ import annotations

import struct

from producers.collector.decode.compiler import FieldSpec, parse_fields
from producers.collector.decode.errors import DecodeError, Reason
from producers.collector.decode.flowsets import SET_HEADER, TemplateDecoder, check_field_count, iter_sets
from producers.collector.decode.result import ChunkBuilder

HEADER = struct.Struct(">HHIII")  # version, length, export_time, sequence, domain
VERSION = 10


def parse_template_record(
    buf: memoryview, pos: int, kind: str, max_fields: int, domain: int
) -> tuple[int, list[FieldSpec] | None, int, int]:
    """One (options) template record -> (template id, fields or None = withdrawal, scope, end)."""
    head = 4 if kind == "data" else 6
    if pos + head > len(buf):
        raise DecodeError(Reason.TRUNCATED, "template header truncated", version=VERSION, domain=domain)
    tid, count = SET_HEADER.unpack_from(buf, pos)
    if count == 0:
        return tid, None, 0, pos + 4
    scope = struct.unpack_from(">H", buf, pos + 4)[0] if kind == "options" else 0
    check_field_count(count, max_fields, VERSION, domain, tid)
    if tid < 256:
        raise DecodeError(Reason.BAD_LENGTH, f"template id {tid} < 256", version=VERSION, domain=domain)
    if scope > count:
        raise DecodeError(
            Reason.BAD_LENGTH,
            f"scope count {scope} > field count {count}",
            version=VERSION,
            domain=domain,
            template_id=tid,
        )
    fields, end = parse_fields(buf, pos + head, count, enterprise_bit=True, scope_count=scope)
    return tid, fields, scope, end


def decode(
    td: TemplateDecoder, out: ChunkBuilder, exporter: bytes, port: int, data: memoryview, received_ms: int
) -> None:
    if len(data) < HEADER.size:
        raise DecodeError(Reason.TRUNCATED, f"IPFIX message of {len(data)} bytes", version=VERSION, offset=0)
    _, length, export_time, sequence, domain = HEADER.unpack_from(data, 0)
    out.sequence = sequence
    if length < HEADER.size:
        raise DecodeError(Reason.BAD_LENGTH, f"IPFIX length field {length}", version=VERSION, domain=domain, offset=2)
    if length > len(data):
        raise DecodeError(
            Reason.TRUNCATED, f"IPFIX length {length} > datagram {len(data)}", version=VERSION, domain=domain, offset=2
        )
    data = data[:length]
    export_ms = export_time * 1000
    out.result.datagrams[(exporter, "ipfix")] += 1
    session = (exporter, port, VERSION, domain)
    for set_id, body, offset in iter_sets(out, data, HEADER.size, "IPFIX set", domain):
        if set_id >= 256:
            td.data_set(out, (exporter, port, VERSION, domain, set_id), body, export_ms, 0, received_ms, offset)
        elif set_id in (2, 3):
            _templates(td, out, session, body, offset, "data" if set_id == 2 else "options", set_id)
        else:
            out.drop(Reason.UNSUPPORTED, 1, f"IPFIX set id {set_id} (4-255 are reserved)", offset - 4)


def _templates(
    td: TemplateDecoder,
    out: ChunkBuilder,
    session: tuple[bytes, int, int, int],
    body: memoryview,
    offset: int,
    kind: str,
    set_id: int,
) -> None:
    pos = 0
    domain = session[3]
    while len(body) - pos >= 4:
        if not any(body[pos:]):
            return  # padding (RFC 7011 §3.3.1: a template id is never 0)
        try:
            tid, fields, scope, end = parse_template_record(body, pos, kind, td.max_fields, domain)
        except DecodeError as exc:
            out.drop(exc.reason, 1, str(exc), offset + pos)
            return
        if fields is None:  # withdrawal
            if tid == set_id:
                td.withdraw_all(out, session, kind)
            else:
                td.withdraw(out, (*session, tid))
        else:
            try:
                td.learn(out, session, tid, kind, fields, bytes(body[pos:end]), scope)
            except DecodeError as exc:
                out.drop(exc.reason, 1, str(exc), offset + pos)
        pos = end
