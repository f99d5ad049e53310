"""Hand-built NetFlow v9 / IPFIX / v5 datagrams for decoder unit tests (goflow2-style vectors)."""

from __future__ import annotations

import struct

from netpilot.wire.flows import str_to_addr

EXPORTER = str_to_addr("192.0.2.1")
EXPORT_TIME = 1_700_000_000


def field_specs(fields: list[tuple]) -> bytes:
    """(ie, length) or (ie, length, pen) tuples -> field specifier bytes."""
    out = b""
    for f in fields:
        if len(f) == 3:
            out += struct.pack(">HHI", f[0] | 0x8000, f[1], f[2])
        else:
            out += struct.pack(">HH", f[0], f[1])
    return out


def ipfix_set(set_id: int, body: bytes) -> bytes:
    return struct.pack(">HH", set_id, 4 + len(body)) + body


def ipfix(sets: list[bytes], domain: int = 1, export_time: int = EXPORT_TIME, length: int | None = None) -> bytes:
    body = b"".join(sets)
    return struct.pack(">HHIII", 10, length if length is not None else 16 + len(body), export_time, 0, domain) + body


def ipfix_template(tid: int, fields: list[tuple]) -> bytes:
    return ipfix_set(2, struct.pack(">HH", tid, len(fields)) + field_specs(fields))


def ipfix_options_template(tid: int, scope: list[tuple], fields: list[tuple]) -> bytes:
    return ipfix_set(3, struct.pack(">HHH", tid, len(scope) + len(fields), len(scope)) + field_specs(scope + fields))


def v9(sets: list[bytes], domain: int = 1, uptime: int = 100_000, unix_secs: int = EXPORT_TIME) -> bytes:
    return struct.pack(">HHIIII", 9, len(sets), uptime, unix_secs, 0, domain) + b"".join(sets)


def v9_template(tid: int, fields: list[tuple]) -> bytes:
    return ipfix_set(0, struct.pack(">HH", tid, len(fields)) + field_specs(fields))


def v9_options_template(tid: int, scope: list[tuple], fields: list[tuple]) -> bytes:
    return ipfix_set(
        1, struct.pack(">HHH", tid, 4 * len(scope), 4 * len(fields)) + field_specs(scope) + field_specs(fields)
    )


# A classic IPv4 flow template: src, dst, ports, proto, octets (8), packets (8), start/end ms.
V4_FIELDS = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 8), (2, 8), (152, 8), (153, 8)]
V4_RECORD = struct.Struct(">4s4sHHBQQQQ")


def v4_record(i: int, octets: int = 1000, packets: int = 10) -> bytes:
    return V4_RECORD.pack(
        bytes([192, 0, 2, i % 256]),
        bytes([198, 51, 100, i % 256]),
        1000 + i,
        443,
        6,
        octets + i,
        packets,
        EXPORT_TIME * 1000 - 5000,
        EXPORT_TIME * 1000 - 1000,
    )


def v5(records: int = 2, sampling: int = 0, count: int | None = None) -> bytes:
    head = struct.pack(">HHIIIIBBH", 5, records if count is None else count, 60_000, EXPORT_TIME, 0, 0, 0, 0, sampling)
    rec = b""
    for i in range(records):
        rec += struct.pack(
            ">4s4s4sHHIIIIHHBBBBHHBBH",
            bytes([192, 0, 2, i]),
            bytes([198, 51, 100, i]),
            bytes(4),
            1,
            2,
            10 + i,
            1500 + i,
            50_000,
            59_000,
            1234,
            80,
            0,
            0x12,
            6,
            0,
            64500,
            64501,
            24,
            24,
            0,
        )
    return head + rec
