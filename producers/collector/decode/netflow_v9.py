"""NetFlow v9 (RFC 3954): header, (options) templates, data flowsets.

Flowset ids: 0 = templates, 1 = options templates, >= 256 = data. v9 option *scope*
fields use their own type space (1 system, 2 interface ...), so they are marked as scope
and never read as information elements. Padding at the end of a flowset is skipped.

RFC 3954 has no variable-length fields, but H3C and Huawei send v9 templates with field
length 65535 and encode those values as IPFIX does (RFC 7011 §7: a one-byte length, or 255
and a two-byte length); they are decoded the same way as in IPFIX.
"""

from __future__ import annotations

import struct

from producers.collector.decode.compiler import FieldSpec, parse_fields
from producers.collector.decode.errors import DecodeError, Reason
from producers.collector.decode.flowsets import SET_HEADER, TemplateDecoder, check_field_count, iter_sets
from producers.collector.decode.result import ChunkBuilder

HEADER = struct.Struct(">HHIIII")  # version, count, sys_uptime, unix_secs, sequence, source_id
VERSION = 9


def parse_template_record(
    buf: memoryview, pos: int, kind: str, max_fields: int, domain: int
) -> tuple[int, list[FieldSpec], int, int]:
    """One (options) template record at ``pos`` -> (template id, fields, scope count, end)."""
    end = len(buf)
    if kind == "data":
        if pos + 4 > end:
            raise DecodeError(Reason.TRUNCATED, "template header truncated", version=VERSION, domain=domain)
        tid, count = SET_HEADER.unpack_from(buf, pos)
        check_field_count(count, max_fields, VERSION, domain, tid)
        fields, pos = parse_fields(buf, pos + 4, count, enterprise_bit=False)
        scope = 0
    else:
        if pos + 6 > end:
            raise DecodeError(Reason.TRUNCATED, "options template header truncated", version=VERSION, domain=domain)
        tid, scope_len, opt_len = struct.unpack_from(">HHH", buf, pos)
        scope, count = scope_len // 4, opt_len // 4
        check_field_count(scope + count, max_fields, VERSION, domain, tid)
        fields, pos = parse_fields(buf, pos + 6, scope + count, enterprise_bit=False, scope_count=scope)
    if tid < 256:
        raise DecodeError(Reason.BAD_LENGTH, f"template id {tid} < 256", version=VERSION, domain=domain)
    return tid, fields, scope, pos


def decode(
    td: TemplateDecoder, out: ChunkBuilder, exporter: bytes, port: int, data: memoryview, received_ms: int
) -> None:
    if len(data) < HEADER.size:
        raise DecodeError(Reason.TRUNCATED, f"v9 datagram of {len(data)} bytes", version=VERSION, offset=0)
    _, _, uptime, unix_secs, sequence, domain = HEADER.unpack_from(data, 0)
    out.sequence = sequence
    export_ms = unix_secs * 1000
    out.result.datagrams[(exporter, "netflow9")] += 1
    session = (exporter, port, VERSION, domain)
    for set_id, body, offset in iter_sets(out, data, HEADER.size, "v9 flowset", domain):
        if set_id >= 256:
            td.data_set(out, (exporter, port, VERSION, domain, set_id), body, export_ms, uptime, received_ms, offset)
        elif set_id in (0, 1):
            _templates(td, out, session, body, offset, "data" if set_id == 0 else "options")
        else:
            out.drop(Reason.UNSUPPORTED, 1, f"v9 flowset id {set_id} (2-255 are reserved)", offset - 4)


def _templates(
    td: TemplateDecoder,
    out: ChunkBuilder,
    session: tuple[bytes, int, int, int],
    body: memoryview,
    offset: int,
    kind: str,
) -> None:
    pos = 0
    domain = session[3]
    while len(body) - pos >= (4 if kind == "data" else 6):
        if body[pos] == 0 and body[pos + 1] == 0:
            return  # padding (a template id is never 0)
        try:
            tid, fields, scope, end = parse_template_record(body, pos, kind, td.max_fields, domain)
        except DecodeError as exc:
            out.drop(exc.reason, 1, str(exc), offset + pos)
            return
        try:
            td.learn(out, session, tid, kind, fields, bytes(body[pos:end]), scope)
        except DecodeError as exc:
            out.drop(exc.reason, 1, str(exc), offset + pos)
        pos = end
