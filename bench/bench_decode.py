"""Decode + flows/1 batch encode throughput per protocol, one core, no network.

    taskset -c 0 .venv/bin/python bench/bench_decode.py [--seconds 3] [--batch-flows 10000]

Datagrams are generated here in the shapes real exporters send (pmacct-like v9/IPFIX
templates with 8-byte counters and ms timestamps, 30 records per datagram; v5 with 30
records; sFlow with 7 samples of 128-byte Ethernet/IPv4/TCP headers), then replayed in
decode passes of ~``--batch-flows`` flows, each followed by ``encode_flows`` (Arrow IPC,
lz4), which is what the collector publishes per Kafka message. Decode applies the
collector's default plausibility bounds, as the service does (``--no-bounds`` to compare).
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import time

from netpilot.wire.flows import encode_flows, str_to_addr
from producers.collector.decode.bounds import FlowBounds, check
from producers.collector.decode.decoder import Decoder, DecoderOptions

EXPORTER = str_to_addr("192.0.2.1")
NOW_S = 1_700_000_000
FIELDS = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (10, 4),
    (14, 4),
    (1, 8),
    (2, 8),
    (152, 8),
    (153, 8),
    (16, 4),
    (17, 4),
    (15, 4),
]
REC = struct.Struct(">4s4sHHBBIIQQQQII4s")
PER_DATAGRAM = 30


def _records(rng: random.Random) -> bytes:
    out = b""
    for _ in range(PER_DATAGRAM):
        packets = rng.randrange(1, 1000)
        out += REC.pack(
            bytes([192, 0, 2, rng.randrange(256)]),
            bytes([198, 51, 100, rng.randrange(256)]),
            rng.randrange(1024, 65535),
            443,
            6,
            0x18,
            1,
            2,
            packets * rng.randrange(40, 1500),  # plausible: 40 to 1,500 bytes per packet
            packets,
            NOW_S * 1000 - 9000,
            NOW_S * 1000 - 1000,
            64500,
            64501,
            bytes([203, 0, 113, 1]),
        )
    return out


def _fields(fields: list[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack(">HH", ie, ln) for ie, ln in fields)


def _set(set_id: int, body: bytes) -> bytes:
    return struct.pack(">HH", set_id, 4 + len(body)) + body


def ipfix_datagrams(n: int, rng: random.Random) -> list[bytes]:
    tpl = _set(2, struct.pack(">HH", 300, len(FIELDS)) + _fields(FIELDS))
    out = []
    for i in range(n):
        sets = ([tpl] if i % 100 == 0 else []) + [_set(300, _records(rng))]
        body = b"".join(sets)
        out.append(struct.pack(">HHIII", 10, 16 + len(body), NOW_S, i, 1) + body)
    return out


def v9_datagrams(n: int, rng: random.Random) -> list[bytes]:
    tpl = _set(0, struct.pack(">HH", 300, len(FIELDS)) + _fields(FIELDS))
    out = []
    for i in range(n):
        sets = ([tpl] if i % 100 == 0 else []) + [_set(300, _records(rng))]
        out.append(struct.pack(">HHIIII", 9, len(sets), 100_000, NOW_S, i, 1) + b"".join(sets))
    return out


def v5_datagrams(n: int, rng: random.Random) -> list[bytes]:
    out = []
    for i in range(n):
        recs = b"".join(
            struct.pack(
                ">4s4s4sHHIIIIHHBBBBHHBBH",
                bytes([192, 0, 2, rng.randrange(256)]),
                bytes([198, 51, 100, rng.randrange(256)]),
                bytes(4),
                1,
                2,
                10,
                1500,
                50_000,
                59_000,
                1234,
                80,
                0,
                0x12,
                6,
                0,
                64500,
                64501,
                24,
                24,
                0,
            )
            for _ in range(PER_DATAGRAM)
        )
        out.append(struct.pack(">HHIIIIBBH", 5, PER_DATAGRAM, 60_000, NOW_S, 0, i, 0, 0, 100) + recs)
    return out


def sflow_datagrams(n: int, rng: random.Random, samples: int = 7) -> list[bytes]:
    out = []
    for i in range(n):
        body = b""
        for _ in range(samples):
            tcp = struct.pack(">HHIIBBHHH", rng.randrange(1024, 65535), 443, 1, 1, 0x50, 0x18, 1000, 0, 0)
            ip = struct.pack(
                ">BBHHHBBH4s4s",
                0x45,
                0,
                1400,
                0,
                0,
                64,
                6,
                0,
                bytes([192, 0, 2, rng.randrange(256)]),
                bytes([198, 51, 100, rng.randrange(256)]),
            )
            hdr = (b"\x02" * 6 + b"\x04" * 6 + b"\x81\x00\x00\x0a\x08\x00" + ip + tcp).ljust(128, b"\x00")
            raw = struct.pack(">IIII", 1, 1414, 4, len(hdr)) + hdr
            rec = struct.pack(">II", 1, len(raw)) + raw
            sample = struct.pack(">8I", i, 3, 1024, 1024 * i, 0, 3, 4, 1) + rec
            body += struct.pack(">II", 1, len(sample)) + sample
        out.append(struct.pack(">II4sIIII", 5, 1, bytes([192, 0, 2, 1]), 0, i, 1000, samples) + body)
    return out


def bench(name: str, datagrams: list[bytes], batch_flows: int, seconds: float, bounds: bool) -> None:
    dec = Decoder(DecoderOptions(bounds=FlowBounds() if bounds else None))
    per = max(1, batch_flows // (7 if name == "sflow5" else PER_DATAGRAM))
    batches = [[(EXPORTER, d, NOW_S * 1000) for d in datagrams[i : i + per]] for i in range(0, len(datagrams), per)]
    dec.decode(batches[0])  # templates
    flows = encoded = refused = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for b in batches:
            r = dec.decode(b)
            encoded += len(encode_flows(r.table()))
            flows += r.n
            refused += sum(r.drops.values())
    assert not refused, f"{name}: the generated flows must all be plausible, {refused} refused"
    dt = time.perf_counter() - t0
    print(
        f"{name:9s} {flows / dt:>12,.0f} flows/s  {dt / flows * 1e9:7.0f} ns/flow  "
        f"{encoded / flows:5.1f} B/flow (lz4)  batches of ~{per * (7 if name == 'sflow5' else PER_DATAGRAM)} flows"
    )


def bench_bounds(datagrams: list[bytes], seconds: float) -> None:
    """The plausibility check alone, on the columns of one decoded ~10k-flow batch."""
    cols = Decoder().decode([(EXPORTER, d, NOW_S * 1000) for d in datagrams]).columns
    bounds, n, calls = FlowBounds(), len(cols["bytes"]), 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        check(cols, bounds)
        calls += 1
    dt = (time.perf_counter() - t0) / calls
    print(f"bounds    check() alone: {dt * 1e6:,.0f} us per batch of {n:,} flows = {dt / n * 1e9:.1f} ns/flow")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch-flows", type=int, default=10_000)
    ap.add_argument("--no-bounds", action="store_true", help="decode without the plausibility bounds")
    args = ap.parse_args()
    rng = random.Random(1)
    bounds = "no bounds" if args.no_bounds else "default bounds"
    print(f"one decode pass ({bounds}) + encode_flows per batch; cpu affinity {sorted(os.sched_getaffinity(0))}")
    for name, gen in (
        ("netflow9", v9_datagrams),
        ("ipfix", ipfix_datagrams),
        ("netflow5", v5_datagrams),
        ("sflow5", sflow_datagrams),
    ):
        bench(name, gen(2000, rng), args.batch_flows, args.seconds, not args.no_bounds)
    bench_bounds(ipfix_datagrams(333, rng), args.seconds)


if __name__ == "__main__":
    main()
