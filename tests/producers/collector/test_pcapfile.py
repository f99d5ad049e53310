"""Reading captures: the struct fast path and dpkt agree; frame numbers are tshark's."""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

from netpilot.wire.flows import addr_to_str
from producers.collector.pcapfile import CaptureStats, read_datagrams
from tests.producers.collector.traffic import tshark_fields


def _v4(src: str, l4: dpkt.Packet, proto: int, **kw: int) -> dpkt.ip.IP:
    ip = dpkt.ip.IP(
        src=socket.inet_pton(socket.AF_INET, src), dst=socket.inet_pton(socket.AF_INET, "127.0.0.1"), p=proto, data=l4
    )
    for k, v in kw.items():
        setattr(ip, k, v)
    ip.len = 20 + len(bytes(l4))
    return ip


def _udp(sport: int, payload: bytes) -> dpkt.udp.UDP:
    u = dpkt.udp.UDP(sport=sport, dport=2055, data=payload)
    u.ulen = 8 + len(payload)
    return u


def _eth(ip: dpkt.Packet, etype: int = 0x0800) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=ip))


def test_fast_path_and_dpkt_agree(tmp_path: Path) -> None:
    v6 = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, "2001:db8::7"),
        dst=socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
        nxt=17,
        hlim=64,
        data=_udp(3000, b"six"),
    )
    v6.plen = len(bytes(v6.data))
    tagged = _eth(_v4("192.0.2.3", _udp(1003, b"tagged"), 17))
    tagged = tagged[:12] + b"\x81\x00\x00\x0a" + tagged[12:]  # 802.1Q: dpkt's path
    frames = [
        _eth(_v4("192.0.2.1", _udp(1001, b"first"), 17)),
        _eth(_v4("192.0.2.2", dpkt.tcp.TCP(sport=1, dport=2), 6)),  # not UDP
        _eth(v6, 0x86DD),
        tagged,
        _eth(_v4("192.0.2.4", _udp(1004, b"fragment"), 17, mf=1)),  # first fragment: skipped
        _eth(_v4("192.0.2.5", _udp(1005, b"padded"), 17)) + bytes(20),  # Ethernet padding
    ]
    pcap = tmp_path / "mixed.pcap"
    with pcap.open("wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i, f in enumerate(frames):
            w.writepkt(f, ts=1_700_000_000 + i)
    stats = CaptureStats()
    got = [(d.frame, addr_to_str(d.src), d.src_port, d.dst_port, d.payload) for d in read_datagrams(pcap, stats)]
    assert got == [
        (1, "192.0.2.1", 1001, 2055, b"first"),
        (3, "2001:db8::7", 3000, 2055, b"six"),
        (4, "192.0.2.3", 1003, 2055, b"tagged"),
        (6, "192.0.2.5", 1005, 2055, b"padded"),
    ]
    assert stats.packets == 6 and stats.datagrams == 4
    assert dict(stats.skipped) == {"not_udp": 1, "ip_fragment": 1}
    shown = {int(f): p for f, p in tshark_fields(pcap, 2055, "data", ["frame.number", "udp.srcport"])}
    assert [shown[g[0]] for g in got] == [str(g[2]) for g in got]
