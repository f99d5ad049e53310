"""Builds BMP (RFC 7854) messages and the BGP messages inside them, for tests and the bench.

Only what the tests need: OPENs with multiprotocol/4-byte-AS/ADD-PATH capabilities,
UPDATEs for IPv4 (classic fields) and IPv6 (MP_REACH/MP_UNREACH), End-of-RIB markers.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence

ROUTE_MONITORING, STATISTICS, PEER_DOWN, PEER_UP, INITIATION, TERMINATION = range(6)


def bmp(mtype: int, body: bytes, version: int = 3) -> bytes:
    return struct.pack("!BIB", version, 6 + len(body), mtype) + body


def peer_header(address: str, asn: int, flags: int = 0, peer_type: int = 0, ts: int = 1_700_000_000) -> bytes:
    ip = ipaddress.ip_address(address)
    raw = ip.packed if ip.version == 6 else bytes(12) + ip.packed
    flags |= 0x80 if ip.version == 6 else 0
    return struct.pack("!BB8s16sI4sII", peer_type, flags, bytes(8), raw, asn, bytes([198, 51, 100, 250]), ts, 0)


def bgp(mtype: int, body: bytes) -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), mtype) + body


def open_msg(
    asn: int,
    router_id: str,
    families: Sequence[tuple[int, int]] = ((1, 1), (2, 1)),
    addpath: int = 0,
) -> bytes:
    """``addpath``: 1 receive, 2 send, 3 both (for every family)."""
    caps = b"".join(b"\x01\x04" + struct.pack("!HBB", afi, 0, safi) for afi, safi in families)
    caps += b"\x41\x04" + struct.pack("!I", asn)
    if addpath:
        body = b"".join(struct.pack("!HBB", afi, safi, addpath) for afi, safi in families)
        caps += bytes([69, len(body)]) + body
    params = bytes([2, len(caps)]) + caps
    my_as = asn if asn < 65536 else 23456
    return bgp(1, struct.pack("!BHH4sB", 4, my_as, 90, ipaddress.IPv4Address(router_id).packed, len(params)) + params)


def _prefix(p: str, path_id: int | None = None) -> bytes:
    net = ipaddress.ip_network(p)
    nbytes = (net.prefixlen + 7) // 8
    pid = struct.pack("!I", path_id) if path_id is not None else b""
    return pid + bytes([net.prefixlen]) + net.network_address.packed[:nbytes]


def _attr(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def attrs(
    as_path: Sequence[int] = (64510,),
    origin: int = 0,
    next_hop: str | None = None,
    local_pref: int | None = None,
    med: int | None = None,
    communities: Iterable[tuple[int, int]] = (),
    as2: bool = False,
) -> bytes:
    fmt = "!H" if as2 else "!I"
    out = _attr(1, bytes([origin]))
    path = b"".join(struct.pack(fmt, a) for a in as_path)
    out += _attr(2, bytes([2, len(as_path)]) + path if as_path else b"")
    if next_hop is not None:
        out += _attr(3, ipaddress.IPv4Address(next_hop).packed)
    if med is not None:
        out += _attr(4, struct.pack("!I", med), 0x80)
    if local_pref is not None:
        out += _attr(5, struct.pack("!I", local_pref))
    comms = b"".join(struct.pack("!HH", a, b) for a, b in communities)
    if comms:
        out += _attr(8, comms, 0xC0)
    return out


def update(
    announce: Sequence[str] = (),
    withdraw: Sequence[str] = (),
    path_attrs: bytes = b"",
    next_hop6: str | None = None,
    path_ids: Sequence[int] | None = None,
) -> bytes:
    """IPv4 prefixes go in the classic fields, IPv6 ones in MP_REACH/MP_UNREACH."""
    v4a = [p for p in announce if ":" not in p]
    v6a = [p for p in announce if ":" in p]
    v4w = [p for p in withdraw if ":" not in p]
    v6w = [p for p in withdraw if ":" in p]
    pid = iter(path_ids) if path_ids is not None else None
    a = path_attrs
    if v6a:
        nh = ipaddress.IPv6Address(next_hop6 or "2001:db8:ffff::1").packed
        nlri = b"".join(_prefix(p, next(pid) if pid else None) for p in v6a)
        a += _attr(14, struct.pack("!HBB", 2, 1, 16) + nh + b"\x00" + nlri, 0x80)
    if v6w:
        a += _attr(15, struct.pack("!HB", 2, 1) + b"".join(_prefix(p) for p in v6w), 0x80)
    wd = b"".join(_prefix(p) for p in v4w)
    nlri4 = b"".join(_prefix(p, next(pid) if pid else None) for p in v4a)
    return bgp(2, struct.pack("!H", len(wd)) + wd + struct.pack("!H", len(a)) + a + nlri4)


def eor(version: int = 4) -> bytes:
    if version == 4:
        return bgp(2, b"\x00\x00\x00\x00")
    return bgp(2, b"\x00\x00\x00\x06" + _attr(15, struct.pack("!HB", 2, 1), 0x80))


def initiation(sys_name: str = "fra1-edge1", sys_descr: str = "test router") -> bytes:
    tlvs = b""
    for t, v in ((1, sys_descr), (2, sys_name)):
        raw = v.encode()
        tlvs += struct.pack("!HH", t, len(raw)) + raw
    return bmp(INITIATION, tlvs)


def peer_up(address: str, asn: int, router_as: int = 64496, addpath: int = 0, local: str = "198.51.100.254") -> bytes:
    loc = ipaddress.ip_address(local)
    raw = loc.packed if loc.version == 6 else bytes(12) + loc.packed
    sent = open_msg(router_as, "198.51.100.254", addpath=1 if addpath else 0)
    received = open_msg(asn, "198.51.100.253", addpath=2 if addpath else 0)
    return bmp(PEER_UP, peer_header(address, asn) + raw + struct.pack("!HH", 179, 40000) + sent + received)


def peer_down(address: str, asn: int, reason: int = 4) -> bytes:
    return bmp(PEER_DOWN, peer_header(address, asn) + bytes([reason]))


def route_monitoring(address: str, asn: int, bgp_update: bytes, post_policy: bool = False, as2: bool = False) -> bytes:
    flags = (0x40 if post_policy else 0) | (0x20 if as2 else 0)
    return bmp(ROUTE_MONITORING, peer_header(address, asn, flags) + bgp_update)


def statistics(address: str, asn: int) -> bytes:
    return bmp(STATISTICS, peer_header(address, asn) + struct.pack("!I", 0))
