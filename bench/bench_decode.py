"""Decode + flows/1 batch encode throughput per protocol, one core, no network.

    taskset -c 0 .venv/bin/python bench/bench_decode.py [--seconds 3] [--batch-flows 10000]
    .venv/bin/python bench/bench_decode.py --cli [--cli-flows 1200000]

Datagrams are generated here in the shapes real exporters send (pmacct-like v9/IPFIX
templates with 8-byte counters and ms timestamps, 30 records per datagram; v5 with 30
records; sFlow with 7 samples of 128-byte Ethernet/IPv4/TCP headers; v9 with a
variable-length field, as H3C/Huawei send; YAF-like IPFIX biflows; Cisco NSEL events;
Juniper-like frame sections), then replayed in decode passes of ~``--batch-flows`` flows,
each followed by ``encode_flows`` (Arrow IPC, lz4), which is what the collector publishes
per Kafka message. Decode applies the collector's default plausibility bounds, as the
service does (``--no-bounds`` to compare). Figures are flows per second of wall time and
of CPU time (the CPU figure is the steadier one on a shared machine).

``--cli`` times ``netpilot decode`` itself (in process, after imports): a pcap of v9
datagrams read, decoded and written to a file in each ``--format``; output is written on
a second thread, so on two idle cores the wall figure is higher than the CPU one. The
files go to /dev/shm when there is one: the tool is measured, not the disk (JSON lines are
575 bytes a flow; a disk that takes 300 MB/s caps them at ~500k flows/s).
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
    return b"".join(REC.pack(*_values(rng)) for _ in range(PER_DATAGRAM))


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


def _templated(version: int, tid: int, fields: list[tuple], record: Callable[[random.Random], bytes]):  # type: ignore[type-arg, no-untyped-def]
    """A generator of v9 (9) / IPFIX (10) datagrams of PER_DATAGRAM ``record``s of one template."""

    def specs() -> bytes:
        out = b""
        for f in fields:
            out += struct.pack(">HHI", f[0] | 0x8000, f[1], f[2]) if len(f) == 3 else struct.pack(">HH", f[0], f[1])
        return out

    def gen(n: int, rng: random.Random) -> list[bytes]:
        tpl = _set(0 if version == 9 else 2, struct.pack(">HH", tid, len(fields)) + specs())
        out = []
        for i in range(n):
            data = _set(tid, b"".join(record(rng) for _ in range(PER_DATAGRAM)))
            sets = ([tpl] if i % 100 == 0 else []) + [data]
            if version == 9:
                out.append(struct.pack(">HHIIII", 9, len(sets), 100_000, NOW_S, i, 1) + b"".join(sets))
            else:
                body = b"".join(sets)
                out.append(struct.pack(">HHIII", 10, 16 + len(body), NOW_S, i, 1) + body)
        return out

    return gen


def _v9_varlen(rng: random.Random) -> bytes:
    app = b"app-%d" % rng.randrange(100)
    return REC.pack(*_values(rng)) + bytes([len(app)]) + app


def _values(rng: random.Random) -> tuple:  # type: ignore[type-arg]
    packets = rng.randrange(1, 1000)
    return (
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


BIFLOW_FIELDS = [(152, 8), (153, 8), (85, 8), (85, 8, 29305), (86, 8), (86, 8, 29305), (8, 4), (12, 4), (7, 2)]
BIFLOW_FIELDS += [(11, 2), (4, 1), (14, 1, 6871), (15, 1, 6871), (16398, 1, 6871), (16399, 1, 6871)]
BIFLOW = struct.Struct(">QQQQQQ4s4sHHBBBBB")


def _biflow(rng: random.Random) -> bytes:
    packets, rev_packets = rng.randrange(1, 100), rng.randrange(0, 1000)
    return BIFLOW.pack(
        NOW_S * 1000 - 9000,
        NOW_S * 1000 - 1000,
        packets * rng.randrange(40, 1500),
        rev_packets * rng.randrange(40, 1500),
        packets,
        rev_packets,
        bytes([192, 0, 2, rng.randrange(256)]),
        bytes([198, 51, 100, rng.randrange(256)]),
        rng.randrange(1024, 65535),
        443,
        6,
        2,
        0x18,
        0x12,
        0x18,
    )


NSEL_FIELDS = [(148, 4), (8, 4), (7, 2), (10, 2), (12, 4), (11, 2), (14, 2), (4, 1), (233, 1), (33002, 2)]
NSEL_FIELDS += [(323, 8), (152, 8), (231, 4), (232, 4), (298, 4), (299, 4)]
NSEL = struct.Struct(">I4sHH4sHHBBHQQIIII")


def _nsel(rng: random.Random) -> bytes:
    event = rng.choice((1, 2, 5, 5, 5))
    packets, rev_packets = (rng.randrange(1, 100), rng.randrange(0, 1000)) if event != 1 else (0, 0)
    return NSEL.pack(
        rng.randrange(1 << 30),
        bytes([192, 0, 2, rng.randrange(256)]),
        rng.randrange(1024, 65535),
        3,
        bytes([198, 51, 100, rng.randrange(256)]),
        443,
        4,
        6,
        event,
        0,
        NOW_S * 1000 - 1000,
        NOW_S * 1000 - 60_000,
        packets * rng.randrange(40, 1500),
        rev_packets * rng.randrange(40, 1500),
        packets,
        rev_packets,
    )


SECTION_FIELDS = [(10, 4), (14, 4), (61, 1), (312, 2), (315, 0xFFFF)]


def _section(rng: random.Random) -> bytes:
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
    tcp = struct.pack(">HHIIBBHHH", rng.randrange(1024, 65535), 443, 1, 1, 0x50, 0x18, 1000, 0, 0)
    frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp
    return struct.pack(">IIBH", 7, 8, 1, 1414) + bytes([len(frame)]) + frame


def bench(name: str, datagrams: list[bytes], batch_flows: int, seconds: float, bounds: bool) -> None:
    dec = Decoder(DecoderOptions(bounds=FlowBounds() if bounds else None))
    per = max(1, batch_flows // (7 if name == "sflow5" else PER_DATAGRAM))
    batches = [[(EXPORTER, d, NOW_S * 1000) for d in datagrams[i : i + per]] for i in range(0, len(datagrams), per)]
    dec.decode(batches[0])  # templates
    flows = encoded = refused = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        for b in batches:
            r = dec.decode(b)
            encoded += len(encode_flows(r.table()))
            flows += r.n
            refused += sum(r.drops.values())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert not refused, f"{name}: the generated flows must all be plausible, {refused} refused"
    print(
        f"{name:12s} {flows / dt:>10,.0f} flows/s {flows / cpu:>10,.0f} flows/cpu-s {cpu / flows * 1e9:6.0f} ns/flow "
        f"{encoded / flows:5.1f} B/flow (lz4)  batches of ~{per * (7 if name == 'sflow5' else PER_DATAGRAM)} records"
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


def bench_cli(total_flows: int) -> None:
    """``netpilot decode`` end to end, per output format, in process (imports excluded)."""
    from producers.collector import decode_cli

    rng = random.Random(2)
    ram = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=ram) as tmp:
        pcap = Path(tmp) / "v9.pcap"
        distinct = v9_datagrams(2000, rng)
        _write_pcap(pcap, [distinct[i % len(distinct)] for i in range(total_flows // PER_DATAGRAM)])
        for fmt in ("jsonl", "csv", "parquet", "arrow"):
            out = Path(tmp) / f"flows.{fmt}"
            t0, c0 = time.perf_counter(), time.process_time()
            decode_cli.decode(pcap, False, False, fmt, out, 1, "session")
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(
                f"decode --format {fmt:7s} {total_flows / dt:>11,.0f} flows/s  {total_flows / cpu:>11,.0f} flows/cpu-s"
                f"  {out.stat().st_size / total_flows:6.1f} B/flow"
            )


def _write_pcap(path: Path, datagrams: list[bytes]) -> None:
    """Ethernet/IPv4/UDP frames, built with struct (dpkt per frame would dominate)."""
    with path.open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, d in enumerate(datagrams):
            udp = struct.pack(">HHHH", 40000, 2055, 8 + len(d), 0) + d
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\x7f\0\0\1", b"\x7f\0\0\1")
            frame = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp
            fh.write(struct.pack("<IIII", NOW_S + i // 1000, (i % 1000) * 1000, len(frame), len(frame)) + frame)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch-flows", type=int, default=10_000)
    ap.add_argument("--no-bounds", action="store_true", help="decode without the plausibility bounds")
    ap.add_argument("--cli", action="store_true", help="time netpilot decode per output format instead")
    ap.add_argument("--cli-flows", type=int, default=1_200_000)
    args = ap.parse_args()
    if args.cli:
        print(f"netpilot decode, {args.cli_flows:,} flows; cpu affinity {sorted(os.sched_getaffinity(0))}")
        bench_cli(args.cli_flows)
        return
    rng = random.Random(1)
    bounds = "no bounds" if args.no_bounds else "default bounds"
    print(f"one decode pass ({bounds}) + encode_flows per batch; cpu affinity {sorted(os.sched_getaffinity(0))}")
    for name, gen in (
        ("netflow9", v9_datagrams),
        ("ipfix", ipfix_datagrams),
        ("netflow5", v5_datagrams),
        ("sflow5", sflow_datagrams),
        ("v9-varlen", _templated(9, 310, FIELDS + [(96, 0xFFFF)], _v9_varlen)),
        ("ipfix-biflow", _templated(10, 320, BIFLOW_FIELDS, _biflow)),
        ("v9-nsel", _templated(9, 330, NSEL_FIELDS, _nsel)),
        ("ipfix-frames", _templated(10, 340, SECTION_FIELDS, _section)),
    ):
        bench(name, gen(2000, rng), args.batch_flows, args.seconds, not args.no_bounds)
    bench_bounds(ipfix_datagrams(333, rng), args.seconds)


if __name__ == "__main__":
    main()
