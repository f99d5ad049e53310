"""Read exporter datagrams (UDP payloads) out of a pcap or pcapng capture.

Used by ``netpilot decode`` and the tests. Link types: Ethernet (with VLAN tags), Linux
cooked v1/v2, raw IP and BSD loopback. Packets that are not UDP over IPv4/IPv6, or are IP
fragments, are skipped and counted (a capture is user input: never a crash).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import dpkt

from netpilot.errors import NetpilotError

_MAPPED = b"\x00" * 10 + b"\xff\xff"


class CaptureError(NetpilotError):
    """The file is not a pcap/pcapng capture this reader understands."""


@dataclass
class CaptureStats:
    packets: int = 0
    datagrams: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class CapturedDatagram:
    src: bytes  # 16-byte IPv4-mapped / IPv6 source (the exporter)
    dst_port: int
    payload: bytes
    ts_ms: int
    src_port: int = 0
    frame: int = 0
    """1-based packet number in the capture (tshark's ``frame.number``)."""


def _reader(fh: BinaryIO):
    magic = fh.read(4)
    fh.seek(0)
    try:
        if magic == b"\x0a\x0d\x0d\x0a":
            return dpkt.pcapng.Reader(fh)
        return dpkt.pcap.Reader(fh)
    except (ValueError, dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError) as exc:
        raise CaptureError(f"not a pcap or pcapng capture: {exc}") from exc


def _ip_layer(linktype: int, buf: bytes):
    if linktype == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf).data
    if linktype == 113:  # LINUX_SLL
        return dpkt.sll.SLL(buf).data
    if linktype == 276:  # LINUX_SLL2
        return dpkt.sll2.SLL2(buf).data
    if linktype in (dpkt.pcap.DLT_RAW, 12, 14, 101):
        return dpkt.ip.IP(buf) if buf[:1] and buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    if linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        return dpkt.loopback.Loopback(buf).data
    return None


_V4 = struct.Struct(">BxHxxHxB")  # version/IHL, total length, flags/fragment offset, protocol
_UDP = struct.Struct(">HHH")  # source port, destination port, length


def _fast_udp(linktype: int, buf: bytes) -> tuple[bytes, int, int, bytes] | None:
    """(source, source port, destination port, payload) of an untagged Ethernet/IPv4 or IPv6
    frame carrying a whole UDP datagram; None for anything else (dpkt decides). Exporters'
    captures are almost all this; parsing it with struct is several times faster."""
    if linktype != dpkt.pcap.DLT_EN10MB or len(buf) < 42:
        return None
    etype = (buf[12] << 8) | buf[13]
    if etype == 0x0800:
        vihl, total, frag, proto = _V4.unpack_from(buf, 14)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or proto != 17 or frag & 0x3FFF or ihl < 20:
            return None
        l4, end, src = 14 + ihl, 14 + total, _MAPPED + buf[26:30]
    elif etype == 0x86DD:
        if buf[14] >> 4 != 6 or buf[20] != 17:
            return None
        l4, end, src = 54, 54 + ((buf[18] << 8) | buf[19]), buf[22:38]
    else:
        return None
    if end > len(buf) or l4 + 8 > end:
        return None
    sport, dport, ulen = _UDP.unpack_from(buf, l4)
    if ulen < 8 or l4 + ulen > end:
        return None
    return src, sport, dport, buf[l4 + 8 : l4 + ulen]


def read_datagrams(path: Path, stats: CaptureStats | None = None) -> Iterator[CapturedDatagram]:
    stats = stats if stats is not None else CaptureStats()
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror}") from exc
    with fh:
        reader = _reader(fh)
        linktype = reader.datalink()
        try:
            for ts, buf in reader:
                stats.packets += 1
                fast = _fast_udp(linktype, buf)
                if fast is not None:
                    stats.datagrams += 1
                    yield CapturedDatagram(fast[0], fast[2], fast[3], int(ts * 1000), fast[1], stats.packets)
                    continue
                try:
                    ip = _ip_layer(linktype, buf)
                except (dpkt.dpkt.UnpackError, dpkt.dpkt.NeedData, ValueError):
                    stats.skipped["malformed"] += 1
                    continue
                if isinstance(ip, dpkt.ip.IP):
                    if ip.offset or ip.mf:
                        stats.skipped["ip_fragment"] += 1
                        continue
                    src = _MAPPED + ip.src
                elif isinstance(ip, dpkt.ip6.IP6):
                    src = bytes(ip.src)
                else:
                    stats.skipped["not_ip"] += 1
                    continue
                udp = ip.data
                if not isinstance(udp, dpkt.udp.UDP):
                    stats.skipped["not_udp"] += 1
                    continue
                stats.datagrams += 1
                yield CapturedDatagram(src, udp.dport, bytes(udp.data), int(ts * 1000), udp.sport, stats.packets)
        except (dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError, ValueError) as exc:
            stats.skipped["truncated_capture"] += 1
            if not stats.packets:
                raise CaptureError(f"{path}: unreadable capture: {exc}") from exc
