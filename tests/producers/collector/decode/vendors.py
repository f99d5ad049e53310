"""Datagrams in the template layouts vendors document, built by hand (goflow2-style vectors).

Each layout follows the vendor's published field list, in its order and with its lengths:

* YAF (CERT NetSA) biflow records: RFC 5103 reverse totals under PEN 29305, CERT (PEN 6871)
  initial/union TCP flags and their reverse forms (the 0x4000 bit of the id).
* Cisco ASA / FTD NSEL (NetFlow v9), "Cisco ASA NetFlow Implementation Guide": the IPv4
  flow-teardown/update template of 9.x (initiator/responder octets and packets, IEs
  231/232/298/299, firewall event 233, event time 323) and the 8.2 layout (event in 40005,
  total bytes in 85).
* H3C / Huawei NetFlow v9 with a variable-length field (length 65535, IPFIX encoding).
* Juniper inline monitoring IPFIX: IEs 10, 14, 61, 312 and a variable-length
  dataLinkFrameSection (315); and a PSAMP packet report (RFC 5476) with a fixed-length
  ipHeaderPacketSection (313).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import dpkt

from tests.producers.collector.decode.builders import EXPORT_TIME, field_specs, ipfix_set

REVERSE = 29305
CERT = 6871
MS = EXPORT_TIME * 1000


def varlen(value: bytes) -> bytes:
    """RFC 7011 §7 variable-length encoding."""
    if len(value) < 255:
        return bytes([len(value)]) + value
    return b"\xff" + struct.pack(">H", len(value)) + value


def ip4(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, a)


# -- YAF biflows ------------------------------------------------------------------------
YAF_FIELDS = [
    (152, 8),  # flowStartMilliseconds
    (153, 8),  # flowEndMilliseconds
    (85, 8),  # octetTotalCount
    (85, 8, REVERSE),  # reverseOctetTotalCount
    (86, 8),  # packetTotalCount
    (86, 8, REVERSE),  # reversePacketTotalCount
    (21, 4, CERT),  # reverseFlowDeltaMilliseconds
    (8, 4),  # sourceIPv4Address
    (12, 4),  # destinationIPv4Address
    (7, 2),  # sourceTransportPort
    (11, 2),  # destinationTransportPort
    (4, 1),  # protocolIdentifier
    (136, 1),  # flowEndReason
    (14, 1, CERT),  # initialTCPFlags
    (15, 1, CERT),  # unionTCPFlags
    (14 | 0x4000, 1, CERT),  # reverseInitialTCPFlags
    (15 | 0x4000, 1, CERT),  # reverseUnionTCPFlags
    (58, 2),  # vlanId
    (58, 2, REVERSE),  # reverseVlanId
]
YAF_RECORD = struct.Struct(">QQQQQQI4s4sHHBBBBBBHH")


@dataclass(frozen=True)
class Biflow:
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    octets: int
    rev_octets: int
    packets: int
    rev_packets: int
    flags: tuple[int, int]  # initial, union
    rev_flags: tuple[int, int]


def yaf_record(f: Biflow) -> bytes:
    return YAF_RECORD.pack(
        MS - 4000,
        MS - 1000,
        f.octets,
        f.rev_octets,
        f.packets,
        f.rev_packets,
        15,
        ip4(f.src),
        ip4(f.dst),
        f.sport,
        f.dport,
        f.proto,
        1,
        *f.flags,
        *f.rev_flags,
        0,
        0,
    )


# -- Cisco ASA / FTD NSEL -----------------------------------------------------------------
NSEL_FIELDS = [
    (148, 4),  # NF_F_CONN_ID
    (8, 4),  # NF_F_SRC_ADDR_IPV4
    (7, 2),  # NF_F_SRC_PORT
    (10, 2),  # NF_F_SRC_INTF_ID
    (12, 4),  # NF_F_DST_ADDR_IPV4
    (11, 2),  # NF_F_DST_PORT
    (14, 2),  # NF_F_DST_INTF_ID
    (4, 1),  # NF_F_PROTOCOL
    (176, 1),  # NF_F_ICMP_TYPE
    (177, 1),  # NF_F_ICMP_CODE
    (225, 4),  # NF_F_XLATE_SRC_ADDR_IPV4
    (226, 4),  # NF_F_XLATE_DST_ADDR_IPV4
    (227, 2),  # NF_F_XLATE_SRC_PORT
    (228, 2),  # NF_F_XLATE_DST_PORT
    (233, 1),  # NF_F_FW_EVENT
    (33002, 2),  # NF_F_FW_EXT_EVENT
    (323, 8),  # NF_F_EVENT_TIME_MSEC
    (152, 8),  # NF_F_FLOW_CREATE_TIME_MSEC
    (231, 4),  # NF_F_FWD_FLOW_DELTA_BYTES
    (232, 4),  # NF_F_REV_FLOW_DELTA_BYTES
    (298, 4),  # NF_F_FWD_FLOW_DELTA_PACKETS (initiatorPackets)
    (299, 4),  # NF_F_REV_FLOW_DELTA_PACKETS (responderPackets)
    (33000, 12),  # NF_F_INGRESS_ACL_ID
    (33001, 12),  # NF_F_EGRESS_ACL_ID
    (40000, 20),  # NF_F_USERNAME
]
NSEL_RECORD = struct.Struct(">I4sHH4sHHBBB4s4sHHBHQQIIII12s12s20s")


@dataclass(frozen=True)
class Event:
    conn: int
    event: int
    src: str = "192.0.2.10"
    dst: str = "198.51.100.20"
    sport: int = 40000
    dport: int = 443
    proto: int = 6
    fwd_octets: int = 0
    rev_octets: int = 0
    fwd_packets: int = 0
    rev_packets: int = 0
    at_ms: int = MS - 1000
    icmp: tuple[int, int] = (0, 0)
    ext: int = 0


def nsel_record(e: Event) -> bytes:
    return NSEL_RECORD.pack(
        e.conn,
        ip4(e.src),
        e.sport,
        3,  # inside interface
        ip4(e.dst),
        e.dport,
        4,  # outside interface
        e.proto,
        *e.icmp,
        ip4("203.0.113.5"),
        ip4(e.dst),
        e.sport + 1,
        e.dport,
        e.event,
        e.ext,
        e.at_ms,
        MS - 60_000,
        e.fwd_octets,
        e.rev_octets,
        e.fwd_packets,
        e.rev_packets,
        bytes(12),
        bytes(12),
        b"alice".ljust(20, b"\x00"),
    )


# ASA 8.2: the event in 40005 (NF_F_FW_EVENT), bytes of the connection in 85, no packets
ASA82_FIELDS = [
    (148, 4),
    (8, 4),
    (7, 2),
    (10, 2),
    (12, 4),
    (11, 2),
    (14, 2),
    (4, 1),
    (176, 1),
    (177, 1),
    (40001, 4),  # NF_F_XLATE_SRC_ADDR_IPV4 (8.2 numbering)
    (40002, 4),
    (40003, 2),
    (40004, 2),
    (40005, 1),  # NF_F_FW_EVENT
    (33002, 2),
    (323, 8),
    (85, 4),  # NF_F_CONN_BYTES? the 8.2 guide: total bytes of the connection
    (33000, 12),
    (33001, 12),
    (40000, 20),
]
ASA82_RECORD = struct.Struct(">I4sHH4sHHBBB4s4sHHBHQI12s12s20s")


def asa82_record(e: Event) -> bytes:
    return ASA82_RECORD.pack(
        e.conn,
        ip4(e.src),
        e.sport,
        3,
        ip4(e.dst),
        e.dport,
        4,
        e.proto,
        0,
        0,
        ip4("203.0.113.5"),
        ip4(e.dst),
        e.sport + 1,
        e.dport,
        e.event,
        e.ext,
        e.at_ms,
        e.fwd_octets,
        bytes(12),
        bytes(12),
        bytes(20),
    )


# -- H3C / Huawei v9 with a variable-length field ---------------------------------------
H3C_FIELDS = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (10, 4),
    (14, 4),
    (1, 4),
    (2, 4),
    (22, 4),
    (21, 4),
    (96, 0xFFFF),
]


def h3c_record(i: int, app: bytes) -> bytes:
    fixed = struct.pack(
        ">4s4sHHBIIIIII",
        ip4(f"192.0.2.{i}"),
        ip4(f"198.51.100.{i}"),
        10_000 + i,
        53,
        17,
        5,
        6,
        100 * i,
        i,
        90_000,
        99_000,
    )
    return fixed + varlen(app)


# -- Juniper inline monitoring and PSAMP packet sections --------------------------------
JUNIPER_FIELDS = [(10, 4), (14, 4), (61, 1), (312, 2), (315, 0xFFFF)]
PSAMP_FIELDS = [(302, 4), (323, 8), (313, 64)]


def v4_packet(src: str, dst: str, sport: int, dport: int, proto: int, payload: int, vlan: int | None = None) -> bytes:
    """An Ethernet frame (802.1Q-tagged with ``vlan``) with an IPv4 TCP/UDP packet."""
    l4: dpkt.Packet
    if proto == 6:
        l4 = dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data=b"x" * payload)
    else:
        l4 = dpkt.udp.UDP(sport=sport, dport=dport, data=b"x" * payload)
        l4.ulen = 8 + payload
    ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=proto, ttl=64, data=l4)
    ip.len = 20 + len(bytes(l4))
    eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip)
    frame = bytes(eth)
    if vlan is not None:
        frame = frame[:12] + struct.pack(">HH", 0x8100, vlan) + frame[12:]
    return frame


def v6_packet(src: str, dst: str, sport: int, dport: int, payload: int) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=b"y" * payload)
    udp.ulen = 8 + payload
    ip = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, src), dst=socket.inet_pton(socket.AF_INET6, dst), nxt=17, hlim=64
    )
    ip.data = udp
    ip.plen = len(bytes(udp))
    return bytes(ip)


def juniper_record(in_if: int, out_if: int, frame: bytes, captured: int) -> bytes:
    return struct.pack(">IIBH", in_if, out_if, 1, len(frame)) + varlen(frame[:captured])


def psamp_record(selector: int, ip_packet: bytes) -> bytes:
    return struct.pack(">IQ", selector, MS - 5) + ip_packet[:64].ljust(64, b"\x00")


def template_set(set_id: int, tid: int, fields: list[tuple]) -> bytes:
    return ipfix_set(set_id, struct.pack(">HH", tid, len(fields)) + field_specs(fields))
