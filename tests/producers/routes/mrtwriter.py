"""Writes MRT TABLE_DUMP_V2 RIB dumps byte by byte per RFC 6396 (no MRT writer library exists
on PyPI; mrtparse only reads). Enough for tests: IPv4/IPv6 unicast, the common attributes."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TABLE_DUMP_V2 = 13
PEER_INDEX_TABLE, RIB_IPV4_UNICAST, RIB_IPV6_UNICAST = 1, 2, 4
ORIGIN_CODE = {"igp": 0, "egp": 1, "incomplete": 2}


@dataclass(frozen=True)
class Path:
    peer_index: int
    as_path: tuple[int, ...]
    next_hop: str
    origin: str = "igp"
    local_pref: int | None = 100
    med: int | None = None
    communities: tuple[str, ...] = ()


def _mrt(ts: int, subtype: int, body: bytes) -> bytes:
    return struct.pack("!IHHI", ts, TABLE_DUMP_V2, subtype, len(body)) + body


def _attr(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def peer_index_table(peers: list[tuple[str, int]], ts: int = 1_700_000_000) -> bytes:
    body = ipaddress.ip_address("192.0.2.254").packed + struct.pack("!H", 0)
    body += struct.pack("!H", len(peers))
    for ip, asn in peers:
        addr = ipaddress.ip_address(ip)
        ptype = 0x02 | (0x01 if addr.version == 6 else 0)  # AS4 always; IPv6 bit
        body += struct.pack("!B", ptype) + ipaddress.ip_address("192.0.2.253").packed
        body += addr.packed + struct.pack("!I", asn)
    return _mrt(ts, PEER_INDEX_TABLE, body)


def rib(seq: int, prefix: str, paths: list[Path], ts: int = 1_700_000_000) -> bytes:
    net = ipaddress.ip_network(prefix)
    plen = net.prefixlen
    body = struct.pack("!IB", seq, plen) + net.network_address.packed[: (plen + 7) // 8]
    body += struct.pack("!H", len(paths))
    for p in paths:
        attrs = _attr(0x40, 1, bytes([ORIGIN_CODE[p.origin]]))
        seg = struct.pack("!BB", 2, len(p.as_path)) + b"".join(struct.pack("!I", a) for a in p.as_path)
        attrs += _attr(0x40, 2, seg if p.as_path else b"")
        nh = ipaddress.ip_address(p.next_hop)
        if net.version == 4:
            attrs += _attr(0x40, 3, nh.packed)
        else:  # RFC 6396 4.3.4: MP_REACH_NLRI holds only next-hop length + address
            attrs += _attr(0x80, 14, bytes([16]) + nh.packed)
        if p.med is not None:
            attrs += _attr(0x80, 4, struct.pack("!I", p.med))
        if p.local_pref is not None:
            attrs += _attr(0x40, 5, struct.pack("!I", p.local_pref))
        if p.communities:
            comm = b"".join(struct.pack("!HH", *map(int, c.split(":"))) for c in p.communities)
            attrs += _attr(0xC0, 8, comm)
        body += struct.pack("!HIH", p.peer_index, ts, len(attrs)) + attrs
    return _mrt(ts, RIB_IPV4_UNICAST if net.version == 4 else RIB_IPV6_UNICAST, body)
