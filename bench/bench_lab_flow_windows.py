"""In the routing lab: bytes the kernel sent on the PNI per 10 s window against the bytes of
softflowd's IPFIX records, each record whole in the window of its end (the old assignment)
and spread over the windows it spans (``streams.spread_flows``, the default).

A steady UDP load saturates the 20 Mbit/s PNI for ``--seconds``; the pop's softflowd
exports to a UDP socket on the root namespace's 127.0.0.1 (through the lab's relay); the
records are decoded with the collector's decoder and windowed with the streams worker's
``aggregate_batch``; the kernel's tx counter of ``pni0`` is read every 0.5 s. Root only.

    .venv/bin/python bench/bench_lab_flow_windows.py [--seconds 40] [--maxlife 2]
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netpilot.dev import lab as lab_mod
from netpilot.dev.lab import Lab
from netpilot.wire import flows as F
from producers.collector.decode.decoder import Decoder
from streams.aggregate import windows as w

WINDOW_S = 10


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--maxlife", type=int, default=0, help="softflowd maxlife (0: the lab's own)")
    args = ap.parse_args()
    if args.maxlife:
        lab_mod.SOFTFLOWD_MAXLIFE_S = args.maxlife
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    got: list[tuple[bytes, int]] = []
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                got.append((sock.recv(65535), int(time.time() * 1000)))
            except TimeoutError:
                continue

    lab = Lab(f"nbw{uuid.uuid4().hex[:4]}-")
    tx: list[tuple[float, int]] = []
    rx = threading.Thread(target=receive, daemon=True)
    try:
        lab.up(collector_port=sock.getsockname()[1])
        rx.start()
        procs = [lab.send(f"198.18.{n}.1", 9, args.seconds) for n in (10, 11, 12)]  # 27 Mbit/s offered
        end = time.time() + args.seconds + 8
        while time.time() < end:
            tx.append((time.time(), lab.tx_bytes()["pni0"]))
            time.sleep(0.5)
        for p in procs:
            p.wait(timeout=30)
    finally:
        stop.set()
        lab.down()
    exporter = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")
    res = Decoder().decode([(exporter, d, ms) for d, ms in got])
    c = res.columns
    n = res.n
    span = (c["time_end"] - c["time_start"]).astype(np.int64)
    print(
        f"{n} records from {len(got)} datagrams; span p50 {np.median(span) / 1000:.1f} s, max {span.max() / 1000:.1f} s"
    )
    table = F.flow_table(
        {
            "time_start": c["time_start"],
            "time_end": c["time_end"],
            "time_received": c["time_received"],
            "pop": "lab",
            "link_id": "pni",
            "router": "r1",
            "dst_addr": c["dst_addr"],
            "dst_prefix": c["dst_addr"],
            "dst_prefix_len": np.full(n, 32, np.uint8),
            "dst_as": np.zeros(n, np.uint32),
            "bytes": c["bytes"],
            "packets": c["packets"],
            "sampling_rate": np.ones(n, np.uint32),
            "bytes_scaled": c["bytes"],
            "packets_scaled": c["packets"],
        }
    )
    per: dict[str, dict[int, int]] = {}
    for name, spread in (("end", False), ("spread", True)):
        spec = w.WindowSpec(sizes_s=(WINDOW_S,), allowed_lateness_s=30, spread=spread)
        part = w.aggregate_batch(table, spec, {}).partials
        per[name] = {}
        for ws, b in part.select("window_start", "bytes").group_by("window_start").sum().iter_rows():
            per[name][int(ws)] = int(b)
    kt = np.array([t * 1000 for t, _ in tx])
    kb = np.array([b for _, b in tx], dtype=np.float64)
    print(f"{'window':>8} {'kernel Mbit/s':>14} {'end-window':>11} {'spread':>8}   (flows / kernel)")
    first = int(kt[0]) // (WINDOW_S * 1000) * WINDOW_S * 1000 + WINDOW_S * 1000
    for ws in range(first, int(kt[-1]) - WINDOW_S * 1000, WINDOW_S * 1000):
        k = np.interp(ws + WINDOW_S * 1000, kt, kb) - np.interp(ws, kt, kb)
        if k <= 0:
            continue
        e, s = per["end"].get(ws, 0), per["spread"].get(ws, 0)
        rate = k * 8 / WINDOW_S / 1e6
        print(f"{(ws - first) // 1000:>8} {rate:>14.1f} {e / k:>11.2f} {s / k:>8.2f}")


if __name__ == "__main__":
    main()
