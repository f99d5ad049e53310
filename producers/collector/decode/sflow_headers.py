"""Vectorised parsing of sampled packet headers (sFlow raw header records).

Input: an ``(n, HEADER_WIDTH)`` matrix of header bytes, the captured length per row and
the sFlow header protocol per row (1 Ethernet, 11 IPv4, 12 IPv6). Handles 802.1Q and QinQ
(two tags), IPv4 (options via IHL, non-first fragments carry no ports), IPv6 (fixed
header; extension headers are not followed), TCP/UDP/SCTP ports, TCP flags and ICMP
type/code (as ``type << 8 | code`` in dst_port, the usual convention), and the IP packet's
length from its header. Bytes beyond the captured length read as 0, never as another row's
data. Also used for the packet sections of IPFIX (IEs 313 and 315).
"""

from __future__ import annotations

import numpy as np

HEADER_WIDTH = 128
_VLAN_TYPES = np.array([0x8100, 0x88A8, 0x9100])
_PORT_PROTOS = np.array([6, 17, 132])


def parse_headers(h: np.ndarray, hlen: np.ndarray, proto: np.ndarray) -> dict[str, np.ndarray]:
    n = len(h)
    rows = np.arange(n)

    def byte(idx: np.ndarray) -> np.ndarray:
        ok = idx < hlen
        return np.where(ok, h[rows, np.minimum(idx, HEADER_WIDTH - 1)], 0).astype(np.int64)

    def u16(idx: np.ndarray) -> np.ndarray:
        return byte(idx) << 8 | byte(idx + 1)

    def span(start: np.ndarray, k: int) -> np.ndarray:
        idx = start[:, None] + np.arange(k)
        vals = h[rows[:, None], np.minimum(idx, HEADER_WIDTH - 1)]
        return np.where(idx < hlen[:, None], vals, 0).astype(np.uint8)

    eth = proto == 1
    off = np.where(eth, 14, 0)
    etype = np.where(eth, u16(np.full(n, 12)), 0)
    for _ in range(2):  # 802.1Q, then QinQ's inner tag
        tagged = eth & np.isin(etype, _VLAN_TYPES)
        off = np.where(tagged, off + 4, off)
        etype = np.where(tagged, u16(off - 2), etype)
    v4 = (eth & (etype == 0x0800)) | (proto == 11)
    v6 = (eth & (etype == 0x86DD)) | (proto == 12)
    v4 &= (byte(off) >> 4) == 4
    v6 &= (byte(off) >> 4) == 6

    ihl = (byte(off) & 0x0F) * 4
    frag_off = (u16(off + 6) & 0x1FFF) != 0
    ip_proto = np.where(v4, byte(off + 9), np.where(v6, byte(off + 6), 0))
    l4 = np.where(v4, off + ihl, off + 40)

    src = np.zeros((n, 16), np.uint8)
    dst = np.zeros((n, 16), np.uint8)
    src[v4, 10:12] = 0xFF
    dst[v4, 10:12] = 0xFF
    src[v4, 12:] = span(off + 12, 4)[v4]
    dst[v4, 12:] = span(off + 16, 4)[v4]
    src[v6] = span(off + 8, 16)[v6]
    dst[v6] = span(off + 24, 16)[v6]

    has_l4 = (v4 & ~frag_off) | v6
    ported = has_l4 & np.isin(ip_proto, _PORT_PROTOS)
    icmp = has_l4 & (((ip_proto == 1) & v4) | ((ip_proto == 58) & v6))
    src_port = np.where(ported, u16(l4), 0)
    dst_port = np.where(ported, u16(l4 + 2), np.where(icmp, u16(l4), 0))
    tcp_flags = np.where(has_l4 & (ip_proto == 6), byte(l4 + 13), 0)
    # the IP packet's own length (v4 total length; v6 payload length + its 40-byte header)
    ip_length = np.where(v4, u16(off + 2), np.where(v6, u16(off + 4) + 40, 0))
    return {
        "ip_length": ip_length.astype(np.uint64),
        "src_addr": src,
        "dst_addr": dst,
        "src_port": src_port.astype(np.uint16),
        "dst_port": dst_port.astype(np.uint16),
        "ip_proto": ip_proto.astype(np.uint8),
        "tcp_flags": tcp_flags.astype(np.uint8),
    }
