"""sFlow v5 vectors: sampled headers through VLAN/QinQ, IPv4/IPv6, TCP/UDP/ICMP; counters."""

from __future__ import annotations

import socket
import struct

import dpkt

from netpilot.wire.flows import FlowFlags, FlowType, addr_to_str
from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.errors import Reason
from tests.producers.collector.decode.builders import EXPORTER


def frame(l3: dpkt.Packet, vlans: tuple[int, ...] = (), v6: bool = False) -> bytes:
    tags = b"".join(
        struct.pack(">HH", 0x88A8 if i == 0 and len(vlans) == 2 else 0x8100, v) for i, v in enumerate(vlans)
    )
    etype = 0x86DD if v6 else 0x0800
    head = b"\x02" * 6 + b"\x04" * 6
    if vlans:
        first = 0x88A8 if len(vlans) == 2 else 0x8100
        rest = tags[2:]
        return head + struct.pack(">H", first) + rest + struct.pack(">H", etype) + bytes(l3)
    return head + struct.pack(">H", etype) + bytes(l3)


def v4(proto: int, l4: dpkt.Packet, src: str = "192.0.2.1", dst: str = "198.51.100.2") -> dpkt.ip.IP:
    return dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, data=l4)


def flow_sample(
    header: bytes, rate: int = 512, frame_len: int = 1500, proto: int = 1, expanded: bool = False, extra: bytes = b""
) -> bytes:
    pad = (-len(header)) % 4
    raw = struct.pack(">IIII", proto, frame_len, 4, len(header)) + header + bytes(pad)
    recs = struct.pack(">II", 1, len(raw)) + raw + extra
    nrec = 2 if extra else 1
    if expanded:
        body = struct.pack(">11I", 1, 0, 3, rate, 0, 0, 0, 3, 0, 4, nrec) + recs
        return struct.pack(">II", 3, len(body)) + body
    body = struct.pack(">8I", 1, 3, rate, 0, 0, 3, 4, nrec) + recs
    return struct.pack(">II", 1, len(body)) + body


def datagram(*samples: bytes) -> bytes:
    return struct.pack(">II4sIIII", 5, 1, bytes([192, 0, 2, 1]), 9, 1, 1000, len(samples)) + b"".join(samples)


def decode(*samples: bytes, **opts):  # type: ignore[no-untyped-def]
    return Decoder(DecoderOptions(**opts)).decode([(EXPORTER, datagram(*samples), 1_700_000_000_000)])


def test_tcp_udp_icmp_through_vlan_and_qinq() -> None:
    tcp = v4(6, dpkt.tcp.TCP(sport=40000, dport=443, flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK))
    udp = v4(17, dpkt.udp.UDP(sport=5353, dport=53))
    icmp = v4(1, dpkt.icmp.ICMP(type=3, code=4, data=dpkt.icmp.ICMP.Unreach()))
    r = decode(
        flow_sample(frame(tcp)),
        flow_sample(frame(udp, vlans=(10,)), expanded=True),
        flow_sample(frame(icmp, vlans=(100, 200))),
    )
    c = r.columns
    assert r.n == 3 and not r.drops
    assert c["ip_proto"].tolist() == [6, 17, 1]
    assert c["src_port"].tolist() == [40000, 5353, 0]
    assert c["dst_port"].tolist() == [443, 53, (3 << 8) | 4]
    assert c["tcp_flags"].tolist() == [0x12, 0, 0]
    assert [addr_to_str(bytes(a)) for a in c["src_addr"]] == ["192.0.2.1"] * 3
    assert c["in_if"].tolist() == [3, 3, 3] and c["out_if"].tolist() == [4, 4, 4]
    assert c["sampling_rate"].tolist() == [512] * 3 and c["bytes_scaled"].tolist() == [1500 * 512] * 3
    assert c["packets_scaled"].tolist() == [512] * 3
    assert (c["flow_type"] == FlowType.SFLOW5).all() and c["observation_domain"].tolist() == [9] * 3


def test_ipv6_and_raw_ip_headers() -> None:
    ip6 = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
        dst=socket.inet_pton(socket.AF_INET6, "2001:db8::2"),
        nxt=17,
        hlim=64,
        data=dpkt.udp.UDP(sport=1, dport=2),
    )
    ip6.plen = 8
    raw4 = bytes(v4(6, dpkt.tcp.TCP(sport=7, dport=8)))
    r = decode(flow_sample(frame(ip6, v6=True)), flow_sample(raw4, proto=11))
    assert [addr_to_str(bytes(a)) for a in r.columns["dst_addr"]] == ["2001:db8::2", "198.51.100.2"]
    assert r.columns["src_port"].tolist() == [1, 7] and r.columns["ip_proto"].tolist() == [17, 6]


def test_short_header_reads_zero_not_neighbour_bytes() -> None:
    tcp = frame(v4(6, dpkt.tcp.TCP(sport=40000, dport=443)))
    r = decode(flow_sample(tcp[:32]), flow_sample(tcp))  # cut inside the IPv4 destination
    assert r.columns["src_port"].tolist() == [0, 40000]
    assert [addr_to_str(bytes(a)) for a in r.columns["dst_addr"]] == ["198.51.0.0", "198.51.100.2"]


def test_unknown_rate_is_flagged_and_gateway_as_path_read() -> None:
    gw = (
        struct.pack(">I4s", 1, bytes([203, 0, 113, 9]))
        + struct.pack(">IIII", 64500, 64496, 64497, 1)
        + struct.pack(">II", 2, 2)
        + struct.pack(">II", 64497, 64511)
        + struct.pack(">II", 0, 0)
    )
    extra = struct.pack(">II", 1003, len(gw)) + gw
    r = decode(flow_sample(frame(v4(17, dpkt.udp.UDP())), rate=0, extra=extra), default_sampling_rate=100)
    assert r.columns["sampling_rate"].tolist() == [100]
    assert r.columns["flags"].tolist() == [FlowFlags.SAMPLING_UNKNOWN] and r.sampling_unknown == 1
    assert r.columns["src_as"].tolist() == [64496] and r.columns["dst_as"].tolist() == [64511]
    assert addr_to_str(bytes(r.columns["next_hop"][0])) == "203.0.113.9"


def test_lying_sample_lengths_are_counted() -> None:
    good = flow_sample(frame(v4(17, dpkt.udp.UDP())))
    lying = struct.pack(">II", 1, 10_000) + good[8:]
    r = decode(good, lying)
    assert r.n == 1 and r.drops[Reason.TRUNCATED] == 1
    bad_header = bytearray(good)
    struct.pack_into(">I", bad_header, 8 + 32 + 8 + 12, 5000)  # header length > record
    r = decode(bytes(bad_header))
    assert r.n == 0 and r.drops[Reason.BAD_SAMPLE] == 1
