"""BMP (RFC 7854) framing: a byte stream in, typed messages out. Pure: no sockets, no BGP.

BMP is a simple TLV-ish format: a 6-byte common header (version 3, length, type), a 42-byte
per-peer header on the peer messages, then a BGP PDU or TLVs. No maintained Python library
parses it (ExaBGP dropped its BMP code; pybgpkit-parser exposes only MRT files to Python;
yabmp and libbgp were last released in 2017), so this module does the framing, carefully,
and :mod:`producers.routes.bmp.bgp` hands the BGP messages inside to ExaBGP's parser.

Two kinds of error, because they differ in what the session can do next:

- :class:`FramingError`: the common header is wrong (version, length). The stream can no
  longer be split into messages, so the session must be reset.
- :class:`MessageError`: one well-framed message has a bad body. It is skipped and counted;
  the session goes on.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from netpilot.errors import NetpilotError

VERSION = 3
COMMON_HEADER = 6
PEER_HEADER = 42
BGP_HEADER = 19
BGP_MARKER = b"\xff" * 16

# message types (RFC 7854 section 4.1)
ROUTE_MONITORING, STATISTICS, PEER_DOWN, PEER_UP, INITIATION, TERMINATION, ROUTE_MIRRORING = range(7)
TYPE_NAMES = {
    ROUTE_MONITORING: "route-monitoring",
    STATISTICS: "statistics",
    PEER_DOWN: "peer-down",
    PEER_UP: "peer-up",
    INITIATION: "initiation",
    TERMINATION: "termination",
    ROUTE_MIRRORING: "route-mirroring",
}
PEER_MESSAGES = {ROUTE_MONITORING, STATISTICS, PEER_DOWN, PEER_UP, ROUTE_MIRRORING}

# per-peer header flags (RFC 7854 4.2; O from RFC 8671)
FLAG_V6, FLAG_POST_POLICY, FLAG_AS2, FLAG_ADJ_RIB_OUT = 0x80, 0x40, 0x20, 0x10

# information TLV types of the Initiation message (RFC 7854 4.4)
TLV_STRING, TLV_SYS_DESCR, TLV_SYS_NAME = 0, 1, 2

PEER_DOWN_REASONS = {
    1: "local-notification",
    2: "local-no-notification",
    3: "remote-notification",
    4: "remote-no-notification",
    5: "peer-deconfigured",
    6: "local-system-closed",
}


class BmpError(NetpilotError):
    """Base of the BMP decoding errors; ``reason`` is a bounded metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class FramingError(BmpError):
    """The stream cannot be split into messages any more: reset the session."""


class MessageError(BmpError):
    """One message is malformed: skip it, count it, keep the session."""


@dataclass(frozen=True, slots=True)
class PeerHeader:
    peer_type: int
    flags: int
    distinguisher: bytes
    address: str
    asn: int
    bgp_id: str

    @property
    def post_policy(self) -> bool:
        return bool(self.flags & FLAG_POST_POLICY)

    @property
    def as2(self) -> bool:
        """The BGP messages use 2-byte AS numbers in AS_PATH (the legacy format)."""
        return bool(self.flags & FLAG_AS2)

    @property
    def adj_rib_out(self) -> bool:
        return bool(self.flags & FLAG_ADJ_RIB_OUT)


@dataclass(frozen=True, slots=True)
class BmpMessage:
    """One framed message: its type, the per-peer header if it has one, and its body after
    the headers (a memoryview into the received buffer: no copy)."""

    type: int
    peer: PeerHeader | None
    body: memoryview


@dataclass(frozen=True, slots=True)
class PeerUpBody:
    local_address: str
    local_port: int
    remote_port: int
    sent_open: bytes
    """The OPEN the monitored router sent, BGP header included."""
    received_open: bytes


