"""Encoders for what routers send: NetFlow v9, IPFIX and sFlow v5 datagrams, vectorised.

Records are built as one big-endian numpy structured array per template (or per sFlow
sample layout) and sliced into datagrams of at most ``MTU_PAYLOAD`` bytes; only the
per-datagram headers are built in Python. Templates and the sampling options template are
re-sent every ``TEMPLATE_EVERY`` datagrams, as real exporters do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

MTU_PAYLOAD = 1400
TEMPLATE_EVERY = 20

# (IE/field type, length, column). Same numbers in NetFlow v9 and IPFIX for these.
_V4_FIELDS = [
    (8, 4, "src4"),
    (12, 4, "dst4"),
    (7, 2, "src_port"),
    (11, 2, "dst_port"),
    (4, 1, "ip_proto"),
    (6, 1, "tcp_flags"),
    (10, 4, "in_if"),
    (14, 4, "out_if"),
    (1, 8, "bytes"),
    (2, 8, "packets"),
    (16, 4, "src_as"),
    (17, 4, "dst_as"),
    (15, 4, "nh4"),
]
_V6_FIELDS = [
    (27, 16, "src6"),
    (28, 16, "dst6"),
    (7, 2, "src_port"),
    (11, 2, "dst_port"),
    (4, 1, "ip_proto"),
    (6, 1, "tcp_flags"),
    (10, 4, "in_if"),
    (14, 4, "out_if"),
    (1, 8, "bytes"),
    (2, 8, "packets"),
    (16, 4, "src_as"),
    (17, 4, "dst_as"),
    (62, 16, "nh6"),
]
# time fields: IPFIX flowStart/EndMilliseconds (152/153, absolute ms); v9 FIRST/LAST_SWITCHED (22/21, uptime ms)
_IPFIX_TIME = [(152, 8, "start_ms"), (153, 8, "end_ms")]
_V9_TIME = [(22, 4, "first_up"), (21, 4, "last_up")]

TEMPLATE_V4, TEMPLATE_V6, TEMPLATE_OPTIONS = 256, 257, 258


@dataclass
class FlowRecords:
    """Columns of flow records to export (one row per record). Addresses are (n,16) mapped."""

    src: np.ndarray
    dst: np.ndarray
    is_v4: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray
    ip_proto: np.ndarray
    tcp_flags: np.ndarray
    in_if: np.ndarray
    out_if: np.ndarray
    bytes: np.ndarray
    packets: np.ndarray
    src_as: np.ndarray
    dst_as: np.ndarray
    next_hop: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.bytes)

    def take(self, mask: np.ndarray) -> FlowRecords:
        return FlowRecords(**{k: v[mask] for k, v in self.__dict__.items()})


def _dtype(fields: list[tuple[int, int, str]]) -> np.dtype:
    kinds = {1: ">u1", 2: ">u2", 4: ">u4", 8: ">u8", 16: "V16"}
    return np.dtype([(name, kinds[length]) for _, length, name in fields])


def _fill(records: FlowRecords, fields: list[tuple[int, int, str]], boot_ms: int) -> np.ndarray:
    arr = np.zeros(len(records), _dtype(fields))
    for _, _length, name in fields:
        if name in ("src4", "dst4", "nh4"):
            col = {"src4": records.src, "dst4": records.dst, "nh4": records.next_hop}[name]
            arr[name] = np.ascontiguousarray(col[:, 12:16]).view(">u4").ravel()
        elif name in ("src6", "dst6", "nh6"):
            col = {"src6": records.src, "dst6": records.dst, "nh6": records.next_hop}[name]
            arr[name] = np.ascontiguousarray(col).view("V16").ravel()
        elif name == "first_up":
            arr[name] = (records.start_ms - boot_ms).astype(np.uint32)
        elif name == "last_up":
            arr[name] = (records.end_ms - boot_ms).astype(np.uint32)
        else:
            arr[name] = getattr(records, name)
    return arr


@dataclass
class TemplateExporter:
    """A NetFlow v9 (``version=9``) or IPFIX (``version=10``) exporter's encoding state."""

    version: int
    observation_domain: int = 0
    sampling_rate: int = 1
    boot_ms: int = 0
    sequence: int = 0
    datagrams: int = field(default=0)

    def _fields(self, v4: bool) -> list[tuple[int, int, str]]:
        base = _V4_FIELDS if v4 else _V6_FIELDS
        return base + (_IPFIX_TIME if self.version == 10 else _V9_TIME)

    def _template_sets(self) -> bytes:
        recs = []
        for tid, v4 in ((TEMPLATE_V4, True), (TEMPLATE_V6, False)):
            fields = self._fields(v4)
            recs.append(
                struct.pack("!HH", tid, len(fields)) + b"".join(struct.pack("!HH", ie, ln) for ie, ln, _ in fields)
            )
        body = b"".join(recs)
        tset = struct.pack("!HH", 2 if self.version == 10 else 0, 4 + len(body)) + body
        # Options template: the sampling interval (IE 34) and algorithm (35), scoped to the
        # observation domain (IPFIX IE 149) / the system (v9 scope type 1).
        if self.version == 10:
            orec = struct.pack("!HHH", TEMPLATE_OPTIONS, 3, 1) + struct.pack("!HHHHHH", 149, 4, 34, 4, 35, 1)
            oset = struct.pack("!HH", 3, 4 + len(orec)) + orec
            odata = struct.pack("!IIB", self.observation_domain, self.sampling_rate, 2)
        else:
            orec = struct.pack("!HHH", TEMPLATE_OPTIONS, 4, 8) + struct.pack("!HHHHHH", 1, 4, 34, 4, 35, 1)
            oset = struct.pack("!HH", 1, 4 + len(orec)) + orec
            odata = struct.pack("!IIB", self.observation_domain, self.sampling_rate, 2)
        odata += b"\x00" * (-len(odata) % 4)
        dset = struct.pack("!HH", TEMPLATE_OPTIONS, 4 + len(odata)) + odata
        return tset + oset + dset

    def _header(self, length: int, count: int, now_ms: int) -> bytes:
        if self.version == 10:
            return struct.pack("!HHIII", 10, length, now_ms // 1000, self.sequence, self.observation_domain)
        return struct.pack(
            "!HHIIII",
            9,
            count,
            (now_ms - self.boot_ms) & 0xFFFFFFFF,
            now_ms // 1000,
            self.datagrams,
            self.observation_domain,
        )

    def encode(self, records: FlowRecords, now_ms: int) -> list[bytes]:
        """Datagrams carrying all ``records`` (IPv4 and IPv6 under their own templates)."""
        out: list[bytes] = []
        hlen = 16 if self.version == 10 else 20
        for v4, tid in ((True, TEMPLATE_V4), (False, TEMPLATE_V6)):
            part = records.take(records.is_v4 if v4 else ~records.is_v4)
            if not len(part):
                continue
            arr = _fill(part, self._fields(v4), self.boot_ms)
            raw = arr.tobytes()
            size = arr.dtype.itemsize
            per = max(1, (MTU_PAYLOAD - hlen - 4 - 200) // size)
            for i in range(0, len(arr), per):
                chunk = raw[i * size : (i + per) * size]
                n = len(chunk) // size
                templates = b""
                extra_count = 0
                if self.datagrams % TEMPLATE_EVERY == 0:
                    templates = self._template_sets()
                    extra_count = 4  # two templates, one options template, one options record
                pad = -len(chunk) % 4
                dset = struct.pack("!HH", tid, 4 + len(chunk) + pad) + chunk + b"\x00" * pad
                body = templates + dset
                out.append(self._header(hlen + len(body), n + extra_count, now_ms) + body)
                self.sequence += n
                self.datagrams += 1
        return out


# ----------------------------------------------------------------------------------------
# sFlow v5: flow samples carrying a raw Ethernet/IP/TCP header, 1-in-N packet sampling.

_ETH_V4 = np.dtype(
    [
        ("dst_mac", "V6"),
        ("src_mac", "V6"),
        ("ethertype", ">u2"),
        ("ver_ihl", "u1"),
        ("tos", "u1"),
        ("tot_len", ">u2"),
        ("ident", ">u2"),
        ("frag", ">u2"),
        ("ttl", "u1"),
        ("proto", "u1"),
        ("csum", ">u2"),
        ("src", ">u4"),
        ("dst", ">u4"),
        ("sport", ">u2"),
        ("dport", ">u2"),
        ("seq", ">u4"),
        ("ack", ">u4"),
        ("off", "u1"),
        ("flags", "u1"),
        ("win", ">u2"),
        ("tcsum", ">u2"),
        ("urg", ">u2"),
        ("pad", "V2"),
    ]
)
_ETH_V6 = np.dtype(
    [
        ("dst_mac", "V6"),
        ("src_mac", "V6"),
        ("ethertype", ">u2"),
        ("vtcfl", ">u4"),
        ("plen", ">u2"),
        ("nh", "u1"),
        ("hlim", "u1"),
        ("src", "V16"),
        ("dst", "V16"),
        ("sport", ">u2"),
        ("dport", ">u2"),
        ("seq", ">u4"),
        ("ack", ">u4"),
        ("off", "u1"),
        ("flags", "u1"),
        ("win", ">u2"),
        ("tcsum", ">u2"),
        ("urg", ">u2"),
        ("pad", "V2"),
    ]
)


def _sample_dtype(hdr: np.dtype) -> np.dtype:
    return np.dtype(
        [
            ("format", ">u4"),
            ("length", ">u4"),
            ("seq", ">u4"),
            ("source", ">u4"),
            ("rate", ">u4"),
            ("pool", ">u4"),
            ("drops", ">u4"),
            ("input", ">u4"),
            ("output", ">u4"),
            ("nrec", ">u4"),
            ("rformat", ">u4"),
            ("rlength", ">u4"),
            ("hproto", ">u4"),
            ("frame_len", ">u4"),
            ("stripped", ">u4"),
            ("hlen", ">u4"),
            ("hdr", hdr),
        ]
    )


_S4, _S6 = _sample_dtype(_ETH_V4), _sample_dtype(_ETH_V6)
_HDR_LEN = {True: 54, False: 74}  # bytes of real header before XDR padding


@dataclass
class SflowExporter:
    agent: int  # IPv4 agent address as uint32
    sampling_rate: int
    boot_ms: int = 0
    sequence: int = 0
    sample_seq: int = 0
    pool: int = 0

    def encode(self, samples: FlowRecords, frame_len: np.ndarray, now_ms: int) -> list[bytes]:
        """One flow sample per row of ``samples`` (a sampled packet of ``frame_len`` bytes)."""
        out: list[bytes] = []
        for v4 in (True, False):
            mask = samples.is_v4 if v4 else ~samples.is_v4
            part = samples.take(mask)
            n = len(part)
            if not n:
                continue
            dt = _S4 if v4 else _S6
            a = np.zeros(n, dt)
            a["format"] = 1
            a["length"] = dt.itemsize - 8
            a["seq"] = (self.sample_seq + np.arange(n)) & 0xFFFFFFFF
            self.sample_seq += n
            a["source"] = part.in_if  # data source: ifIndex (type 0)
            a["rate"] = self.sampling_rate
            a["pool"] = (self.pool + np.arange(1, n + 1) * self.sampling_rate) & 0xFFFFFFFF
            self.pool += n * self.sampling_rate
            a["input"] = part.in_if
            a["output"] = part.out_if
            a["nrec"] = 1
            a["rformat"] = 1
            a["rlength"] = dt.itemsize - 8 - 32 - 8
            a["hproto"] = 1
            fl = frame_len[mask]
            a["frame_len"] = fl
            a["stripped"] = 4
            a["hlen"] = _HDR_LEN[v4]
            h = a["hdr"]
            h["ethertype"] = 0x0800 if v4 else 0x86DD
            if v4:
                h["ver_ihl"] = 0x45
                h["tot_len"] = fl - 14
                h["ttl"] = 64
                h["proto"] = 6
                h["src"] = np.ascontiguousarray(part.src[:, 12:16]).view(">u4").ravel()
                h["dst"] = np.ascontiguousarray(part.dst[:, 12:16]).view(">u4").ravel()
            else:
                h["vtcfl"] = 0x60000000
                h["plen"] = fl - 54
                h["nh"] = 6
                h["hlim"] = 64
                h["src"] = np.ascontiguousarray(part.src).view("V16").ravel()
                h["dst"] = np.ascontiguousarray(part.dst).view("V16").ravel()
            h["sport"] = part.src_port
            h["dport"] = part.dst_port
            h["off"] = 0x50
            h["flags"] = part.tcp_flags
            h["win"] = 65535
            raw = a.tobytes()
            size = dt.itemsize
            per = max(1, (MTU_PAYLOAD - 28) // size)
            for i in range(0, n, per):
                chunk = raw[i * size : (i + per) * size]
                count = len(chunk) // size
                head = struct.pack(
                    "!IIIIIII", 5, 1, self.agent, 0, self.sequence, (now_ms - self.boot_ms) & 0xFFFFFFFF, count
                )
                out.append(head + chunk)
                self.sequence += 1
        return out
