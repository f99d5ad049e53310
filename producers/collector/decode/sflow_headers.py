"""Vectorised parsing of sampled packet headers (sFlow raw header records).

Input: the header bytes of ``n`` packets somewhere in one flat byte buffer (their start
offsets), the captured length per packet and the sFlow header protocol per packet (1
Ethernet, 11 IPv4, 12 IPv6). Handles 802.1Q and QinQ (two tags), IPv4 (options via IHL,
non-first fragments carry no ports), IPv6 (fixed header; extension headers are not
followed), TCP/UDP/SCTP ports, TCP flags and ICMP type/code (as ``type << 8 | code`` in
dst_port, the usual convention), and the IP packet's length from its header. Bytes beyond
the captured length read as 0, never as another packet's data.

sFlow reads the headers in place in the joined datagrams (:func:`parse_headers_at`, no
copy); the packet sections of IPFIX (IEs 313 and 315) come as an ``(n, width)`` matrix
(:func:`parse_headers`).
"""

from __future__ import annotations

import numpy as np

HEADER_WIDTH = 128
"""Header bytes looked at per packet; an sFlow agent's default capture length."""


def parse_headers(h: np.ndarray, hlen: np.ndarray, proto: np.ndarray) -> dict[str, np.ndarray]:
    """Headers as the rows of an ``(n, width)`` matrix; ``hlen`` must be <= width."""
    n, width = h.shape
    return parse_headers_at(np.ascontiguousarray(h).reshape(-1), np.arange(n) * width, hlen, proto)


def parse_headers_at(buf: np.ndarray, start: np.ndarray, hlen: np.ndarray, proto: np.ndarray) -> dict[str, np.ndarray]:
    """Headers at ``buf[start[i] : start[i] + hlen[i]]`` (``buf`` flat uint8)."""
    n = len(start)
    start = start.astype(np.int64)
    hlen = np.minimum(hlen.astype(np.int64), HEADER_WIDTH)
    if len(buf) < 4:
        buf = np.concatenate([buf, np.zeros(4, np.uint8)])
    last = len(buf) - 1
    # 16- and 32-bit big-endian views at every byte offset (stride 1): one gather a field
    words16 = np.ndarray((len(buf) - 1,), ">u2", buf, 0, (1,))
    words32 = np.ndarray((len(buf) - 3,), ">u4", buf, 0, (1,))

    def byte(idx: np.ndarray) -> np.ndarray:
        ok = idx < hlen
        return np.where(ok, buf[np.minimum(start + idx, last)], 0).astype(np.int64)

    def u16(idx: np.ndarray) -> np.ndarray:
        v = words16[np.minimum(start + idx, last - 1)].astype(np.int64)
        # a field cut by the captured length keeps its captured high byte
        return np.where(idx + 1 < hlen, v, np.where(idx < hlen, v & 0xFF00, 0))

    def span(at: np.ndarray, k: int, rows: np.ndarray) -> np.ndarray:
        idx = at[rows, None] + np.arange(k)
        vals = buf[np.minimum(start[rows, None] + idx, last)]
        return np.where(idx < hlen[rows, None], vals, 0).astype(np.uint8)

    def word(at: np.ndarray) -> np.ndarray:
        """The 32-bit field at ``at`` of every row, 0 where not all of it was captured."""
        v = words32[np.minimum(start + at, last - 3)]
        return np.where(at + 4 <= hlen, v, 0).astype(np.uint32)

    eth = proto == 1
    off = np.where(eth, 14, 0)
    etype = np.where(eth, u16(np.full(n, 12)), 0)
    for _ in range(2):  # 802.1Q (0x8100), then QinQ's inner tag (outer 0x88A8 or 0x9100)
        tagged = eth & ((etype == 0x8100) | (etype == 0x88A8) | (etype == 0x9100))
        if not tagged.any():
            break
        off = np.where(tagged, off + 4, off)
        etype = np.where(tagged, u16(off - 2), etype)
    first = byte(off)
    v4 = (eth & (etype == 0x0800)) | (proto == 11)
    v6 = (eth & (etype == 0x86DD)) | (proto == 12)
    v4 &= (first >> 4) == 4
    v6 &= (first >> 4) == 6

    ihl = (first & 0x0F) * 4
    frag_off = (u16(off + 6) & 0x1FFF) != 0
    ip_proto = np.where(v4, byte(off + 9), np.where(v6, byte(off + 6), 0))
    l4 = np.where(v4, off + ihl, off + 40)

    src = np.zeros((n, 16), np.uint8)
    dst = np.zeros((n, 16), np.uint8)
    if v4.any():  # IPv4-mapped: ::ffff:a.b.c.d, written as 32-bit words
        src_w, dst_w = src.view(">u4"), dst.view(">u4")
        mapped = np.where(v4, 0xFFFF, 0)
        src_w[:, 2] = mapped
        dst_w[:, 2] = mapped
        src_w[:, 3] = np.where(v4, word(off + 12), 0)
        dst_w[:, 3] = np.where(v4, word(off + 16), 0)
        cut = np.flatnonzero(v4 & (off + 20 > hlen))  # an address cut by the capture keeps its bytes
        if len(cut):
            src[cut, 12:] = span(off + 12, 4, cut)
            dst[cut, 12:] = span(off + 16, 4, cut)
    r6 = np.flatnonzero(v6)
    if len(r6):
        src[r6] = span(off + 8, 16, r6)
        dst[r6] = span(off + 24, 16, r6)

    has_l4 = (v4 & ~frag_off) | v6
    ported = has_l4 & ((ip_proto == 6) | (ip_proto == 17) | (ip_proto == 132))  # TCP, UDP, SCTP
    icmp = has_l4 & (((ip_proto == 1) & v4) | ((ip_proto == 58) & v6))
    l4_word = u16(l4)
    src_port = np.where(ported, l4_word, 0)
    dst_port = np.where(ported, u16(l4 + 2), np.where(icmp, l4_word, 0))
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