class BmpStream:
    """Splits a byte stream into BMP messages; feed it whatever ``recv`` returned."""

    def __init__(self, max_message: int = 1 << 20) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._broken: FramingError | None = None
        self._peers: dict[bytes, PeerHeader] = {}
        """raw per-peer header (less its timestamp) -> parsed: a session has few peers"""

    def feed(self, data: bytes) -> list[BmpMessage | MessageError | FramingError]:
        """Complete messages in ``data`` plus what was buffered; keeps a partial tail.

        A peer message too short for its per-peer header comes back as a
        :class:`MessageError` in its place, so the caller counts it and goes on. A broken
        header ends the list with a :class:`FramingError` (the messages before it are
        still good) and leaves the stream unusable: the caller resets the session.
        """
        if self._broken is not None:
            return [self._broken]
        self._buf += data
        end = len(self._buf)
        out: list[BmpMessage | MessageError | FramingError] = []
        pos = 0
        view = memoryview(bytes(self._buf))  # immutable: the messages outlive this buffer
        while end - pos >= COMMON_HEADER:
            version, length, mtype = struct.unpack_from("!BIB", view, pos)
            if version != VERSION:
                self._broken = FramingError("bad-version", f"BMP version {version} at offset {pos} (only 3 exists)")
            elif length < COMMON_HEADER or length > self.max_message:
                self._broken = FramingError("bad-length", f"message length {length} (min 6, max {self.max_message})")
            if self._broken is not None:
                out.append(self._broken)
                self._buf.clear()
                return out
            if end - pos < length:
                break
            out.append(self._message(mtype, view[pos + COMMON_HEADER : pos + length]))
            pos += length
        del self._buf[:pos]
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def _message(self, mtype: int, rest: memoryview) -> BmpMessage | MessageError:
        if mtype not in PEER_MESSAGES:
            return BmpMessage(mtype, None, rest)
        if len(rest) < PEER_HEADER:
            return MessageError("short-message", f"{TYPE_NAMES[mtype]} of {len(rest)} bytes has no per-peer header")
        raw = bytes(rest[:34])  # the timestamp (last 8 bytes) is not used
        peer = self._peers.get(raw)
        if peer is None:
            if len(self._peers) > 4096:
                self._peers.clear()
            peer = self._peers[raw] = parse_peer_header(raw)
        return BmpMessage(mtype, peer, rest[PEER_HEADER:])


def parse_peer_header(raw: memoryview | bytes) -> PeerHeader:
    ptype, flags = raw[0], raw[1]
    addr = bytes(raw[10:26])
    address = str(ipaddress.IPv6Address(addr)) if flags & FLAG_V6 else str(ipaddress.IPv4Address(addr[12:]))
    asn, bgp_id = struct.unpack_from("!I4s", raw, 26)
    return PeerHeader(
        peer_type=ptype,
        flags=flags,
        distinguisher=bytes(raw[2:10]),
        address=address,
        asn=asn,
        bgp_id=str(ipaddress.IPv4Address(bgp_id)),
    )


def bgp_pdu(raw: memoryview | bytes, expect_type: int | None = None) -> tuple[int, memoryview]:
    """One BGP message at the start of ``raw``: (its type, its body after the 19-byte header).
    Checks the marker, the length and the type."""
    raw = memoryview(raw)
    if len(raw) < BGP_HEADER:
        raise MessageError("bad-bgp-header", f"{len(raw)} bytes, shorter than a BGP header")
    if raw[:16] != BGP_MARKER:
        raise MessageError("bad-bgp-header", "BGP marker is not 16 x 0xff")
    length, btype = struct.unpack_from("!HB", raw, 16)
    if length < BGP_HEADER or length > len(raw):
        raise MessageError("bad-bgp-header", f"BGP length {length} with {len(raw)} bytes available")
    if expect_type is not None and btype != expect_type:
        raise MessageError("bad-bgp-header", f"BGP message type {btype}, expected {expect_type}")
    return btype, raw[BGP_HEADER:length]


def parse_peer_up(body: memoryview) -> PeerUpBody:
    if len(body) < 20 + 2 * BGP_HEADER:
        raise MessageError("short-message", f"peer-up body of {len(body)} bytes")
    raw_local = bytes(body[:16])
    local = (
        str(ipaddress.IPv4Address(raw_local[12:]))
        if raw_local[:12] == bytes(12)
        else str(ipaddress.IPv6Address(raw_local))
    )
    local_port, remote_port = struct.unpack_from("!HH", body, 16)
    rest = body[20:]
    sent_len = _bgp_length(rest)
    sent = bytes(rest[:sent_len])
    rest = rest[sent_len:]
    recv_len = _bgp_length(rest)
    return PeerUpBody(local, local_port, remote_port, sent, bytes(rest[:recv_len]))


def _bgp_length(raw: memoryview) -> int:
    if len(raw) < BGP_HEADER:
        raise MessageError("bad-open", "peer-up is too short for its OPEN messages")
    (length,) = struct.unpack_from("!H", raw, 16)
    if length < BGP_HEADER or length > len(raw):
        raise MessageError("bad-open", f"OPEN length {length} with {len(raw)} bytes left")
    return length


def parse_peer_down(body: memoryview) -> str:
    if len(body) < 1:
        raise MessageError("short-message", "peer-down without a reason")
    return PEER_DOWN_REASONS.get(body[0], "other")


def parse_tlvs(body: memoryview) -> dict[int, str]:
    """Information TLVs (Initiation, Termination): type -> text (last one wins)."""
    out: dict[int, str] = {}
    pos = 0
    while pos < len(body):
        if len(body) - pos < 4:
            raise MessageError("bad-tlv", f"{len(body) - pos} trailing bytes, not a TLV")
        ttype, tlen = struct.unpack_from("!HH", body, pos)
        if pos + 4 + tlen > len(body):
            raise MessageError("bad-tlv", f"TLV type {ttype} of length {tlen} overruns the message")
        out[ttype] = bytes(body[pos + 4 : pos + 4 + tlen]).decode("utf-8", errors="replace")
        pos += 4 + tlen
    return out
